"""What every classical baseline shares: input checks and settings merged over its defaults."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_inputs(image: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``image`` as float64 HxWx3 and ``known`` as bool HxW, or a ValueError."""
    image = np.asarray(image, dtype=np.float64)
    known = np.asarray(known, dtype=bool)
    if image.ndim != 3 or image.shape[2] != 3 or known.shape != image.shape[:2]:
        raise ValueError(f"expected image HxWx3 and known HxW, got {image.shape} and {known.shape}")
    return image, known


def merge_settings(name: str, defaults: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` overridden by ``settings``; a misspelt setting is a TypeError."""
    unknown = set(settings) - set(defaults)
    if unknown:
        raise TypeError(f"unknown {name} settings: {sorted(unknown)}")
    return {**defaults, **settings}
