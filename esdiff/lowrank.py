"""Low-rank Hankel machinery: the LMaFit start (SPEC 3.2-3.3, LMaFit itself in ``esdiff.lmafit``), one
ADMM iteration (Eqs. 17-20), the interpolation of solid holes the start blends in, and the smooth trend
the completion of deep holes runs around.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from esdiff.config import PATCH_SIZE, LowRankConfig
from esdiff.hankel import hankel, hankel_pinv
from esdiff.lmafit import LMaFitResult, config_dtype, lmafit_for
from esdiff.operators import Inpainting, within


def admm_step(
    Hx: Tensor, U: Tensor, V: Tensor, L: Tensor, mu: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One ADMM iteration on the Hankel matrices ``[B, m, n]`` (paper Eqs. 17-20, SPEC 3.4 "LR step").

    ``U = mu (Hx + L) V (I + mu V^T V)^-1`` (17); ``V = mu (Hx + L)^T U (I + mu U^T U)^-1`` with the new
    ``U`` (18); ``L = Hx - U V^T + L`` (19); ``X_LR = U V^T - L`` (20). Zero columns of ``U, V`` stay zero.
    Works in any dtype; fastest when ``Hx`` and ``L`` have the (transposed) memory layout of ``hankel``.
    """
    T = Hx + L
    U = _ridge(T @ V, V, mu)
    V = _ridge(T.transpose(1, 2) @ U, U, mu)
    X_lr = (V @ U.transpose(1, 2)).transpose(1, 2)  # U V^T in the layout of ``hankel``
    L = T.sub_(X_lr)  # Hx + L - U V^T
    return U, V, L, X_lr.sub_(L)


def _ridge(B: Tensor, F: Tensor, mu: float) -> Tensor:
    """``mu B (I + mu F^T F)^-1`` by a Cholesky solve (the matrix is symmetric positive definite): MKL's
    batched LU inverse, used before, fails under two threads ("Parameter 6 was incorrect on entry to
    SLASWP") and then hangs or raises "singular"."""
    eye = torch.eye(F.shape[-1], dtype=F.dtype, device=F.device)
    chol = torch.linalg.cholesky(eye + mu * F.transpose(1, 2) @ F)
    return mu * torch.cholesky_solve(B.transpose(1, 2), chol).transpose(1, 2)


@dataclass
class LowRankState:
    """ADMM variables that persist across sampler steps: ``H(x) ~ U V^T``, multiplier ``L``."""

    U: Tensor
    V: Tensor
    L: Tensor
    trend: Tensor | None = None
    """``[B, C, P, P]``: the completion is of ``x - trend`` (``patch_trend``); None: of ``x``."""


def interpolate(y_patches: Tensor, known_patches: Tensor, which: Tensor | None = None) -> Tensor:
    """Biharmonic interpolation of each patch ``[B, C, P, P]`` from its known pixels (scikit-image's
    ``inpaint_biharmonic``), on the patches where ``which [B]`` is True (all if None); the others, and
    patches with no known pixel, come back as given."""
    from skimage.restoration import inpaint_biharmonic

    out = y_patches.clone()
    for b in range(y_patches.shape[0]):
        missing = ~known_patches[b, 0].cpu().numpy()
        if (which is not None and not bool(which[b])) or missing.all() or not missing.any():
            continue
        image = y_patches[b].permute(1, 2, 0).cpu().double().numpy()
        filled = inpaint_biharmonic(image, missing, channel_axis=-1)
        out[b] = torch.from_numpy(filled).permute(2, 0, 1).to(out)
    return out


def solid_hole_fill(observed: np.ndarray, known: np.ndarray, window: int, reach: int) -> np.ndarray | None:
    """A biharmonic interpolation of the image ``observed [H, W, C]`` near the solid parts of its holes,
    for ``init_low_rank(fill=...)`` on patches cut from it; None where the holes have no solid part.

    A hole is solid where a ``window x window`` Hankel window holds no known pixel: the low-rank
    completion has nothing to go on there, and an interpolation of the patch alone fails once the hole
    fills the patch. The missing pixels within ``reach`` (the patch size) of a solid window are
    interpolated, from the known pixels around them, so a random or thin-text mask costs nothing."""
    from skimage.restoration import inpaint_biharmonic

    near = solid_hole_region(known, window, reach)
    if near is None:
        return None
    return inpaint_biharmonic(observed, near, channel_axis=-1, split_into_regions=True)


def solid_hole_region(known: np.ndarray, window: int, reach: int) -> np.ndarray | None:
    """``[H, W]`` bool: the missing pixels ``solid_hole_fill`` interpolates, those within ``reach`` of a
    ``window x window`` window that holds no known pixel; None where there is no such window."""
    from scipy import ndimage

    missing = ~known
    solid = ndimage.binary_erosion(missing, np.ones((window, window), dtype=bool), border_value=1)
    if not solid.any() or not known.any():
        return None
    return ndimage.maximum_filter(solid, size=2 * reach + window) & missing


