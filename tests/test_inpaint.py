"""Skipping the patches that hold no missing pixel changes no bit of the result (esdiff and ALOHA)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from esdiff.baselines import aloha
from esdiff.config import LowRankConfig, SamplerConfig
from esdiff.inpaint import inpaint_image
from esdiff.patches import GRID_SHIFTS, make_grid

pytestmark = pytest.mark.usefixtures("one_thread")

FIXED_RANK = LowRankConfig(rank=8, lmafit_max_iter=20, dtype="float32")
"""A fixed LMaFit rank: with the adaptive rank, LMaFit and ADMM pad every patch's factors to the largest
rank in its batch, so a patch's last bits depend on its batch-mates, skipping or not (CHANGELOG)."""
CHEAP = SamplerConfig(steps=2, corrector_cap=0.1, patch_batch=8, low_rank=FIXED_RANK)
TREND = replace(CHEAP, low_rank=replace(FIXED_RANK, trend=8.0))
"""``CHEAP`` with the low-rank trend, which the box (20 px high: deep pixels) calls for."""


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """scikit-image's astronaut at 300x500 (a 6 x 9 patch grid)."""
    from skimage import data, transform

    return transform.resize(data.astronaut(), (300, 500), anti_aliasing=True).astype(np.float32)


def box() -> np.ndarray:
    known = np.ones((300, 500), dtype=bool)
    known[140:160, 260:290] = False  # two patches' stitched parts
    return known


def pixels() -> np.ndarray:
    known = np.ones((300, 500), dtype=bool)
    rng = np.random.default_rng(0)
    known[rng.integers(0, 300, 25), rng.integers(0, 500, 25)] = False
    return known


def run(method, photo: np.ndarray, known: np.ndarray, **kwargs) -> tuple[np.ndarray, list[tuple]]:
    calls: list[tuple] = []
    observed = np.where(known[..., None], photo, 0.0)
    out = method(observed, known, progress=lambda done, total, **_: calls.append((done, total)), **kwargs)
    assert np.isfinite(out).all() and np.array_equal(out[known], observed[known])
    return out, calls


@pytest.mark.parametrize(
    ("mask", "shifts", "config"), [(box, 1, CHEAP), (pixels, 1, CHEAP), (box, 2, CHEAP), (box, 1, TREND)]
)
def test_esdiff_skipping_patches_is_bit_identical(
    tiny_model: Path, photo: np.ndarray, mask, shifts: int, config: SamplerConfig
) -> None:
    known = mask()
    kwargs = dict(model=tiny_model, seed=4, config=replace(config, shifts=shifts))
    full, full_calls = run(inpaint_image, photo, known, every_patch=True, **kwargs)
    skip, skip_calls = run(inpaint_image, photo, known, **kwargs)
    assert np.array_equal(skip, full)
    every = sum(make_grid(300 + dy, 500 + dx).count for dy, dx in GRID_SHIFTS[:shifts])  # 54, 114
    assert full_calls[-1] == (every, every)
    done, total = skip_calls[-1]
    assert done == total < every // 2 and [c[1] for c in skip_calls] == [total] * len(skip_calls)
    assert [c[0] for c in skip_calls] == sorted(c[0] for c in skip_calls)


@pytest.mark.parametrize("mask", [box, pixels])
def test_aloha_skipping_patches_is_bit_identical(photo: np.ndarray, mask) -> None:
    known = mask()
    kwargs = dict(config=FIXED_RANK, iterations=2, patch_batch=8)
    full, full_calls = run(aloha.inpaint, photo, known, every_patch=True, **kwargs)
    skip, skip_calls = run(aloha.inpaint, photo, known, **kwargs)
    assert np.array_equal(skip, full)
    assert full_calls[-1] == (54, 54) and skip_calls[-1][0] == skip_calls[-1][1] < 27


def test_a_short_batch_gives_the_network_call_a_full_one() -> None:
    from esdiff.inpaint import fixed_batch

    sizes: list[int] = []

    def score(psi: torch.Tensor, sigma: float) -> torch.Tensor:
        sizes.append(psi.shape[0])
        return psi * sigma

    padded = fixed_batch(score, 5)
    psi = torch.rand(2, 12, 64, 64)
    assert torch.equal(padded(psi, 2.0), psi * 2.0) and sizes == [5]
    assert padded(torch.rand(7, 12, 64, 64), 1.0).shape[0] == 7 and sizes == [5, 7]


@pytest.mark.parametrize("config", [CHEAP, TREND])
def test_images_sampled_together_are_those_sampled_alone(
    tiny_model: Path, photo: np.ndarray, config: SamplerConfig
) -> None:
    """``inpaint_images`` shares batches across images (a GPU's batch stays full in ``evaluate``): a
    solid box (its start interpolates the image's hole; with the trend, the box's patches complete
    around it) beside random pixels (no trend) in a batch that spans both, each image bit for bit what
    ``inpaint_image`` gives it alone."""
    from esdiff.inpaint import inpaint_images

    small = photo[:130, :200]
    knowns = [box(), np.random.default_rng(3).random(small.shape[:2]) > 0.3]
    observed = [np.where(k[..., None], p, 0.0) for p, k in zip([photo, small], knowns, strict=True)]
    kwargs = dict(model=tiny_model, seed=6, config=replace(config, patch_batch=5))
    together = inpaint_images(observed, knowns, **kwargs)
    for o, k, out in zip(observed, knowns, together, strict=True):
        assert np.array_equal(out, inpaint_image(o, k, **kwargs))


