"""The method registry: shipped models, and the NCSN++ baseline as a pure diffusion sampler."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from esdiff.checkpoints import load_model, save_checkpoint
from esdiff.config import NETWORK_PRESETS, ModelConfig, MPTConfig
from esdiff.methods import MethodOptions, default_model, run_method
from esdiff.nn import build_score_model
from esdiff.prior import BUILTIN_MODEL, NCSNPP_MODEL
from esdiff.transforms import virtual_mask


@pytest.mark.parametrize(("path", "channels"), [(BUILTIN_MODEL, 12), (NCSNPP_MODEL, 3)])
def test_shipped_models_load(path: Path, channels: int) -> None:
    assert path.stat().st_size <= 16 * 2**20
    model, keep, cfg = load_model(path)
    assert model.config.channels == channels
    assert cfg.mpt.enabled is (channels == 12)
    assert keep.dtype == torch.bool and keep.shape == (64, 64)


def test_default_models() -> None:
    assert default_model("esdiff") == BUILTIN_MODEL
    assert default_model("ncsnpp") == NCSNPP_MODEL
    assert default_model("biharmonic") is None


def test_ncsnpp_runs_without_any_low_rank_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, astronaut: np.ndarray
) -> None:
    import esdiff.sampler

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the NCSN++ baseline must not run LMaFit")

    monkeypatch.setattr(esdiff.sampler, "init_low_rank", forbidden)
    torch.manual_seed(0)
    cfg = ModelConfig(
        network=dataclasses.replace(NETWORK_PRESETS["tiny"], channels=3), mpt=MPTConfig(enabled=False)
    )
    net = build_score_model(cfg.network)
    path = save_checkpoint(
        tmp_path / "ncsnpp.safetensors", ema=net.state_dict(), keep=virtual_mask(2.81), model_config=cfg
    )
    image = astronaut[:64, :64].astype(np.float64)
    known = np.random.default_rng(0).random((64, 64)) > 0.5
    out = run_method("ncsnpp", image, known, MethodOptions(settings={"model": path, "steps": 2}))
    assert np.array_equal(out[known], image[known])
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
