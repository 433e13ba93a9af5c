"""Coarse to fine for big photos (esdiff.coarse_to_fine) and the SVD start of the ADMM state."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from esdiff import coarse_to_fine
from esdiff.coarse_to_fine import band_weight, bands, coarse_size, downscale
from esdiff.config import DEFAULT_SAMPLER, LowRankConfig, SamplerConfig
from esdiff.config_checks import sampler_config_problems
from esdiff.hankel import hankel
from esdiff.inpaint import inpaint_image
from esdiff.lowrank import admm_step, svd_start

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = replace(
    DEFAULT_SAMPLER,
    steps=2,
    refine_steps=2,
    patch_batch=8,
    coarse_side=64,
    low_rank=replace(DEFAULT_SAMPLER.low_rank, lmafit_max_iter=20),
)
"""The defaults, short, with coarse to fine from a long side of 97 pixels (96 = 1.5 x 64)."""


def _waves(size: int = 64) -> torch.Tensor:
    """``[1, 3, P, P]``: two plane waves per channel, whose Hankel matrix has rank at most 4 + 1."""
    i, j = torch.meshgrid(torch.arange(size.__float__()), torch.arange(size.__float__()), indexing="ij")
    channels = [
        0.5 + 0.2 * torch.cos(0.3 * i + 0.2 * j + c) + 0.1 * torch.sin(0.05 * i - 0.4 * j + 2 * c)
        for c in range(3)
    ]
    return torch.stack(channels)[None].double()


def test_svd_start_recovers_a_low_rank_patch() -> None:
    x = _waves()
    H = hankel(x)
    state = svd_start(x, LowRankConfig(svd_energy=1 - 1e-12))
    assert state.U.shape[-1] <= 5 and state.V.shape[-1] == state.U.shape[-1]
    torch.testing.assert_close(state.U @ state.V.transpose(1, 2), H, atol=1e-5, rtol=0)
    # balanced factors: U^T U = V^T V = S
    torch.testing.assert_close(state.U.transpose(1, 2) @ state.U, state.V.transpose(1, 2) @ state.V)
    assert not state.L.any()
    # ADMM from that state keeps a low-rank patch: it starts next to its fixed point
    _, _, _, x_lr = admm_step(H, state.U, state.V, state.L, 1.0)
    assert float((x_lr - H).abs().max()) < 0.05 * float(H.abs().max())


def test_svd_start_rank_follows_the_energy_and_the_cap() -> None:
    noisy = _waves() + 0.05 * torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)).double()
    loose, tight = (svd_start(noisy, LowRankConfig(svd_energy=e)) for e in (0.9, 0.9999))
    assert loose.U.shape[-1] < tight.U.shape[-1]
    capped = svd_start(noisy, LowRankConfig(svd_energy=0.9999, max_rank=3))
    assert capped.U.shape[-1] == 3


def test_coarse_to_fine_is_chosen_by_image_size() -> None:
    assert coarse_size(1080, 1920, DEFAULT_SAMPLER) == (288, 512)
    assert coarse_size(2160, 3840, DEFAULT_SAMPLER) == (288, 512)
    assert coarse_size(256, 256, DEFAULT_SAMPLER) is None
    assert coarse_size(576, 768, DEFAULT_SAMPLER) is None  # at most 1.5 x 512
    assert coarse_size(1080, 1920, replace(DEFAULT_SAMPLER, coarse_side=None)) is None
    assert coarse_size(1080, 1920, SamplerConfig(coarse_side=512)) is None  # patch sampling
    assert sampler_config_problems(replace(DEFAULT_SAMPLER, coarse_side=32))
    assert sampler_config_problems(replace(DEFAULT_SAMPLER, refine_t_start=0.0))
    assert sampler_config_problems(replace(DEFAULT_SAMPLER, low_rank=LowRankConfig(init="qr")))  # type: ignore[arg-type]


def test_downscale_keeps_what_is_mostly_known() -> None:
    known = np.ones((8, 8), dtype=bool)
    known[:, :2] = False  # the first coarse column of 2x2 blocks is missing
    known[0, 2] = known[2:4, 4] = False  # three quarters of a coarse pixel are known, half of another
    observed = np.where(known[..., None], 0.5, 0.0) * np.ones((8, 8, 3))
    small, small_known = downscale(observed, known, (4, 4))
    expected = np.ones((4, 4), dtype=bool)
    expected[:, 0] = expected[1, 2] = False
    np.testing.assert_array_equal(small_known, expected)
    np.testing.assert_allclose(small[expected], 0.5)  # the mean of the known pixels only
    assert not small[~expected].any()


def test_band_weights_cover_every_row_and_blend_the_overlaps() -> None:
    height = 700
    total = torch.zeros(height, dtype=torch.float64)
    for top, bottom in bands(height):
        lo, hi = max(top - coarse_to_fine.OVERLAP, 0), min(bottom + coarse_to_fine.OVERLAP, height)
        w = band_weight(top, bottom, lo, hi)
        assert (w[top - lo : bottom - lo] == 1).all() and (w > 0).all()
        total[lo:hi] += w
    assert (total >= 1).all() and (total < 2).all()


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's astronaut at 150x220 with a thick bar and scattered pixels missing."""
    from skimage import data, transform

    photo = transform.resize(data.astronaut(), (150, 220), anti_aliasing=True).astype(np.float32)
    known = np.random.default_rng(0).random((150, 220)) > 0.2
    known[60:75, 30:190] = False
    return np.where(known[..., None], photo, 0.0), known


