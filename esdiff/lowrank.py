"""Low-rank Hankel machinery: the LMaFit start (SPEC 3.2-3.3, LMaFit itself in ``esdiff.lmafit``), one
ADMM iteration (Eqs. 17-20), and the interpolation of solid holes the start blends in.
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
from esdiff.operators import Inpainting


def admm_step(
    Hx: Tensor, U: Tensor, V: Tensor, L: Tensor, mu: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One ADMM iteration on the Hankel matrices ``[B, m, n]`` (paper Eqs. 17-20, SPEC 3.4 "LR step").

    ``U = mu (Hx + L) V (I + mu V^T V)^-1`` (17); ``V = mu (Hx + L)^T U (I + mu U^T U)^-1`` with the new
    ``U`` (18); ``L = Hx - U V^T + L`` (19); ``X_LR = U V^T - L`` (20). Zero columns of ``U, V`` stay zero.
    Works in any dtype; fastest when ``Hx`` and ``L`` have the (transposed) memory layout of ``hankel``.
    """
    T = Hx + L
    eye = torch.eye(U.shape[-1], dtype=U.dtype, device=U.device)
    U = (T @ V) @ (mu * torch.linalg.inv(eye + mu * V.transpose(1, 2) @ V))
    V = (T.transpose(1, 2) @ U) @ (mu * torch.linalg.inv(eye + mu * U.transpose(1, 2) @ U))
    X_lr = (V @ U.transpose(1, 2)).transpose(1, 2)  # U V^T in the layout of ``hankel``
    L = T.sub_(X_lr)  # Hx + L - U V^T
    return U, V, L, X_lr.sub_(L)


@dataclass
class LowRankState:
    """ADMM variables that persist across sampler steps: ``H(x) ~ U V^T``, multiplier ``L``."""

    U: Tensor
    V: Tensor
    L: Tensor


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
    from scipy import ndimage
    from skimage.restoration import inpaint_biharmonic

    missing = ~known
    solid = ndimage.binary_erosion(missing, np.ones((window, window), dtype=bool), border_value=1)
    if not solid.any() or not known.any():
        return None
    near = ndimage.maximum_filter(solid, size=2 * reach + window) & missing
    return inpaint_biharmonic(observed, near, channel_axis=-1, split_into_regions=True)


def image_hole_fill(observed: np.ndarray, known: np.ndarray, cfg: LowRankConfig) -> Tensor | None:
    """``[C, H, W]`` (``observed``'s dtype): ``solid_hole_fill`` of the observed image for the start's
    ``fill`` when ``cfg.fill`` is ``biharmonic`` and the holes have a solid part; else None."""
    if cfg.fill != "biharmonic":
        return None
    filled = solid_hole_fill(observed * known[..., None], known, cfg.window, PATCH_SIZE)
    return None if filled is None else torch.from_numpy(filled).permute(2, 0, 1)


def init_low_rank(
    y_patches: Tensor,
    known_patches: Tensor,
    cfg: LowRankConfig,
    *,
    fill: Tensor | None = None,
    fill_given: Tensor | None = None,
    **options: Any,
) -> tuple[LowRankState, Tensor, LMaFitResult]:
    """The low-rank start (SPEC 3.2-3.3), shared by ESDiff's sampler and ALOHA: LMaFit on ``H(y D)``
    (known: ``H(D) == 1``) gives ``U, V``; ``x`` and the multiplier ``L0`` as ``cfg.init`` says.

    ``y_patches [B, C, P, P]``, ``known_patches [B, 1, P, P]`` (bool). With ``cfg.fill = "biharmonic"``,
    a patch with a Hankel row that holds no known entry blends each row with the row of ``H(fill)`` by
    the unknown fraction of its window (``fill``: an interpolation of the patches, for example cut from
    one of the whole image; default: ``interpolate`` per patch; ``fill_given [B]``: only those rows of
    ``fill`` are given, the others are interpolated per patch, as without ``fill``). Returns
    the state (in ``cfg.dtype``), the start ``x`` (known pixels exact) and the LMaFit result.
    ``options`` (``start_rank``, ``rank_step``, ``init``) go to ``lmafit``.
    """
    dtype = config_dtype(cfg)
    D = known_patches.to(dtype).expand_as(y_patches)
    y = y_patches.to(dtype) * D
    hy, hk = hankel(y, cfg.window), hankel(D, cfg.window) > 0.5
    fit = lmafit_for(hy, hk, cfg, **options)
    U, V = fit.U, fit.V
    UV = (V @ U.transpose(1, 2)).transpose(1, 2)  # U V^T in the memory layout of ``hankel``
    L0 = torch.zeros_like(UV) if cfg.init == "zero" else hy - UV
    estimate = UV - L0 if cfg.init == "lab" else UV
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
    return LowRankState(U, V, L0), x, fit
