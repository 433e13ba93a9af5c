"""Kernel regression inpainting (classic and iterative steering).

Takeda, Farsiu & Milanfar 2007, "Kernel regression for image processing and reconstruction",
IEEE Trans. Image Process. 16(2). Every pixel ``x`` gets a local polynomial fit
``f(x + d) ~ b0 + b1 u + b2 v + b3 u^2 + b4 u v + b5 v^2`` (``u, v = d / h``) to the known pixels of a
``(2 radius + 1)^2`` window, weighted by a Gaussian kernel (their Eq. 13-20); ``b0`` is the estimate.
The weighted normal equations of all pixels are accumulated offset by offset and solved at once.

The steering variant (their Section IV, Eq. 38-41) then refits ``steering_iterations`` times with a
kernel ``sqrt(det C_i) exp(-d^T C_i d / 2 h^2)`` per known sample ``i`` that follows the local edges,
``C_i`` coming from the gradients ``b1, b2`` of the previous fit (on a 0-255 intensity scale, as in
the paper). It measured better than the classic fit on random masks (docs/results.md), so it is on by
default (``steering_iterations=0`` gives the classic method).

Default settings (``DEFAULTS``): ``order=2``; ``h=None`` (classic bandwidth in pixels; None picks
``0.67 / sqrt(known fraction)``, 1.5 at 80 % missing), ``radius=None`` (window half-width; None picks
``ceil(3.5 h)``); ``ridge=1e-4`` (Tikhonov weight on the non-constant coefficients, relative to the
kernel mass); ``min_support=0.02`` (pixels with less known kernel mass, as a fraction of the full
kernel, are filled by normalised Gaussian convolution of growing width instead, e.g. inside large
holes); ``steering_iterations=2``; ``steering_h=None`` (None picks ``1.15 / sqrt(known fraction)``),
``steering_radius=None`` (None picks ``ceil(2.2 steering_h)``), ``window=5`` (gradient-structure
window), ``alpha=0.2`` (structure sensitivity), ``lambda1=1.0``, ``lambda2=0.01`` (regularisers of
elongation and scale). The bandwidth scales were measured on astronaut 256x256 at 80 % and 50 % missing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from esdiff.baselines.common import check_inputs, merge_settings

DEFAULTS: dict = {
    "order": 2,
    "h": None,
    "radius": None,
    "ridge": 1e-4,
    "min_support": 0.02,
    "steering_iterations": 2,
    "steering_h": None,
    "steering_radius": None,
    "window": 5,
    "alpha": 0.2,
    "lambda1": 1.0,
    "lambda2": 0.01,
}
_H_SCALE, _STEERING_H_SCALE = 0.67, 1.15  # auto bandwidths: scale / sqrt(fraction of known pixels)

_BASIS = [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2)]  # exponents (a, b) of u^a v^b
_SIZE = {0: 1, 1: 3, 2: 6}


def inpaint(
    image: np.ndarray,
    known: np.ndarray,
    *,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    **settings,
) -> np.ndarray:
    """Fill the pixels where ``known`` is False by kernel regression (deterministic; ``seed`` unused)."""
    cfg = merge_settings("kernel-regression", DEFAULTS, settings)
    if cfg["order"] not in _SIZE:
        raise ValueError(f"order must be 0, 1 or 2, got {cfg['order']}")
    image, known = check_inputs(image, known)
    observed = np.where(known[..., None], image, 0.0)
    total = 1 + cfg["steering_iterations"]
    density = max(known.mean(), 1e-3)
    h = cfg["h"] or _H_SCALE / np.sqrt(density)
    radius = cfg["radius"] or int(np.ceil(3.5 * h))
    steering_h = cfg["steering_h"] or _STEERING_H_SCALE / np.sqrt(density)
    steering_radius = cfg["steering_radius"] or int(np.ceil(2.2 * steering_h))

    est, grad, support = fit(observed, known, h=h, radius=radius, order=cfg["order"], ridge=cfg["ridge"])
    est = _fill_unsupported(est, observed, known, support / (2 * np.pi * h**2), h, cfg["min_support"])
    if progress is not None:
        progress(1, total)
    for i in range(cfg["steering_iterations"]):
        steer = steering_matrices(
            grad, window=cfg["window"], alpha=cfg["alpha"], lambda1=cfg["lambda1"], lambda2=cfg["lambda2"]
        )
        est, grad, support = fit(
            observed,
            known,
            h=steering_h,
            radius=steering_radius,
            order=cfg["order"],
            ridge=cfg["ridge"],
            steer=steer,
        )
        mass = support / (2 * np.pi * steering_h**2)
        est = _fill_unsupported(est, observed, known, mass, steering_h, cfg["min_support"])
        if progress is not None:
            progress(2 + i, total)
    return np.where(known[..., None], image, np.clip(est, 0.0, 1.0))


def fit(
    observed: np.ndarray,
    known: np.ndarray,
    *,
    h: float,
    radius: int,
    order: int = 2,
    ridge: float = 1e-4,
    steer: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local polynomial fit at every pixel (Takeda et al. Eq. 19-20).

    ``steer`` (HxWx4: C11, C12, C22, sqrt(det C)), when given, makes the kernel of each known sample
    its own steering kernel. Returns the estimate (HxWx3), the gradient (HxWx3x2, per pixel, along
    x = columns and y = rows; zeros for order 0) and the known kernel mass at each pixel (HxW).
    """
    n = _SIZE[order]
    basis = _BASIS[:n]
    H, W, _ = observed.shape
    r = radius
    m = np.pad(known.astype(np.float64), r)
    y = np.pad(observed, ((r, r), (r, r), (0, 0)))
    if steer is not None:
        steer = np.pad(steer, ((r, r), (r, r), (0, 0)), mode="edge")
    pairs = sorted({(a1 + a2, b1 + b2) for a1, b1 in basis for a2, b2 in basis})
    moments = {p: np.zeros((H, W)) for p in pairs}
    rhs = np.zeros((n, H, W, 3))
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            rows, cols = slice(r + dy, r + dy + H), slice(r + dx, r + dx + W)
            u, v = dx / h, dy / h
            if steer is None:
                w = m[rows, cols] * np.exp(-0.5 * (u * u + v * v))
            else:
                c = steer[rows, cols]
                q = c[..., 0] * u * u + 2 * c[..., 1] * u * v + c[..., 2] * v * v
                w = m[rows, cols] * c[..., 3] * np.exp(-0.5 * q)
            for a, b in pairs:
                coef = u**a * v**b
                if coef != 0.0:
                    moments[(a, b)] += coef * w
            wy = w[..., None] * y[rows, cols]
            for i, (a, b) in enumerate(basis):
                coef = u**a * v**b
                if coef != 0.0:
                    rhs[i] += coef * wy
    gram = np.empty((H, W, n, n))
    for i, (a1, b1) in enumerate(basis):
        for j, (a2, b2) in enumerate(basis):
            gram[..., i, j] = moments[(a1 + a2, b1 + b2)]
    support = moments[(0, 0)]
    damping = np.diag(np.r_[0.0, np.ones(n - 1)])  # the constant term is not damped
    gram += ridge * support[..., None, None] * damping + 1e-12 * np.eye(n)
    coefs = np.linalg.solve(gram, np.moveaxis(rhs, 0, 2))  # H x W x n x 3
    grad = np.zeros((H, W, 3, 2))
    if order >= 1:
        grad[..., 0] = coefs[:, :, 1, :] / h
        grad[..., 1] = coefs[:, :, 2, :] / h
    return coefs[:, :, 0, :], grad, support


