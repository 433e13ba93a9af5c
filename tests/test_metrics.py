"""PSNR / SSIM against hand computation and scikit-image; region metrics see only the region."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from esdiff.errors import EsdiffError
from esdiff.metrics import evaluate, psnr, ssim


@pytest.fixture
def ref() -> np.ndarray:
    return np.random.default_rng(0).uniform(0.2, 0.8, size=(48, 40, 3))


def test_psnr_constant_offset_is_20db(ref: np.ndarray) -> None:
    assert psnr(ref + 0.1, ref) == pytest.approx(20.0)
    assert psnr(ref - 0.01, ref) == pytest.approx(40.0)


def test_psnr_matches_skimage(ref: np.ndarray) -> None:
    x = np.clip(ref + np.random.default_rng(1).normal(0, 0.05, ref.shape), 0, 1)
    assert psnr(x, ref) == pytest.approx(peak_signal_noise_ratio(ref, x, data_range=1.0))


def test_identical_images(ref: np.ndarray) -> None:
    assert psnr(ref, ref) == math.inf
    assert ssim(ref, ref) == pytest.approx(1.0)
    region = np.zeros(ref.shape[:2], dtype=bool)
    region[10:20, 5:30] = True
    assert ssim(ref, ref, region) == pytest.approx(1.0)


def test_region_metrics_only_see_the_region(ref: np.ndarray) -> None:
    region = np.zeros(ref.shape[:2], dtype=bool)
    region[:, :20] = True
    x = ref.copy()
    x[region] += 0.1  # error 0.1 inside the region
    x[~region] = 0.0  # garbage outside it
    assert psnr(x, ref, region) == pytest.approx(20.0)
    # Whole-image PSNR by hand: mean of squared errors over both halves.
    mse = (0.01 * region.sum() + (ref[~region] ** 2).sum() / 3) / region.size
    assert psnr(x, ref) == pytest.approx(10 * math.log10(1 / mse))
    # SSIM inside a region far from any change is 1 whatever happens elsewhere.
    y = ref.copy()
    y[:, 30:] = 0.0
    far = np.zeros(ref.shape[:2], dtype=bool)
    far[:, :15] = True  # more than the 5-pixel window radius from column 30
    assert ssim(y, ref, far) == pytest.approx(1.0)
    assert ssim(y, ref) < 0.9


def test_evaluate_keys_and_missing_region(ref: np.ndarray) -> None:
    known = np.ones(ref.shape[:2], dtype=bool)
    known[::2] = False
    x = np.where(known[..., None], ref, ref + 0.1)
    result = evaluate(x, ref, known)
    assert set(result) == {"psnr", "ssim", "psnr_missing", "ssim_missing"}
    assert result["psnr_missing"] == pytest.approx(20.0)
    assert result["psnr"] == pytest.approx(10 * math.log10(1 / (0.01 / 2)))
    assert all(isinstance(v, float) for v in result.values())
    full = evaluate(ref, ref, np.ones(ref.shape[:2], dtype=bool))
    assert math.isnan(full["psnr_missing"]) and math.isnan(full["ssim_missing"])


def test_grey_images_and_bad_inputs(ref: np.ndarray) -> None:
    assert ssim(ref[..., 0], ref[..., 0]) == pytest.approx(1.0)
    with pytest.raises(EsdiffError, match="shape"):
        psnr(ref, ref[:-1])
    with pytest.raises(EsdiffError, match="region"):
        psnr(ref, ref, np.ones((3, 3), dtype=bool))
    with pytest.raises(EsdiffError, match="SSIM"):
        ssim(ref[:5, :5], ref[:5, :5])
