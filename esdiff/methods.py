"""One entry point for every inpainting method a user can pick by name."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from esdiff.errors import EsdiffError

Progress = Callable[..., None]

METHODS: tuple[str, ...] = ("esdiff", "ncsnpp", "aloha", "biharmonic", "kernel-regression", "ksvd", "dip")
"""Every method by name: ESDiff, the paper's baselines, and scikit-image's biharmonic reference."""


@dataclass
class MethodOptions:
    """What a method needs besides the image: device, seed, and method-specific settings."""

    seed: int = 0
    device: str = "cpu"
    settings: dict[str, Any] = field(default_factory=dict)


def default_model(name: str) -> Path | None:
    """The shipped checkpoint a sampler method uses when no model is given (None: not a sampler)."""
    from esdiff.prior import BUILTIN_MODEL, NCSNPP_MODEL

    return {"esdiff": BUILTIN_MODEL, "ncsnpp": NCSNPP_MODEL}.get(name)


def check_mask(known: np.ndarray, shape: tuple[int, int]) -> None:
    """Reject masks that cannot be inpainted (wrong size, no known pixel)."""
    if known.shape != shape:
        raise EsdiffError(
            f"mask is {known.shape[1]}x{known.shape[0]} but the image is {shape[1]}x{shape[0]}"
            " (width x height)"
        )
    if not known.any():
        raise EsdiffError(
            "mask leaves no known pixel: nothing to inpaint from (flipped mask? try --invert-mask)"
        )


def run_method(
    name: str,
    image: np.ndarray,
    known: np.ndarray,
    options: MethodOptions,
    progress: Progress | None = None,
) -> np.ndarray:
    """Inpaint ``image`` (float HxWx3 in [0, 1]) where ``known`` is False; known pixels come back exactly."""
    check_mask(known, image.shape[:2])
    if known.all():
        warnings.warn("mask has no missing pixel: returning the input unchanged", stacklevel=2)
        return image.copy()
    observed = np.where(known[..., None], image, 0.0)
    if name == "aloha":
        from esdiff.baselines import aloha

        result = aloha.inpaint(
            observed, known, seed=options.seed, progress=progress, device=options.device, **options.settings
        )
    elif name in ("esdiff", "ncsnpp"):
        from esdiff.inpaint import inpaint_image, ncsnpp_sampler_config

        settings = dict(options.settings)
        if settings.get("model") is None:
            settings["model"] = default_model(name)
        if name == "ncsnpp":
            settings.setdefault("step_list", "no-lowrank")
            settings.setdefault("config", ncsnpp_sampler_config())
        result = inpaint_image(
            observed, known, seed=options.seed, device=options.device, progress=progress, **settings
        )
    elif name in METHODS:
        from esdiff.baselines.registry import BASELINES

        settings = dict(options.settings)
        if name == "dip":
            settings.setdefault("device", options.device)
        result = BASELINES[name](observed, known, seed=options.seed, progress=progress, **settings)
    else:
        raise EsdiffError(f"unknown method {name!r} (choose from {', '.join(METHODS)})")
    result = np.where(known[..., None], image, np.clip(result, 0.0, 1.0))
    return result.astype(image.dtype)
