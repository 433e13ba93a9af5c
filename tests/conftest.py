"""Shared fixtures: small real images, the shared data folder, the command line run in this process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_DATA = Path(os.environ.get("ESDIFF_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    return torch.device(request.param)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Small networks and matrices: one torch thread is as fast alone and far faster on a busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def astronaut() -> np.ndarray:
    """A 96x128 float32 crop of scikit-image's astronaut (a real colour photo)."""
    from skimage import data

    return (data.astronaut()[100:196, 150:278] / 255.0).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded untrained ``tiny`` checkpoint with MPT: for what goes where, not for quality."""
    from esdiff.checkpoints import save_checkpoint
    from esdiff.config import NETWORK_PRESETS, ModelConfig
    from esdiff.nn import build_score_model
    from esdiff.transforms import virtual_mask

    torch.manual_seed(0)
    cfg = ModelConfig(network=NETWORK_PRESETS["tiny"])
    return save_checkpoint(
        tmp_path_factory.mktemp("model") / "m.safetensors",
        ema=build_score_model(cfg.network).state_dict(),
        keep=virtual_mask(2.81),
        model_config=cfg,
    )


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def main_here(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run the real entry point, ``esdiff_cli.app.main``, in this process (no interpreter start or torch
    import per call) from folder ``cwd``; returns what a subprocess run would."""
    from esdiff_cli.app import main

    def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
        with monkeypatch.context() as patch:
            if cwd is not None:
                patch.chdir(cwd)
            patch.setattr(sys, "argv", ["esdiff", *args])
            capsys.readouterr()
            with pytest.raises(SystemExit) as stop:
                main()
        out, err = capsys.readouterr()
        code = stop.value.code if isinstance(stop.value.code, int) else 1
        return subprocess.CompletedProcess(list(args), code, out.encode(), err.encode())

    return run
