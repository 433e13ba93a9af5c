"""Inpaint one whole image with a trained score model: patches, Algorithm 1, stitching, final DC."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from esdiff.config import DEFAULT_SAMPLER, SamplerConfig
from esdiff.errors import EsdiffError
from esdiff.image_sampling import sample_whole_image
from esdiff.patches import GRID_SHIFTS, PatchBatch, fill_patches, make_grid, patches_to_fill
from esdiff.prior import Runtime, load, scorer
from esdiff.sampler import STEP_LISTS, Encoding, StepList, hole_fill, patch_generators, sample_patches
from esdiff.sde import VESDE


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
    every_patch: bool = False,
    runtime: Runtime | None = None,
    observe: Callable[[PatchBatch, int, Tensor], None] | None = None,
) -> np.ndarray:
    """Algorithm 1 over the patches of ``observed`` (float HxWx3, zeros where ``known`` is False) that
    hold a missing pixel; with ``cfg.shifts`` > 1 the mean of that many runs on offset patch grids.

    ``config`` (default ``DEFAULT_SAMPLER``) is used as given; ``steps``, when given, replaces its step
    count. ``step_list`` names an entry of ``STEP_LISTS`` (default: ``esdiff``, or ``no-lowrank`` for a
    model without MPT). ``progress(done, total, unit="patches")`` counts the patches of all runs
    (``done`` moves by a fraction of the batch per sampler step; with ``sampling="image"``, ``unit="steps"``
    counts steps). ``every_patch`` samples every patch of each grid, as before patches without a missing
    pixel were skipped (for tests and comparisons). ``runtime``: bf16 autocast and ``torch.compile`` of
    the network (``esdiff.prior.Runtime``; default neither). ``observe(batch, step, x)`` sees every
    batch's iterate after each level (patch sampling on one grid only; ``esdiff.oracle``)."""
    cfg = config or DEFAULT_SAMPLER
    if steps is not None:
        cfg = replace(cfg, steps=steps)
    if not 1 <= cfg.shifts <= len(GRID_SHIFTS):
        raise EsdiffError(f"shifts must be 1 to {len(GRID_SHIFTS)} (got {cfg.shifts})")
    prior, keep, sde = load(str(model) if model else None, device)
    chosen = STEP_LISTS[step_list or ("esdiff" if keep is not None else "no-lowrank")].for_config(cfg)
    if not 0.0 <= cfg.fresh_noise <= 1.0:
        raise EsdiffError(f"fresh_noise must be 0 to 1 (got {cfg.fresh_noise})")
    if not 0.0 <= cfg.low_rank_weight <= 1.0:
        raise EsdiffError(f"low_rank_weight must be 0 to 1 (got {cfg.low_rank_weight})")
    if cfg.known_noise and cfg.state == "mpt":
        raise EsdiffError('known_noise works on the RGB state: use state "rgb"')
    if chosen.on_clean and cfg.sampling == "image":
        raise EsdiffError('the x0 step lists run on patches: use sampling "patches"')
    if observe is not None and (cfg.sampling != "patches" or cfg.shifts != 1):
        raise EsdiffError('iterates can be watched with sampling "patches" on one grid (shifts 1) only')
    encoding = Encoding(keep, cfg.fusion, cfg.tau)

    score = scorer(prior, runtime or Runtime())
    shifts = GRID_SHIFTS[: cfg.shifts]
    whole = cfg.sampling == "image"  # esdiff.image_sampling skips its own tiles and counts steps
    # A run keeps the missing pixels of the image, not those of the strip its shift pads it with.
    wanted = [None if every_patch or whole else np.pad(~known, ((dy, 0), (dx, 0))) for dy, dx in shifts]
    h, w = known.shape
    counts = [
        cfg.steps if whole else len(patches_to_fill(make_grid(h + dy, w + dx, cfg.tiling), _tensor(want)))
        for (dy, dx), want in zip(shifts, wanted, strict=True)
    ]
    unit = "steps" if whole else "patches"
    mean: np.ndarray | None = None  # the runs' sum, then their mean: one image buffer for any shifts
    for k, (dy, dx) in enumerate(shifts):

        def report(done: float, total: int, before: int = sum(counts[:k])) -> None:
            if progress is not None:
                progress(before + done, sum(counts), unit=unit)

        sampler = sample_whole_image if whole else partial(sample_image, wanted=wanted[k], observe=observe)
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
        )[dy:, dx:]
        np.clip(run, 0.0, 1.0, out=run)
        mean = run if mean is None else np.add(mean, run, out=mean)
    assert mean is not None
    mean /= len(shifts)  # as np.mean over the runs, bit for bit
    np.copyto(mean, observed, where=known[..., None])
    return mean


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
    progress: Callable[[float, int], None],
    wanted: np.ndarray | None = None,
    observe: Callable[[PatchBatch, int, Tensor], None] | None = None,
) -> np.ndarray:
    """Algorithm 1 on the patches of one grid over ``observed`` whose stitched part holds a ``wanted``
    pixel (None: every patch), batched, stitched (float64 HxWx3; pixels no sampled patch covers keep
    ``observed``). ``progress(done, total)`` counts patches; ``observe`` as in ``inpaint_image``.

    Every network call sees ``cfg.patch_batch`` patches (a short batch is padded with zeros), because CPU
    convolutions pick their algorithm by batch size: so a patch's result does not depend on how many
    others run with it, and skipping patches changes no bit of the rest."""
    image = torch.from_numpy(np.ascontiguousarray(observed, dtype=np.float32)).permute(2, 0, 1)
    mask = torch.from_numpy(np.ascontiguousarray(known))
    fixed = fixed_batch(score, cfg.patch_batch)
    holes = hole_fill(observed, known, cfg, step_list)
    grid = make_grid(known.shape[0], known.shape[1], cfg.tiling)

    def fill(batch: PatchBatch) -> Tensor:
        def callback(step: int, steps: int) -> None:
            progress(batch.done + len(batch.indices) * step / steps, batch.total)

        return sample_patches(
            fixed,
            encoding,
            sde,
            batch.y.to(device),
            batch.known.to(device),
            cfg,
            patch_generators(seed, batch.indices, device),
            step_list,
            callback,
            None if holes is None else grid.cut(holes, batch.indices).to(device),
            None if observe is None else partial(observe, batch),
        )

    out = fill_patches(
        image,
        mask,
        fill,
        batch_size=cfg.patch_batch,
        mode=cfg.tiling,
        wanted=_tensor(wanted),
    )
    return out.permute(1, 2, 0).numpy().astype(np.float64)


def fixed_batch(score: Callable[[Tensor, float], Tensor], size: int) -> Callable[[Tensor, float], Tensor]:
    """``score`` evaluated on batches padded with zeros to ``size`` rows (larger ones as they are)."""

    def padded(psi: Tensor, sigma: float) -> Tensor:
        short = size - psi.shape[0]
        if short <= 0:
            return score(psi, sigma)
        return score(torch.cat([psi, psi.new_zeros(short, *psi.shape[1:])]), sigma)[: psi.shape[0]]

    return padded


def _tensor(array: np.ndarray | None) -> Tensor | None:
    return None if array is None else torch.from_numpy(np.ascontiguousarray(array))
