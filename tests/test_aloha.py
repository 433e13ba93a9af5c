"""ALOHA baseline (Jin & Ye 2015) on a small image: known pixels kept, better than naive fills."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data
from skimage.metrics import peak_signal_noise_ratio

from esdiff.baselines import aloha
from esdiff.config import LowRankConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def case() -> tuple[np.ndarray, np.ndarray]:
    image = data.astronaut()[100:148, 180:228].astype(np.float64) / 255.0  # one 64x64 patch
    known = np.random.default_rng(0).random(image.shape[:2]) >= 0.5
    return image, known


def test_aloha_beats_naive_fills(case: tuple[np.ndarray, np.ndarray]) -> None:
    image, known = case
    calls = []
    cheap = LowRankConfig(rank=12, lmafit_max_iter=40)
    observed = np.where(known[..., None], image, 0.0)
    out = aloha.inpaint(
        observed,
        known,
        config=cheap,
        iterations=10,
        progress=lambda done, total, **info: calls.append((done, total, info)),
    )
    assert out.dtype == np.float64 and out.shape == image.shape
    assert np.array_equal(out[known], observed[known])
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert calls == [(1, 1, calls[0][2])] and calls[0][2]["ranks"] == [12]
    mean_fill = np.where(known[..., None], image, image[known].mean(axis=0))
    p_aloha = peak_signal_noise_ratio(image, out, data_range=1.0)
    assert p_aloha > peak_signal_noise_ratio(image, mean_fill, data_range=1.0) + 5.0
    assert p_aloha > peak_signal_noise_ratio(image, observed, data_range=1.0) + 5.0


def test_patch_batches_agree() -> None:
    image = data.astronaut()[:64, :64].astype(np.float64) / 255.0  # four patches
    known = np.random.default_rng(1).random(image.shape[:2]) >= 0.5
    cheap = LowRankConfig(lmafit_max_iter=5)
    observed = np.where(known[..., None], image, 0.0)
    one = aloha.inpaint(observed, known, config=cheap, iterations=1, patch_batch=4)
    split = aloha.inpaint(observed, known, config=cheap, iterations=1, patch_batch=3)
    np.testing.assert_allclose(one, split, rtol=0, atol=1e-9)


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        aloha.inpaint(np.zeros((8, 8)), np.ones((8, 8), dtype=bool))


def test_solid_hole_at_least_biharmonic() -> None:
    """Issue 15: a solid 16x16 hole is filled about as well as biharmonic fills it, not as a dark blob."""
    from skimage.restoration import inpaint_biharmonic

    image = data.astronaut()[100:164, 180:244].astype(np.float64) / 255.0  # one 64x64 patch
    known = np.ones(image.shape[:2], dtype=bool)
    known[24:40, 24:40] = False
    observed = np.where(known[..., None], image, 0.0)

    def hole_psnr(x: np.ndarray) -> float:
        return peak_signal_noise_ratio(image[~known], x[~known], data_range=1.0)

    out = aloha.inpaint(observed, known, iterations=10)
    assert hole_psnr(out) >= hole_psnr(inpaint_biharmonic(observed, ~known, channel_axis=-1)) - 1.0
