"""Inpaint one whole image with a trained score model: patches, Algorithm 1, stitching, final DC."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from esdiff.config import DEFAULT_SAMPLER, SamplerConfig
from esdiff.errors import EsdiffError
from esdiff.image_sampling import sample_whole_image
from esdiff.patches import GRID_SHIFTS, make_grid
from esdiff.prior import load
from esdiff.sampler import STEP_LISTS, Encoding, StepList, sample_patches
from esdiff.sde import VESDE


def patch_generators(seed: int, count: int) -> list[torch.Generator]:
    """One generator per patch, seeded from the image seed and the patch index."""
    return [torch.Generator().manual_seed(seed * 1_000_003 + k) for k in range(count)]


def inpaint_image(
    observed: np.ndarray,
    known: np.ndarray,
    *,
    seed: int = 0,
    device: str = "cpu",
    progress: Callable[..., None] | None = None,
    model: str | Path | None = None,
    steps: int | None = None,
    config: SamplerConfig | None = None,
    step_list: str | None = None,
) -> np.ndarray:
    """Algorithm 1 over the patches of ``observed`` (float HxWx3, zeros where ``known`` is False); with
    ``cfg.shifts`` > 1 the mean of that many runs on offset patch grids.

    ``config`` (default ``DEFAULT_SAMPLER``) is used as given; ``steps``, when given, replaces its step
    count. ``step_list`` names an entry of ``STEP_LISTS`` (default: ``esdiff``, or ``no-lowrank`` for a
    model without MPT)."""
    cfg = config or DEFAULT_SAMPLER
    if steps is not None:
        cfg = replace(cfg, steps=steps)
    if not 1 <= cfg.shifts <= len(GRID_SHIFTS):
        raise EsdiffError(f"shifts must be 1 to {len(GRID_SHIFTS)} (got {cfg.shifts})")
    prior, keep, sde = load(str(model) if model else None, device)
    chosen = STEP_LISTS[step_list or ("esdiff" if keep is not None else "no-lowrank")]
    encoding = Encoding(keep, cfg.fusion, cfg.tau)

    @torch.inference_mode()
    def score(psi: Tensor, sigma: float) -> Tensor:
        return prior.score(psi, sigma)

    runs = []
    for k, (dy, dx) in enumerate(GRID_SHIFTS[: cfg.shifts]):

        def report(done: int, total: int, k: int = k) -> None:
            if progress is not None:
                progress(k * total + done, cfg.shifts * total)

        sampler = sample_whole_image if cfg.sampling == "image" else sample_image
        run = sampler(
            np.pad(observed, ((dy, 0), (dx, 0), (0, 0))),
            np.pad(known, ((dy, 0), (dx, 0))),
            score=score,
            encoding=encoding,
            sde=sde,
            step_list=chosen,
            cfg=cfg,
            seed=seed,
            device=device,
            progress=report,
        )
        runs.append(np.clip(run[dy:, dx:], 0.0, 1.0))
    return np.where(known[..., None], observed, np.mean(runs, axis=0))


def sample_image(
    observed: np.ndarray,
    known: np.ndarray,
    *,
    score: Callable[[Tensor, float], Tensor],
    encoding: Encoding,
    sde: VESDE,
    step_list: StepList,
    cfg: SamplerConfig,
    seed: int,
    device: str,
    progress: Callable[[int, int], None],
) -> np.ndarray:
    """Algorithm 1 on every patch of one grid over ``observed``, batched, stitched (float64 HxWx3)."""
    height, width = known.shape
    grid = make_grid(height, width, cfg.tiling)
    image = torch.from_numpy(np.ascontiguousarray(observed, dtype=np.float32)).permute(2, 0, 1)
    mask = torch.from_numpy(np.ascontiguousarray(known))
    y_all, known_all = grid.cut(image), grid.cut(mask[None])
    generators = patch_generators(seed, grid.count)
    chunks = range(0, grid.count, cfg.patch_batch)
    total = cfg.steps * len(chunks)
    out = []
    for c, start in enumerate(chunks):
        part = slice(start, start + cfg.patch_batch)

        def callback(done: int, _total: int, c: int = c) -> None:
            progress(c * cfg.steps + done, total)

        x = sample_patches(
            score,
            encoding,
            sde,
            y_all[part].to(device),
            known_all[part].to(device),
            cfg,
            generators[part],
            step_list,
            callback,
        )
        out.append(x.cpu())
    return grid.stitch(torch.cat(out)).permute(1, 2, 0).numpy().astype(np.float64)
