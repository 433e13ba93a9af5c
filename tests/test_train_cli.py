"""`esdiff train` end to end: dry run, resume, bad inputs, kill -9, Ctrl-C, torchrun, a 300-step run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner, Result

from esdiff.checkpoints import load_model, load_training_state, read_info
from esdiff.io import write_image
from esdiff.training import new_model
from esdiff_cli.app import app

runner = CliRunner()
MAIN = "from esdiff_cli.app import main; main()"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
"""Subprocesses on one thread: tiny networks are fastest so, and the machine is shared."""


pytestmark = pytest.mark.usefixtures("one_thread")


def make_folder(path: Path, size: tuple[int, int] = (64, 72), count: int = 2) -> Path:
    """Crops of scikit-image photos (astronaut, coffee, chelsea) as PNGs."""
    from skimage import data

    path.mkdir(parents=True, exist_ok=True)
    h, w = size
    photos = {"astronaut": data.astronaut(), "coffee": data.coffee(), "chelsea": data.chelsea()}
    for name in list(photos)[:count]:
        write_image(path / f"{name}.png", (photos[name][:h, :w] / 255.0).astype(np.float32))
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "images")


def train(*args: object) -> Result:
    return runner.invoke(app, ["train", *map(str, args)])


def one_line_error(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code != 0
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def metric_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_dry_run_prints_resolved_settings_and_writes_nothing(folder: Path, tmp_path: Path) -> None:
    result = train(
        folder, "-o", tmp_path / "run", "--preset", "tiny", "--steps", "5", "--no-mpt", "--dry-run"
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["preset"] == "tiny" and report["images"] == 2 and report["parameters"] > 0
    assert report["model"]["network"]["channels"] == 3 and report["model"]["mpt"]["enabled"] is False
    assert report["train"]["steps"] == 5 and report["train"]["warmup"] == 1  # min(5000, steps // 10)
    assert not (tmp_path / "run").exists()


def test_mid_preset_through_python_dash_m(folder: Path, tmp_path: Path) -> None:
    """`python -m esdiff_cli` is the command without the installed script (GPU machines, containers)."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "esdiff_cli",
            "train",
            str(folder),
            "-o",
            str(tmp_path / "run"),
            "--preset",
            "mid",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["preset"] == "mid" and report["model"]["network"]["nf"] == 48
    assert 4.0e6 < report["parameters"] < 4.7e6


