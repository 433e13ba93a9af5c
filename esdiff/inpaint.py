"""Inpaint one whole image with a trained score model: patches, Algorithm 1, stitching, final DC."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from esdiff.coarse_to_fine import coarse_size, sample_coarse_to_fine
from esdiff.config import DEFAULT_SAMPLER, SamplerConfig
from esdiff.config_checks import sampler_config_problems
from esdiff.errors import EsdiffError
from esdiff.image_sampling import sample_whole_image
from esdiff.patches import GRID_SHIFTS, PatchBatch, PatchGrid, fill_images, make_grid, patches_to_fill
from esdiff.prior import Runtime, load, scorer
from esdiff.sampler import (
    STEP_LISTS,
    Encoding,
    ImageStart,
    StepList,
    image_start,
    patch_generators,
    sample_patches,
)
from esdiff.schedule import for_mask
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
    count. ``step_list`` names an entry of ``STEP_LISTS`` in place of ``cfg.step_list``. A config with
    problems (``config_checks.sampler_config_problems``) is an EsdiffError before any work.
    ``progress(done, total, unit="patches")`` counts the
    patches of all runs (``done`` moves by a fraction of the batch per sampler step; with
    ``sampling="image"``, ``unit="steps"`` counts steps). ``every_patch`` samples every patch of each
    grid, as before patches without a missing pixel were skipped (for tests and comparisons).
    ``runtime``: bf16 autocast and ``torch.compile`` of the network (``esdiff.prior.Runtime``; default
    neither). ``observe(batch, step, x)`` sees every batch's iterate after each level (one grid only;
    with ``sampling="image"`` the windows of the fixed grid that hold a missing pixel; ``esdiff.oracle``).
    Each image runs ``for_mask`` of its own mask (the schedule's end, the plug-and-play noise); an image
    above ``cfg.coarse_side``'s size runs coarse to fine (``esdiff.coarse_to_fine``) unless ``observe``
    watches it."""
    (out,) = inpaint_images(
        [observed],
        [known],
        seed=seed,
        device=device,
        progress=progress,
        model=model,
        steps=steps,
        config=config,
        step_list=step_list,
        every_patch=every_patch,
        runtime=runtime,
        observe=observe,
    )
    return out


