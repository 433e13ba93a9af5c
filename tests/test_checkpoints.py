"""Checkpoints: safetensors round trips give identical outputs; bad files give one clear EsdiffError."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from esdiff.checkpoints import (
    export_model,
    flatten_optimizer,
    load_model,
    load_training_state,
    read_info,
    restore_optimizer,
    save_checkpoint,
)
from esdiff.config import NETWORK_PRESETS, ModelConfig, TrainConfig
from esdiff.errors import EsdiffError
from esdiff.nn import ScoreModel
from esdiff.training import new_model
from esdiff.transforms import virtual_mask

TINY = ModelConfig(network=NETWORK_PRESETS["tiny"])


def trained_like(cfg: ModelConfig = TINY) -> ScoreModel:
    """A tiny network with non-zero weights everywhere (a fresh one outputs zeros: init_scale 0)."""
    model = new_model(cfg, seed=0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model.eval()


def outputs(model: torch.nn.Module) -> torch.Tensor:
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(2, 12, 64, 64, generator=gen)
    with torch.no_grad():
        return model(x, torch.tensor([0.05, 30.0]))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full training checkpoint (raw, EMA, Adam state after one step, RNG), made once."""
    model = trained_like()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model(torch.rand(1, 12, 64, 64), torch.tensor([1.0])).square().mean().backward()
    optimizer.step()
    return save_checkpoint(
        tmp_path_factory.mktemp("saved") / "checkpoint.safetensors",
        ema=model.state_dict(),
        keep=virtual_mask(2.81),
        model_config=TINY,
        step=7,
        train_config=TrainConfig(steps=9),
        model=model.state_dict(),
        optimizer=optimizer,
        rng=torch.Generator().manual_seed(3).get_state(),
    )


@pytest.fixture
def checkpoint(saved: Path, tmp_path: Path) -> Path:
    """A private copy of the saved checkpoint."""
    path = tmp_path / "checkpoint.safetensors"
    shutil.copyfile(saved, path)
    return path


def test_round_trip_gives_identical_outputs(checkpoint: Path) -> None:
    ema = load_training_state(checkpoint).ema
    reference = new_model(TINY, seed=5)
    reference.load_state_dict(ema)
    model, keep, cfg = load_model(checkpoint)
    assert cfg == TINY and torch.equal(keep, virtual_mask(2.81))
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert torch.equal(outputs(model), outputs(reference.eval()))


def test_file_layout_and_metadata(checkpoint: Path) -> None:
    with safe_open(str(checkpoint), framework="pt") as f:
        meta, keys = f.metadata(), set(f.keys())
    assert meta["format"] == "esdiff-checkpoint" and meta["format_version"] == "1" and meta["step"] == "7"
    assert json.loads(meta["config"])["network"]["nf"] == 16
    assert json.loads(meta["train_config"])["steps"] == 9
    assert {"virtual_mask", "rng"} <= keys
    assert any(k.startswith("ema.") for k in keys) and any(k.startswith("model.") for k in keys)
    assert any(k.startswith("optim.") and k.endswith(".exp_avg_sq") for k in keys)
    info = read_info(checkpoint)
    assert info.step == 7 and info.has_training_state and info.train_config == TrainConfig(steps=9)


def test_optimizer_state_round_trip() -> None:
    model = trained_like()
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.rand(1, 12, 64, 64), torch.tensor([1.0])).mean().backward()
    optimizer.step()
    fresh = torch.optim.Adam(new_model(TINY, seed=0).parameters())
    restore_optimizer(fresh, flatten_optimizer(optimizer))
    a, b = optimizer.state_dict()["state"], fresh.state_dict()["state"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[i][k], b[i][k]) for i in a for k in a[i])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_export_weights_only(checkpoint: Path, tmp_path: Path, dtype: torch.dtype) -> None:
    out = export_model(checkpoint, tmp_path / "model.safetensors", dtype=dtype)
    assert out.stat().st_size < checkpoint.stat().st_size
    tensors = load_file(str(out))
    assert not any(k.startswith(("model.", "optim.")) for k in tensors) and "rng" not in tensors
    assert tensors["ema.fourier.W"].dtype == torch.float32  # frequencies up to ~60 need float32
    model, _, _ = load_model(out)
    full, _, _ = load_model(checkpoint)
    if dtype == torch.float32:
        assert torch.equal(outputs(model), outputs(full))
    else:
        a, b = outputs(model), outputs(full)
        assert float((a - b).norm() / b.norm()) < 5e-3
    with pytest.raises(EsdiffError, match="weights only"):
        load_training_state(out)


def test_random_bytes(tmp_path: Path) -> None:
    bad = tmp_path / "random.safetensors"
    bad.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0)).byte().numpy())
    with pytest.raises(EsdiffError, match="not a safetensors checkpoint"):
        load_model(bad)


def test_torch_save_pickle_is_refused_unread(tmp_path: Path) -> None:
    zipped, legacy = tmp_path / "model.pt", tmp_path / "legacy.pt"
    torch.save(trained_like().state_dict(), zipped)
    torch.save({"a": 1}, legacy, _use_new_zipfile_serialization=False)
    for path in (zipped, legacy):
        with pytest.raises(EsdiffError, match="pickle"):
            load_model(path)


def rewrite_metadata(src: Path, dst: Path, **changes: str) -> Path:
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
    save_file(load_file(str(src)), str(dst), metadata={**meta, **changes})
    return dst


def test_other_format_version(checkpoint: Path, tmp_path: Path) -> None:
    bad = rewrite_metadata(checkpoint, tmp_path / "v2.safetensors", format_version="2")
    with pytest.raises(EsdiffError, match="format version '2' is not supported"):
        load_model(bad)