def image_hole_fill(observed: np.ndarray, known: np.ndarray, cfg: LowRankConfig) -> Tensor | None:
    """``[C, H, W]`` (``observed``'s dtype): ``solid_hole_fill`` of the observed image for the start's
    ``fill`` when ``cfg.fill`` is ``biharmonic`` and the holes have a solid part; else None."""
    if cfg.fill != "biharmonic":
        return None
    filled = solid_hole_fill(observed * known[..., None], known, cfg.window, PATCH_SIZE)
    return None if filled is None else torch.from_numpy(filled).permute(2, 0, 1)


def deep_pixels(known: np.ndarray, window: int) -> np.ndarray:
    """``[H, W]`` bool: the missing pixels ``window`` or more pixels (Chebyshev) from every known one, so
    that no ``window x window`` Hankel row through them holds a known entry: only the completion's
    nuclear norm decides them, and it pulls them towards zero (black)."""
    mask = torch.from_numpy(np.ascontiguousarray(known))[None, None]
    return (~within(mask, window - 1))[0, 0].numpy()


def image_trend(
    observed: np.ndarray, known: np.ndarray, holes: Tensor | None, cfg: LowRankConfig
) -> tuple[Tensor, Tensor] | None:
    """``([C, H, W], [1, H, W] bool)``: the smooth trend the completion of deep holes runs around and the
    ``deep_pixels`` that call for it; None when ``cfg.trend`` is None or no pixel is deep.

    The trend is a normalised Gaussian blur (standard deviation ``cfg.trend`` pixels) of the known
    pixels and of the solid-hole fill ``holes`` (``image_hole_fill``, where given) over the pixels it
    fills: the known image's large-scale shading, and the interpolation's inside solid holes. It is
    computed only within a patch and the blur's reach of the deep pixels (zero farther away, where no
    patch that holds a deep pixel reaches)."""
    if cfg.trend is None:
        return None
    deep = deep_pixels(known, cfg.window)
    if not deep.any():
        return None
    from scipy import ndimage

    near = solid_hole_region(known, cfg.window, PATCH_SIZE) if holes is not None else None
    weight = (known if near is None else known | near).astype(np.float64)
    image = observed if holes is None else holes.permute(1, 2, 0).double().numpy()
    # Only patches with a deep pixel use the trend: blur the box they lie in, with the blur's reach around
    # it (gaussian_filter stops at 4 sigma), which gives those pixels what a blur of the whole image does.
    reach = PATCH_SIZE + int(4 * cfg.trend) + 1
    rows, cols = np.nonzero(deep.any(1))[0], np.nonzero(deep.any(0))[0]
    box = np.s_[
        max(rows[0] - reach, 0) : rows[-1] + reach + 1, max(cols[0] - reach, 0) : cols[-1] + reach + 1
    ]
    weight, image = weight[box], image[box]
    trend = np.zeros((image.shape[-1], *known.shape), dtype=np.float32)
    total = np.maximum(ndimage.gaussian_filter(weight, cfg.trend), 1e-12)
    for c in range(image.shape[-1]):
        trend[c][box] = ndimage.gaussian_filter(image[..., c] * weight, cfg.trend) / total
    return torch.from_numpy(trend), torch.from_numpy(deep)[None]


def patch_trend(trend: Tensor | None, deep: Tensor | None) -> Tensor | None:
    """Patches ``[B, C, P, P]`` of ``image_trend``'s trend kept where the patch holds a deep pixel (``deep
    [B, 1, P, P]``) and zero elsewhere, so each patch's completion is of the image or of the image less
    the trend as a whole; None when no patch holds one."""
    if trend is None or deep is None:
        return None
    gate = deep.flatten(1).any(1)
    if not bool(gate.any()):
        return None
    return trend * gate[:, None, None, None].to(trend.dtype)


