"""VE-SDE: sigma(t), the training draws, and the noise schedule the sampler runs (``noise_schedule``)."""

from __future__ import annotations

import math

import pytest
import torch

from esdiff.config import SDEConfig
from esdiff.schedule import noise_schedule
from esdiff.sde import VESDE


@pytest.fixture
def sde() -> VESDE:
    return VESDE.from_config(SDEConfig())


def test_sigma_at_t0_and_t1(sde: VESDE) -> None:
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    assert sde.sigma(t).tolist() == pytest.approx([0.01, 378.0], rel=1e-12)
    assert float(sde.sigma(torch.tensor(sde.eps, dtype=torch.float64))) == pytest.approx(0.01, rel=2e-4)


def test_sigma_is_geometric(sde: VESDE) -> None:
    t = torch.rand(50, dtype=torch.float64)
    assert torch.allclose(sde.sigma(t).log(), math.log(0.01) + t * math.log(37800.0))
    assert float(sde.sigma(torch.tensor(0.5, dtype=torch.float64))) == pytest.approx(math.sqrt(3.78))


def test_sample_time_in_range_and_seeded(sde: VESDE) -> None:
    t = sde.sample_time(10_000, torch.Generator().manual_seed(1))
    assert float(t.min()) >= sde.eps and float(t.max()) <= 1.0
    assert abs(float(t.mean()) - 0.5) < 0.01
    assert torch.equal(t, sde.sample_time(10_000, torch.Generator().manual_seed(1)))


def test_training_noise_levels_by_recipe(sde: VESDE) -> None:
    """SPEC 2's levels are sigma(t) of the same time draws; the band and the log-normal stay where asked."""
    from esdiff.config import TrainConfig
    from esdiff.training import draw_sigma

    spec = draw_sigma(10_000, TrainConfig(), sde, torch.Generator().manual_seed(1))
    assert torch.equal(spec, sde.sigma(sde.sample_time(10_000, torch.Generator().manual_seed(1))))
    band = draw_sigma(
        10_000, TrainConfig(sigma_lo=0.005, sigma_hi=2.0), sde, torch.Generator().manual_seed(1)
    )
    assert 0.005 <= float(band.min()) and float(band.max()) <= 2.0
    assert float(band.log().mean()) == pytest.approx((math.log(0.005) + math.log(2.0)) / 2, abs=0.05)
    normal = draw_sigma(10_000, TrainConfig(noise="log-normal"), sde, torch.Generator().manual_seed(1))
    assert float(normal.log().mean()) == pytest.approx(-1.9, abs=0.05)
    assert float(normal.log().std()) == pytest.approx(1.2, abs=0.05)


@pytest.mark.parametrize(
    ("steps", "t_start", "t_end"), [(1000, 1.0, None), (25, 0.5, None), (7, 0.3, None), (25, 0.25, 0.08)]
)
def test_noise_schedule_levels(sde: VESDE, steps: int, t_start: float, t_end: float | None) -> None:
    """One level per step: sigma(t_start) first, sigma(t_end) last (None: sigma(eps)), a constant ratio
    between neighbours."""
    sigmas, step_vars = noise_schedule(sde, steps, t_start, t_end)
    end = sde.eps if t_end is None else t_end
    assert sigmas.shape == step_vars.shape == (steps,)
    assert float(sigmas[0]) == pytest.approx(0.01 * 37800.0**t_start, rel=1e-12)
    assert float(sigmas[-1]) == pytest.approx(0.01 * 37800.0**end, rel=1e-12)
    ratios = sigmas[1:] / sigmas[:-1]
    want = 37800.0 ** (-(t_start - end) / (steps - 1))
    assert torch.allclose(ratios, torch.full_like(ratios, want), rtol=1e-10)


@pytest.mark.parametrize(("steps", "t_start"), [(1000, 1.0), (25, 0.5), (1, 1.0)])
def test_noise_schedule_step_variances(sde: VESDE, steps: int, t_start: float) -> None:
    """Reverse-diffusion steps remove ``sigma_i^2 - sigma_{i+1}^2``, the last one down to 0, so together
    they remove exactly the first level's variance."""
    sigmas, step_vars = noise_schedule(sde, steps, t_start)
    assert bool((step_vars > 0).all())
    assert torch.allclose(step_vars[:-1], sigmas[:-1] ** 2 - sigmas[1:] ** 2, rtol=1e-12)
    assert float(step_vars[-1]) == pytest.approx(float(sigmas[-1]) ** 2, rel=1e-12)
    assert float(step_vars.sum()) == pytest.approx(float(sigmas[0]) ** 2, rel=1e-10)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        VESDE(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError):
        VESDE(eps=0.0)
