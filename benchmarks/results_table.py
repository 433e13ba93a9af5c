"""Tables that benchmarks save for ``docs/results.md``: one JSON file per table under ``docs/results/``.

A benchmark calls ``save_table`` with its rows; the file carries the command that made it, the commit,
the model, the machine and the date, so ``render_results.py`` can stamp each table in ``docs/results.md``
and a stale table shows itself. The schema (``FORMAT`` 1)::

    {"format": 1, "name": str, "title": str, "command": str, "commit": str, "dirty": bool,
     "model": str, "machine": str, "date": str, "columns": [str], "rows": [[str | float | int | None]],
     "digits": int, "notes": str}
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

FORMAT = 1
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results"
Cell = str | float | int | None


def git_commit() -> tuple[str, bool]:
    """The short hash of HEAD and whether the work tree has uncommitted changes (``("unknown", False)``
    outside a git checkout)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False
    return head, bool(status.strip())


def model_label(path: str | Path | None) -> str:
    """``builtin`` or the checkpoint's file name, with the first 12 hex digits of its SHA-256."""
    file = Path(path) if path else ROOT / "esdiff" / "weights" / "builtin.safetensors"
    name = "builtin" if path is None else file.name
    try:
        digest = hashlib.sha256(file.read_bytes()).hexdigest()[:12]
    except OSError:
        return name
    return f"{name} ({digest})"


def machine_label(load: str = "idle") -> str:
    """The CPU (or GPU) this ran on, its core count, and what else the machine was doing (``load``)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()}-core {cpu}; {load}"


def save_table(
    name: str,
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    model: str | Path | None = None,
    load: str = "idle",
    digits: int = 2,
    notes: str = "",
    command: str | None = None,
    directory: Path = RESULTS,
) -> Path:
    """Write ``directory/name.json`` (schema in the module docstring) and return its path. ``command``
    defaults to this process's own command line; ``load`` says what else the machine was doing."""
    if any(len(row) != len(columns) for row in rows):
        raise ValueError(f"every row of {name!r} needs {len(columns)} cells")
    commit, dirty = git_commit()
    data = {
        "format": FORMAT,
        "name": name,
        "title": title,
        "command": command or " ".join(shlex.quote(a) for a in ["python", *sys.argv]),
        "commit": commit,
        "dirty": dirty,
        "model": model_label(model) if model is None or isinstance(model, Path) else model,
        "machine": machine_label(load),
        "date": datetime.date.today().isoformat(),
        "columns": list(columns),
        "rows": [list(row) for row in rows],
        "digits": digits,
        "notes": notes,
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)
    return path