def inpaint_images(
    observed: Sequence[np.ndarray],
    known: Sequence[np.ndarray],
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
) -> list[np.ndarray]:
    """``inpaint_image`` on several images (any sizes) at once, each with ``seed``: with patch sampling
    their patches share batches of ``cfg.patch_batch`` (a GPU's batch stays full across images). Each
    result is what ``inpaint_image`` gives that image alone: bit for bit with a fixed LMaFit rank or
    when no batch spans two images; with the adaptive rank a batch-mate can move the last bits (as
    skipping does, by a rounding's worth on a pixel). ``progress`` counts the
    patches (or steps) of all images; ``observe`` needs a single image."""
    cfg = config or DEFAULT_SAMPLER
    if steps is not None:
        cfg = replace(cfg, steps=steps)
    if step_list is not None:
        cfg = replace(cfg, step_list=step_list)  # type: ignore[arg-type]
    problems = sampler_config_problems(cfg)
    if problems:
        raise EsdiffError(f"bad sampler config: {'; '.join(problems)}")
    if observe is not None and (cfg.shifts != 1 or len(observed) != 1):
        raise EsdiffError("iterates can be watched on one image and one grid (shifts 1) only")
    prior, keep, sde = load(str(model) if model else None, device)
    chosen = STEP_LISTS[cfg.step_list].for_config(cfg)
    encoding = Encoding(keep, cfg.fusion)

    score = scorer(prior, runtime or Runtime())
    shifts = GRID_SHIFTS[: cfg.shifts]
    whole = cfg.sampling == "image"  # esdiff.image_sampling skips its own tiles and counts steps
    # A run keeps the missing pixels of the image, not those of the strip its shift pads it with.
    wanted = [
        [None if every_patch or whole else np.pad(~k, ((dy, 0), (dx, 0))) for k in known] for dy, dx in shifts
    ]
    per_image = [  # progress units of each image in each run
        [
            cfg.steps
            if whole
            else len(patches_to_fill(make_grid(k.shape[0] + dy, k.shape[1] + dx, cfg.tiling), _tensor(want)))
            for k, want in zip(known, wants, strict=True)
        ]
        for (dy, dx), wants in zip(shifts, wanted, strict=True)
    ]
    counts = [sum(units) for units in per_image]
    configs = [for_mask(cfg, k, sde.eps) for k in known]
    unit = "steps" if whole else "patches"
    means: list[np.ndarray] = []  # the runs' sums, then their means: one buffer per image for any shifts
    # A shift pads the image at the top and left. The patch sampler takes the strip as missing and keeps
    # none of it (``wanted``); the whole-image sampler would take a missing strip for a solid hole (fill,
    # trend, deep-hole schedule), so it gets the image and its mask mirrored into the strip instead.
    strip: Literal["symmetric", "constant"] = "symmetric" if whole else "constant"
    for s, (dy, dx) in enumerate(shifts):
        padded = [np.pad(image, ((dy, 0), (dx, 0), (0, 0)), mode=strip) for image in observed]
        masks = [np.pad(k, ((dy, 0), (dx, 0)), mode=strip) for k in known]

        def report(done: float, total: int, before: int = sum(counts[:s])) -> None:
            if progress is not None:
                progress(before + done, sum(counts), unit=unit)

        if whole:
            runs = []
            for i, (image, mask) in enumerate(zip(padded, masks, strict=True)):
                # a big photo runs coarse to fine with the unresolved config (each scale resolves it)
                big = observe is None and coarse_size(len(mask), mask.shape[1], cfg) is not None
                sampler = (
                    partial(sample_coarse_to_fine, cfg=cfg)
                    if big
                    else partial(
                        sample_whole_image,
                        cfg=configs[i],
                        observe=None if observe is None else as_patches(observe, image, mask, cfg),
                    )
                )
                runs.append(
                    sampler(
                        image,
                        mask,
                        score=score,
                        encoding=encoding,
                        sde=sde,
                        step_list=chosen,
                        seed=seed,
                        device=device,
                        progress=partial(offset, report, i * cfg.steps),
                    )
                )
        else:  # images whose resolved configs differ (``for_mask``) cannot share batches: one group each
            runs = [np.empty(0)] * len(padded)
            before = 0
            for one in dict.fromkeys(configs):
                group = [i for i, c in enumerate(configs) if c == one]
                sampled = sample_images(
                    [padded[i] for i in group],
                    [masks[i] for i in group],
                    score=score,
                    encoding=encoding,
                    sde=sde,
                    step_list=chosen,
                    cfg=one,
                    seed=seed,
                    device=device,
                    progress=partial(offset, report, before),
                    wanted=[wanted[s][i] for i in group],
                    observe=observe,
                )
                for i, run in zip(group, sampled, strict=True):
                    runs[i] = run
                before += sum(per_image[s][i] for i in group)
        for i, run in enumerate(runs):
            run = run[dy:, dx:]
            np.clip(run, 0.0, 1.0, out=run)
            if s == 0:
                means.append(run)
            else:
                np.add(means[i], run, out=means[i])
    for mean, image, mask in zip(means, observed, known, strict=True):
        mean /= len(shifts)  # as np.mean over the runs, bit for bit
        np.copyto(mean, image, where=mask[..., None])
    return means


def as_patches(
    observe: Callable[[PatchBatch, int, Tensor], None],
    observed: np.ndarray,
    known: np.ndarray,
    cfg: SamplerConfig,
) -> Callable[[int, Tensor], None]:
    """A whole-image sampler's ``observe(step, x)`` that hands ``observe`` the iterate as the patch sampler
    would: one batch of the windows of the fixed grid that hold a missing pixel (``esdiff.oracle``)."""
    grid = make_grid(known.shape[0], known.shape[1], cfg.tiling)
    active = patches_to_fill(grid, torch.from_numpy(~known))
    y = torch.from_numpy(np.ascontiguousarray(observed, dtype=np.float32)).permute(2, 0, 1)
    mask = torch.from_numpy(np.ascontiguousarray(known))[None]
    batch = PatchBatch(tuple(active), grid.cut(y, active), grid.cut(mask, active), 0, len(active))
    return lambda step, x: observe(batch, step, grid.cut(x.detach().float().cpu(), active))


def offset(progress: Callable[[float, int], None], before: int, done: float, total: int) -> None:
    """``progress`` with ``before`` units already done (one image's steps among several)."""
    progress(before + done, total)


