"""OpenCV's baselines (fsr, fsr-best, telea, ns): known pixels exact, masks and colour order read the right
way round, one clear line without OpenCV."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from esdiff.errors import EsdiffError
from esdiff.methods import MethodOptions, baseline, run_method

NAMES = ("fsr", "fsr-best", "telea", "ns")


def smooth_image(height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth colour field: every channel a different gentle ramp."""
    y, x = np.mgrid[0:height, 0:width] / 64.0
    return np.stack([0.2 + 0.5 * x, 0.7 - 0.4 * y, 0.3 + 0.2 * x + 0.2 * y], axis=-1)


@pytest.mark.parametrize("name", NAMES)
def test_known_pixels_stay_exact_and_the_left_block_is_filled(name: str) -> None:
    """A missing block on the left only: the result keeps every known pixel bit for bit (the right half
    among them) and fills the block close to the smooth truth; a mask read the wrong way round would
    leave the block black or refill the known pixels."""
    truth = smooth_image()
    known = np.ones(truth.shape[:2], dtype=bool)
    known[16:32, 6:22] = False
    observed = np.where(known[..., None], truth, 0.0)
    out = baseline(name)(observed, known, seed=0)
    assert out.shape == truth.shape and out.dtype == np.float64
    assert np.array_equal(out[known], truth[known])
    assert np.array_equal(out[:, 32:], truth[:, 32:])
    error = np.abs(out - truth)[~known]
    assert float(error.mean()) < 0.02 and float(error.max()) < 0.1, (error.mean(), error.max())


@pytest.mark.parametrize("name", NAMES)
def test_colour_order_is_kept(name: str) -> None:
    """A red image stays red inside the hole (BGR in, RGB out)."""
    red = np.broadcast_to(np.array([0.9, 0.15, 0.05]), (40, 40, 3)).copy()
    known = np.ones((40, 40), dtype=bool)
    known[12:26, 10:30] = False
    out = baseline(name)(red * known[..., None], known, seed=0)
    np.testing.assert_allclose(out[~known], red[~known], atol=0.02)  # 8 bits, a fill's own rounding


def test_run_method_scatters_and_keeps_the_input_dtype() -> None:
    """Through ``run_method`` (as ``esdiff inpaint --method`` runs it): float32 in, float32 out, known
    pixels exact, scattered holes filled better than the zero fill."""
    truth = smooth_image().astype(np.float32)
    known = np.random.default_rng(0).random(truth.shape[:2]) > 0.5
    for name in ("fsr", "telea", "ns"):
        out = run_method(name, truth, known, MethodOptions())
        assert out.dtype == np.float32 and np.array_equal(out[known], truth[known])
        assert float(np.abs(out - truth)[~known].mean()) < 0.02


def test_telea_takes_a_radius_and_rejects_unknown_settings() -> None:
    truth = smooth_image()
    known = np.ones(truth.shape[:2], dtype=bool)
    known[10:20, 10:20] = False
    wide = baseline("telea")(truth, known, radius=8)
    assert not np.array_equal(wide, baseline("telea")(truth, known))
    with pytest.raises(TypeError):
        baseline("fsr")(truth, known, radius=3)


def test_missing_opencv_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 raises ImportError
    known = np.ones((16, 16), dtype=bool)
    known[4:8, 4:8] = False
    with pytest.raises(EsdiffError, match=r"pip install opencv-contrib-python-headless"):
        baseline("fsr")(np.zeros((16, 16, 3)), known)


def test_inpaint_cli_runs_fsr(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from esdiff.io import read_image, write_image
    from esdiff_cli.app import app

    src = tmp_path / "img.png"
    write_image(src, smooth_image().astype(np.float32))
    out = tmp_path / "out.png"
    args = ["inpaint", str(src), "--mask", "box:8,8,12,12", "--method", "fsr", "-o", str(out)]
    args += ["--gt", str(src)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "PSNR" in result.output and "texture" in result.output
    assert np.abs(read_image(out).pixels - read_image(src).pixels).max() < 0.1
    result = CliRunner().invoke(app, [*args, "--overwrite", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics["psnr_missing"] > 30 and 0.0 <= metrics["texture_missing"] < 2.0


def test_fsr_start_puts_fsrs_fill_in_the_deep_pixels_of_the_start() -> None:
    """``SamplerConfig.fsr_start = r``: the whole-image sampler's start takes FSR's fill on the missing
    pixels ``r`` or more from every known one and keeps its own elsewhere; with a list that only puts the
    known pixels back, that start is the result."""
    import torch

    from esdiff.config import SamplerConfig
    from esdiff.image_sampling import sample_whole_image
    from esdiff.operators import within
    from esdiff.sampler import Encoding, StepList, data_consistency
    from esdiff.sde import VESDE

    truth = smooth_image(64, 80)
    known = np.random.default_rng(1).random((64, 80)) > 0.3
    known[20:44, 10:40] = False
    observed = np.where(known[..., None], truth, 0.0)
    fsr = baseline("fsr")(observed, known)
    deep = ~within(torch.from_numpy(known)[None, None], 2)[0, 0].numpy()
    assert 100 < deep.sum() < (~known).sum()

    def run(reach: int) -> np.ndarray:
        return sample_whole_image(
            observed,
            known,
            score=lambda psi, sigma: torch.zeros_like(psi),
            encoding=Encoding(None),
            sde=VESDE(),
            step_list=StepList((data_consistency,), needs_low_rank=False),
            cfg=SamplerConfig(steps=1, sampling="image", start="noise", t_start=0.1, fsr_start=reach),
            seed=0,
            device="cpu",
            progress=lambda done, total: None,
        )

    with_fsr, without = run(3), run(0)
    np.testing.assert_allclose(with_fsr[deep], fsr[deep], atol=1e-6)
    assert np.array_equal(with_fsr[~deep], without[~deep])
    assert np.abs(without[deep] - fsr[deep]).max() > 0.1
