"""`--set KEY=VALUE`: the one way in for the samplers' settings (`inpaint`, `evaluate`, `ablate`)."""

from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from esdiff_cli.common import fail

SET_HELP = (
    "Sampler setting KEY=VALUE: a SamplerConfig field (low_rank.mu for a nested one), VALUE as JSON "
    "else a string; or @FILE.json, an object of such settings. Repeatable."
)

SET = Annotated[
    list[str] | None, typer.Option("--set", metavar="KEY=VALUE", help=SET_HELP, show_default=False)
]
"""The option, as each command declares it."""


class Fill(str, Enum):
    smooth = "smooth"
    texture = "texture"


FILL = Annotated[
    Fill | None,
    typer.Option(
        help="How esdiff fills the inside of holes: smooth, its own completion (letters of a removed "
        "caption stay as smooth blobs), or texture: OpenCV FSR's fill 3 to 7 px from a known pixel and, "
        "deeper, the detail of the surroundings. Default: texture.",
        show_default=False,
    ),
]
"""`--fill`: ``SamplerConfig.fill`` of the esdiff method."""


def with_fill(changes: dict[str, Any], fill: Fill | None, methods: list[str]) -> dict[str, Any]:
    """``changes`` with ``fill`` (``--fill``) for ``methods`` that include esdiff; ``--fill`` without
    esdiff is one error line."""
    if fill is None:
        return changes
    if "esdiff" not in methods:
        raise fail("--fill applies to the esdiff method, and it is not chosen")
    return {**changes, "fill": fill.value}


def parse_settings(items: list[str] | None) -> dict[str, Any]:
    """The changes that ``--set`` items ask for, by dotted key (a later item wins); a malformed item or an
    unreadable file is one error line."""
    changes: dict[str, Any] = {}
    for item in items or []:
        if item.startswith("@"):
            changes.update(_flat(_read_object(Path(item[1:]))))
            continue
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise fail(f"--set {item!r}: expected KEY=VALUE (a SamplerConfig field) or @FILE.json")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        changes[key.strip()] = value
    return changes


def _read_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise fail(f"--set @{path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise fail(f"--set @{path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise fail(f"--set @{path}: expected a JSON object of settings")
    return data


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted keys: ``{"low_rank": {"mu": 2}}`` -> ``{"low_rank.mu": 2}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def sampler_config(base: Any, changes: dict[str, Any], what: str = "--set") -> Any:
    """The sampler config ``base`` with ``changes``, checked once (``config_checks.sampler_config_problems``):
    an unknown key or a bad value is one error line (exit 2)."""
    from esdiff.config import with_changes
    from esdiff.config_checks import sampler_config_problems

    try:
        cfg = with_changes(base, changes)
    except (ValueError, TypeError) as exc:
        raise fail(f"{what}: {exc}") from None
    problems = sampler_config_problems(cfg)
    if problems:
        raise fail(f"{what}: {'; '.join(problems)}")
    return cfg


def env_flag(name: str) -> bool:
    """An on/off environment variable: set to anything but empty, 0, false or no."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def env_int(name: str, default: int) -> int:
    """A positive integer from the environment (``default`` when unset); anything else is one error line."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise fail(f"{name} must be a positive integer (got {text!r})")
    return value
