"""A training run's surroundings: its folder, metrics log, resume checks, stop signals and torchrun group.

Kept apart from ``training.py`` so the maths there stays short; nothing here knows about the network.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from torch import Tensor

from esdiff.checkpoints import CHECKPOINT_NAME, MODEL_NAME
from esdiff.config import ModelConfig, TrainConfig, to_dict
from esdiff.errors import EsdiffError
from esdiff.io import atomic_write_bytes

CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"
RESUMABLE_FIELDS = ("steps", "decay", "checkpoint_every", "val_every")
"""TrainConfig fields that ``--resume`` may change; every other setting must match the saved run."""


def prepare_run_dir(run_dir: str | os.PathLike[str], resume: bool) -> Path:
    """Create (or check) the run folder; any problem is an EsdiffError and leaves nothing behind."""
    run_dir = Path(run_dir)
    checkpoint = run_dir / CHECKPOINT_NAME
    if resume:
        if not checkpoint.is_file():
            raise EsdiffError(f"--resume: {run_dir} holds no {CHECKPOINT_NAME} to continue from")
        return run_dir
    if checkpoint.exists():
        raise EsdiffError(
            f"{run_dir} already holds a training run: continue it with --resume, or use another -o"
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise EsdiffError(f"-o {run_dir}: exists and is not a folder")
    created = [p for p in [run_dir, *run_dir.parents] if not p.exists()]
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        for folder in created:
            if folder.is_dir():
                folder.rmdir()
        raise EsdiffError(f"-o {run_dir}: cannot write there ({exc.strerror or exc})") from None
    return run_dir


def write_run_config(run_dir: Path, **fields: Any) -> None:
    """``config.json``: the resolved settings of the run (rewritten on resume)."""
    text = json.dumps(fields, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(run_dir / CONFIG_NAME, text.encode())


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The run's ``config.json`` (empty when it is missing or unreadable)."""
    try:
        fields = json.loads((run_dir / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return fields if isinstance(fields, dict) else {}


def check_resume_data(run_dir: Path, data: str | os.PathLike[str]) -> None:
    """An EsdiffError if the run in ``run_dir`` recorded another training folder than ``data`` (runs
    that recorded none pass)."""
    recorded = read_run_config(run_dir).get("data")
    asked = str(Path(data).resolve())
    if recorded is not None and recorded != asked:
        raise EsdiffError(
            f"--resume: the run in {run_dir} trained on {recorded}, not {asked}; resume with that folder, "
            "or train into a new -o"
        )


def clean_temp_files(run_dir: Path) -> None:
    """Remove temp files a killed run left behind (never a finished file)."""
    for name in (CHECKPOINT_NAME, MODEL_NAME, CONFIG_NAME, METRICS_NAME):
        for tmp in run_dir.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def resume_conflicts(
    saved_model: ModelConfig, model: ModelConfig, saved_train: TrainConfig | None, train: TrainConfig
) -> list[str]:
    """Human-readable differences between a saved run and the settings asked for its continuation."""
    conflicts = _diff(to_dict(saved_model), to_dict(model), "")
    if saved_train is not None:
        same = dataclasses.replace(saved_train, **{f: getattr(train, f) for f in RESUMABLE_FIELDS})
        conflicts += _diff(to_dict(same), to_dict(train), "")
    return conflicts


def _diff(saved: dict[str, Any], asked: dict[str, Any], prefix: str) -> list[str]:
    out = []
    for key, value in saved.items():
        if isinstance(value, dict):
            out += _diff(value, asked.get(key, {}), f"{prefix}{key}.")
        elif value != asked.get(key):
            out.append(f"{prefix}{key} is {value} in the run, {asked.get(key)} asked")
    return out


class MetricsLog:
    """``metrics.jsonl``, one JSON line per step, flushed as written.

    Opening it for a run at ``start`` drops lines of later steps (they are re-run after a resume) and any
    line a kill cut short.
    """

    def __init__(self, path: Path, start: int) -> None:
        self.path = path
        kept: list[str] = []
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    if json.loads(line)["step"] <= start:
                        kept.append(line + "\n")
                except (ValueError, KeyError, TypeError):
                    continue
        atomic_write_bytes(path, "".join(kept).encode())
        self._file = open(path, "a")  # noqa: SIM115 - kept open for the whole run

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class StopSignals:
    """First SIGINT/SIGTERM sets ``requested`` and ``signal`` (which one); a second raises
    KeyboardInterrupt. Main thread only."""

    def __init__(self) -> None:
        self.requested = False
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.signal = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


@dataclass
class ProcessGroup:
    """This process's place under torchrun (``WORLD_SIZE > 1``: DDP over NCCL or gloo); else one process."""

    rank: int = 0
    world: int = 1
    owned: bool = False

    @classmethod
    def setup(cls, device: torch.device) -> tuple[ProcessGroup, torch.device]:
        """Join the group torchrun describes in the environment; CUDA ranks take ``cuda:LOCAL_RANK``."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls(), device
        import torch.distributed as td

        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        owned = not td.is_initialized()
        if owned:
            td.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(td.get_rank(), td.get_world_size(), owned), device

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.owned:
            torch.distributed.destroy_process_group()

    def mean_and_any(self, value: float, flag: bool, device: torch.device) -> tuple[float, bool]:
        """Mean of ``value`` over processes, and whether ``flag`` is set in any (one all-reduce)."""
        if self.world == 1:
            return value, flag
        t = torch.tensor([value, float(flag)], device=device, dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return float(t[0]) / self.world, bool(t[1] > 0)

    def gather(self, state: Tensor, device: torch.device) -> Tensor:
        """Every process's ``state`` stacked ``[world, ...]`` in rank order (on the CPU)."""
        if self.world == 1:
            return state[None]
        local = state.to(device)
        parts = [torch.empty_like(local) for _ in range(self.world)]
        torch.distributed.all_gather(parts, local)
        return torch.stack([p.cpu() for p in parts])
