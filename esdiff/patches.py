"""Cut an image of any size into 64x64 patches and stitch them back (SPEC 3.1).

``overlap`` is the lab's ALOHA scheme: the image sits in a zero canvas 32 px from the top-left, windows
step by 57 so that their inner 57x57 parts ``[4:61]`` tile the image, the last window per axis is moved
back so its inner part ends flush with the image, and overlapping inner parts are averaged. ``tile`` cuts
the padded canvas into plain non-overlapping 64x64 tiles. Canvas pixels outside the image are unknown.
"""

from __future__ import annotations

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

    def cut(self, image: Tensor) -> Tensor:
        """``[..., H, W]`` -> ``[N, ..., 64, 64]`` patches in row-major window order."""
        canvas = self.to_canvas(image)
        return torch.stack([canvas[..., y : y + PATCH, x : x + PATCH] for y, x in self.positions()])

    def stitch(self, patches: Tensor) -> Tensor:
        """Average the inner parts of ``[N, ..., 64, 64]`` patches back into ``[..., H, W]``.

        Sums run in float64, so for float32 (and narrower) data a cut followed by a stitch is exact.
        """
        lo, hi = self.inner
        total = patches.new_zeros(*patches.shape[1:-2], *self.canvas, dtype=torch.float64)
        count = torch.zeros(self.canvas, dtype=torch.float64, device=patches.device)
        for patch, (y, x) in zip(patches, self.positions(), strict=True):
            total[..., y + lo : y + hi, x + lo : x + hi] += patch[..., lo:hi, lo:hi].to(torch.float64)
            count[y + lo : y + hi, x + lo : x + hi] += 1
        image = (total / count.clamp_min(1))[..., PAD : PAD + self.height, PAD : PAD + self.width]
        return image.to(patches.dtype)


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
