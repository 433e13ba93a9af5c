"""`esdiff train --init`: a fine-tune starts from the model's weights and keeps its recipe; the automatic
hold-out of validation photos."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner, Result

from esdiff.checkpoints import load_model, read_info, save_checkpoint
from esdiff.config import NETWORK_PRESETS, RECIPES, ModelConfig, PrecondConfig, TrainConfig, to_json
from esdiff.data import CropSampler, holdout_indices
from esdiff.errors import EsdiffError
from esdiff.finetune import FINETUNE_LR, FINETUNE_STEPS, finetune_config
from esdiff.io import read_image, write_image
from esdiff.nn import build_score_model
from esdiff.prior import BUILTIN_MODEL, Prior
from esdiff.sampler import Encoding
from esdiff.training import train as train_library
from esdiff.transforms import virtual_mask
from esdiff.validation import ValidationSet
from esdiff_cli.app import app

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")

COLOURS = [(0.9, 0.1, 0.1), (0.1, 0.8, 0.2), (0.2, 0.3, 0.9), (0.7, 0.7, 0.1), (0.5, 0.1, 0.6)]


def train(*args: object) -> Result:
    return runner.invoke(app, ["train", *map(str, args)])


def one_line_error(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def flat_photos(folder: Path, count: int) -> Path:
    """``count`` photos of one flat colour each (``COLOURS``), so a crop tells which photo it came from."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        write_image(folder / f"p{k}.png", np.broadcast_to(np.float32(COLOURS[k]), (64, 72, 3)).copy())
    return folder


def photo_of(crop: torch.Tensor) -> int:
    """Which ``COLOURS`` entry a flat crop ``[3, h, w]`` shows."""
    colour = crop.flatten(1).mean(dim=1)
    return int(np.argmin([float((colour - torch.tensor(c)).abs().sum()) for c in COLOURS]))


