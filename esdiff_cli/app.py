"""The `esdiff` Typer app: registers one command per module and maps errors to exit codes."""

from __future__ import annotations

import os
import sys

import typer
from typer.exceptions import TyperException

from esdiff_cli import ablate, evaluate, inpaint, mask, mpt, train
from esdiff_cli.common import print_error

app = typer.Typer(
    name="esdiff",
    help="Few-shot colour-image inpainting with an encoding-strategy diffusion model (ESDiff).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("mpt")(mpt.command)
app.command("mask")(mask.command)
app.command("train")(train.command)
app.command("inpaint")(inpaint.command)
app.command("evaluate")(evaluate.command)
app.command("ablate")(ablate.command)


def main() -> None:
    """Entry point: usage errors become one line on stderr (exit 2), like every other error."""
    try:
        code = app(standalone_mode=False)
    except TyperException as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            print(ctx.get_help())
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
