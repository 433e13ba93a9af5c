"""VE-SDE: sigma(t), marginals, prior, the discretisation and the reverse-diffusion step."""

from __future__ import annotations

import math

import pytest
import torch

from esdiff.config import SDEConfig
from esdiff.sde import VESDE, reverse_diffusion_step


@pytest.fixture
def sde() -> VESDE:
    return VESDE.from_config(SDEConfig())


def test_std_at_t0_and_t1(sde: VESDE) -> None:
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    mean, std = sde.marginal_prob(torch.ones(2, 3), t)
    assert torch.equal(mean, torch.ones(2, 3))
    assert std.tolist() == pytest.approx([0.01, 378.0], rel=1e-12)
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


def test_perturb_adds_scaled_noise(sde: VESDE) -> None:
    x0, z = torch.rand(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    t = torch.tensor([0.0, 0.3, 0.7, 1.0])
    x_t, sigma = sde.perturb(x0, t, z)
    assert torch.allclose((x_t - x0) / sigma.view(-1, 1, 1, 1), z, atol=1e-5)


def test_prior_std_and_reproducible(sde: VESDE) -> None:
    a = sde.prior_sampling((200, 3, 16, 16), torch.Generator().manual_seed(0))
    b = sde.prior_sampling((200, 3, 16, 16), torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert float(a.std()) == pytest.approx(378.0, rel=0.01)
    assert sde.prior_logp(a).shape == (200,)


def test_time_grid_and_discretisation(sde: VESDE) -> None:
    n = 1000
    t, sigma, step_var = sde.schedule(n)
    assert float(t[0]) == 1.0 and float(t[-1]) == pytest.approx(sde.eps)
    assert torch.allclose(sigma, sde.discrete_sigmas(n).flip(0))
    assert float(sigma[0]) == pytest.approx(378.0, rel=1e-5)
    assert float(sigma[-1]) == pytest.approx(0.01, rel=1e-5)
    assert torch.allclose(step_var[:-1], sigma[:-1] ** 2 - sigma[1:] ** 2)
    assert float(step_var[-1]) == pytest.approx(0.01**2, rel=1e-5)  # the lowest level steps down to 0
    # Telescoping: the reverse steps remove exactly the prior's variance.
    assert float(step_var.double().sum()) == pytest.approx(378.0**2, rel=1e-5)


def test_reverse_diffusion_with_exact_score_recovers_gaussian(sde: VESDE) -> None:
    """Data N(0, s0^2): the score at sigma is -x / (s0^2 + sigma^2); the sampler must land on std s0."""
    s0, n = 0.5, 1000
    gen = torch.Generator().manual_seed(0)
    _, sigmas, step_vars = sde.schedule(n)
    x = sde.prior_sampling((20_000,), gen)
    for i in range(n):
        score = -x / (s0**2 + sigmas[i] ** 2)
        noise = torch.randn(x.shape, generator=gen)
        x, x_mean = reverse_diffusion_step(x, score, step_vars[i], noise)
    assert float(x_mean.std()) == pytest.approx(s0, rel=0.05)
    assert abs(float(x_mean.mean())) < 0.05


def test_reverse_step_without_noise_is_the_mean() -> None:
    x, score = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    out, mean = reverse_diffusion_step(x, score, torch.tensor([0.5, 2.0]))
    assert torch.equal(out, mean)
    assert torch.allclose(mean[1], x[1] + 2.0 * score[1])


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        VESDE(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError):
        VESDE(eps=0.0)