def test_coarse_to_fine_keeps_known_pixels_and_is_seeded(
    tiny_model: Path, scene: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    observed, known = scene
    monkeypatch.setattr(coarse_to_fine, "BAND", 48)  # four bands of two blocks: the blending runs
    monkeypatch.setattr(coarse_to_fine, "BLOCK_WIDTH", 128)
    calls: list[tuple[float, int]] = []
    started: list[tuple[int, int]] = []
    real = coarse_to_fine.sample_whole_image

    def spy(observed: np.ndarray, known: np.ndarray, **kwargs):  # type: ignore[no-untyped-def]
        started.append(known.shape)
        return real(observed, known, **kwargs)

    monkeypatch.setattr(coarse_to_fine, "sample_whole_image", spy)

    def run(seed: int) -> np.ndarray:
        return inpaint_image(
            observed,
            known,
            model=tiny_model,
            seed=seed,
            config=SMALL,
            progress=lambda done, total, **_: calls.append((done, total)),
        )

    first = run(3)
    assert started[0] == (44, 64) and len(started) == 9  # the coarse pass, then eight blocks
    assert started[1:3] == [(80, 160), (80, 124)]  # 48 + 32 rows, 128 + 32 and 92 + 32 columns
    assert np.isfinite(first).all() and np.array_equal(first[known], observed[known])
    assert 0 <= first.min() and first.max() <= 1
    done = [c[0] for c in calls]
    assert done == sorted(done) and calls[-1] == (SMALL.steps, SMALL.steps) and 0 < done[0] < 1
    again = run(3)
    assert again.tobytes() == first.tobytes()
    assert not np.array_equal(run(4), first)


def test_rim_correction_fades_a_constant_offset_into_the_hole() -> None:
    """An upsampled fill off by a constant everywhere: each missing pixel is corrected by that constant
    times ``exp(-distance / length)``, the known ones not at all."""
    known = np.ones((40, 50), dtype=bool)
    known[10:30, 5:45] = False
    observed = np.full((40, 50, 3), 0.5) * known[..., None]
    upsampled = torch.full((3, 40, 50), 0.4)
    fix = coarse_to_fine.rim_correction(observed, known, upsampled, length=3.0).permute(1, 2, 0).numpy()
    assert not fix[known].any()
    distance = np.minimum.reduce([np.arange(40)[:, None] - 9, 30 - np.arange(40)[:, None]])
    distance = np.minimum(distance, np.minimum(np.arange(50) - 4, 45 - np.arange(50))[None])
    expected = 0.1 * np.exp(-distance / 3.0)
    np.testing.assert_allclose(fix[~known], np.repeat(expected[~known][:, None], 3, 1), rtol=1e-6)


def test_coarse_to_fine_without_refinement_keeps_known_pixels_and_is_seeded(
    tiny_model: Path, scene: tuple[np.ndarray, np.ndarray]
) -> None:
    """The defaults' way (``refine_steps`` 0): the coarse pass alone, its fill corrected at the rim and
    given the surroundings' detail: known pixels exact, a seed the same bytes; a negative count is
    refused."""
    observed, known = scene
    cfg = replace(SMALL, refine_steps=0)
    first = inpaint_image(observed, known, model=tiny_model, seed=3, config=cfg)
    assert np.array_equal(first[known], observed[known]) and 0 <= first.min() and first.max() <= 1
    assert inpaint_image(observed, known, model=tiny_model, seed=3, config=cfg).tobytes() == first.tobytes()
    assert sampler_config_problems(replace(DEFAULT_SAMPLER, refine_steps=-1))
    assert not sampler_config_problems(cfg)
