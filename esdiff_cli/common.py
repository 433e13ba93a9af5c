"""What every subcommand shares: the stderr console, error mapping, device choice, progress bars."""

from __future__ import annotations

import contextlib
import enum
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    GetTimeCallable,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

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


def warn_if_undertrained(model: Path | None) -> None:
    """One warning line when a model the user chose stopped training well before its planned steps or was
    still improving (``esdiff.checkpoints.training_concern``); an unreadable file is left to the loader."""
    if model is None:
        return
    from esdiff.checkpoints import read_info, training_concern

    try:
        concern = training_concern(read_info(model))
    except EsdiffError:
        return
    if concern:
        warn(concern)


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


PLAIN_INTERVAL = 30.0
"""Most seconds between two plain progress lines of a task (there is also one every tenth of its work)."""


class Bars(Progress):
    """rich's Progress whose tasks carry a ``unit`` (what the count counts: steps, patches, jobs, images),
    an ``info`` text and a ``base``: the count the task started from (a resumed run's earlier steps), which
    the ETA leaves out of the rate."""

    def add_task(
        self,
        description: str,
        start: bool = True,
        total: float | None = 100.0,
        completed: int = 0,
        visible: bool = True,
        **fields: Any,
    ) -> TaskID:
        fields = {"unit": "", "info": "", "base": completed, **fields}
        return super().add_task(description, start, total, completed, visible, **fields)


class PlainLines(Bars):
    """Progress for a stderr that is not a terminal (a log file, ``nohup``, a pipe): no bar, but one line
    per task at its first update, whenever another tenth of its work is done or ``interval`` seconds have
    passed, and at its end, e.g. ``photo: 12/25 steps (48%), 0:00:31 elapsed, ETA 0:00:34``."""

    def __init__(
        self, console: Console, interval: float = PLAIN_INTERVAL, get_time: GetTimeCallable | None = None
    ) -> None:
        super().__init__(console=console, get_time=get_time, disable=True)
        self.interval = interval
        self._shown: dict[TaskID, tuple[float, float]] = {}
        """Each task's last line: when, and the count it showed."""

    def update(self, task_id: TaskID, **changes: Any) -> None:
        super().update(task_id, **changes)
        self._show(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._show(task_id)

    def stop(self) -> None:
        """Show where each task stopped, if its last line does not (an interrupted run)."""
        for task_id in list(self._shown):
            self._show(task_id, last=True)
        super().stop()

    def _show(self, task_id: TaskID, last: bool = False) -> None:
        task = self._tasks[task_id]
        if not task.total or task.completed <= task.fields["base"]:
            return
        now = self.get_time()
        when, shown = self._shown.get(task_id, (now, -1.0))
        if task.completed <= shown:
            return
        tenths = int(10 * task.completed / task.total) > int(10 * shown / task.total)
        if shown < 0 or last or tenths or task.finished or now - when >= self.interval:
            self._shown[task_id] = (now, task.completed)
            self.console.print(plain_line(task), markup=False, highlight=False, soft_wrap=True)


def plain_line(task: Task) -> str:
    """``photo: 12/25 steps (48%), 0:00:31 elapsed, ETA 0:00:34`` and the task's info, if any."""
    assert task.total
    unit = f" {task.fields['unit']}" if task.fields["unit"] else ""
    parts = [
        f"{task.description}: {int(task.completed)}/{int(task.total)}{unit} "
        f"({100 * task.completed / task.total:.0f}%)",
        f"{clock(task.elapsed or 0.0)} elapsed",
    ]
    eta = eta_seconds(task)
    if eta is not None and not task.finished:
        parts.append(f"ETA {clock(eta)}")
    info = task.fields["info"]
    return ", ".join(parts) + (f", {info}" if info else "")


def eta_seconds(task: Task) -> float | None:
    """Seconds left at the mean rate so far (time since the task began over the work done since), so it
    means something from the first update on; None before any work."""
    done = task.completed - task.fields.get("base", 0)
    if not task.total or done <= 0 or task.elapsed is None:
        return None
    return task.elapsed * max(task.total - task.completed, 0) / done


def clock(seconds: float) -> str:
    """``H:MM:SS``."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class EtaColumn(ProgressColumn):
    """The bar's ETA, as the plain lines compute it (:func:`eta_seconds`)."""

    def render(self, task: Task) -> Text:
        eta = eta_seconds(task)
        return Text("-:--:--" if eta is None else clock(eta), style="progress.remaining")


def make_progress(quiet: bool = False) -> Bars:
    """Progress bars on a terminal; plain lines (:class:`PlainLines`) where stderr is not one; nothing
    with ``quiet``."""
    if not quiet and not console.is_terminal:
        return PlainLines(console)
    return Bars(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        EtaColumn(),
        console=console,
        disable=quiet,
        transient=False,
    )


def progress_callback(
    progress: Progress, description: str, total: int | None, done: int = 0
) -> Callable[..., None]:
    """A library callback ``(done, total, unit=..., **info)`` that advances one new task of ``progress``
    (``total`` None: unknown until the first call; ``done``: where it starts, e.g. a resumed run's step).
    A list in ``info`` shows its range and ``*seconds`` figures are left to the bar's clocks, so a batch's
    figures stay on one line."""
    task = progress.add_task(description, total=total, completed=done)

    def update(done: float, total: int, unit: str = "", **info: object) -> None:
        text = "  ".join(f"{k} {_brief(v)}" for k, v in info.items() if not k.endswith("seconds"))
        progress.update(task, completed=done, total=total, unit=unit, info=text)

    return update


def _brief(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple) and value and all(isinstance(v, int | float) for v in value):
        lo, hi = min(value), max(value)
        return _brief(lo) if lo == hi else f"{_brief(lo)}-{_brief(hi)}"
    return str(value)
