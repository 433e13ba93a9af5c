"""CPU thread settings: how many torch threads a command uses, and that idle threads sleep.

Two jobs on a small machine used to slow each other 13-17x: every job started one OpenMP thread per core,
and threads waiting for work spun instead of sleeping, so each job's spinners stole the cores the other
job's workers needed. Two settings fix that (measured in ``benchmarks/parallel_jobs.py``):

- passive waiting (``OMP_WAIT_POLICY=PASSIVE``), which OpenMP reads once, when torch is first imported;
- half the usable cores per job by default, so two jobs at once fit the machine.
"""

from __future__ import annotations

import os

WAIT_POLICY = "OMP_WAIT_POLICY"


def passive_waiting(environ: dict[str, str] | os._Environ[str] = os.environ) -> None:
    """Make idle OpenMP threads sleep, unless the user chose a wait policy (call before importing torch)."""
    if WAIT_POLICY not in environ:
        environ[WAIT_POLICY] = "PASSIVE"


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def default_threads(environ: dict[str, str] | os._Environ[str] = os.environ) -> int:
    """``OMP_NUM_THREADS`` if set (torchrun sets 1), else half the usable cores, at least 1, at most 8."""
    text = environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    return max(1, min(8, usable_cpus() // 2))


def set_threads(threads: int | None) -> int:
    """Use ``threads`` torch threads (``None``: the default); returns the number set."""
    import torch

    count = threads if threads is not None else default_threads()
    torch.set_num_threads(count)
    return count


THREADS_HELP = "CPU threads for this job (default: $OMP_NUM_THREADS, else half the cores, at most 8)."
