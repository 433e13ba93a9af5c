"""Thread settings: idle OpenMP threads sleep, and each job takes half the cores unless told otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from esdiff.io import write_image
from esdiff_cli import threads


def test_passive_waiting_is_the_default_but_a_users_choice_stays() -> None:
    env: dict[str, str] = {}
    threads.passive_waiting(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    threads.passive_waiting(env)
    assert env == {"OMP_WAIT_POLICY": "ACTIVE"}


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 1), (3, 1), (4, 2), (16, 8), (64, 8)])
def test_default_is_half_the_usable_cores(monkeypatch: pytest.MonkeyPatch, cores: int, expected: int) -> None:
    monkeypatch.setattr(threads, "usable_cpus", lambda: cores)
    assert threads.default_threads({}) == expected
    assert threads.default_threads({"OMP_NUM_THREADS": "3"}) == 3  # torchrun and users set it
    assert threads.default_threads({"OMP_NUM_THREADS": "junk"}) == expected


def test_the_entry_point_sets_the_wait_policy_before_torch_loads() -> None:
    """OpenMP reads OMP_WAIT_POLICY once, when torch is imported: main() must set it before that."""
    code = (
        "import os, sys\n"
        "os.environ.pop('OMP_WAIT_POLICY', None)\n"
        "import esdiff_cli.app as cli\n"
        "loaded = 'torch' in sys.modules\n"
        "sys.argv = ['esdiff', '--version']\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "print(loaded, os.environ.get('OMP_WAIT_POLICY'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split()[-2:] == ["False", "PASSIVE"], result.stderr


def run_inpaint(tmp_path: Path, *extra: str, omp: str | None = None) -> dict[str, object]:
    from skimage import data

    write_image(tmp_path / "a.png", (data.astronaut()[:32, :32] / 255.0).astype(np.float32))
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if omp is not None:
        env["OMP_NUM_THREADS"] = omp
    args = ["inpaint", "a.png", "--mask", "random:0.5", "--method", "biharmonic", "--json", "--overwrite"]
    result = subprocess.run(
        [sys.executable, "-c", "from esdiff_cli.app import main; main()", *args, *extra],
        capture_output=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


def test_threads_option_and_default_reach_torch(tmp_path: Path) -> None:
    assert run_inpaint(tmp_path, "--threads", "3")["threads"] == 3
    assert run_inpaint(tmp_path)["threads"] == max(1, min(8, threads.usable_cpus() // 2))
    assert run_inpaint(tmp_path, omp="1")["threads"] == 1
