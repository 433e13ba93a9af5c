"""The noise levels a sampler visits, and the settings a mask decides: how deep its holes are
(``deep_share``, ``hole_depth``), where its schedule ends (``end_time``) and the config it runs with
(``for_mask``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import Tensor

from esdiff.config import SamplerConfig
from esdiff.operators import within
from esdiff.sde import VESDE


def deep_share(known: np.ndarray) -> float:
    """The share of the missing pixels of ``known [H, W]`` that lie three or more pixels (Chebyshev) from
    every known pixel: near 0 for scattered holes and thin text, a large share for captions, solid boxes
    and brush strokes."""
    mask = torch.from_numpy(np.ascontiguousarray(known))[None, None]
    missing = int((~mask).sum())
    return float((~within(mask, 2)).sum()) / missing if missing else 0.0


def hole_depth(cfg: SamplerConfig, known: np.ndarray) -> float:
    """How deep the holes of ``known [H, W]`` count, 0 to 1: 0 below the first share of ``cfg.deep_holes``
    of missing pixels three or more pixels from every known one (``deep_share``), 1 above the second,
    linear between; 0 without ``deep_holes``."""
    if cfg.deep_holes is None:
        return 0.0
    low, high = cfg.deep_holes
    return min(max((deep_share(known) - low) / (high - low), 0.0), 1.0)


def end_time(cfg: SamplerConfig, known: np.ndarray, eps: float) -> float | None:
    """The last step's time for an image with mask ``known``: ``cfg.t_end``, moved towards ``eps`` by the
    mask's ``hole_depth`` (None: all the way, the SDE's own end)."""
    if cfg.t_end is None or cfg.deep_holes is None:
        return cfg.t_end
    depth = hole_depth(cfg, known)
    return None if depth == 1.0 else cfg.t_end + depth * (eps - cfg.t_end)


def for_mask(cfg: SamplerConfig, known: np.ndarray, eps: float) -> SamplerConfig:
    """``cfg`` as it runs on an image with mask ``known``: with ``deep_holes``, the schedule's end
    (``end_time``) and the plug-and-play noise (``pnp_noise`` times ``hole_depth``) set for that mask,
    the texture fill only where the holes count as deep at all (scattered pixels and thin text keep the
    sampler's own fill: their few pixels 3 px from a known one gain nothing from FSR's, which costs a
    whole FSR run), and the rule itself dropped, so a resolved config resolves to itself."""
    if cfg.deep_holes is None:
        return cfg
    depth = hole_depth(cfg, known)
    fill = cfg.fill if depth > 0 else "smooth"
    return replace(
        cfg, t_end=end_time(cfg, known, eps), pnp_noise=cfg.pnp_noise * depth, deep_holes=None, fill=fill
    )


def noise_schedule(
    sde: VESDE, steps: int, t_start: float = 1.0, t_end: float | None = None
) -> tuple[Tensor, Tensor]:
    """Levels ``sigma(t_i)`` on ``t = linspace(t_start, t_end, steps)`` (``t_end`` None: the SDE's eps) and
    the reverse-diffusion step variances ``sigma_i^2 - sigma_{i+1}^2`` (the last level steps to 0), as
    score_sde discretises."""
    end = sde.eps if t_end is None else t_end
    sigmas = sde.sigma(torch.linspace(t_start, end, steps, dtype=torch.float64))
    lower = torch.cat([sigmas[1:], sigmas.new_zeros(1)])
    return sigmas, sigmas**2 - lower**2
