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


@pytest.mark.parametrize(("mask", "shifts"), [(box, 1), (pixels, 1), (box, 2)])
def test_esdiff_skipping_patches_is_bit_identical(
    tiny_model: Path, photo: np.ndarray, mask, shifts: int
) -> None:
    known = mask()
    kwargs = dict(model=tiny_model, seed=4, config=replace(CHEAP, shifts=shifts))
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


def test_images_sampled_together_are_those_sampled_alone(tiny_model: Path, photo: np.ndarray) -> None:
    """``inpaint_images`` shares batches across images (a GPU's batch stays full in ``evaluate``): a
    solid box (its start interpolates the image's hole) beside random pixels in a batch that spans both,
    each image bit for bit what ``inpaint_image`` gives it alone."""
    from esdiff.inpaint import inpaint_images

    small = photo[:130, :200]
    knowns = [box(), np.random.default_rng(3).random(small.shape[:2]) > 0.3]
    observed = [np.where(k[..., None], p, 0.0) for p, k in zip([photo, small], knowns, strict=True)]
    kwargs = dict(model=tiny_model, seed=6, config=replace(CHEAP, patch_batch=5))
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
