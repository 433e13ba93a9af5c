"""The `esdiff` Typer app: registers one command per module and maps errors to exit codes."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from typer.exceptions import TyperException

from esdiff_cli import ablate, evaluate, inpaint, mask, mpt, train
from esdiff_cli.common import print_error
from esdiff_cli.threads import passive_waiting
from esdiff_cli.usage import Command, Group

app = typer.Typer(
    name="esdiff",
    help="Few-shot colour-image inpainting with an encoding-strategy diffusion model (ESDiff).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help, wrapped to the terminal: see esdiff_cli.usage
    cls=Group,
)
app.command("mpt", cls=Command)(mpt.command)
app.command("mask", cls=Command)(mask.command)
app.command("train", cls=Command)(train.command)
app.command("inpaint", cls=Command)(inpaint.command)
app.command("evaluate", cls=Command)(evaluate.command)
app.command("ablate", cls=Command)(ablate.command)


def show_version(value: bool) -> None:
    if value:
        from esdiff import __version__

        print(f"esdiff {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Few-shot colour-image inpainting with an encoding-strategy diffusion model (ESDiff)."""


def main() -> None:
    """Entry point: usage errors become one line on stderr (exit 2), like every other error."""
    passive_waiting()  # before anything imports torch: OpenMP reads it once, when it loads
    try:
        code = app(standalone_mode=False)
    except TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            message = exc.format_message()  # rich has already printed the help; plain click returns it
            if message.strip():
                print(message)
            sys.exit(0)
        print_error(exc.format_message())
        sys.exit(exc.exit_code)
    except typer.Abort:
        print_error("interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug, not bad input: still one line, the traceback on request
        if os.environ.get("ESDIFF_DEBUG"):
            raise
        print_error(f"internal error: {type(exc).__name__}: {exc} (set ESDIFF_DEBUG=1 for the traceback)")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
