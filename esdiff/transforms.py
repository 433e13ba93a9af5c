"""Virtual mask, mutual perturbation transform (MPT, Eq. 7), its exact inverse (Eq. 8) and fusion, and
``Encoding``, the pair the sampler, the prior and training use to reach the network's space.

Shapes: an RGB batch is ``[B, 3, H, W]``; the MPT object is ``[B, 12, H, W]`` laid out as
``[R, G, B | RG group | GB group | BR group]`` (SPEC 1). The keep-mask ``M`` is ``[H, W]`` bool, True where
pixels stay in place; one mask serves all three channel pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from esdiff.config import FusionMode

PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (1, 2), (2, 0))
"""Channel pairs swapped by the RG, GB and BR groups."""


def virtual_mask(ratio: float, size: int | tuple[int, int] = 64, seed: int = 0) -> Tensor:
    """Keep-mask ``M = 1[z < ratio]`` with ``z ~ N(0, 1)`` drawn from a seeded generator (SPEC 1).

    ``size`` is the side of a square mask or ``(height, width)``; the draw happens on the CPU in float64,
    so a seed gives the same mask on every machine.
    """
    height, width = (size, size) if isinstance(size, int) else size
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(height, width, generator=gen, dtype=torch.float64)
    return z < ratio


def expected_swap_fraction(ratio: float) -> float:
    """``1 - Phi(ratio)``: the probability that a pixel swaps."""
    return 0.5 * math.erfc(ratio / math.sqrt(2.0))


def _swap(x: Tensor, keep: Tensor, pair: tuple[int, int]) -> Tensor:
    a, b = pair
    out = x.clone()
    out[:, a] = torch.where(keep, x[:, a], x[:, b])
    out[:, b] = torch.where(keep, x[:, b], x[:, a])
    return out


def mpt(x: Tensor, keep: Tensor) -> Tensor:
    """Eq. 7: stack the RGB batch with its three mutually perturbed copies into 12 channels."""
    keep = keep.to(x.device)
    return torch.cat([x] + [_swap(x, keep, pair) for pair in PAIRS], dim=1)


def impt(psi: Tensor, keep: Tensor) -> Tensor:
    """Eq. 8: undo the swaps (an involution) and return the four RGB estimates ``[B, 4, 3, H, W]``."""
    keep = keep.to(psi.device)
    groups = psi.unflatten(1, (4, 3))
    estimates = [groups[:, 0]] + [_swap(groups[:, k + 1], keep, pair) for k, pair in enumerate(PAIRS)]
    return torch.stack(estimates, dim=1)


def pair_correlations(x: Tensor) -> Tensor:
    """Pearson correlation of the R-G, G-B and B-R channel pairs of each patch: ``[B, 3]``."""
    flat = x.flatten(2)
    centred = flat - flat.mean(dim=2, keepdim=True)
    norm = centred.norm(dim=2).clamp_min(1e-12)
    rho = [(centred[:, a] * centred[:, b]).sum(dim=1) / (norm[:, a] * norm[:, b]) for a, b in PAIRS]
    return torch.stack(rho, dim=1)


def fusion_weights(estimates: Tensor, mode: FusionMode = "softmax", tau: float = 1.0) -> Tensor:
    """Weights ``[B, 4]`` of the four i-MPT estimates (SPEC 1, fusion).

    ``softmax``: softmax of the pair correlations over the three perturbed groups (group 0 gets 0);
    ``softmax0``: group 0 joins the softmax with score 1; ``mean``: all four weigh 1/4. The correlations
    are read off the mean of the four estimates, the patch's current estimate.
    """
    batch = estimates.shape[0]
    if mode == "mean":
        return estimates.new_full((batch, 4), 0.25)
    rho = pair_correlations(estimates.mean(dim=1))
    if mode == "softmax":
        zero = rho.new_full((batch, 1), -math.inf)
        return torch.softmax(torch.cat([zero, rho], dim=1) / tau, dim=1)
    if mode == "softmax0":
        one = rho.new_ones((batch, 1))
        return torch.softmax(torch.cat([one, rho], dim=1) / tau, dim=1)
    raise ValueError(f"unknown fusion mode {mode!r}")


def fuse(psi: Tensor, keep: Tensor, mode: FusionMode = "softmax", tau: float = 1.0) -> Tensor:
    """i-MPT followed by fusion: the 12-channel object back to one RGB batch ``[B, 3, H, W]``."""
    estimates = impt(psi, keep)
    weights = fusion_weights(estimates, mode, tau)
    return torch.einsum("bk,bkchw->bchw", weights, estimates)


@dataclass(frozen=True)
class Encoding:
    """MPT (Eq. 7) into the network's space and i-MPT + fusion (Eq. 8) back; identity without MPT."""

    keep: Tensor | None
    fusion: FusionMode = "softmax"

    def encode(self, x: Tensor) -> Tensor:
        return x if self.keep is None else mpt(x, self.keep)

    def decode(self, psi: Tensor) -> Tensor:
        return psi if self.keep is None else fuse(psi, self.keep, self.fusion)
