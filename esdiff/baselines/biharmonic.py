"""Biharmonic inpainting: scikit-image's ``inpaint_biharmonic``.

Damelin & Hoang 2018, "On surface completion and image inpainting by biharmonic functions:
numerical aspects", Int. J. Math. Math. Sci. Each channel of the missing region is the solution of
the biharmonic equation with the known pixels as boundary values. A quick, parameter-free reference
point rather than one of the paper's own baselines.

Default settings: none (``DEFAULTS`` is empty).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from esdiff.baselines.common import check_inputs

DEFAULTS: dict = {}


def inpaint(
    image: np.ndarray,
    known: np.ndarray,
    *,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    **settings,
) -> np.ndarray:
    """Fill the pixels where ``known`` is False by biharmonic interpolation (deterministic, no settings)."""
    from skimage.restoration import inpaint_biharmonic

    if settings:
        raise TypeError(f"unknown biharmonic settings: {sorted(settings)}")
    image, known = check_inputs(image, known)
    observed = np.where(known[..., None], image, 0.0)
    out = inpaint_biharmonic(observed, ~known, channel_axis=-1)
    if progress is not None:
        progress(1, 1)
    return np.where(known[..., None], image, np.clip(out, 0.0, 1.0))