def test_each_image_ends_its_schedule_by_its_own_mask(tiny_model: Path, photo: np.ndarray) -> None:
    """With ``deep_holes`` the last level follows each image's mask (``end_time``): a solid box ends at
    eps, scattered pixels at ``t_end``. Images whose schedules differ run in their own batches, each bit
    for bit what it gives alone, and the scattered one is not what a fixed end at eps gives it."""
    from esdiff.inpaint import inpaint_images
    from esdiff.schedule import end_time

    small = photo[:130, :200]
    solid = np.ones(small.shape[:2], dtype=bool)
    solid[40:80, 60:100] = False
    knowns = [solid, np.random.default_rng(3).random(small.shape[:2]) > 0.2]
    observed = [np.where(k[..., None], small, 0.0) for k in knowns]
    cfg = replace(CHEAP, steps=3, t_start=0.5, t_end=0.3, deep_holes=(0.1, 0.25), patch_batch=5)
    assert end_time(cfg, knowns[0], 1e-5) is None and end_time(cfg, knowns[1], 1e-5) == 0.3
    together = inpaint_images(observed, knowns, model=tiny_model, seed=2, config=cfg)
    for o, k, out in zip(observed, knowns, together, strict=True):
        assert np.array_equal(out, inpaint_image(o, k, model=tiny_model, seed=2, config=cfg))
    fixed = inpaint_image(observed[1], knowns[1], model=tiny_model, seed=2, config=replace(cfg, t_end=None))
    assert not np.array_equal(together[1], fixed)


def _ramp(size: int) -> np.ndarray:
    """A smooth colour image: each channel a plane."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    return np.stack([0.7 + 0.1 * xx, 0.5 + 0.1 * yy, 0.3 + 0.05 * (xx + yy)], -1)


def _no_prior(trend: float | None, sampling: str, steps: int = 5) -> SamplerConfig:
    """The default sampler without its network step (the low-rank completion alone, the smooth fill whose
    completion the trend steers), trend as given."""
    from esdiff.config import DEFAULT_SAMPLER

    low_rank = replace(DEFAULT_SAMPLER.low_rank, trend=trend)
    return replace(
        DEFAULT_SAMPLER,
        step_list="no-prior",
        sampling=sampling,
        steps=steps,
        low_rank=low_rank,
        fill="smooth",
    )


@pytest.mark.parametrize("sampling", ["image", "patches"])
def test_the_trend_completes_a_smooth_image_exactly(sampling: str) -> None:
    """A 24 px box in a smooth (planar) colour image: around the trend, the low-rank completion has
    nothing left to complete and gives the image back to 0.01 grey levels (measured 0.00); without the
    trend its ADMM steps move the hole by about a grey level (measured 1.1 and 2.6 at most)."""
    image = _ramp(96)
    known = np.ones((96, 96), dtype=bool)
    known[36:60, 36:60] = False
    errors = {}
    for trend in (None, 8.0):
        out = inpaint_image(image * known[..., None], known, config=_no_prior(trend, sampling))
        errors[trend] = 255 * float(np.abs(out - image)[~known].max())
    assert errors[8.0] < 0.01 and errors[None] > 0.5, errors


def test_the_trend_takes_the_grey_out_of_a_solid_hole() -> None:
    """The completion's nuclear norm pulls pixels that no Hankel row with a known entry reaches towards
    zero: on the astronaut's face (a 96 x 96 crop of the README's sample, a 16 px box) the low-rank
    completion alone (25 levels) leaves the hole 5.2 grey levels too dark on average over the channels
    (red 7.3), with the trend 2.7 (measured, torch 2.13, CPU; hole PSNR 20.13 against 20.43 dB). The
    floor: the trend cuts the colour error by a third and gains 0.2 dB."""
    from skimage import data, transform

    from esdiff.metrics import psnr

    face = transform.resize(data.astronaut(), (256, 256), anti_aliasing=True)[40:136, 76:172]
    known = np.ones((96, 96), dtype=bool)
    known[20:36, 24:40] = False
    bias, hole = {}, {}
    for trend in (None, 8.0):
        out = inpaint_image(face * known[..., None], known, config=_no_prior(trend, "image", steps=25))
        bias[trend] = float(np.abs((out - face)[~known].mean(0)).mean()) * 255
        hole[trend] = psnr(out, face, ~known)
    assert bias[8.0] < bias[None] * 2 / 3, bias
    assert hole[8.0] > hole[None] + 0.2, hole
