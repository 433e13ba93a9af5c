"""Cut an image of any size into 64x64 patches and stitch them back (SPEC 3.1).

``overlap`` is the lab's ALOHA scheme: the image sits in a zero canvas 32 px from the top-left, windows
step by 57 so that their inner 57x57 parts ``[4:61]`` tile the image, the last window per axis is moved
back so its inner part ends flush with the image, and overlapping inner parts are averaged. ``tile`` cuts
the padded canvas into plain non-overlapping 64x64 tiles. Canvas pixels outside the image are unknown.

``fill_patches`` is the one patch loop of the samplers and of ALOHA (``fill_images`` the same over
several images in shared batches): it runs only the patches whose stitched part holds a pixel the
caller wants (the missing ones), cuts each batch from the image as it runs and adds its output into the
result, so memory grows with the batch, not with the image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from esdiff.config import PATCH_SIZE, TilingMode

PATCH = PATCH_SIZE
PAD = 32
MARGIN = 4
STRIDE = PATCH - 2 * MARGIN + 1  # 57
GRID_SHIFTS = ((0, 0), (STRIDE // 2, STRIDE // 2), (STRIDE // 2, 0), (0, STRIDE // 2))
"""Offsets (rows, columns) of the image on its canvas for ``SamplerConfig.shifts`` = 1, 2, 3, 4 grids."""


def _overlap_starts(length: int) -> tuple[int, ...]:
    first = PAD - MARGIN
    last = PAD + length - (PATCH - MARGIN + 1)  # the inner part ends at the image's far edge
    starts = [first]
    while starts[-1] + PATCH - MARGIN + 1 < PAD + length:
        starts.append(min(starts[-1] + STRIDE, last))
    return tuple(starts)


def _tile_starts(length: int) -> tuple[int, ...]:
    count = -(-(length + 2 * PAD) // PATCH)
    return tuple(PATCH * k for k in range(count))


@dataclass(frozen=True)
class PatchGrid:
    """Where the patches of an ``height x width`` image lie on its canvas (padded coordinates)."""

    height: int
    width: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]
    canvas: tuple[int, int]
    inner: tuple[int, int]
    """Rows/columns ``[lo, hi)`` of each patch that count when stitching."""

    @property
    def count(self) -> int:
        return len(self.ys) * len(self.xs)

    def positions(self) -> list[tuple[int, int]]:
        return [(y, x) for y in self.ys for x in self.xs]

    def to_canvas(self, image: Tensor) -> Tensor:
        """Place ``[..., H, W]`` on a zero canvas ``[..., Hc, Wc]`` at offset (PAD, PAD)."""
        canvas = image.new_zeros(*image.shape[:-2], *self.canvas)
        canvas[..., PAD : PAD + self.height, PAD : PAD + self.width] = image
        return canvas

    def cut(self, image: Tensor, indices: Sequence[int] | None = None) -> Tensor:
        """``[..., H, W]`` -> ``[N, ..., 64, 64]``: the windows ``indices`` (row-major; None: all), cut
        straight from the image, zero where a window leaves it."""
        indices = range(self.count) if indices is None else indices
        out = image.new_zeros(len(indices), *image.shape[:-2], PATCH, PATCH)
        for patch, k in zip(out, indices, strict=True):
            y, x = self._window(k)
            rows, cols = self._clip(y, 0, PATCH, self.height), self._clip(x, 0, PATCH, self.width)
            patch[..., rows[0] : rows[1], cols[0] : cols[1]] = image[
                ..., rows[0] + y - PAD : rows[1] + y - PAD, cols[0] + x - PAD : cols[1] + x - PAD
            ]
        return out

    def inner_box(self, k: int) -> tuple[slice, slice, slice, slice]:
        """Where patch ``k``'s stitched (inner) part lands: image rows and columns, then the same pixels'
        rows and columns in the patch (empty slices when it lies outside the image)."""
        y, x = self._window(k)
        lo, hi = self.inner
        (r0, r1), (c0, c1) = self._clip(y, lo, hi, self.height), self._clip(x, lo, hi, self.width)
        return (
            slice(r0 + y - PAD, r1 + y - PAD),
            slice(c0 + x - PAD, c1 + x - PAD),
            slice(r0, r1),
            slice(c0, c1),
        )

    def touching(self, wanted: Tensor) -> list[int]:
        """Row-major indices of the patches whose stitched part holds a True pixel of ``wanted [H, W]``;
        no other patch changes a wanted pixel of the stitched image."""
        found = []
        for k in range(self.count):
            rows, cols, _, _ = self.inner_box(k)
            if bool(wanted[rows, cols].any()):
                found.append(k)
        return found

    def stitch(self, patches: Tensor) -> Tensor:
        """Average the inner parts of ``[N, ..., 64, 64]`` patches (all windows) back into ``[..., H, W]``.

        Sums run in float64, so for float32 (and narrower) data a cut followed by a stitch is exact.
        """
        sums = Stitch(self, patches.shape[1:-2], patches.device)
        sums.add(patches, range(self.count))
        return sums.result(patches.dtype)

    def _window(self, k: int) -> tuple[int, int]:
        return self.ys[k // len(self.xs)], self.xs[k % len(self.xs)]

    @staticmethod
    def _clip(start: int, lo: int, hi: int, length: int) -> tuple[int, int]:
        """Patch-local ``[lo, hi)`` of a window at canvas ``start``, cut to the image's ``[PAD, PAD +
        length)`` (``lo == hi`` when none of it is in the image)."""
        a, b = max(lo, PAD - start), min(hi, PAD + length - start)
        return (a, b) if a < b else (lo, lo)


class Stitch:
    """Running sums of patch inner parts on the image, in float64, and how many patches cover each pixel;
    ``result`` is their average. Adding patches in row-major order gives bit for bit what one stitch of
    all of them gives on every pixel that only added patches cover."""

    def __init__(self, grid: PatchGrid, lead: Sequence[int], device: torch.device | str = "cpu") -> None:
        self.grid = grid
        self.total = torch.zeros(*lead, grid.height, grid.width, dtype=torch.float64, device=device)
        self.count = torch.zeros(grid.height, grid.width, dtype=torch.uint8, device=device)
        self.dtype: torch.dtype | None = None

    def add(self, patches: Tensor, indices: Sequence[int]) -> None:
        """Add ``[n, ..., 64, 64]`` patches, the windows ``indices`` in increasing order."""
        self.dtype = patches.dtype
        for patch, k in zip(patches, indices, strict=True):
            rows, cols, prow, pcol = self.grid.inner_box(k)
            self.total[..., rows, cols] += patch[..., prow, pcol].to(torch.float64)
            self.count[rows, cols] += 1

    def result(self, dtype: torch.dtype | None = None, uncovered: Tensor | None = None) -> Tensor:
        """The average ``[..., H, W]`` in ``dtype`` (default: the added patches'); pixels that no patch
        covers take ``uncovered`` (default 0). Reuses the sums' memory: call it once."""
        dtype = dtype or self.dtype or torch.float32
        image = self.total.div_(self.count.clamp_min(1)).to(dtype)
        if uncovered is not None:
            bare = self.count == 0
            image[..., bare] = uncovered[..., bare].to(device=image.device, dtype=dtype)
        return image


@dataclass(frozen=True)
class PatchBatch:
    """One batch of ``fill_patches`` (or ``fill_images``): windows cut from the image(s), and where the
    batch stands in the run."""

    indices: tuple[int, ...]
    """Row-major positions in the full grid (what per-patch seeds are tied to)."""
    y: Tensor
    """``[B, C, 64, 64]`` the image's pixels (zero outside it)."""
    known: Tensor
    """``[B, 1, 64, 64]`` bool (False outside the image)."""
    done: int
    """Patches filled before this batch."""
    total: int
    """Patches this run fills."""
    sources: tuple[int, ...] = ()
    """Which image of ``fill_images`` each patch comes from (empty: the one image of ``fill_patches``)."""

    def runs(self) -> list[tuple[int, slice]]:
        """``(image, rows)`` for each run of consecutive patches from the same image, in order."""
        return source_runs(self.sources or (0,) * len(self.indices))

    def cut(self, grids: Sequence[PatchGrid], images: Sequence[Tensor]) -> Tensor:
        """The batch's windows of ``images[i] [..., H, W]`` (one per source image, on ``grids[i]``)."""
        return cut_runs(grids, images, self.indices, self.runs())


def source_runs(sources: Sequence[int]) -> list[tuple[int, slice]]:
    """``(source, slice)`` for each run of equal consecutive entries of ``sources``."""
    found: list[tuple[int, slice]] = []
    start = 0
    for end in range(1, len(sources) + 1):
        if end == len(sources) or sources[end] != sources[start]:
            found.append((sources[start], slice(start, end)))
            start = end
    return found


def cut_runs(
    grids: Sequence[PatchGrid],
    images: Sequence[Tensor],
    indices: tuple[int, ...],
    runs: Sequence[tuple[int, slice]],
) -> Tensor:
    """Windows ``indices`` cut run by run, each from its source image ``images[i]`` on ``grids[i]``."""
    return torch.cat([grids[i].cut(images[i], indices[rows]) for i, rows in runs])


def patches_to_fill(grid: PatchGrid, wanted: Tensor | None) -> list[int]:
    """The windows a run samples: those whose stitched part holds a ``wanted`` pixel, or (``wanted`` None)
    every window, as before skipping existed (for comparisons)."""
    return list(range(grid.count)) if wanted is None else grid.touching(wanted)


def fill_patches(
    image: Tensor,
    known: Tensor,
    fill: Callable[[PatchBatch], Tensor],
    *,
    batch_size: int,
    mode: TilingMode = "overlap",
    wanted: Tensor | None = None,
) -> Tensor:
    """Run ``fill`` on batches of at most ``batch_size`` windows of ``image [C, H, W]`` (``known [H, W]``
    bool) and stitch what it returns (``[B, C, 64, 64]``, any device) into ``[C, H, W]``, in the dtype
    ``fill`` returns. Only the windows ``patches_to_fill`` names run; pixels none of them covers keep
    ``image``. Each batch is cut when it runs, so memory holds one batch besides the image and the sums."""
    (out,) = fill_images([image], [known], fill, batch_size=batch_size, mode=mode, wanted=[wanted])
    return out


def fill_images(
    images: Sequence[Tensor],
    knowns: Sequence[Tensor],
    fill: Callable[[PatchBatch], Tensor],
    *,
    batch_size: int,
    mode: TilingMode = "overlap",
    wanted: Sequence[Tensor | None],
) -> list[Tensor]:
    """``fill_patches`` over several images at once: their windows to fill, image after image, form one
    queue cut into batches of ``batch_size``, so a batch may hold the last windows of one image and the
    first of the next (``PatchBatch.sources``). Each image's result is what ``fill_patches`` alone gives
    it when ``fill`` treats every window on its own (as the samplers do)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    grids = [make_grid(image.shape[-2], image.shape[-1], mode) for image in images]
    queue = [(i, k) for i, grid in enumerate(grids) for k in patches_to_fill(grid, wanted[i])]
    sums = [Stitch(grid, image.shape[:-2]) for grid, image in zip(grids, images, strict=True)]
    masks = [known[None] for known in knowns]
    for start in range(0, len(queue), batch_size):
        part = queue[start : start + batch_size]
        indices, sources = tuple(k for _, k in part), tuple(i for i, _ in part)
        runs = source_runs(sources)
        y, known = cut_runs(grids, images, indices, runs), cut_runs(grids, masks, indices, runs)
        out = fill(PatchBatch(indices, y, known, start, len(queue), sources)).cpu()
        for i, rows in runs:
            sums[i].add(out[rows], indices[rows])
    return [
        total.result(total.dtype or image.dtype, uncovered=image)
        for total, image in zip(sums, images, strict=True)
    ]


def make_grid(height: int, width: int, mode: TilingMode = "overlap") -> PatchGrid:
    """The patch grid of an image; any ``height, width >= 1``."""
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if mode == "overlap":
        ys, xs, inner = _overlap_starts(height), _overlap_starts(width), (MARGIN, PATCH - MARGIN + 1)
    elif mode == "tile":
        ys, xs, inner = _tile_starts(height), _tile_starts(width), (0, PATCH)
    else:
        raise ValueError(f"unknown tiling mode {mode!r}")
    canvas = (max(height + 2 * PAD, ys[-1] + PATCH), max(width + 2 * PAD, xs[-1] + PATCH))
    return PatchGrid(height, width, ys, xs, canvas, inner)
