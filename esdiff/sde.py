"""The variance-exploding SDE (Song et al. 2021, "Score-Based Generative Modeling through SDEs"; SPEC 2).

Forward process ``dx = sqrt(d sigma^2 / dt) dw`` with ``sigma(t) = sigma_min (sigma_max / sigma_min) ** t``:
the perturbation kernel is ``p_t(x | x0) = N(x0, sigma(t)^2 I)``. Times run over ``[eps, 1]``.
The discretisation follows score_sde's ``VESDE.discretize``: ``N`` noise levels geometric from
``sigma_min`` to ``sigma_max``; the reverse-diffusion predictor moves by ``sigma_i^2 - sigma_{i-1}^2``
(with ``sigma_{-1} = 0``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from esdiff.config import SDEConfig


class VESDE:
    """Variance-exploding SDE; pure functions of time, no state besides its three numbers."""

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 378.0, eps: float = 1e-5) -> None:
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        if not 0 < eps < 1:
            raise ValueError(f"need 0 < eps < 1, got {eps}")
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max
        self.eps = eps

    @classmethod
    def from_config(cls, cfg: SDEConfig) -> VESDE:
        return cls(cfg.sigma_min, cfg.sigma_max, cfg.eps)

    def __repr__(self) -> str:
        return f"VESDE(sigma_min={self.sigma_min}, sigma_max={self.sigma_max}, eps={self.eps})"

    def sigma(self, t: Tensor) -> Tensor:
        """``sigma(t) = sigma_min (sigma_max / sigma_min) ** t``."""
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def marginal_prob(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and std of ``p_t(x_t | x_0 = x)``: ``(x, sigma(t))``; std has the shape of ``t``."""
        return x, self.sigma(t)

    def perturb(self, x0: Tensor, t: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """``x_t = x0 + sigma(t) z`` for a batch (``t`` of shape ``[B]``); returns ``(x_t, sigma)``."""
        sigma = self.sigma(t)
        return x0 + sigma.reshape(-1, *([1] * (x0.dim() - 1))) * z, sigma

    def sample_time(self, batch: int, generator: torch.Generator | None = None) -> Tensor:
        """``t ~ U(eps, 1)`` on the generator's device (the DSM training distribution)."""
        device = generator.device if generator is not None else None
        u = torch.rand(batch, generator=generator, device=device)
        return u * (1.0 - self.eps) + self.eps

    def prior_sampling(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """A draw of the prior ``N(0, sigma_max^2 I)``, made on the generator's device then moved."""
        gen_device = generator.device if generator is not None else device
        z = torch.randn(shape, generator=generator, device=gen_device, dtype=dtype)
        return (z * self.sigma_max).to(device) if device is not None else z * self.sigma_max

    def prior_logp(self, z: Tensor) -> Tensor:
        """Log density of the prior, summed over all but the batch dimension."""
        n = z[0].numel()
        sq = z.flatten(1).pow(2).sum(dim=1)
        return -n / 2.0 * math.log(2 * math.pi * self.sigma_max**2) - sq / (2 * self.sigma_max**2)

    def time_grid(self, n: int, device: torch.device | str | None = None) -> Tensor:
        """Sampling times ``linspace(1, eps, n)``: index 0 is the noisiest."""
        return torch.linspace(1.0, self.eps, n, device=device)

    def discrete_sigmas(self, n: int, device: torch.device | str | None = None) -> Tensor:
        """The ``n`` noise levels of the discretisation, ascending: ``sigma(linspace(0, 1, n))``."""
        return self.sigma(torch.linspace(0.0, 1.0, n, device=device, dtype=torch.float64)).float()

    def discretize(self, t: Tensor, n: int) -> tuple[Tensor, Tensor]:
        """Noise level ``sigma_i`` and reverse step ``sigma_i^2 - sigma_{i-1}^2`` at times ``t``.

        ``t`` is mapped to the nearest of the ``n`` discrete levels (``i = round(t (n - 1))``), which is
        exact on :meth:`time_grid`; the lowest level steps down to 0.
        """
        sigmas = self.discrete_sigmas(n, device=t.device)
        i = torch.round(t * (n - 1)).long().clamp(0, n - 1)
        sigma = sigmas[i]
        prev = torch.where(i == 0, torch.zeros_like(sigma), sigmas[(i - 1).clamp_min(0)])
        return sigma, sigma**2 - prev**2

    def schedule(self, n: int, device: torch.device | str | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """The whole reverse schedule: times (descending), their sigmas and step variances, each ``[n]``."""
        t = self.time_grid(n, device)
        sigma, step_var = self.discretize(t, n)
        return t, sigma, step_var


def reverse_diffusion_step(
    x: Tensor, score: Tensor, step_var: Tensor | float, noise: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Reverse-diffusion predictor (score_sde ``ReverseDiffusionPredictor`` for the VE-SDE).

    ``x_mean = x + (sigma_i^2 - sigma_{i-1}^2) s(x, sigma_i)``; ``x = x_mean + sqrt(...) z`` when ``noise``
    ``z`` is given (else ``x = x_mean``). ``step_var`` is a scalar or one value per batch element.
    Returns ``(x, x_mean)``.
    """
    if isinstance(step_var, Tensor) and step_var.dim() == 1:
        step_var = step_var.reshape(-1, *([1] * (x.dim() - 1)))
    x_mean = x + step_var * score
    if noise is None:
        return x_mean, x_mean
    if isinstance(step_var, Tensor):
        return x_mean + step_var.sqrt() * noise, x_mean
    return x_mean + math.sqrt(step_var) * noise, x_mean