def svd_start(x_patches: Tensor, cfg: LowRankConfig, trend: Tensor | None = None) -> LowRankState:
    """The ADMM state of a complete start ``x_patches [B, C, P, P]`` (the coarse pass's fill, a
    biharmonic fill) in place of LMaFit's: ``U, V`` from a truncated SVD ``H(x) ~ P S Q^T`` of each patch's
    Hankel matrix at the fewest singular values that hold ``cfg.svd_energy`` of its squared norm (at most
    ``cfg.max_rank``; narrower patches padded with zero columns, which ADMM keeps zero); the multiplier
    ``L0 = 0``. The factors are balanced, ``U = P S^1/2``, ``V = Q S^1/2``, near the fixed point of the ADMM
    step (Eqs. 17-18), so the first step keeps the start; with LMaFit's orthonormal ``U`` it halves ``U
    V^T`` and returns about zero. ``trend`` (``patch_trend``): the SVD is of the patches less the trend,
    which the state keeps. The SVD comes from the eigenvectors of the small ``C w^2 x C w^2`` Gram matrix
    ``H^T H``."""
    dtype = config_dtype(cfg)
    base = None if trend is None else trend.to(dtype)
    x = x_patches.to(dtype) if base is None else x_patches.to(dtype) - base
    H = hankel(x, cfg.window)
    gram = (H.transpose(1, 2) @ H).double()
    values, vectors = torch.linalg.eigh(gram)  # ascending
    values, vectors = values.flip(-1).clamp_min(0), vectors.flip(-1)
    share = values.cumsum(-1) / values.sum(-1, keepdim=True).clamp_min(1e-30)
    ranks = ((share < cfg.svd_energy).sum(-1) + 1).clamp(1, min(cfg.max_rank, values.shape[-1]))
    width = int(ranks.max())
    keep = (torch.arange(width) < ranks[:, None]).to(dtype)[:, None, :]
    root = values[:, :width].sqrt().sqrt().to(dtype)  # S^1/2
    Q = vectors[:, :, :width].to(dtype)
    V = Q * root[:, None, :] * keep
    U = (H @ Q) / root.clamp_min(1e-12)[:, None, :] * keep  # H Q S^-1/2 = P S^1/2
    return LowRankState(U, V, torch.zeros_like(H), trend)


def init_low_rank(
    y_patches: Tensor,
    known_patches: Tensor,
    cfg: LowRankConfig,
    *,
    fill: Tensor | None = None,
    fill_given: Tensor | None = None,
    trend: Tensor | None = None,
    **options: Any,
) -> tuple[LowRankState, Tensor, LMaFitResult]:
    """The low-rank start (SPEC 3.2-3.3), shared by ESDiff's sampler and ALOHA: LMaFit on ``H(y D)``
    (known: ``H(D) == 1``) gives ``U, V``; the start is ``x = DC(H^+(U V^T))`` with the multiplier
    ``L0 = 0`` (SPEC 3.3).

    ``y_patches [B, C, P, P]``, ``known_patches [B, 1, P, P]`` (bool). With ``cfg.fill = "biharmonic"``,
    a patch with a Hankel row that holds no known entry blends each row with the row of ``H(fill)`` by
    the unknown fraction of its window (``fill``: an interpolation of the patches, for example cut from
    one of the whole image; default: ``interpolate`` per patch; ``fill_given [B]``: only those rows of
    ``fill`` are given, the others are interpolated per patch, as without ``fill``). Returns
    the state (in ``cfg.dtype``), the start ``x`` (known pixels exact) and the LMaFit result.
    ``trend`` (``patch_trend``): the completion is of the patches less the trend, which is added back, and
    the state keeps it for the ADMM steps. ``options`` (``start_rank``, ``rank_step``, ``init``) go to
    ``lmafit``.
    """
    dtype = config_dtype(cfg)
    D = known_patches.to(dtype).expand_as(y_patches)
    base = None if trend is None else trend.to(dtype)
    y = y_patches.to(dtype) * D if base is None else (y_patches.to(dtype) - base) * D
    if fill is not None and base is not None:
        fill = fill.to(dtype) - base
    hy, hk = hankel(y, cfg.window), hankel(D, cfg.window) > 0.5
    fit = lmafit_for(hy, hk, cfg, **options)
    U, V = fit.U, fit.V
    UV = (V @ U.transpose(1, 2)).transpose(1, 2)  # U V^T in the memory layout of ``hankel``
    L0 = torch.zeros_like(UV)
    estimate = UV
    holed = (~hk.any(2)).any(1)  # [B]: patches with a window that holds no known pixel
    if cfg.fill == "biharmonic" and bool(holed.any()):
        if fill is None:
            fill = interpolate(y, known_patches, holed)
        elif fill_given is not None:
            own = interpolate(y, known_patches, holed & ~fill_given)
            fill = torch.where(fill_given[:, None, None, None], fill.to(dtype), own)
        # in those patches, each window's estimate by the fraction of it that is known, the rest from fill
        share = torch.where(holed[:, None], hk.sum(2).to(dtype) / hk.shape[2], 1.0)[:, :, None]
        estimate = torch.lerp(hankel(fill.to(dtype), cfg.window), estimate, share)
    size = (y.shape[-2], y.shape[-1])
    x = Inpainting(known_patches).prox_l2(hankel_pinv(estimate, cfg.window, size), y)
    if base is not None:
        x = x + base
    return LowRankState(U, V, L0, trend), x, fit
