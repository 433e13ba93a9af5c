"""Whole-image sampling: the state is the image, not a set of patches sampled on their own.

Every noise level runs the step list once over the whole image. The network steps (predictor,
corrector, and the data-consistency steps between them) run on plain 64x64 tiles of a grid that moves
by a random offset at every level, each cut from the current image and put back, so neighbouring
regions always agree and no seam stays in one place (the random shift of patch-based diffusion priors,
e.g. PaDIS). The low-rank step keeps its ADMM state (``U, V, L`` per patch) on the fixed overlapping
grid of the LMaFit start, cut from and stitched into the same image. Tiles and low-rank patches that
hold no missing pixel are skipped: their pixels are the observation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from esdiff.config import PATCH_SIZE, SamplerConfig
from esdiff.lowrank import LowRankState, image_trend, patch_trend, svd_start
from esdiff.operators import Inpainting, within
from esdiff.patches import PAD, PatchGrid, make_grid
from esdiff.sampler import (
    Context,
    Encoding,
    ImageStart,
    State,
    Step,
    StepList,
    data_consistency,
    denoise_near_known,
    image_start,
    low_rank,
    near_known_weight,
    patch_generators,
    start_state,
)
from esdiff.schedule import noise_schedule
from esdiff.sde import VESDE
from esdiff.texture import mirror_detail

P = PATCH_SIZE


def _pad(image: Tensor, top: int, bottom: int, left: int, right: int) -> Tensor:
    """Mirror ``[C, H, W]`` outwards (edge replication where the image is too small to mirror)."""
    height, width = image.shape[-2:]
    mode = "reflect" if max(top, bottom) < height and max(left, right) < width else "replicate"
    return F.pad(image[None], (left, right, top, bottom), mode=mode)[0]


@dataclass(frozen=True)
class Tiles:
    """Plain 64x64 tiles over an ``height x width`` image whose grid starts ``offset`` pixels above and
    left of the image, so every pixel lies in exactly one tile."""

    height: int
    width: int
    offset: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        oy, ox = self.offset
        return -(-(self.height + oy) // P), -(-(self.width + ox) // P)

    def _margins(self) -> tuple[int, int, int, int]:
        (oy, ox), (ny, nx) = self.offset, self.shape
        return oy, ny * P - self.height - oy, ox, nx * P - self.width - ox

    def cut(self, image: Tensor, fill: Callable[..., Tensor] = _pad) -> Tensor:
        """``[C, H, W]`` -> ``[N, C, 64, 64]`` in row-major order, the margins filled by ``fill``."""
        ny, nx = self.shape
        canvas = fill(image, *self._margins())
        c = canvas.shape[0]
        return canvas.reshape(c, ny, P, nx, P).permute(1, 3, 0, 2, 4).reshape(ny * nx, c, P, P)

    def stitch(self, tiles: Tensor) -> Tensor:
        """The inverse of ``cut``: ``[N, C, 64, 64]`` -> ``[C, H, W]``."""
        (ny, nx), c = self.shape, tiles.shape[1]
        canvas = tiles.reshape(ny, nx, c, P, P).permute(2, 0, 3, 1, 4).reshape(c, ny * P, nx * P)
        top, _, left, _ = self._margins()
        return canvas[:, top : top + self.height, left : left + self.width]


def _zero_fill(image: Tensor, top: int, bottom: int, left: int, right: int) -> Tensor:
    return F.pad(image, (left, right, top, bottom))


def _groups(step_list: StepList) -> Iterator[tuple[bool, tuple[Step, ...]]]:
    """The step list as runs of consecutive steps: ``(True, (low_rank,))`` or ``(False, tile steps)``."""
    run: list[Step] = []
    for step in step_list:
        if step is low_rank:
            if run:
                yield False, tuple(run)
                run = []
            yield True, (step,)
        else:
            run.append(step)
    if run:
        yield False, tuple(run)


class _LowRankGrid:
    """The fixed overlapping grid of the LMaFit start with the ADMM state of its active patches."""

    def __init__(self, grid: PatchGrid, active: Tensor) -> None:
        self.grid = grid
        self.active = active  # indices into the grid's patches
        self.states: list[LowRankState | None] = []

    def cut(self, image: Tensor) -> Tensor:
        """The active patches of ``image`` with its mirror image in the canvas margins."""
        ch, cw = self.grid.canvas
        canvas = _pad(image, PAD, ch - PAD - self.grid.height, PAD, cw - PAD - self.grid.width)
        positions = self.grid.positions()
        return torch.stack(
            [canvas[:, y : y + P, x : x + P] for y, x in (positions[int(k)] for k in self.active)]
        )

    def stitch(self, image: Tensor, patches: Tensor) -> Tensor:
        """``image`` with the inner parts of the active ``patches`` averaged in where they cover it."""
        full = self.grid.cut(image)
        full[self.active] = patches.to(full.dtype)
        return self.grid.stitch(full)


def sample_whole_image(
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
    observe: Callable[[int, Tensor], None] | None = None,
    start: Tensor | None = None,
) -> np.ndarray:
    """Algorithm 1 with the image as the state (module docstring); float64 HxWx3 like
    ``inpaint.sample_images``.
    ``observe(step, x)`` sees the image ``[3, H, W]`` after each level (it must not change it).
    ``start [3, H, W]``: a complete image to start from (coarse to fine's upsampled fill), its known
    pixels replaced by the observation, the ADMM state from its SVD (``lowrank.svd_start``); None: the
    low-rank start of ``cfg.low_rank.init``. ``progress(done, steps)`` moves through the start too
    (``START_SHARE``), so a time estimate shows from the first seconds."""
    height, width = known.shape
    y = torch.from_numpy(np.ascontiguousarray(observed, dtype=np.float32)).permute(2, 0, 1).to(device)
    mask = torch.from_numpy(np.ascontiguousarray(known)).to(device)[None]
    y = y * mask
    sigmas, step_vars = noise_schedule(sde, cfg.steps, cfg.t_start, cfg.t_end)
    base = Context(score, encoding, Inpainting(mask), y, cfg, [], float(sigmas[0]), float(step_vars[0]))

    # The start on the fixed grid, batch by batch, as the patch sampler starts; its ADMM state stays there.
    grid = make_grid(height, width, cfg.tiling)
    k_patches = grid.cut(mask)
    missing = grid.cut(torch.ones_like(mask)) & ~k_patches  # missing pixels of the image, not the canvas
    lo, hi = grid.inner
    lr = _LowRankGrid(grid, torch.nonzero(missing[..., lo:hi, lo:hi].flatten(1).any(1))[:, 0])
    y_patches = grid.cut(y)[lr.active]
    k_active = k_patches[lr.active]
    if start is None and cfg.low_rank.init == "svd" and step_list.needs_low_rank:
        start = _biharmonic(observed, known)
    if start is not None:
        start = base.op.prox_l2(start.to(device=device, dtype=y.dtype), y)
        holes = start.cpu()
        pair = image_trend(holes.permute(1, 2, 0).double().numpy(), known, holes, cfg.low_rank)
        parts = ImageStart(holes, *(pair or (None, None)))
    else:
        parts = image_start(observed, known, cfg, step_list)
    given = None if start is None else lr.cut(start)
    fills = None if parts.holes is None or given is not None else grid.cut(parts.holes.to(device))[lr.active]
    # the trend is cut like the state (mirrored margins), the deep pixels as the mask
    trends = None if parts.trend is None else lr.cut(parts.trend.to(device))
    deep = None if parts.deep is None else grid.cut(parts.deep.to(device))[lr.active]
    generators = patch_generators(seed, lr.active.tolist(), device)
    fits = step_list.needs_low_rank or cfg.start != "noise"
    share = START_SHARE[cfg.low_rank.init if start is None else "svd"] * cfg.steps if fits else 0.0
    starts = []
    for first in range(0, len(lr.active), cfg.patch_batch):
        part = slice(first, first + cfg.patch_batch)
        trend = None if trends is None or deep is None else trends[part]
        if given is not None:  # the state of the given start, which stays as it is
            gated = patch_trend(trend, None if deep is None else deep[part])
            lr.states.append(svd_start(given[part], cfg.low_rank, gated))
        else:
            ctx = _on(base, y_patches[part], k_active[part], generators[part])
            fill = None if fills is None else fills[part]
            state = start_state(
                y_patches[part],
                k_active[part],
                ctx,
                step_list,
                fill,
                None,
                trend,
                None if deep is None else deep[part],
            )
            lr.states.append(state.lowrank_state)
            starts.append(state.x)
        progress(share * min(first + cfg.patch_batch, len(lr.active)) / len(lr.active), cfg.steps)
    if start is not None:
        x = start
    else:
        x = y if not starts else lr.stitch(y, torch.cat(starts))
    x = base.op.prox_l2(_fsr_start(x, observed, known, cfg.fsr_start), y)

    near = near_known_weight(mask[None])[0]  # on the whole image, cut per tile like the state
    # fill="texture": the deep pixels that the pnp-near estimate does not reach, but within a Hankel
    # window of a known pixel (farther, the completion runs around the trend), take FSR's fill for good
    reach = within(mask[None], cfg.low_rank.window - 1)[0] if cfg.fill == "texture" else None
    textured = None if reach is None else (near == 0) & reach
    held = None if textured is None else torch.where(textured, _fsr_fill(observed, known).to(x), x)
    offsets = torch.randint(0, P, (cfg.steps, 2), generator=torch.Generator().manual_seed(seed))
    for i in range(cfg.steps):
        at_level = replace(base, sigma=float(sigmas[i]), step_var=float(step_vars[i]))
        for is_low_rank, steps in _groups(step_list):
            if is_low_rank:
                x = _low_rank_pass(x, lr, at_level, y_patches, k_active)
            else:
                tiles = Tiles(height, width, (int(offsets[i, 0]), int(offsets[i, 1])))
                x = _tile_pass(x, tiles, steps, at_level, seed, i, near)
            if textured is not None and held is not None:
                x = torch.where(textured, held, x)
        if observe is not None:
            observe(i + 1, x)
        progress(cfg.steps - (cfg.steps - share) * (cfg.steps - i - 1) / cfg.steps, cfg.steps)
    result = x.permute(1, 2, 0).cpu().numpy().astype(np.float64)
    if textured is not None:  # beyond FSR's pixels, the detail of the surroundings (esdiff.texture)
        result += mirror_detail(observed, known, start=cfg.low_rank.window)
    return result


START_SHARE = {"lmafit": 0.25, "svd": 0.02}
"""The share of a run's work its start counts for in ``progress``, by ``LowRankConfig.init``: about a
quarter for LMaFit's (a profile of the defaults on a 256x256 photo, issue 31), a small part for the
SVD's."""


def _biharmonic(observed: np.ndarray, known: np.ndarray) -> Tensor:
    """``[3, H, W]`` float32: scikit-image's biharmonic fill of the missing pixels."""
    from skimage.restoration import inpaint_biharmonic

    filled = inpaint_biharmonic(observed * known[..., None], ~known, channel_axis=-1)
    return torch.from_numpy(np.ascontiguousarray(filled, dtype=np.float32)).permute(2, 0, 1)


def _fsr_start(x: Tensor, observed: np.ndarray, known: np.ndarray, reach: int) -> Tensor:
    """``x`` with its missing pixels ``reach`` or more from every known one replaced by FSR's fill
    (``SamplerConfig.fsr_start``); ``x`` itself when ``reach`` is 0."""
    if reach <= 0:
        return x
    mask = torch.from_numpy(np.ascontiguousarray(known))[None, None]
    deep = ~within(mask, reach - 1)[0].to(x.device)
    return torch.where(deep, _fsr_fill(observed, known).to(x), x)


def _fsr_fill(observed: np.ndarray, known: np.ndarray) -> Tensor:
    """OpenCV's FSR fill of the whole image, ``[3, H, W]`` (``SamplerConfig.fill = "texture"``)."""
    from esdiff.baselines.opencv import inpaint_fsr

    return torch.from_numpy(inpaint_fsr(observed, known)).permute(2, 0, 1)


def _on(
    base: Context,
    y: Tensor,
    known: Tensor,
    generators: Sequence[torch.Generator],
    near_weight: Tensor | None = None,
) -> Context:
    """``base`` restricted to a batch of patches ``y`` with their mask, noise generators and, when cut
    from the whole image's, their ``pnp-near`` weights."""
    return replace(base, op=Inpainting(known), y=y, generators=generators, near_weight=near_weight)


def _low_rank_pass(x: Tensor, lr: _LowRankGrid, base: Context, y_patches: Tensor, known: Tensor) -> Tensor:
    """One ADMM iteration on every active patch of the fixed grid, stitched into ``x``."""
    if not len(lr.active):
        return x
    patches = lr.cut(x)
    out = []
    for b, lo in enumerate(range(0, len(lr.active), base.cfg.patch_batch)):
        part = slice(lo, lo + base.cfg.patch_batch)
        ctx = _on(base, y_patches[part], known[part], [])
        state = low_rank(State(patches[part], lr.states[b]), ctx)
        lr.states[b] = state.lowrank_state
        out.append(state.x)
    return lr.stitch(x, torch.cat(out))


def _tile_pass(
    x: Tensor, tiles: Tiles, steps: Sequence[Step], base: Context, seed: int, i: int, near: Tensor
) -> Tensor:
    """``steps`` on the tiles of ``tiles`` that hold a missing pixel, batched
    (``_changes``); the rest stay as they are.
    ``near`` is the whole image's ``near_known_weight`` ``[1, H, W]``, cut per tile: a tile's own mask,
    its margins unknown, would make every tile edge a rim."""
    known = tiles.cut(base.op.mask, _zero_fill)  # the margins are unknown
    near_tiles = tiles.cut(near, _zero_fill)
    inside = tiles.cut(torch.ones_like(base.op.mask), _zero_fill)
    active = torch.nonzero(_changes(steps, inside & ~known, near_tiles).flatten(1).any(1))[:, 0]
    x_tiles, y_tiles = tiles.cut(x), tiles.cut(base.y, _zero_fill)
    for lo in range(0, len(active), base.cfg.patch_batch):
        part = active[lo : lo + base.cfg.patch_batch]
        generators = patch_generators(seed, part.tolist(), x.device, level=i)
        ctx = _on(base, y_tiles[part], known[part], generators, near_tiles[part])
        state = State(x_tiles[part], None)
        for step in steps:
            state = step(state, ctx)
        x_tiles[part] = state.x.to(x_tiles.dtype)
    return tiles.stitch(x_tiles)


def _changes(steps: Sequence[Step], missing: Tensor, near: Tensor) -> Tensor:
    """The missing pixels of tiles that ``steps`` can change: all of them, or with ``pnp-near``'s steps
    only those its denoised estimate reaches (``near``, the tiles of the whole image's
    ``near_known_weight``, above 0), so a tile deep inside a hole skips the network and stays as it is."""
    if denoise_near_known in steps and all(step in (denoise_near_known, data_consistency) for step in steps):
        return missing & (near > 0)
    return missing
