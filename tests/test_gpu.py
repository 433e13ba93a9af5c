"""The GPU path: noise drawn on the device, LMaFit with sparse host looks, bf16 / compiled network.

Marked ``gpu`` (deselected by default; CI has no GPU): ``pytest -m gpu`` on a machine with CUDA, as
``benchmarks/gpu_check.sh`` does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _photo() -> tuple[np.ndarray, np.ndarray]:
    from skimage import data, transform

    image = transform.resize(data.astronaut(), (192, 192), anti_aliasing=True).astype(np.float32)
    known = np.random.default_rng(0).random((192, 192)) > 0.7
    return image, known


def test_noise_is_drawn_on_the_device() -> None:
    from esdiff.sampler import Context, patch_generators

    generators = patch_generators(3, [0, 5], "cuda")
    ctx = Context(None, None, None, None, None, generators, 1.0, 1.0)  # type: ignore[arg-type]
    like = torch.zeros(2, 3, 8, 8, device="cuda")
    first = ctx.noise(like)
    assert first.device.type == "cuda"
    again = Context(None, None, None, None, None, patch_generators(3, [5], "cuda"), 1.0, 1.0)  # type: ignore[arg-type]
    assert torch.equal(again.noise(like[:1])[0], first[1])  # a patch's draws do not depend on its batch


def test_esdiff_on_the_gpu_is_seeded_and_as_good_as_on_the_cpu() -> None:
    from esdiff.inpaint import inpaint_image
    from esdiff.metrics import psnr

    image, known = _photo()
    observed = np.where(known[..., None], image, 0)
    gpu = [inpaint_image(observed, known, seed=1, device="cuda") for _ in range(2)]
    assert np.array_equal(gpu[0], gpu[1])
    cpu = inpaint_image(observed, known, seed=1, device="cpu")
    assert psnr(gpu[0], image) > psnr(cpu, image) - 0.3


def test_lmafit_sparse_looks_on_the_gpu() -> None:
    from esdiff.lmafit import lmafit

    g = torch.Generator().manual_seed(0)
    A = torch.stack([torch.randn(120, r, generator=g) @ torch.randn(r, 40, generator=g) for r in (2, 5)])
    known = torch.rand(A.shape, generator=g) < 0.6
    A, known = A.double().cuda(), known.cuda()
    every = lmafit(A * known, known, tol=1e-6)
    sparse = lmafit(A * known, known, tol=1e-6, sync_every=8)
    assert sparse.ranks.tolist() == every.ranks.tolist()
    for i in range(2):
        torch.testing.assert_close(sparse.U[i] @ sparse.V[i].T, every.U[i] @ every.V[i].T, atol=1e-8, rtol=0)


def test_bf16_and_compiled_network_match_eager(tmp_path: Path) -> None:
    from esdiff.prior import Runtime, load, scorer

    prior, _, _ = load(None, "cuda")
    psi = torch.rand(25, 12, 64, 64, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    exact = prior.score(psi, 0.1)
    for runtime in (Runtime(bf16=True), Runtime(compile=True), Runtime(bf16=True, compile=True)):
        got = scorer(prior, runtime)(psi, 0.1)
        assert float((got - exact).norm() / exact.norm()) < 0.05, runtime
