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
    assert set(result) == {"psnr", "ssim", "psnr_missing", "ssim_missing", "texture_missing"}
    assert result["psnr_missing"] == pytest.approx(20.0)
    assert result["psnr"] == pytest.approx(10 * math.log10(1 / (0.01 / 2)))
    assert all(isinstance(v, float) for v in result.values())
    full = evaluate(ref, ref, np.ones(ref.shape[:2], dtype=bool))
    assert math.isnan(full["psnr_missing"]) and math.isnan(full["ssim_missing"])
    assert math.isnan(full["texture_missing"]) and math.isnan(
        result["texture_missing"]
    )  # rows: no deep pixel


def test_grey_images_and_bad_inputs(ref: np.ndarray) -> None:
    assert ssim(ref[..., 0], ref[..., 0]) == pytest.approx(1.0)
    with pytest.raises(EsdiffError, match="shape"):
        psnr(ref, ref[:-1])
    with pytest.raises(EsdiffError, match="region"):
        psnr(ref, ref, np.ones((3, 3), dtype=bool))
    with pytest.raises(EsdiffError, match="SSIM"):
        ssim(ref[:5, :5], ref[:5, :5])


def test_deep_hole_is_three_or_more_pixels_from_every_known_one() -> None:
    from esdiff.metrics import deep_hole

    known = np.ones((30, 30), dtype=bool)
    known[10:20, 5:25] = False
    deep = deep_hole(known)
    assert deep.sum() == 6 * 16 and deep[12:18, 7:23].all()


def test_texture_of_the_truth_is_one_and_of_a_blur_its_closed_form() -> None:
    """A vertical-stripe sinusoid of period 8 px: a Gaussian blur of sigma s scales its amplitude by
    ``exp(-2 pi^2 s^2 / 8^2)`` (the Gaussian's Fourier transform), and the texture ratio of the blurred
    image is that factor; the truth scores 1; the mean grey scores near 0; no pixel deep enough is nan."""
    from scipy.ndimage import gaussian_filter

    from esdiff.metrics import texture

    cols = np.arange(96)
    stripes = 0.5 + 0.2 * np.sin(2 * np.pi * cols / 8)
    truth = np.repeat(np.broadcast_to(stripes, (80, 96))[..., None], 3, axis=2)
    known = np.ones((80, 96), dtype=bool)
    known[20:60, 24:72] = False
    assert texture(truth, truth, known) == 1.0
    s = 1.5
    blurred = gaussian_filter(truth, (0, s, 0), mode="wrap")  # along the stripes' direction only
    want = math.exp(-2 * math.pi**2 * s**2 / 8**2)
    assert texture(blurred, truth, known) == pytest.approx(want, rel=1e-3)
    assert 0.45 < want < 0.55
    flat = np.where(known[..., None], truth, 0.5)
    assert 0.0 < texture(flat, truth, known) < 0.1  # detail only where the blur reaches the rim
    scattered = np.indices((80, 96)).sum(axis=0) % 2 == 0
    assert math.isnan(texture(blurred, truth, scattered))


def test_evaluate_reports_the_texture_of_the_hole(ref: np.ndarray) -> None:
    known = np.ones(ref.shape[:2], dtype=bool)
    known[10:30, 10:30] = False
    metrics = evaluate(ref, ref, known)
    assert metrics["texture_missing"] == 1.0