def test_not_an_esdiff_file(tmp_path: Path) -> None:
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(EsdiffError, match="not an esdiff checkpoint"):
        load_model(plain)


def test_shapes_that_do_not_match_the_config(checkpoint: Path, tmp_path: Path) -> None:
    wider = dataclasses.replace(TINY, network=dataclasses.replace(TINY.network, nf=32))
    bad = rewrite_metadata(
        checkpoint, tmp_path / "wider.safetensors", config=json.dumps(dataclasses.asdict(wider))
    )
    with pytest.raises(EsdiffError, match="do not match the network of its config"):
        load_model(bad)
    with pytest.raises(EsdiffError, match="damaged checkpoint metadata"):
        load_model(rewrite_metadata(checkpoint, tmp_path / "junk.safetensors", config="{nope"))


def test_header_length_that_looks_like_a_pickle_opcode(checkpoint: Path, tmp_path: Path) -> None:
    """A safetensors file starts with its header length; when its low byte is 0x80 (a pickle's first
    byte) it is still a safetensors file."""
    path = rewrite_metadata(checkpoint, tmp_path / "padded.safetensors", pad="")
    low = path.read_bytes()[0]
    path = rewrite_metadata(checkpoint, path, pad="x" * ((0x80 - low) % 256))
    assert path.read_bytes()[0] == 0x80
    assert read_info(path).step == 7


def rewrite_tensor(src: Path, dst: Path, name: str, value: float) -> Path:
    """A copy of ``src`` with one entry of tensor ``name`` set to ``value`` (metadata kept)."""
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(str(src))
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[3] = value
    save_file(tensors, str(dst), metadata=meta)
    return dst


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_at_load(checkpoint: Path, tmp_path: Path, value: float) -> None:
    bad = rewrite_tensor(checkpoint, tmp_path / "bad.safetensors", "ema.conv_in.weight", value)
    with pytest.raises(EsdiffError, match=r"EMA weight conv_in.weight holds NaN or Inf"):
        load_model(bad)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"network": {"channels": -3}}, r"network.channels must be a positive integer \(got -3\)"),
        ({"network": {"nf": 0}}, r"network.nf must be a positive integer"),
        ({"network": {"num_res_blocks": 0}}, r"network.num_res_blocks"),
        ({"network": {"ch_mult": [1] * 8}}, r"network.ch_mult has 8 levels"),
        ({"network": {"ch_mult": []}}, r"network.ch_mult must name at least one level"),
        ({"network": {"channels": "12"}}, r"network.channels must be a positive integer \(got '12'\)"),
        ({"sde": {"sigma_min": 5.0, "sigma_max": 1.0}}, r"sde needs 0 < sigma_min < sigma_max"),
        ({"sde": {"sigma_max": float("inf")}}, r"sde needs 0 < sigma_min < sigma_max"),
        ({"sde": {"eps": 0.0}}, r"sde.eps must be in \(0, 1\)"),
        ({"mpt": {"size": 32}}, r"mpt.size must be the 64-pixel patch size"),
        ({"precond": {"kind": "magic"}}, r"precond.kind must be one of score-sde, edm \(got 'magic'\)"),
        ({"precond": {"kind": "edm", "sigma_data": 0.0}}, r"precond.sigma_data must be positive"),
    ],
)
def test_impossible_configs_are_refused_at_load(
    checkpoint: Path, tmp_path: Path, change: dict, named: str
) -> None:
    config = dataclasses.asdict(TINY)
    for part, fields in change.items():
        config[part].update(fields)
    bad = rewrite_metadata(checkpoint, tmp_path / "bad.safetensors", config=json.dumps(config))
    with pytest.raises(EsdiffError, match="impossible model config: " + named):
        read_info(bad)
    with pytest.raises(EsdiffError, match=named):
        load_model(bad)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(EsdiffError, match="no such checkpoint"):
        load_model(tmp_path / "absent.safetensors")
    with pytest.raises(EsdiffError, match="is a folder"):
        load_model(tmp_path)


def test_save_is_atomic_and_leaves_no_temp_files(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keep = virtual_mask(2.81)
    with pytest.raises(EsdiffError, match="does not exist"):
        save_checkpoint(tmp_path / "nope" / "c.safetensors", ema={}, keep=keep, model_config=TINY)

    def dies_half_way(tensors: object, filename: str, metadata: object = None) -> None:
        Path(filename).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr("esdiff.checkpoints.save_file", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(checkpoint, ema=load_training_state(checkpoint).ema, keep=keep, model_config=TINY)
    assert read_info(checkpoint).step == 7  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors"]


def test_full_disk_names_the_checkpoint_and_keeps_the_old_one(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors import SafetensorError

    def disk_full(tensors: object, filename: str, metadata: object = None) -> None:
        Path(filename).write_bytes(b"half a file")
        raise SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on '
            'device" })'
        )

    monkeypatch.setattr("esdiff.checkpoints.save_file", disk_full)
    ema = load_training_state(checkpoint).ema
    with pytest.raises(
        EsdiffError, match=r"checkpoint.safetensors: cannot write \(No space left on device\)"
    ):
        save_checkpoint(checkpoint, ema=ema, keep=virtual_mask(2.81), model_config=TINY)
    assert read_info(checkpoint).step == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors"]


@pytest.mark.slow
def test_paper_preset_forward_on_cpu() -> None:
    from esdiff.nn import count_parameters

    model = new_model(ModelConfig(), seed=0)
    assert count_parameters(model) == pytest.approx(65.7e6, rel=0.01)
    with torch.no_grad():
        out = model(torch.rand(2, 12, 64, 64), torch.tensor([0.1, 100.0]))
    assert out.shape == (2, 12, 64, 64) and torch.isfinite(out).all()
