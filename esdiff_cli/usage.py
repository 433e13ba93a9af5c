"""How commands show their help: plain text that fits the terminal, flags without a type, arguments in
usage lines without braces.

The help is click's plain layout (the app sets no rich markup mode): it wraps every description at word
boundaries to the terminal's width (at most 80 columns) and never cuts a name, where rich's tables cut
long option names and defaults with an ellipsis at 80 columns. Options keep their ``rich_help_panel``
as a section of their own. Typer marks a flag such as ``--overwrite`` with ``<bool>`` as if it took a
value, and writes a required argument as ``{INPUT}`` in usage lines; these command classes show
``--overwrite`` and ``INPUT``.
"""

from __future__ import annotations

import inspect
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

    def format_options(self, ctx: Any, formatter: Any) -> None:
        """Arguments, options, then one section per help panel; a group's commands last."""
        sections: dict[str, list[tuple[str, str]]] = {"Arguments": [], "Options": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                panel = getattr(param, "rich_help_panel", None)
                title = "Arguments" if isinstance(param, TyperArgument) else panel or "Options"
                sections.setdefault(title, []).append(record)
        for title, rows in sections.items():
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        if isinstance(self, TyperGroup):
            self.format_commands(ctx, formatter)

    def get_short_help_str(self, limit: int = 45) -> str:
        """The first paragraph of the help, whole (click would cut it at ``limit`` characters)."""
        help_text = getattr(self, "short_help", None) or getattr(self, "help", None) or ""
        return " ".join(inspect.cleandoc(help_text).split("\n\n")[0].split())


class Command(_PlainParams, TyperCommand):
    """A subcommand with plain flags and usage line."""


class Group(_PlainParams, TyperGroup):
    """The top-level command with plain flags and usage line."""
