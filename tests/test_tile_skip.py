"""The whole-image sampler runs the network only on tiles whose result it keeps."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from esdiff import image_sampling
from esdiff.config import DEFAULT_SAMPLER, LowRankConfig
from esdiff.inpaint import inpaint_image

pytestmark = pytest.mark.usefixtures("one_thread")


def _counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of tiles of every network call of ``inpaint_image`` from now on."""
    import esdiff.inpaint

    sizes: list[int] = []
    scorer = esdiff.inpaint.scorer

    def counting(*args, **kwargs):
        score = scorer(*args, **kwargs)

        def counted(psi: torch.Tensor, sigma: float) -> torch.Tensor:
            sizes.append(psi.shape[0])
            return score(psi, sigma)

        return counted

    monkeypatch.setattr(esdiff.inpaint, "scorer", counting)
    return sizes


def test_pnp_near_skips_tiles_deep_inside_a_hole(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``pnp-near`` keeps the denoised estimate only within two pixels of a known one: a tile wholly
    deeper inside a 160 px box than that is left out of the network call, and the result is what
    running it there gives (the same to float rounding: the network's batches differ)."""
    from skimage import data, transform

    photo = transform.resize(data.astronaut(), (256, 256), anti_aliasing=True)
    known = np.ones((256, 256), dtype=bool)
    known[48:208, 48:208] = False
    low_rank = LowRankConfig(rank=8, lmafit_max_iter=20, dtype="float32", trend=8.0)
    cfg = replace(DEFAULT_SAMPLER, steps=3, low_rank=low_rank)
    observed = photo * known[..., None]
    sizes = _counted(monkeypatch)
    skipped = inpaint_image(observed, known, model=tiny_model, seed=1, config=cfg)
    tiles_skipped = sum(sizes)
    sizes.clear()
    monkeypatch.setattr(image_sampling, "_changes", lambda steps, missing, near: missing)
    full = inpaint_image(observed, known, model=tiny_model, seed=1, config=cfg)
    assert np.array_equal(skipped[known], photo[known].astype(skipped.dtype))
    assert np.abs(skipped - full).max() < 1e-5
    assert tiles_skipped < sum(sizes) * 0.8, (tiles_skipped, sum(sizes))


def test_other_step_lists_run_every_tile_with_a_missing_pixel() -> None:
    """Only ``pnp-near`` leaves pixels out: those more than two pixels inside a hole."""
    missing = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    missing[..., 20:40, 20:40] = True
    known = ~missing
    from esdiff.sampler import STEP_LISTS, low_rank, near_known_weight

    near = near_known_weight(known)
    for name, step_list in STEP_LISTS.items():
        tile_steps = tuple(step for step in step_list if step is not low_rank)  # what a tile pass runs
        kept = image_sampling._changes(tile_steps, missing, near)
        if name == "pnp-near":
            assert kept.sum() == missing.sum() - 16 * 16  # 2 px rims of the 20 px hole
        else:
            assert torch.equal(kept, missing)
