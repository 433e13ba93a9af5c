"""How commands show their parameters: flags without a type, arguments in usage lines without braces.

Typer marks a flag such as ``--overwrite`` with ``<bool>`` as if it took a value, and writes a required
argument as ``{INPUT}`` in usage lines; these command classes show ``--overwrite`` and ``INPUT``.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


class _PlainParams:
    """Mixin for Typer's command classes (the first base; the second is the Typer class)."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
                param.metavar = ""  # the help shows the metavar in place of the type: nothing for a flag
        return params

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces: list[str] = super().collect_usage_pieces(ctx)  # type: ignore[misc]
        plain = {
            p._usage_display_name(): p._usage_display_name().replace("{", "").replace("}", "")
            for p in self.get_params(ctx)
            if isinstance(p, TyperArgument) and p.required
        }
        return [plain.get(piece, piece) for piece in pieces]


class Command(_PlainParams, TyperCommand):
    """A subcommand with plain flags and usage line."""


class Group(_PlainParams, TyperGroup):
    """The top-level command with plain flags and usage line."""
