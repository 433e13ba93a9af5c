"""The one registry of inpainting methods a user can pick by name, and the entry point that runs them.

Kept free of heavy imports (numpy, torch, the baselines load when a method runs), so that the command
line can build its choices from ``METHODS`` without slowing ``esdiff --help``.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esdiff.config import DEFAULT_SAMPLER, NCSNPP_SAMPLER, SamplerConfig
from esdiff.errors import EsdiffError

if TYPE_CHECKING:
    import numpy as np

Progress = Callable[..., None]


@dataclass(frozen=True)
class Sampler:
    """A score-based sampler method: ``esdiff.inpaint.inpaint_image`` with its own defaults."""

    config: SamplerConfig
    """Its defaults, the step list (``SamplerConfig.step_list``) among them."""


@dataclass(frozen=True)
class Baseline:
    """A comparison method: ``<module>.<function>(image, known, *, seed, progress, **settings)``."""

    module: str
    on_device: bool = False
    """It runs on torch and takes ``device``."""
    function: str = "inpaint"


SAMPLERS: dict[str, Sampler] = {
    "esdiff": Sampler(DEFAULT_SAMPLER),
    "ncsnpp": Sampler(NCSNPP_SAMPLER),
}
"""ESDiff, and the paper's NCSN++ baseline: the same sampler with a 3-channel model and no low-rank step."""

BASELINES: dict[str, Baseline] = {
    "aloha": Baseline("esdiff.baselines.aloha", on_device=True),
    "biharmonic": Baseline("esdiff.baselines.biharmonic"),
    "kernel-regression": Baseline("esdiff.baselines.kernel_regression"),
    "ksvd": Baseline("esdiff.baselines.ksvd"),
    "dip": Baseline("esdiff.baselines.dip", on_device=True),
    "fsr": Baseline("esdiff.baselines.opencv", function="inpaint_fsr"),
    "fsr-best": Baseline("esdiff.baselines.opencv", function="inpaint_fsr_best"),
    "telea": Baseline("esdiff.baselines.opencv", function="inpaint_telea"),
    "ns": Baseline("esdiff.baselines.opencv", function="inpaint_ns"),
}
"""The paper's other comparison methods, scikit-image's biharmonic reference and OpenCV's classical
tools (FSR, Telea, Navier-Stokes; the ``opencv`` extra)."""

CLASSICAL: tuple[str, ...] = ("fsr", "fsr-best", "telea", "ns", "biharmonic", "aloha")
"""The classical methods a learned prior has to beat (no network, nothing learned)."""

METHODS: tuple[str, ...] = (*SAMPLERS, *BASELINES)
"""Every method by name."""


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


def baseline(name: str) -> Callable[..., np.ndarray]:
    """The ``inpaint`` function of a baseline (imported on first use)."""
    entry = BASELINES[name]
    return getattr(importlib.import_module(entry.module), entry.function)


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
    """Inpaint ``image`` (float HxWx3 in [0, 1]) where ``known`` is False; known pixels come back exactly.

    A result with a non-finite pixel (a diverged sampler) is an EsdiffError, never an image."""
    import numpy as np

    if name not in METHODS:
        raise EsdiffError(f"unknown method {name!r} (choose from {', '.join(METHODS)})")
    if name in SAMPLERS:
        (result,) = run_sampler_images(name, [image], [known], options, progress)
        return result
    check_mask(known, image.shape[:2])
    if known.all():
        warnings.warn("mask has no missing pixel: returning the input unchanged", stacklevel=2)
        return image.copy()
    observed = np.where(known[..., None], image, 0.0)
    settings = dict(options.settings)
    if BASELINES[name].on_device:
        settings.setdefault("device", options.device)
    result = baseline(name)(observed, known, seed=options.seed, progress=progress, **settings)
    return finished(name, result, image, known)


def run_sampler_images(
    name: str,
    images: Sequence[np.ndarray],
    knowns: Sequence[np.ndarray],
    options: MethodOptions,
    progress: Progress | None = None,
) -> list[np.ndarray]:
    """``run_method`` with a sampler on several images at once, their patches in shared batches
    (``inpaint.inpaint_images``): each result is what ``run_method`` gives that image alone (bit for
    bit with a fixed LMaFit rank; with the adaptive one, to the last bits)."""
    import numpy as np

    from esdiff.inpaint import inpaint_images

    for image, known in zip(images, knowns, strict=True):
        check_mask(known, image.shape[:2])
    holed = [i for i, known in enumerate(knowns) if not known.all()]
    if len(holed) < len(images):
        warnings.warn("mask has no missing pixel: returning the input unchanged", stacklevel=2)
    results = [image.copy() for image in images]
    if not holed:
        return results
    sampled = inpaint_images(
        [np.where(knowns[i][..., None], images[i], 0.0) for i in holed],
        [knowns[i] for i in holed],
        seed=options.seed,
        device=options.device,
        progress=progress,
        **sampler_settings(name, options.settings),
    )
    for i, result in zip(holed, sampled, strict=True):
        results[i] = finished(name, result, images[i], knowns[i])
    return results


def sampler_settings(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    """A sampler method's ``inpaint_image`` settings: the given ones over its model and config
    (``patch_batch``, when given, replaces the config's)."""
    sampler = SAMPLERS[name]
    settings = dict(settings)
    if settings.get("model") is None:
        settings["model"] = default_model(name)
    settings.setdefault("config", sampler.config)
    patch_batch = settings.pop("patch_batch", None)
    if patch_batch is not None:
        settings["config"] = replace(settings["config"], patch_batch=patch_batch)
    return settings


@dataclass(frozen=True)
class Ablation:
    """A sampler variant of `esdiff ablate` (``esdiff/ablations.json``)."""

    description: str
    config: SamplerConfig
    model: str = "esdiff"
    """The sampler method whose shipped model it runs with (``default_model``)."""


def ablations() -> dict[str, Ablation]:
    """The variants of ``esdiff/ablations.json`` by name: each a change of ``DEFAULT_SAMPLER`` (or, with
    ``"base": "paper"``, of SPEC's ``SamplerConfig()``), checked by
    ``config_checks.sampler_config_problems``."""
    import json
    from importlib import resources

    from esdiff.config import with_changes
    from esdiff.config_checks import sampler_config_problems

    data = json.loads(resources.files("esdiff").joinpath("ablations.json").read_text())
    bases = {"defaults": DEFAULT_SAMPLER, "paper": SamplerConfig()}
    out = {}
    for name, entry in data.items():
        config = with_changes(bases[entry.get("base", "defaults")], entry["changes"])
        problems = sampler_config_problems(config)
        if problems:
            raise EsdiffError(f"ablation {name}: {'; '.join(problems)}")
        out[name] = Ablation(entry["description"], config, entry.get("model", "esdiff"))
    return out


def finished(name: str, result: np.ndarray, image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """A method's result in ``image``'s dtype, clipped, known pixels exactly ``image``'s; a non-finite
    missing pixel is an EsdiffError."""
    import numpy as np

    bad = int((~np.isfinite(result[~known])).sum())
    if bad:
        raise EsdiffError(f"{name} produced {bad} non-finite (NaN/Inf) values: no result is written")
    result = np.where(known[..., None], image, np.clip(result, 0.0, 1.0))
    return result.astype(image.dtype)