def steering_matrices(
    grad: np.ndarray, *, window: int = 5, alpha: float = 0.5, lambda1: float = 1.0, lambda2: float = 0.01
) -> np.ndarray:
    """Steering covariances ``C_i = gamma_i U_theta diag(sigma_i, 1/sigma_i) U_theta^T`` (Eq. 38-41).

    From the colour gradient ``grad`` (HxWx3x2, intensities in [0, 1]; rescaled to 0-255 here) summed
    over channels in a ``window`` x ``window`` box. Returns HxWx4: C11, C12, C22, sqrt(det C).
    """
    from scipy.ndimage import uniform_filter

    g = 255.0 * grad
    j11 = uniform_filter((g[..., 0] ** 2).sum(-1), window, mode="nearest") * window**2
    j12 = uniform_filter((g[..., 0] * g[..., 1]).sum(-1), window, mode="nearest") * window**2
    j22 = uniform_filter((g[..., 1] ** 2).sum(-1), window, mode="nearest") * window**2
    half_trace = 0.5 * (j11 + j22)
    disc = np.sqrt((0.5 * (j11 - j22)) ** 2 + j12**2)
    s1 = np.sqrt(np.maximum(half_trace + disc, 0.0))
    s2 = np.sqrt(np.maximum(half_trace - disc, 0.0))
    theta = 0.5 * np.arctan2(2 * j12, j11 - j22)  # direction of the dominant gradient
    cos, sin = np.cos(theta), np.sin(theta)
    sigma = (s1 + lambda1) / (s2 + lambda1)
    gamma = ((s1 * s2 + lambda2) / window**2) ** alpha
    c11 = gamma * (sigma * cos**2 + sin**2 / sigma)
    c12 = gamma * (sigma - 1 / sigma) * cos * sin
    c22 = gamma * (sigma * sin**2 + cos**2 / sigma)
    return np.stack([c11, c12, c22, gamma], axis=-1)


def _fill_unsupported(
    est: np.ndarray, observed: np.ndarray, known: np.ndarray, mass: np.ndarray, h: float, min_support: float
) -> np.ndarray:
    """Normalised Gaussian convolution (of doubling width) where the local fit has too little data."""
    from scipy.ndimage import gaussian_filter

    todo = mass < min_support
    sigma = 2.0 * h
    est = est.copy()
    weight = known.astype(np.float64)
    while todo.any() and sigma < 4 * max(known.shape):
        den = gaussian_filter(weight, sigma, mode="constant")
        ok = todo & (den > 1e-3)
        for c in range(3):
            num = gaussian_filter(observed[..., c], sigma, mode="constant")
            est[ok, c] = num[ok] / den[ok]
        todo &= ~ok
        sigma *= 2
    return est
