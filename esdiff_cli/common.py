"""What every subcommand shares: the stderr console, error mapping, device choice, progress bars."""

from __future__ import annotations

import contextlib
import enum
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from esdiff.errors import EsdiffError

if TYPE_CHECKING:
    import torch

    from esdiff.prior import Runtime

MAX_SEED = 2**32 - 1
"""Seeds are 0 .. 2^32 - 1 (the sampler derives per-patch seeds from them, which must stay in 64 bits)."""

MAX_PIXELS = 40_000_000
"""``esdiff.io.MAX_PIXELS``, repeated here (a test checks) so that ``--help`` needs no numpy."""

MASK_SPECS = (
    "random:P, block:SIZE:P, box:X,Y,W,H, text1, text2, caption[:SIZE], strokes:thin|medium|thick,"
    " scratches:thin|thick"
)
"""The mask generators, for help texts (a test checks that every generator in esdiff.masks is listed)."""

console = Console(stderr=True, highlight=False)
"""All messages go to stderr, so stdout stays free for data (`-o -`, `--json`)."""


class Device(str, enum.Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


BF16 = Annotated[
    bool,
    typer.Option(
        "--bf16", help="Run the samplers' network in bfloat16 (faster on a GPU, a little rounding)."
    ),
]
COMPILE = Annotated[
    bool,
    typer.Option("--compile", help="torch.compile the samplers' network (pays off on big jobs and GPUs)."),
]
"""The network runtime options of `inpaint` and `evaluate` (``esdiff.prior.Runtime``)."""


def runtime_of(bf16: bool, compile_net: bool) -> Runtime | None:
    """The ``Runtime`` that ``--bf16`` / ``--compile`` ask for; None when neither is given."""
    from esdiff.prior import Runtime

    return Runtime(bf16=bf16, compile=compile_net) if bf16 or compile_net else None


def print_error(message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)


def warn(message: str) -> None:
    console.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)


def info(message: str) -> None:
    console.print(escape(message), soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one error line and return the exit to raise."""
    print_error(message)
    return typer.Exit(code)


def _show_warning(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
    if issubclass(category, UserWarning):
        warn(str(message))


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn user-facing errors into one line and a non-zero exit; show library warnings as one line each,
    when they happen (so "alpha channel dropped" comes before "wrote ...")."""
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _show_warning
        try:
            yield
        except EsdiffError as exc:
            raise fail(str(exc)) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None


def check_writable(folder: Path) -> None:
    """An EsdiffError unless files can be created in ``folder`` (or, if it does not exist yet, in the
    nearest folder above it that does): found before any compute, not after it."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise EsdiffError(f"{folder}: cannot write there ({existing} is not a folder)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".esdiff-write-test-", dir=existing)
    except OSError as exc:
        raise EsdiffError(f"{folder}: cannot write there ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def resolve_device(device: Device) -> torch.device:
    """``auto`` takes CUDA when present; asking for CUDA without it is an error."""
    import torch

    if device == Device.auto:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == Device.cuda and not torch.cuda.is_available():
        raise EsdiffError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    return torch.device(device.value)


def make_progress(quiet: bool = False) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=False,
    )


def progress_callback(progress: Progress, description: str, total: int | None) -> Callable[..., None]:
    """A library callback ``(done, total, **info)`` that advances one bar of ``progress`` (``total``
    None: unknown until the first call). ``unit`` (``patches``) follows the count; a list shows its range
    and ``*seconds`` figures are left to the bar's clocks, so a batch's figures stay on one line."""
    task = progress.add_task(description, total=total, info="")

    def update(done: float, total: int, unit: str = "", **info: object) -> None:
        text = "  ".join(
            [unit] * bool(unit) + [f"{k} {_brief(v)}" for k, v in info.items() if not k.endswith("seconds")]
        )
        progress.update(task, completed=done, total=total, info=text)

    return update


def _brief(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple) and value and all(isinstance(v, int | float) for v in value):
        lo, hi = min(value), max(value)
        return _brief(lo) if lo == hi else f"{_brief(lo)}-{_brief(hi)}"
    return str(value)
