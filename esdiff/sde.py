"""The variance-exploding SDE (Song et al. 2021, "Score-Based Generative Modeling through SDEs"; SPEC 2).

Forward process ``dx = sqrt(d sigma^2 / dt) dw`` with ``sigma(t) = sigma_min (sigma_max / sigma_min) ** t``:
the perturbation kernel is ``p_t(x | x0) = N(x0, sigma(t)^2 I)``. Times run over ``[eps, 1]``.
The sampler's discretisation of the reverse process is ``esdiff.schedule.noise_schedule``.
"""

from __future__ import annotations

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

    def sample_time(self, batch: int, generator: torch.Generator | None = None) -> Tensor:
        """``t ~ U(eps, 1)`` on the generator's device (the DSM training distribution)."""
        device = generator.device if generator is not None else None
        u = torch.rand(batch, generator=generator, device=device)
        return u * (1.0 - self.eps) + self.eps
