"""Fine detail for the deep parts of wide holes, carried over from the known pixels around them.

The learned prior, asked to denoise inside a wide hole, returns a smooth completion (docs/method.md), and
so do FSR, biharmonic and the low-rank steps far from a known pixel. ``mirror_detail`` gives such a fill
the fine detail of its surroundings: the known image's detail layer (each channel minus its Gaussian blur,
the blur taken over known pixels only) is mirrored across the hole's rim, each missing pixel taking the
detail of the known pixel as far beyond the nearest reliable known pixel as it lies inside the hole. Only
the detail travels; the fill's colours and shapes stay the sampler's.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SIGMA = 2.0
"""Gaussian blur (px) whose residual is the detail layer: the fine scale a person sees as texture."""
RELIABLE = 0.9
"""A known pixel's detail is used where at least this share of its blur's weight falls on known pixels."""
RAMP = 2.0
"""Pixels over which the detail fades in from where it starts."""


def detail_layer(observed: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``observed [H, W, 3]`` minus its blur over known pixels (``[H, W, 3]``, 0 where missing), and the
    ``[H, W]`` pixels whose detail is reliable (``RELIABLE``)."""
    mask = known.astype(np.float64)
    weight = ndimage.gaussian_filter(mask, SIGMA, mode="nearest")
    blurred = ndimage.gaussian_filter(observed * mask[..., None], (SIGMA, SIGMA, 0), mode="nearest")
    blur = blurred / np.maximum(weight, 1e-12)[..., None]
    detail = np.where(known[..., None], observed - blur, 0.0)
    return detail, known & (weight >= RELIABLE)


def mirror_detail(observed: np.ndarray, known: np.ndarray, start: float) -> np.ndarray:
    """``[H, W, 3]``: the detail to add to a fill of the missing pixels of ``observed [H, W, 3]`` (``known
    [H, W]``), zero on known pixels and on missing ones nearer than ``start`` px (Chebyshev) to a known
    one, fading in over ``RAMP`` px beyond. A missing pixel ``p`` whose nearest reliable known pixel is
    ``q`` takes the detail at ``2q - p`` (mirrored across the rim), or at ``q`` where that one is not
    reliable. Zeros when no known pixel is reliable."""
    detail, reliable = detail_layer(observed, known)
    if not reliable.any() or known.all():
        return np.zeros_like(observed, dtype=np.float64)
    depth = ndimage.distance_transform_cdt(~known, metric="chessboard").astype(np.float64)
    weight = np.clip((depth - start + 1) / RAMP, 0.0, 1.0) * ~known
    _, (near_y, near_x) = ndimage.distance_transform_edt(~reliable, return_indices=True)
    height, width = known.shape
    rows, cols = np.mgrid[:height, :width]
    far_y = np.clip(2 * near_y - rows, 0, height - 1)
    far_x = np.clip(2 * near_x - cols, 0, width - 1)
    mirrored = reliable[far_y, far_x]
    source = np.where(mirrored[..., None], detail[far_y, far_x], detail[near_y, near_x])
    return weight[..., None] * source
