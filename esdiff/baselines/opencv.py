"""OpenCV's classical inpainting: frequency-selective reconstruction (FSR), Telea and Navier-Stokes.

- ``fsr`` / ``fsr-best``: ``cv2.xphoto.inpaint`` with ``INPAINT_FSR_FAST`` / ``INPAINT_FSR_BEST``
  (Genser, Seiler, Schilling, Kaup 2018, "Signal and loss geometry aware frequency selective
  extrapolation for error concealment", PCS; from ``opencv-contrib``): each block of the missing region
  is extrapolated by a sparse sum of Fourier basis functions fitted to the known pixels around it.
  ``fsr-best`` fits more carefully and is much slower.
- ``telea``: ``cv2.inpaint`` with ``INPAINT_TELEA`` (Telea 2004, "An image inpainting technique based on
  the fast marching method", J. Graphics Tools): the hole is filled from its rim inwards, each pixel a
  weighted average of the known pixels within ``radius``.
- ``ns``: ``cv2.inpaint`` with ``INPAINT_NS`` (Bertalmio, Bertozzi, Sapiro 2001, "Navier-Stokes, fluid
  dynamics, and image and video inpainting", CVPR): isophotes continued into the hole.

OpenCV's conventions are kept here and nowhere else: images in BGR order and 8 bits (the only depth both
functions take for colour images), FSR's mask non-zero on *known* pixels, ``cv2.inpaint``'s non-zero on
*missing* ones. The result is the filled pixels over the exact known ones. OpenCV uses as many threads as
torch is set to (``esdiff --threads``).

Default settings (``DEFAULTS``): ``radius=3`` px for ``telea`` and ``ns``; FSR has no settings.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from esdiff.baselines.common import check_inputs, merge_settings
from esdiff.errors import EsdiffError

DEFAULTS: dict[str, Any] = {"radius": 3}
"""Settings of ``telea`` and ``ns``: the neighbourhood radius in pixels that fills each pixel."""

INSTALL_HINT = "pip install opencv-contrib-python-headless (a dependency of esdiff)"


def _cv2() -> Any:
    """The ``cv2`` module with ``xphoto`` and as many threads as torch uses, or one clear EsdiffError."""
    try:
        import cv2
    except ImportError:
        raise EsdiffError(
            f"OpenCV is missing (the texture fill and the OpenCV methods use it): {INSTALL_HINT}"
        ) from None
    if not hasattr(cv2, "xphoto"):
        raise EsdiffError(f"OpenCV lacks its contrib modules (xphoto): {INSTALL_HINT}")
    import torch

    cv2.setNumThreads(torch.get_num_threads())
    return cv2


def _to_bgr8(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """The known pixels of an RGB float image in [0, 1] as a contiguous 8-bit BGR image (missing: 0)."""
    rgb8 = np.round(np.clip(np.where(known[..., None], image, 0.0), 0.0, 1.0) * 255).astype(np.uint8)
    return np.ascontiguousarray(rgb8[..., ::-1])


def _from_bgr8(bgr: np.ndarray, image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """An 8-bit BGR result as RGB float64 in [0, 1], the known pixels exactly ``image``'s."""
    return np.where(known[..., None], image, bgr[..., ::-1].astype(np.float64) / 255.0)


def _fsr(image: np.ndarray, known: np.ndarray, algorithm: str) -> np.ndarray:
    cv2 = _cv2()
    src = _to_bgr8(image, known)
    dst = np.zeros_like(src)
    cv2.xphoto.inpaint(src, known.astype(np.uint8) * 255, dst, getattr(cv2.xphoto, algorithm))
    return _from_bgr8(dst, image, known)


def _cv_inpaint(image: np.ndarray, known: np.ndarray, radius: float, algorithm: str) -> np.ndarray:
    cv2 = _cv2()
    missing = (~known).astype(np.uint8) * 255
    out = cv2.inpaint(_to_bgr8(image, known), missing, radius, getattr(cv2, algorithm))
    return _from_bgr8(out, image, known)


def _run(
    name: str,
    fill: Callable[..., np.ndarray],
    image: np.ndarray,
    known: np.ndarray,
    progress: Callable[[int, int], None] | None,
    defaults: dict[str, Any],
    settings: dict[str, Any],
) -> np.ndarray:
    """Checks, settings over ``defaults``, the fill, progress 1 of 1."""
    options = merge_settings(name, defaults, settings)
    image, known = check_inputs(image, known)
    out = fill(image, known, **options)
    if progress is not None:
        progress(1, 1)
    return out


def inpaint_fsr(
    image: np.ndarray,
    known: np.ndarray,
    *,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    **settings: Any,
) -> np.ndarray:
    """FSR, the fast variant (deterministic, no settings)."""
    return _run("fsr", partial(_fsr, algorithm="INPAINT_FSR_FAST"), image, known, progress, {}, settings)


def inpaint_fsr_best(
    image: np.ndarray,
    known: np.ndarray,
    *,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    **settings: Any,
) -> np.ndarray:
    """FSR, the careful and slow variant (deterministic, no settings)."""
    fill = partial(_fsr, algorithm="INPAINT_FSR_BEST")
    return _run("fsr-best", fill, image, known, progress, {}, settings)


def inpaint_telea(
    image: np.ndarray,
    known: np.ndarray,
    *,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    **settings: Any,
) -> np.ndarray:
    """Telea's fast-marching fill (deterministic; ``radius``)."""
    fill = partial(_cv_inpaint, algorithm="INPAINT_TELEA")
    return _run("telea", fill, image, known, progress, DEFAULTS, settings)


def inpaint_ns(
    image: np.ndarray,
    known: np.ndarray,
    *,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    **settings: Any,
) -> np.ndarray:
    """The Navier-Stokes fill (deterministic; ``radius``)."""
    fill = partial(_cv_inpaint, algorithm="INPAINT_NS")
    return _run("ns", fill, image, known, progress, DEFAULTS, settings)
