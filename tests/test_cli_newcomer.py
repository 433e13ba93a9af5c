"""What a new user meets (issue 35): progress lines in a log file, help that fits 80 columns, a warning on
a model whose training stopped early or was still improving, the evaluate table's legend."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console
from typer.main import get_command
from typer.testing import CliRunner

from esdiff.checkpoints import CheckpointInfo, read_info, save_checkpoint, training_concern
from esdiff.config import ModelConfig, TrainConfig
from esdiff.io import write_image
from esdiff_cli.app import app
from esdiff_cli.common import PlainLines, clock, eta_seconds, progress_callback

runner = CliRunner()
COMMANDS = sorted(get_command(app).commands)  # type: ignore[attr-defined]
ETA = re.compile(r"^(\w+): (\d+)/(\d+) steps \(\d+%\), \d+:\d\d:\d\d elapsed, ETA \d+:\d\d:\d\d$")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def plain(interval: float = 30.0) -> tuple[PlainLines, io.StringIO, Clock]:
    out, clock_ = io.StringIO(), Clock()
    return PlainLines(Console(file=out, width=40), interval, get_time=clock_), out, clock_


def test_plain_lines_at_the_first_update_every_tenth_and_the_end() -> None:
    progress, out, now = plain()
    update = progress_callback(progress, "photo", None)
    for step in range(1, 26):
        now.now = 2.0 * step
        update(step, 25, unit="steps")
    progress.stop()
    lines = out.getvalue().splitlines()
    shown = [int(line.split()[1].split("/")[0]) for line in lines]
    assert shown == [1, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25]  # first, each new tenth, the end
    assert lines[0] == "photo: 1/25 steps (4%), 0:00:02 elapsed, ETA 0:00:48"  # from the first update
    assert lines[-1] == "photo: 25/25 steps (100%), 0:00:50 elapsed"
    assert all(len(line) > 40 for line in lines)  # one line each, never wrapped at the console's width


def test_plain_lines_every_interval_when_tenths_are_slow_and_where_a_run_stopped() -> None:
    progress, out, now = plain(interval=30.0)
    update = progress_callback(progress, "train", 1000, done=400)  # a resumed run: 400 steps before
    for step in range(401, 431):
        now.now = 5.0 * (step - 400)
        update(step, 1000, unit="steps", loss=0.5)
    progress.stop()  # stopped at step 430: the last line says so
    shown = [int(line.split()[1].split("/")[0]) for line in out.getvalue().splitlines()]
    assert shown == [401, 407, 413, 419, 425, 430]
    assert out.getvalue().splitlines()[0] == (
        "train: 401/1000 steps (40%), 0:00:05 elapsed, ETA 0:49:55, loss 0.5"  # the rate of this run alone
    )


def test_eta_and_clock() -> None:
    progress, _, now = plain()
    task = progress.add_task("x", total=10)
    assert eta_seconds(progress.tasks[0]) is None  # no work yet
    now.now = 30.0
    progress.update(task, completed=3)
    assert eta_seconds(progress.tasks[0]) == pytest.approx(70.0)
    assert clock(3725.4) == "1:02:05" and clock(0.4) == "0:00:00"


def test_inpaint_writes_progress_lines_with_an_eta_to_a_log_file(
    tmp_path: Path, astronaut: np.ndarray
) -> None:
    """stderr in a file (nohup, a batch job): plain lines, at least two with an ETA, none wrapped."""
    write_image(tmp_path / "photo.png", astronaut[:64, :96])
    log = tmp_path / "log.txt"
    args = ["inpaint", "photo.png", "--mask", "random:0.5", "--set", "steps=3", "--threads", "1"]
    with open(log, "wb") as err:
        done = subprocess.run(
            [sys.executable, "-c", "from esdiff_cli.app import main; main()", *args],
            cwd=tmp_path,
            stderr=err,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "40"},
            timeout=300,
        )
    text = log.read_text()
    assert done.returncode == 0, text
    with_eta = [m for line in text.splitlines() if (m := ETA.match(line))]
    assert len(with_eta) >= 2, text
    assert {m[1] for m in with_eta} == {"photo"} and all(m[3] == "3" for m in with_eta)
    assert re.search(r"^photo: 3/3 steps \(100%\)", text, re.M), text
    assert "\x1b" not in text and "━" not in text  # no escape codes, no bar


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_fits_80_columns_without_cutting_anything(command: str) -> None:
    """Every subcommand, whatever options it grows: no ellipsis, no line over 80 columns."""
    result = runner.invoke(app, [*command.split(), "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output, result.output
    too_long = [line for line in result.output.splitlines() if len(line) > 80]
    assert not too_long, too_long
    assert "Usage: esdiff" in result.output


def test_top_level_help_shows_each_command_summary_whole() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "80"})
    flat = " ".join(result.output.split())
    for name, command in get_command(app).commands.items():  # type: ignore[attr-defined]
        first = " ".join(command.help.split("\n\n")[0].split())
        assert f"{name} {first}" in flat, (name, first)


def info_of(step: int, planned: int | None, validation: Any = ()) -> CheckpointInfo:
    train = TrainConfig(steps=planned) if planned else None
    return CheckpointInfo(Path("run/model.safetensors"), ModelConfig(), train, step, False, validation)


def test_training_concern_names_an_early_stop_and_a_rising_validation() -> None:
    early = training_concern(info_of(488, 3000))
    assert early is not None and "step 488 of the 3,000 planned (16%)" in early
    assert training_concern(info_of(1500, 3000)) is None  # half the plan: no warning
    rising = [(250, {10: 35.0, 25: 30.0}), (500, {10: 35.5, 25: 30.5})]
    flat = [(250, {10: 35.0, 25: 30.0}), (500, {10: 35.05, 25: 29.98})]
    concern = training_concern(info_of(500, 500, rising))
    assert concern is not None and "still rising at step 500 (32.50 -> 33.00 dB" in concern
    assert training_concern(info_of(500, 500, flat)) is None
    both = training_concern(info_of(500, 3000, rising))
    assert both is not None and "planned" in both and "rising" in both and both.count("\n") == 0
    assert training_concern(info_of(10, None)) is None  # old files, no plan recorded: silent


def test_validation_history_survives_save_and_load(tmp_path: Path, tiny_model: Path) -> None:
    from esdiff.checkpoints import load_model

    net, keep, cfg = load_model(tiny_model)
    history = ((2, {10: 30.0, 25: 25.5}), (4, {10: 31.0, 25: 26.0}))
    path = save_checkpoint(
        tmp_path / "m.safetensors",
        ema=net.state_dict(),
        keep=keep,
        model_config=cfg,
        step=4,
        train_config=TrainConfig(steps=10),
        validation=history,
    )
    assert read_info(path).validation == history
    assert read_info(tiny_model).validation == ()  # files without it read as before


def test_inpaint_warns_once_on_a_model_stopped_early(
    tmp_path: Path, tiny_model: Path, astronaut: np.ndarray, main_here: Any
) -> None:
    from esdiff.checkpoints import load_model

    net, keep, cfg = load_model(tiny_model)
    early = save_checkpoint(
        tmp_path / "early.safetensors",
        ema=net.state_dict(),
        keep=keep,
        model_config=cfg,
        step=488,
        train_config=TrainConfig(steps=3000),
    )
    write_image(tmp_path / "photo.png", astronaut[:64, :64])
    args = ["inpaint", "photo.png", "--mask", "random:0.3", "--set", "steps=1", "--threads", "1", "-q"]
    result = main_here(*args, "--model", str(early), cwd=tmp_path)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "step 488 of the 3,000 planned" in warnings[0], err
    result = main_here(*args, "--model", str(tiny_model), "--overwrite", cwd=tmp_path)  # no plan: silent
    assert result.returncode == 0 and "warning" not in result.stderr.decode()


def test_evaluate_legend_explains_every_column() -> None:
    from esdiff_cli.evaluate import legend

    lines = legend(["esdiff", "esdiff-oracle-image", "esdiff-oracle-patch", "aloha", "observation"])
    text = "\n".join(lines)
    assert "observation: the masked input itself" in text and "floor" in text
    assert "*-oracle-image: the best iterate per image" in text and "*-oracle-patch: the best" in text
    assert "PSNR (dB) / SSIM" in text and "mean over the images" in text
    assert "variants (esdiff ablate --list)" in "\n".join(legend(["esdiff", "no-lowrank"], "variants"))
    assert not any("observation" in line for line in legend(["esdiff", "no-lowrank"], "variants"))