def sample_images(
    observed: Sequence[np.ndarray],
    known: Sequence[np.ndarray],
    *,
    score: Callable[[Tensor, float], Tensor],
    encoding: Encoding,
    sde: VESDE,
    step_list: StepList,
    cfg: SamplerConfig,
    seed: int,
    device: str,
    progress: Callable[[float, int], None],
    wanted: Sequence[np.ndarray | None],
    observe: Callable[[PatchBatch, int, Tensor], None] | None = None,
) -> list[np.ndarray]:
    """Algorithm 1 on the patches of one grid over each of ``observed`` whose stitched part holds a
    ``wanted`` pixel (None: every patch), batched across the images (``patches.fill_images``), stitched
    (float64 HxWx3 each; pixels no sampled patch covers keep ``observed``). ``progress(done, total)``
    counts patches; ``observe`` as in ``inpaint_image``.

    Every network call sees ``cfg.patch_batch`` patches (a short batch is padded with zeros), because CPU
    convolutions pick their algorithm by batch size: so a patch's result does not depend on how many
    others run with it, nor from which image they come, and skipping patches changes no bit of the rest.
    Each patch's noise comes from its own generator, seeded by its position in its image's grid."""
    images = [torch.from_numpy(np.ascontiguousarray(o, dtype=np.float32)).permute(2, 0, 1) for o in observed]
    masks = [torch.from_numpy(np.ascontiguousarray(k)) for k in known]
    fixed = fixed_batch(score, cfg.patch_batch)
    starts = [image_start(o, k, cfg, step_list) for o, k in zip(observed, known, strict=True)]
    grids = [make_grid(k.shape[0], k.shape[1], cfg.tiling) for k in known]

    def fill(batch: PatchBatch) -> Tensor:
        def callback(step: int, steps: int) -> None:
            progress(batch.done + len(batch.indices) * step / steps, batch.total)

        rows, given = batch_fill(batch, grids, [start.holes for start in starts])
        trend, deep = batch_trend(batch, grids, starts)
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
            None if rows is None else rows.to(device),
            None if observe is None else partial(observe, batch),
            None if given is None else given.to(device),
            None if trend is None else trend.to(device),
            None if deep is None else deep.to(device),
        )

    out = fill_images(
        images,
        masks,
        fill,
        batch_size=cfg.patch_batch,
        mode=cfg.tiling,
        wanted=[_tensor(w) for w in wanted],
    )
    return [o.permute(1, 2, 0).numpy().astype(np.float64) for o in out]


def batch_fill(
    batch: PatchBatch, grids: Sequence[PatchGrid], holes: Sequence[Tensor | None]
) -> tuple[Tensor | None, Tensor | None]:
    """The batch's patches of its images' solid-hole fills (``ImageStart.holes``) for the start, and
    which rows hold one (None: all do); ``(None, None)`` when no image of the batch has such a fill, so
    every patch interpolates its own holes."""
    runs = batch.runs()
    if all(holes[i] is None for i, _ in runs):
        return None, None
    if all(holes[i] is not None for i, _ in runs):
        return batch.cut(grids, holes), None  # type: ignore[arg-type]
    blank = [torch.zeros(3, g.height, g.width) if h is None else h for g, h in zip(grids, holes, strict=True)]
    given = torch.cat([torch.full((rows.stop - rows.start,), holes[i] is not None) for i, rows in runs])
    return batch.cut(grids, blank), given


def batch_trend(
    batch: PatchBatch, grids: Sequence[PatchGrid], starts: Sequence[ImageStart]
) -> tuple[Tensor | None, Tensor | None]:
    """The batch's patches of its images' trends and deep pixels (``ImageStart``; zero on the patches of
    images without them); ``(None, None)`` when no image of the batch has a trend."""
    runs = batch.runs()
    if all(starts[i].trend is None for i, _ in runs):
        return None, None
    images, deep = [], []
    for grid, start in zip(grids, starts, strict=True):
        size = (grid.height, grid.width)
        images.append(torch.zeros(3, *size) if start.trend is None else start.trend)
        deep.append(torch.zeros(1, *size, dtype=torch.bool) if start.deep is None else start.deep)
    return batch.cut(grids, images), batch.cut(grids, deep)


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