@pytest.fixture
def edm_model(tmp_path: Path) -> Path:
    """A seeded ``tiny`` MPT model with EDM's parametrisation and a recipe unlike any default."""
    cfg = ModelConfig(network=NETWORK_PRESETS["tiny"], precond=PrecondConfig(kind="edm", sigma_data=0.3))
    recipe = dataclasses.replace(
        TrainConfig(**RECIPES["edm-rgb"][1]), p_mean=-1.5, ema_rate=0.99, grad_clip=0.5, steps=777
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        net = build_score_model(cfg.network)
        for p in net.parameters():  # away from the zero-initialised output layer, so outputs differ
            p.data.add_(0.05 * torch.randn_like(p))
    return save_checkpoint(
        tmp_path / "edm.safetensors",
        ema=net.state_dict(),
        keep=virtual_mask(2.81, seed=5),
        model_config=cfg,
        step=777,
        train_config=recipe,
    )


def as_json(cfg: object) -> object:
    """A config as the dry run's JSON shows it (tuples as lists)."""
    return json.loads(to_json(cfg))


def outputs(path: Path) -> torch.Tensor:
    """The denoiser of the model at ``path`` on a fixed noisy input."""
    net, keep, cfg = load_model(path)
    x = 0.5 + 0.2 * torch.randn(2, cfg.network.channels, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return Prior(net, cfg.precond)(x, torch.tensor([0.1, 0.5]))


def test_a_fine_tune_starts_from_the_models_ema_weights_and_mask(edm_model: Path, tmp_path: Path) -> None:
    photos = flat_photos(tmp_path / "photos", 2)
    still = train(photos, "-o", tmp_path / "still", "--init", edm_model, "--lr", "0", "--steps", "1", "-q")
    assert still.exit_code == 0, still.stderr
    assert torch.equal(outputs(tmp_path / "still" / "checkpoint.safetensors"), outputs(edm_model))
    _, keep, _ = load_model(tmp_path / "still" / "checkpoint.safetensors")
    assert torch.equal(keep, virtual_mask(2.81, seed=5))  # the model's, not a new run's (seed 0)

    moved = train(photos, "-o", tmp_path / "moved", "--init", edm_model, "--steps", "2", "-q")
    assert moved.exit_code == 0, moved.stderr
    after = outputs(tmp_path / "moved" / "checkpoint.safetensors")
    assert not torch.equal(after, outputs(edm_model))  # it trains ...
    assert float((after - outputs(edm_model)).abs().mean()) < 0.01  # ... from the model, not from scratch


def test_the_fine_tune_validates_the_model_itself_at_step_0(edm_model: Path, tmp_path: Path) -> None:
    photos = flat_photos(tmp_path / "photos", 4)
    result = train(
        photos, "-o", tmp_path / "run", "--init", edm_model, "--steps", "2", "--val-every", "2", "-q"
    )
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    validated = [r for r in records if "val_psnr" in r]
    assert [r["step"] for r in validated] == [0, 2]
    net, keep, cfg = load_model(edm_model)
    held = [read_image(photos / "p2.png").pixels]  # the one of four held out
    expected = ValidationSet.from_images(held).psnr(Prior(net, cfg.precond), Encoding(keep))
    assert validated[0]["val_psnr"] == pytest.approx({str(k): v for k, v in expected.items()}, abs=1e-4)
    assert "validation PSNR at sigma 10/25/50" in result.stderr and "at step 0)" in result.stderr
    assert "held out for validation (never trained on): p2.png" in result.stderr


def test_a_fine_tune_keeps_the_models_recipe_and_configs(edm_model: Path, tmp_path: Path) -> None:
    photos = flat_photos(tmp_path / "photos", 2)
    result = train(photos, "-o", tmp_path / "run", "--init", edm_model, "--seed", "4", "--dry-run")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    model = read_info(edm_model)
    assert report["model"] == as_json(model.model_config)
    kept = as_json(model.train_config)
    for field in ("noise", "p_mean", "p_std", "noise_space", "flips", "ema_rate", "grad_clip"):
        assert report["train"][field] == kept[field], field
    assert report["train"]["steps"] == FINETUNE_STEPS and report["train"]["lr"] == FINETUNE_LR
    assert report["train"]["seed"] == 4 and report["init"] == str(edm_model)

    same_recipe = train(photos, "-o", tmp_path / "r", "--init", edm_model, "--recipe", "edm-rgb", "--dry-run")
    assert "its sigma_data is 0.3, --recipe edm-rgb sets 0.25" in one_line_error(same_recipe)


def test_the_builtin_model_fine_tunes_with_its_own_settings(tmp_path: Path) -> None:
    if not BUILTIN_MODEL.exists():
        pytest.skip("the built-in model is not installed")
    photos = flat_photos(tmp_path / "photos", 2)
    result = train(photos, "-o", tmp_path / "run", "--init", "builtin", "--preset", "base", "--dry-run")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    builtin = read_info(BUILTIN_MODEL)
    assert report["model"] == as_json(builtin.model_config)
    assert report["train"] == as_json(finetune_config(builtin.train_config, builtin.model_config, {}))
    assert report["preset"] == "base" and report["train"]["noise_space"] == "rgb"
    other = train(photos, "-o", tmp_path / "r", "--init", "builtin", "--recipe", "edm", "--dry-run")
    assert "its noise_space is rgb, --recipe edm sets channels" in one_line_error(other)
    same = train(photos, "-o", tmp_path / "r", "--init", "builtin", "--recipe", "edm-rgb", "--dry-run")
    assert same.exit_code == 0, same.stderr


def test_options_that_contradict_the_model_are_refused_with_one_line(
    edm_model: Path, tiny_model: Path, tmp_path: Path
) -> None:
    photos = flat_photos(tmp_path / "photos", 2)
    run = tmp_path / "run"
    cases = [
        ([edm_model, "--preset", "base"], "--preset base (the model's network is tiny)"),
        ([edm_model, "--no-mpt"], "--no-mpt (the model has MPT)"),
        ([edm_model, "--recipe", "score-sde"], "its parametrisation is edm"),
        ([edm_model, "--ratio", "2.0"], "--ratio 2.0"),
        ([edm_model, "--redraw-mask"], "--redraw-mask"),
        ([tiny_model, "--recipe", "edm"], "its parametrisation is score-sde"),
        ([tmp_path / "absent.safetensors"], "no such model file"),
        ([photos / "p0.png"], "not a safetensors checkpoint"),
    ]
    for args, message in cases:
        line = one_line_error(train(photos, "-o", run, "--init", *args, "--steps", "1"))
        assert message in line, (args, line)
        assert not run.exists()
    resumed = train(photos, "-o", run, "--init", edm_model, "--resume")
    assert "drop --init" in one_line_error(resumed)


def test_the_library_refuses_a_model_of_another_architecture(tiny_model: Path, tmp_path: Path) -> None:
    base = ModelConfig(network=NETWORK_PRESETS["base"])
    images = [np.full((64, 64, 3), c, dtype=np.float32) for c in COLOURS[:2]]
    with pytest.raises(EsdiffError, match=r"cannot fine-tune this model .*network\.nf is 16 in the model"):
        train_library(images, base, TrainConfig(steps=1), tmp_path / "run", init=tiny_model)
    assert not (tmp_path / "run").exists()


def test_holdout_indices() -> None:
    assert [holdout_indices(n) for n in (1, 2, 3, 4, 8)] == [[], [], [1], [2], [4]]
    assert holdout_indices(9) == [2, 6] and holdout_indices(10) == [2, 7] and holdout_indices(30) == [7, 22]


def test_the_automatic_hold_out_is_never_trained_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photos = flat_photos(tmp_path / "photos", 5)
    drawn: list[tuple[int, int]] = []  # (images in the sampler, photo of each crop)
    sample = CropSampler.sample

    def spy(self: CropSampler, generator: torch.Generator) -> torch.Tensor:
        crops = sample(self, generator)
        drawn.extend((len(self.images), photo_of(c)) for c in crops)
        return crops

    monkeypatch.setattr(CropSampler, "sample", spy)
    run = tmp_path / "run"
    args = ["--preset", "tiny", "--steps", "6", "--val-every", "3", "--crops-per-image", "2", "-q"]
    result = train(photos, "-o", run, *args)
    assert result.exit_code == 0, result.stderr
    assert "held out for validation (never trained on): p2.png" in result.stderr
    trained = {photo for images, photo in drawn if images == 4}
    validated = {photo for images, photo in drawn if images == 1}
    assert trained == {0, 1, 3, 4} and validated == {2}
    assert json.loads((run / "config.json").read_text())["held_out"] == ["p2.png"]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "val_psnr" in r] == [3, 6]

    drawn.clear()
    resumed = train(photos, "-o", run, "--resume", "--steps", "8", "--val", photos, "-q")
    assert resumed.exit_code == 0, resumed.stderr
    assert {photo for images, photo in drawn if images == 4} == {0, 1, 3, 4}  # still never p2

    dry = train(photos, "-o", tmp_path / "dry", "--preset", "tiny", "--dry-run")
    assert json.loads(dry.stdout)["held_out"] == ["p2.png"] and json.loads(dry.stdout)["images"] == 4


def test_one_photo_is_not_held_out_and_says_so(tmp_path: Path) -> None:
    photos = flat_photos(tmp_path / "photos", 1)
    result = train(photos, "-o", tmp_path / "run", "--preset", "tiny", "--steps", "1")
    assert result.exit_code == 0, result.stderr
    assert "1 photo: none held out for validation" in result.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["held_out"] == []


def test_the_help_states_the_fine_tune_budget_of_the_library() -> None:
    import typing

    from esdiff_cli import train as cli

    hints = typing.get_type_hints(cli.command, include_extras=True)
    shown = {name: typing.get_args(hints[name])[1].show_default for name in ("steps", "lr")}
    assert shown["steps"].endswith(f"--init {FINETUNE_STEPS}")
    assert float(shown["lr"].rsplit(" ", 1)[1]) == FINETUNE_LR
