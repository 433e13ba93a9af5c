"""Classical baselines: contract (shape, range, data consistency, determinism) and quality vs zero-fill."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio

from esdiff.baselines import aloha, biharmonic, dip, kernel_regression, ksvd
from esdiff.methods import BASELINES, METHODS, SAMPLERS, baseline

# small settings so the whole file runs in well under a minute on 2 CPU cores
FAST: dict[str, dict] = {
    "biharmonic": {},
    "kernel-regression": {},
    "ksvd": {"iterations": 2, "train_patches": 1500, "stride": 2},
    "dip": {"iterations": 30, "channels": 16, "skip_channels": 4, "levels": 3},
}
# dB over the zero-filled observation that each method must clear at 60 % missing
MARGIN = {"biharmonic": 10.0, "kernel-regression": 10.0, "ksvd": 8.0, "dip": 3.0}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The tiny test network is dominated by thread synchronisation; on a busy machine two threads can
    be ~80x slower than one, so run it on one and restore the setting afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 64x64 crop of the astronaut, 60 % of pixels missing; missing pixels hold NaN (never read)."""
    truth = data.astronaut()[200:264, 220:284].astype(np.float64) / 255.0
    known = np.random.default_rng(0).random(truth.shape[:2]) >= 0.6
    return truth, known, np.where(known[..., None], truth, np.nan)


@pytest.fixture(scope="module")
def outputs(problem) -> dict[str, np.ndarray]:
    _, known, observed = problem
    return {name: baseline(name)(observed, known, seed=0, **settings) for name, settings in FAST.items()}


def test_registry_lists_the_papers_methods() -> None:
    assert METHODS == (
        "esdiff",
        "ncsnpp",
        "aloha",
        "biharmonic",
        "kernel-regression",
        "ksvd",
        "dip",
        "fsr",
        "fsr-best",
        "telea",
        "ns",
    )
    assert set(METHODS) == set(SAMPLERS) | set(BASELINES)
    for module, name in [
        (aloha, "aloha"),
        (biharmonic, "biharmonic"),
        (kernel_regression, "kernel-regression"),
        (ksvd, "ksvd"),
        (dip, "dip"),
    ]:
        assert baseline(name) is module.inpaint
        assert isinstance(module.DEFAULTS, dict)
        assert module.__doc__ and "Default settings" in module.__doc__


@pytest.mark.parametrize("name", sorted(FAST))
def test_output_contract(name: str, problem, outputs) -> None:
    truth, known, _ = problem
    out = outputs[name]
    assert out.shape == truth.shape and out.dtype == np.float64
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(out[known], truth[known])


@pytest.mark.parametrize("name", sorted(FAST))
def test_beats_zero_fill(name: str, problem, outputs) -> None:
    truth, known, _ = problem
    zero = peak_signal_noise_ratio(truth, np.where(known[..., None], truth, 0.0), data_range=1.0)
    psnr = peak_signal_noise_ratio(truth, outputs[name], data_range=1.0)
    assert psnr > zero + MARGIN[name], f"{name}: {psnr:.2f} dB vs zero-fill {zero:.2f} dB"


@pytest.mark.parametrize("name", ["biharmonic", "kernel-regression", "ksvd", "dip"])
def test_deterministic(name: str, problem, outputs) -> None:
    _, known, observed = problem
    again = baseline(name)(observed, known, seed=0, **FAST[name])
    np.testing.assert_array_equal(again, outputs[name])


def test_kernel_regression_is_exact_on_quadratics() -> None:
    """A second-order fit reproduces a quadratic surface from any sample pattern (Takeda et al. Eq. 5)."""
    y, x = np.mgrid[0:32, 0:32] / 32.0
    surface = 0.2 + 0.3 * x + 0.2 * y + 0.2 * x * x - 0.1 * x * y + 0.1 * y * y
    image = np.repeat(surface[..., None], 3, axis=2)
    known = np.random.default_rng(1).random(surface.shape) >= 0.5
    out = kernel_regression.inpaint(image, known, steering_iterations=0, ridge=0.0)
    np.testing.assert_allclose(out, image, atol=1e-6)


def test_progress_is_reported() -> None:
    image = np.full((32, 32, 3), 0.5)
    known = np.random.default_rng(2).random((32, 32)) >= 0.5
    calls: list[tuple[int, int]] = []
    ksvd.inpaint(
        image,
        known,
        iterations=2,
        train_patches=200,
        stride=4,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls[-1][0] == calls[-1][1] and len(calls) == 3


def test_unknown_setting_is_rejected() -> None:
    image, known = np.zeros((16, 16, 3)), np.ones((16, 16), dtype=bool)
    with pytest.raises(TypeError):
        kernel_regression.inpaint(image, known, bandwidth=2.0)
