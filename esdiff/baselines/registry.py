"""The paper's classical comparison methods by name, with their default settings.

Every entry has the signature ``inpaint(image, known, *, seed=0, progress=None, **settings)``: ``image``
float64 HxWx3 in [0, 1] (missing pixels are never read), ``known`` bool HxW (True = observed); returns
float64 HxWx3 in [0, 1] whose known pixels equal the input's. ``dip`` also takes ``device``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from esdiff.baselines import biharmonic, dip, kernel_regression, ksvd

Inpainter = Callable[..., np.ndarray]

BASELINES: dict[str, Inpainter] = {
    "biharmonic": biharmonic.inpaint,
    "kernel-regression": kernel_regression.inpaint,
    "ksvd": ksvd.inpaint,
    "dip": dip.inpaint,
}

DEFAULT_SETTINGS: dict[str, dict] = {
    "biharmonic": dict(biharmonic.DEFAULTS),
    "kernel-regression": dict(kernel_regression.DEFAULTS),
    "ksvd": dict(ksvd.DEFAULTS),
    "dip": dict(dip.DEFAULTS),
}