def test_train_resume_and_conflicts(folder: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = train(folder, "-o", run, "--preset", "tiny", "--steps", "2", "--checkpoint-every", "1", "-q")
    assert result.exit_code == 0, result.stderr
    assert read_info(run / "checkpoint.safetensors").step == 2 and metric_steps(run) == [1, 2]
    assert {p.name for p in run.iterdir()} == {
        "model.safetensors",
        "checkpoint.safetensors",
        "config.json",
        "metrics.jsonl",
        "curves.png",
    }
    final = run / "model.safetensors"  # the EMA weights alone, printed with the command that uses them
    assert f"esdiff inpaint IMG --mask M --model {final}" in result.stderr
    info = read_info(final)
    assert info.step == 2 and not info.has_training_state
    net, _, _ = load_model(final)
    assert all(
        torch.equal(v, load_training_state(run / "checkpoint.safetensors").ema[k])
        for k, v in net.state_dict().items()
    )

    result = train(folder, "-o", run, "--resume", "--steps", "3", "-q")  # the rest comes from the run
    assert result.exit_code == 0, result.stderr
    assert read_info(run / "checkpoint.safetensors").step == 3 and metric_steps(run) == [1, 2, 3]

    assert "--preset base conflicts" in one_line_error(
        train(folder, "-o", run, "--resume", "--preset", "base")
    )
    assert "lr is 0.0002 in the run" in one_line_error(train(folder, "-o", run, "--resume", "--lr", "1e-3"))
    cooled = train(folder, "-o", run, "--resume", "--steps", "4", "--decay", "2", "-q")
    assert cooled.exit_code == 0, cooled.stderr
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 4 and last["lr"] == pytest.approx(2e-4 / 2)
    assert "already holds a training run" in one_line_error(train(folder, "-o", run, "--preset", "tiny"))
    assert read_info(run / "checkpoint.safetensors").step == 4


def test_bad_inputs_give_one_line_and_write_nothing(folder: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    unreadable = tmp_path / "unreadable"
    unreadable.mkdir()
    (unreadable / "a.png").write_bytes(b"\x89PNG but not really")
    small = make_folder(tmp_path / "small", size=(48, 80))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    run = tmp_path / "run"
    cases = [
        ([empty, "-o", run], "no images found"),
        ([unreadable, "-o", run], "could be read"),
        ([small, "-o", run], "smaller than the 64x64"),
        ([tmp_path / "absent", "-o", run], "no such folder"),
        ([folder, "-o", blocker / "run"], "cannot write there"),
        ([folder, "-o", run, "--resume"], "holds no checkpoint.safetensors"),
    ]
    for args, message in cases:
        assert message in one_line_error(train(*args, "--preset", "tiny", "--steps", "1")), args
        assert not run.exists() and not (blocker / "run").exists()
    assert "cannot write there" in one_line_error(train(folder, "-o", blocker / "deep" / "run"))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes through permissions")
def test_read_only_output_folder(folder: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert "cannot write there" in one_line_error(train(folder, "-o", locked / "run", "--steps", "1"))
    assert not (locked / "run").exists()


def start(folder: Path, run: Path, *extra: str) -> subprocess.Popen[bytes]:
    args = ["train", str(folder), "-o", str(run), "--preset", "tiny", "--device", "cpu", "-q", *extra]
    cmd = [sys.executable, "-c", MAIN, *args]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(condition: object, proc: subprocess.Popen[bytes], seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if proc.poll() is not None:
            pytest.fail(f"training ended early: {proc.stderr.read().decode() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for training")
        time.sleep(0.02)


def test_kill_9_then_resume_reaches_the_final_step(folder: Path, tmp_path: Path) -> None:
    run, steps_seen = tmp_path / "run", set()
    checkpoint = run / "checkpoint.safetensors"

    def checkpoints_load() -> bool:
        if checkpoint.exists():  # every checkpoint seen on disk must load, whenever we look
            steps_seen.add(read_info(checkpoint).step)
            load_model(checkpoint)
        return len(steps_seen) >= 3

    proc = start(folder, run, "--steps", "25", "--checkpoint-every", "1")
    try:
        wait_for(checkpoints_load, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    step = load_training_state(checkpoint).info.step
    assert step < 25
    result = train(folder, "-o", run, "--resume", "-q")
    assert result.exit_code == 0, result.stderr
    assert read_info(checkpoint).step == 25 and metric_steps(run) == list(range(1, 26))
    load_model(checkpoint)
    assert not [p for p in run.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(("stop", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_saves_then_resume_reaches_the_final_step(
    folder: Path, tmp_path: Path, stop: signal.Signals, status: int
) -> None:
    """Ctrl-C exits 130 and SIGTERM 143 (what shells and job schedulers expect), each after the save."""
    run = tmp_path / "run"
    proc = start(folder, run, "--steps", "500", "--checkpoint-every", "1000")
    try:
        wait_for(lambda: (run / "metrics.jsonl").exists() and len(metric_steps(run)) >= 3, proc)
        proc.send_signal(stop)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == status, err.decode()
    assert not (run / "model.safetensors").exists()  # the final model comes with the last planned step
    lines = [line for line in err.decode().splitlines() if line.strip()]
    assert lines[-1].startswith("stopped at step"), lines  # a clean stop, not an error
    assert lines[:-1] == [
        "2 photos: none held out for validation, so no validation curve (give --val DIR, or 3 or more photos)"
    ]
    step = read_info(run / "checkpoint.safetensors").step
    assert step == metric_steps(run)[-1] >= 3
    result = train(folder, "-o", run, "--resume", "--steps", str(step + 2), "-q")
    assert result.exit_code == 0, result.stderr
    assert read_info(run / "checkpoint.safetensors").step == step + 2
    assert metric_steps(run) == list(range(1, step + 3))


def check_loss_falls_and_checkpoint_loads(run: Path) -> None:
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 300
    assert np.mean(losses[-50:]) < np.mean(losses[:50])
    checkpoint = run / "checkpoint.safetensors"
    model, _, cfg = load_model(checkpoint)
    reference = new_model(cfg, seed=123)
    reference.load_state_dict(load_training_state(checkpoint).ema)
    x, sigma = torch.rand(2, 12, 64, 64), torch.tensor([0.1, 10.0])
    with torch.no_grad():
        assert torch.equal(model(x, sigma), reference.eval()(x, sigma))


@pytest.mark.slow
def test_300_tiny_steps_loss_falls(tmp_path: Path) -> None:
    images = make_folder(tmp_path / "images", size=(128, 128), count=3)
    result = train(images, "-o", tmp_path / "run", "--preset", "tiny", "--steps", "300", "-q")
    assert result.exit_code == 0, result.stderr
    check_loss_falls_and_checkpoint_loads(tmp_path / "run")


@pytest.mark.slow
def test_300_tiny_steps_on_lsun_train10(shared_data: Path, tmp_path: Path) -> None:
    train10 = shared_data / "lsun_bedroom" / "train10"
    if not train10.is_dir():
        pytest.skip("lsun_bedroom/train10 not found")
    result = train(train10, "-o", tmp_path / "run", "--preset", "tiny", "--steps", "300", "-q")
    assert result.exit_code == 0, result.stderr
    check_loss_falls_and_checkpoint_loads(tmp_path / "run")


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(folder: Path, tmp_path: Path) -> None:
    script, run = tmp_path / "esdiff_main.py", tmp_path / "run"
    script.write_text(MAIN + "\n")
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(script),
    ]
    args = ["train", str(folder), "-o", str(run), "--preset", "tiny", "--device", "cpu", "-q"]
    done = subprocess.run([*torchrun, *args, "--steps", "3"], env=ENV, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    state = load_training_state(run / "checkpoint.safetensors")
    assert state.info.step == 3 and state.rng.shape == (2, 5056)
    assert not torch.equal(state.rng[0], state.rng[1])  # each rank draws its own crops
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    assert metric_steps(run) == [1, 2, 3]
    load_model(run / "checkpoint.safetensors")
    done = subprocess.run(
        [*torchrun, *args, "--resume", "--steps", "4"], env=ENV, capture_output=True, timeout=600
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert read_info(run / "checkpoint.safetensors").step == 4


def test_default_warmup_is_the_papers_but_never_longer_than_a_tenth_of_the_run() -> None:
    from esdiff_cli.train import default_warmup

    assert default_warmup(300) == 30 and default_warmup(100_000) == 5000 and default_warmup(3) == 1


def test_recipe_names_and_default_agree_with_the_library() -> None:
    from esdiff.config import DEFAULT_RECIPE, RECIPES
    from esdiff_cli.train import DEFAULT_RECIPE_NAME, Recipe

    assert {r.value for r in Recipe} == set(RECIPES)
    assert DEFAULT_RECIPE_NAME == DEFAULT_RECIPE


def test_recipe_sets_the_parametrisation_and_noise(folder: Path, tmp_path: Path) -> None:
    result = train(folder, "-o", tmp_path / "a", "--preset", "tiny", "--steps", "5", "--dry-run")
    report = json.loads(result.stdout)
    assert report["model"]["precond"]["kind"] == "edm"
    assert report["train"]["noise"] == "log-normal" and report["train"]["noise_space"] == "rgb"
    result = train(
        folder, "-o", tmp_path / "b", "--preset", "tiny", "--steps", "5", "--recipe", "score-sde", "--dry-run"
    )
    report = json.loads(result.stdout)
    assert report["model"]["precond"]["kind"] == "score-sde"
    assert report["train"]["noise"] == "log-uniform" and report["train"]["noise_space"] == "channels"


def test_val_folder_logs_psnr_and_writes_the_curves(folder: Path, tmp_path: Path) -> None:
    result = train(
        folder,
        "-o",
        tmp_path / "run",
        "--preset",
        "tiny",
        "--steps",
        "4",
        "--val",
        folder,
        "--val-every",
        "2",
        "-q",
    )
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "val_psnr" in r] == [2, 4]
    history = read_info(tmp_path / "run" / "model.safetensors").validation  # what the rising check reads
    assert [step for step, _ in history] == [2, 4] and set(history[-1][1]) == {10, 25, 50}
    assert (tmp_path / "run" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    resumed = train(folder, "-o", tmp_path / "run", "--steps", "5", "--recipe", "score-sde", "--resume", "-q")
    assert resumed.exit_code != 0 and "--recipe score-sde conflicts" in resumed.stderr


def test_resume_refuses_another_data_folder(folder: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert train(folder, "-o", run, "--preset", "tiny", "--steps", "1", "-q").exit_code == 0
    assert json.loads((run / "config.json").read_text())["data"] == str(folder.resolve())
    other = make_folder(tmp_path / "other", count=3)
    line = one_line_error(train(other, "-o", run, "--resume", "--steps", "2"))
    assert "--resume" in line and str(folder.resolve()) in line and str(other.resolve()) in line
    assert read_info(run / "checkpoint.safetensors").step == 1
    result = train(folder, "-o", run, "--resume", "--steps", "2", "-q")  # the same folder continues
    assert result.exit_code == 0, result.stderr
    assert read_info(run / "checkpoint.safetensors").step == 2
