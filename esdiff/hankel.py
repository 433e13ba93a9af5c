"""Block-Hankel lifting of image patches (SPEC 3.2; the paper's Eq. 9-10, ALOHA's Hankel structure).

A ``[B, C, P, P]`` batch of patches with a ``w x w`` window becomes ``[B, (P-w+1)^2, C w^2]``: one row
per window position (row-major), and per channel the ``w^2`` pixel offsets of the window (row-major),
the channels side by side. For the paper's 64x64x3 patches and ``w = 8`` that is ``3249 x 192``.

- ``hankel`` is im2col: exactly ``torch.nn.functional.unfold(x, w).transpose(1, 2)``, built from strided
  views (``Tensor.unfold``) and one copy, which is 2-3x faster on a CPU. Like ``unfold`` it returns the
  transpose of a contiguous ``[B, C w^2, rows]`` buffer: ``fold`` then needs no copy, and the low-rank
  code keeps every Hankel-sized matrix in this layout (matrix products take it without copies);
- ``hankel_adjoint`` is its exact adjoint, col2im (``fold``): entries landing on one pixel are summed;
- ``hankel_pinv`` is the Moore-Penrose pseudo-inverse: the same sum divided by the overlap count, so
  ``hankel_pinv(hankel(x)) == x``.

All three work on any device and floating dtype.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

WINDOW = 8


def hankel(x: Tensor, window: int = WINDOW) -> Tensor:
    """``H(x)``: ``[B, C, P, Q]`` patches -> ``[B, (P-w+1)(Q-w+1), C w^2]`` block-Hankel matrices."""
    if x.ndim != 4:
        raise ValueError(f"expected patches [B, C, H, W], got shape {tuple(x.shape)}")
    B, C, P, Q = x.shape
    rows = (P - window + 1) * (Q - window + 1)
    windows = x.unfold(2, window, 1).unfold(3, window, 1)  # [B, C, P-w+1, Q-w+1, w, w]
    return windows.permute(0, 1, 4, 5, 2, 3).reshape(B, C * window * window, rows).transpose(1, 2)


def _patch_size(rows: int, window: int, size: tuple[int, int] | None) -> tuple[int, int]:
    if size is not None:
        return size
    side = math.isqrt(rows)
    if side * side != rows:
        raise ValueError(f"{rows} window positions is not a square: pass the patch size")
    return side + window - 1, side + window - 1


def _fold(matrix: Tensor, window: int, size: tuple[int, int] | None) -> Tensor:
    if matrix.ndim != 3:
        raise ValueError(f"expected Hankel matrices [B, rows, cols], got shape {tuple(matrix.shape)}")
    out = _patch_size(matrix.shape[1], window, size)
    return F.fold(matrix.transpose(1, 2), output_size=out, kernel_size=window)


def hankel_adjoint(matrix: Tensor, window: int = WINDOW, size: tuple[int, int] | None = None) -> Tensor:
    """``H^T(Y)``: sum every entry of ``Y`` onto the pixel it came from -> ``[B, C, P, Q]``.

    ``size`` is the patch's spatial size; by default a square patch is assumed.
    """
    return _fold(matrix, window, size)


def overlap_count(
    size: tuple[int, int],
    window: int = WINDOW,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """How many Hankel entries each pixel of a ``size`` patch feeds: ``H^T(H(1))``, shape ``[P, Q]``."""
    ones = torch.ones(1, 1, *size, device=device, dtype=dtype or torch.get_default_dtype())
    return hankel_adjoint(hankel(ones, window), window, size)[0, 0]


def hankel_pinv(matrix: Tensor, window: int = WINDOW, size: tuple[int, int] | None = None) -> Tensor:
    """``H^+(Y) = H^T(Y) / H^T(H(1))``: average the entries that land on one pixel (so ``H^+ H = I``)."""
    out = _patch_size(matrix.shape[1], window, size)
    count = overlap_count(out, window, device=matrix.device, dtype=matrix.dtype)
    return _fold(matrix, window, out) / count
