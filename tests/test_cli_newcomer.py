"""What a new user meets (issue 35): a warning on a model whose training stopped early or was still
improving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from esdiff.checkpoints import CheckpointInfo, read_info, save_checkpoint, training_concern
from esdiff.config import ModelConfig, TrainConfig
from esdiff.io import write_image


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
    args = ["inpaint", "photo.png", "--mask", "random:0.3", "--steps", "1", "--threads", "1", "-q"]
    result = main_here(*args, "--model", str(early), cwd=tmp_path)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "step 488 of the 3,000 planned" in warnings[0], err
    result = main_here(*args, "--model", str(tiny_model), "--overwrite", cwd=tmp_path)  # no plan: silent
    assert result.returncode == 0 and "warning" not in result.stderr.decode()
