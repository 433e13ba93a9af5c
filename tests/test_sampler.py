"""The sampler with closed-form scores: a point mass must be recovered; bookkeeping must be exact."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from esdiff.config import LowRankConfig, SamplerConfig
from esdiff.sampler import STEP_LISTS, Context, Encoding, State, sample_patches
from esdiff.sde import VESDE
from esdiff.transforms import mpt, virtual_mask

CHEAP = SamplerConfig(steps=30, low_rank=LowRankConfig(rank=40, lmafit_max_iter=200, dtype="float32"))


SPREAD = 0.03


def gaussian_score(target: torch.Tensor):
    """Exact score of N(target, SPREAD^2 I) smoothed at noise level sigma: a prior peaked at the truth."""

    def score(psi: torch.Tensor, sigma: float) -> torch.Tensor:
        return -(psi - target) / (sigma**2 + SPREAD**2)

    return score


def patches(astronaut: np.ndarray, missing: float = 0.8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(astronaut[:64, :64]).permute(2, 0, 1)[None].contiguous()
    known = torch.from_numpy(np.random.default_rng(0).random((1, 1, 64, 64)) > missing)
    return x, x * known, known


@pytest.mark.parametrize("state", ["rgb", "mpt"])
@pytest.mark.parametrize(("steps", "floor_db"), [("esdiff", 24.0), ("no-lowrank", 35.0)])
def test_exact_score_recovers_the_image(
    astronaut: np.ndarray, steps: str, floor_db: float, state: str
) -> None:
    """With the exact score of a prior peaked at the truth, sampling must land near the truth; the
    low-rank step caps what a fixed rank-40 Hankel approximation can represent."""
    x, y, known = patches(astronaut)
    keep = virtual_mask(2.81, 64, 0)
    encoding = Encoding(keep)
    gens = [torch.Generator().manual_seed(1)]
    cfg = replace(CHEAP, state=state)
    out = sample_patches(
        gaussian_score(mpt(x, keep)), encoding, VESDE(), y, known, cfg, gens, STEP_LISTS[steps]
    )
    assert torch.equal(out[known.expand_as(out)], x[known.expand_as(x)])
    mse = float(((out - x) ** 2).mean())
    assert -10 * np.log10(mse) > floor_db, mse


def test_kept_mpt_state_moves_by_the_rgb_correction(astronaut: np.ndarray) -> None:
    """state="mpt": the kept 12-channel object shifts by MPT(dx) when an RGB step changes x by dx, so
    its slots keep their own noise and it still decodes to the corrected x."""
    x, _, _ = patches(astronaut)
    keep = virtual_mask(2.81, 64, 0)
    encoding = Encoding(keep, "mean")
    ctx = Context(None, encoding, None, x, SamplerConfig(state="mpt"), [], 1.0, 1.0)  # type: ignore[arg-type]
    psi = mpt(x, keep) + 0.1 * torch.randn(1, 12, 64, 64, generator=torch.Generator().manual_seed(0))
    state = State(x=x, lr=None).decoded(psi, ctx)
    assert torch.equal(state.encoded(ctx), psi)
    dx = 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    moved = replace(state, x=state.x + dx)
    assert torch.allclose(moved.encoded(ctx), psi + mpt(dx, keep), atol=1e-6)
    assert torch.allclose(encoding.decode(moved.encoded(ctx)), moved.x, atol=1e-5)
    rgb = Context(None, encoding, None, x, SamplerConfig(), [], 1.0, 1.0)  # type: ignore[arg-type]
    assert torch.equal(moved.encoded(rgb), mpt(moved.x, keep))


def test_same_seed_same_result(astronaut: np.ndarray) -> None:
    x, y, known = patches(astronaut)
    keep = virtual_mask(2.81, 64, 0)
    encoding = Encoding(keep)

    def score(psi: torch.Tensor, sigma: float) -> torch.Tensor:
        return -(psi - 0.5) / (sigma**2 + 1.0)

    def run(seed: int) -> torch.Tensor:
        cfg = SamplerConfig(steps=5, low_rank=CHEAP.low_rank)
        return sample_patches(score, encoding, VESDE(), y, known, cfg, [torch.Generator().manual_seed(seed)])

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_inpaint_image_end_to_end(tmp_path: Path, astronaut: np.ndarray) -> None:
    from esdiff.checkpoints import save_checkpoint
    from esdiff.config import NETWORK_PRESETS, ModelConfig
    from esdiff.inpaint import inpaint_image
    from esdiff.nn import build_score_model

    torch.manual_seed(0)
    cfg = ModelConfig(network=NETWORK_PRESETS["tiny"])
    net = build_score_model(cfg.network)
    path = save_checkpoint(
        tmp_path / "m.safetensors", ema=net.state_dict(), keep=virtual_mask(2.81), model_config=cfg
    )
    image = astronaut[:70, :90]
    known = np.random.default_rng(1).random((70, 90)) > 0.5
    observed = np.where(known[..., None], image, 0.0)
    kwargs = dict(model=path, steps=2, config=CHEAP, seed=5)
    out = inpaint_image(observed, known, **kwargs)
    assert out.shape == image.shape and np.array_equal(out[known], image[known])
    assert np.array_equal(out, inpaint_image(observed, known, **kwargs))


def test_shifts_average_runs_on_offset_grids(tmp_path: Path, astronaut: np.ndarray) -> None:
    """``shifts=2`` is exactly the mean of the plain run and a run on the image offset by (28, 28)."""
    from esdiff.checkpoints import save_checkpoint
    from esdiff.config import NETWORK_PRESETS, ModelConfig
    from esdiff.errors import EsdiffError
    from esdiff.inpaint import inpaint_image
    from esdiff.nn import build_score_model
    from esdiff.patches import GRID_SHIFTS

    torch.manual_seed(0)
    cfg = ModelConfig(network=NETWORK_PRESETS["tiny"])
    path = save_checkpoint(
        tmp_path / "m.safetensors",
        ema=build_score_model(cfg.network).state_dict(),
        keep=virtual_mask(2.81),
        model_config=cfg,
    )
    image = astronaut[:70, :90]
    known = np.random.default_rng(2).random((70, 90)) > 0.6
    observed = np.where(known[..., None], image, 0.0)
    kwargs = dict(model=path, steps=2, seed=3)
    one = inpaint_image(observed, known, config=CHEAP, **kwargs)
    two = inpaint_image(observed, known, config=replace(CHEAP, shifts=2), **kwargs)
    dy, dx = GRID_SHIFTS[1]
    moved = inpaint_image(
        np.pad(observed, ((dy, 0), (dx, 0), (0, 0))),
        np.pad(known, ((dy, 0), (dx, 0))),
        config=CHEAP,
        **kwargs,
    )[dy:, dx:]
    assert np.array_equal(two[known], image[known])
    assert not np.allclose(one, moved)  # the offset grid is a different estimate
    np.testing.assert_allclose(two, np.where(known[..., None], image, (one + moved) / 2), atol=1e-6)
    with pytest.raises(EsdiffError, match="shifts"):
        inpaint_image(observed, known, config=replace(CHEAP, shifts=5), **kwargs)


def test_corrector_step_is_bounded_with_a_zero_score() -> None:
    from esdiff.sampler import corrector_step_size

    z, zero = torch.randn(3, 12, 8, 8), torch.zeros(3, 12, 8, 8)
    unbounded = corrector_step_size(z, zero, 0.5, 0.075, None)
    assert float(unbounded.min()) > 1e10  # SPEC's step explodes on a zero score
    capped = corrector_step_size(z, zero, 0.5, 0.075, 0.1)
    assert torch.allclose(capped, torch.full_like(capped, 0.1 * 0.25))
    right_size = -z / 0.5  # ||g|| = ||z|| / sigma: the nominal 2 snr^2 sigma^2, below the cap
    nominal = corrector_step_size(z, right_size, 0.5, 0.075, 0.1)
    assert torch.allclose(nominal, torch.full_like(nominal, 2 * 0.075**2 * 0.25))


def test_capped_corrector_keeps_an_untrained_network_finite(astronaut: np.ndarray) -> None:
    """A zero score (an untrained network) with a clean LMaFit start: SPEC's step sends the hole to
    huge values; the capped one stays in a sane range."""
    x, y, known = patches(astronaut)
    gens = [torch.Generator().manual_seed(1)]

    def zero(psi: torch.Tensor, sigma: float) -> torch.Tensor:
        return torch.zeros_like(psi)

    cfg = replace(CHEAP, steps=5, start="lmafit", t_start=0.3, corrector_cap=0.1)
    out = sample_patches(zero, Encoding(None), VESDE(), y, known, cfg, gens, STEP_LISTS["no-lowrank"])
    assert torch.isfinite(out).all() and float(out.abs().max()) < 5
    wild = sample_patches(
        zero,
        Encoding(None),
        VESDE(),
        y,
        known,
        replace(cfg, corrector_cap=None),
        gens,
        STEP_LISTS["no-lowrank"],
    )
    assert not torch.isfinite(wild).all() or float(wild.abs().max()) > 1e3


@pytest.mark.parametrize("predictor", ["reverse-diffusion", "ddim"])
def test_predictors_reach_the_truth_with_an_exact_score(astronaut: np.ndarray, predictor: str) -> None:
    x, y, known = patches(astronaut)
    keep = virtual_mask(2.81, 64, 0)
    gens = [torch.Generator().manual_seed(1)]
    cfg = replace(CHEAP, predictor=predictor, steps=15, start="noise", corrector_cap=0.1)
    out = sample_patches(
        gaussian_score(mpt(x, keep)), Encoding(keep), VESDE(), y, known, cfg, gens, STEP_LISTS["no-lowrank"]
    )
    assert -10 * np.log10(float(((out - x) ** 2).mean())) > 30.0
