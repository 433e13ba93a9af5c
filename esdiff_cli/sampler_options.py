"""The sampler's expert options of `esdiff inpaint`: how --help shows their defaults, and the config
that the options a user gave make of a sampler's own (one error line for a bad value)."""

from __future__ import annotations

from typing import Any

import typer

from esdiff.methods import SAMPLERS
from esdiff_cli.common import fail

EXPERT = "Sampler options (esdiff, ncsnpp)"
"""The --help panel of the sampler's expert settings, shown after the everyday options."""


def shown_default(name: str, low_rank: bool = False) -> str:
    """A sampler setting's default as --help shows it, read from the samplers' configs (esdiff's value,
    then any sampler whose own default differs)."""
    values = {m: getattr(s.config.low_rank if low_rank else s.config, name) for m, s in SAMPLERS.items()}
    first, *_ = values.values()

    def text(value: object) -> str:
        return ("adaptive" if name == "rank" else "none") if value is None else str(value)

    others = [f"{m} {text(v)}" for m, v in values.items() if v != first]
    return "; ".join([text(first), *others])


def expert(name: str, help: str, *, low_rank: bool = False, **limits: Any) -> Any:
    """A sampler option in the expert panel, its default shown from the samplers' configs."""
    shown = shown_default(name, low_rank=low_rank)
    return typer.Option(help=help, show_default=shown, rich_help_panel=EXPERT, **limits)


PC_ONLY = (
    "snr",
    "predictor_noise",
    "corrector_samples",
    "predictor",
    "corrector_cap",
    "state",
)
"""Sampler options that only the predictor and corrector steps read."""


def sampler_config(base: Any, sampler: dict[str, Any], low_rank: dict[str, Any]) -> Any:
    """The sampler config ``base`` with the options the user gave; bad values are one error line."""
    import dataclasses
    from typing import get_args

    from esdiff.config import FusionMode, PredictorMode, SamplingMode, StartMode, StateMode, TilingMode

    modes = {
        "start": StartMode,
        "fusion": FusionMode,
        "tiling": TilingMode,
        "state": StateMode,
        "predictor": PredictorMode,
        "sampling": SamplingMode,
    }
    for name, mode in modes.items():
        allowed = get_args(mode)
        if sampler[name] is not None and sampler[name] not in allowed:
            raise fail(f"--{name} must be one of {', '.join(allowed)} (got {sampler[name]!r})")
    from esdiff.sampler import STEP_LISTS

    if sampler["step_list"] is not None and sampler["step_list"] not in STEP_LISTS:
        raise fail(f"--step-list must be one of {', '.join(STEP_LISTS)} (got {sampler['step_list']!r})")
    steps = STEP_LISTS[sampler["step_list"] or base.step_list]
    unused = [name for name in PC_ONLY if sampler[name] is not None]
    if unused and not steps.runs_predictor_corrector:
        names = ", ".join("--" + name.replace("_", "-") for name in unused)
        raise fail(f"{names} act on a predictor-corrector list; add --step-list esdiff")
    given = {k: v for k, v in low_rank.items() if v is not None}
    if given.get("trend") == 0:
        given["trend"] = None  # --trend 0: none
    low_rank_cfg = dataclasses.replace(base.low_rank, **given)
    return dataclasses.replace(
        base, low_rank=low_rank_cfg, **{k: v for k, v in sampler.items() if v is not None}
    )
