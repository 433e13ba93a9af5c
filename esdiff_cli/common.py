"""What every subcommand shares: the stderr console, error mapping, device choice, progress bars."""

from __future__ import annotations

import contextlib
import enum
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

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

console = Console(stderr=True, highlight=False)
"""All messages go to stderr, so stdout stays free for data (`-o -`, `--json`)."""


class Device(str, enum.Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


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


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn user-facing errors into one line and a non-zero exit; show library warnings as one line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except EsdiffError as exc:
            raise fail(str(exc)) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        finally:
            for w in caught:
                if issubclass(w.category, UserWarning):
                    warn(str(w.message))


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
    None: unknown until the first call)."""
    task = progress.add_task(description, total=total, info="")

    def update(done: int, total: int, **info: object) -> None:
        text = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items())
        progress.update(task, completed=done, total=total, info=text)

    return update
