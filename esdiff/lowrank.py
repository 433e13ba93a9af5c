"""Low-rank Hankel machinery: the LMaFit start (SPEC 3.2-3.3) and one ADMM iteration (Eqs. 17-20).

LMaFit (Wen, Yin & Zhang 2012, "Solving a low-rank factorization model for matrix completion by a
nonlinear successive over-relaxation algorithm", Math. Prog. Comp. 4:333-361) fits ``M ~ U V^T`` on the
known entries by alternating least squares with over-relaxation, raising the rank whenever the residual
stalls. It is batched over patches: every patch keeps its own rank (its active columns; the rest are
zero), step size, stopping test and iteration count, so a batch gives what each patch would alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from esdiff.config import LowRankConfig
from esdiff.hankel import hankel, hankel_pinv
from esdiff.operators import Inpainting


@dataclass
class LMaFitResult:
    """Factors of ``M ~ U V^T`` per patch; columns past a patch's rank are zero."""

    U: Tensor
    """``[B, m, r]``."""
    V: Tensor
    """``[B, n, r]``."""
    ranks: Tensor
    """``[B]`` int64: the real rank of each patch (its non-zero columns)."""
    iterations: Tensor
    """``[B]`` int64: LMaFit iterations each patch ran."""
    relres: Tensor
    """``[B]``: final ``||P(M - U V^T)|| / max(1, ||P(M)||)`` on the known entries."""
    seconds: float = 0.0
    """Wall time of the whole batch."""


@dataclass
class _Work:
    """LMaFit state of the patches still iterating (all ``[b, ...]``), on the ``p x q`` (p <= q) problem.

    The completion ``Z`` is kept as ``X Y + (1 + alf) R``: ``X Y`` off the known entries and
    ``data + alf R`` on them (LMaFit's over-relaxed ``Z(Known) = data + alf Res``), never stored.
    """

    idx: Tensor  # which patches of the batch
    M: Tensor  # data on known entries, zero elsewhere
    W: Tensor  # known entries as 0/1 in the compute dtype
    X: Tensor  # [b, p, K], orthonormal active columns, zero past the rank
    Y: Tensor  # [b, K, q]
    R: Tensor  # residual M - W * (X Y)
    Rb: Tensor  # spare storage for the next R
    XY: Tensor  # scratch storage for X Y
    res: Tensor
    nrm: Tensor  # max(1, ||M||)
    alf: Tensor
    inc: Tensor
    rank: Tensor
    itr_rank: Tensor
    it: Tensor

    def take(self, keep: Tensor) -> _Work:
        return _Work(*(getattr(self, f)[keep] for f in self.__dataclass_fields__))


def _col_mask(rank: Tensor, width: int, dtype: torch.dtype) -> Tensor:
    return (torch.arange(width, device=rank.device) < rank[:, None]).to(dtype)[:, None, :]


def _pad_cols(t: Tensor, width: int) -> Tensor:
    return t if t.shape[-1] >= width else torch.nn.functional.pad(t, (0, width - t.shape[-1]))


def _pad_rows(t: Tensor, width: int) -> Tensor:
    return t if t.shape[-2] >= width else torch.nn.functional.pad(t, (0, 0, 0, width - t.shape[-2]))


def _start(data: Tensor, W: Tensor, k0: int, init: tuple[Tensor, Tensor] | None, flip: bool) -> _Work:
    B, p, q = data.shape
    if init is None:  # X = 0, Y = eye(k, n): Z = data
        X = data.new_zeros(B, p, k0)
        Y = torch.eye(k0, q, dtype=data.dtype, device=data.device).expand(B, k0, q).clone()
        R = data.clone()
    else:
        U0, V0 = (t.to(data.dtype) for t in init)
        X, Y = (V0, U0.transpose(1, 2)) if flip else (U0, V0.transpose(1, 2))
        R = torch.addcmul(data, X @ Y, W, value=-1.0)
    nrm = torch.linalg.vector_norm(data, dim=(1, 2)).clamp_min(1.0)
    res = nrm.clone() if init is None else torch.linalg.vector_norm(R, dim=(1, 2))
    zero, zi = data.new_zeros(B), torch.zeros(B, dtype=torch.int64, device=data.device)
    idx = torch.arange(B, device=data.device)
    scratch = (torch.empty_like(R), torch.empty_like(R))
    return _Work(idx, data, W, X, Y, R, *scratch, res, nrm, zero, zero + 1, zi + k0, zi, zi)


def lmafit(
    M: Tensor,
    known: Tensor,
    *,
    rank: int | None = None,
    tol: float = 1.25e-4,
    max_iter: int = 3000,
    max_rank: int = 191,
    dtype: torch.dtype = torch.float64,
    start_rank: int = 1,
    rank_step: int = 1,
    init: tuple[Tensor, Tensor] | None = None,
) -> LMaFitResult:
    """Complete ``M [B, m, n]`` from the entries where ``known [B, m, n]`` (bool) is True.

    ``rank=None``: adaptive rank (LMaFit ``est_rank = 2``) from ``start_rank``, +1 whenever the residual
    stalls (relative change < 10 tol), +2 from rank 50, at most ``max_rank`` (use ``min(m, n) - 1``);
    ``rank_step`` multiplies those steps (1 is LMaFit; larger ramps up faster, a cheaper option).
    An integer fixes the rank. The slow ramp matters: on Hankel matrices with 80 % of the pixels missing,
    a fixed rank of 50 or a start at rank 40 fits the known entries and ruins the rest (ALOHA at 11 dB).
    Stops when ``relres < tol``, when the residual stalls at the final rank,
    or after ``max_iter`` iterations. ``init=(U0, V0)`` warm-starts from ``M ~ U0 V0^T`` (its width is
    the start rank). Solves on the transposed problem when ``m > n`` (``X = 0, Y = eye(k, n)`` start).
    """
    if M.ndim != 3 or known.shape != M.shape:
        raise ValueError(f"expected M and known of one shape [B, m, n], got {M.shape} and {known.shape}")
    flip = M.shape[1] > M.shape[2]
    W = (known.transpose(1, 2) if flip else known).to(dtype).contiguous()
    data = (M.transpose(1, 2) if flip else M).to(dtype) * W
    B, p, q = data.shape
    adaptive = rank is None
    k0 = int(init[0].shape[-1]) if init is not None else (start_rank if rank is None else rank)
    if not 1 <= k0 <= min(p, q) or rank_step < 1:
        raise ValueError(f"need a start rank in [1, {min(p, q)}] (got {k0}) and rank_step >= 1")
    start = time.perf_counter()
    w = _start(data, W, k0, init, flip)
    out: list[tuple[Tensor, Tensor]] = [(data, data)] * B
    ranks, iters, relres = torch.zeros_like(w.rank), torch.zeros_like(w.rank), data.new_zeros(B)
    while w.idx.numel():
        w.it, w.itr_rank = w.it + 1, w.itr_rank + 1
        # Alternating least squares with Z = X Y + s R (the DoQR branch): X = orth(Z Y^T), Y = X^T Z.
        s = (1.0 + w.alf)[:, None, None]
        Yt = w.Y.transpose(1, 2)
        X = torch.baddbmm(w.X @ (w.Y @ Yt), w.R, Yt * s)
        X = torch.linalg.qr(X).Q * _col_mask(w.rank, X.shape[-1], dtype)
        Xt = X.transpose(1, 2)
        Y = torch.baddbmm((Xt @ w.X) @ w.Y, Xt * s, w.R)
        Rn = torch.addcmul(w.M, torch.bmm(X, Y, out=w.XY), w.W, value=-1.0, out=w.Rb)
        resn = torch.linalg.vector_norm(Rn, dim=(1, 2))
        ratio = resn / w.res
        reschg = (1.0 - ratio).abs()
        rank_now = w.rank
        if adaptive:  # raise the rank by appending zero columns: the next QR brings them alive
            grow = (reschg < 10 * tol) & (w.rank < max_rank) & (w.itr_rank > 1)
            step = torch.where(w.rank < 50, rank_step, 2 * rank_step)
            w.rank = torch.where(grow, (w.rank + step).clamp_max(max_rank), w.rank)
            w.itr_rank = torch.where(grow, 0, w.itr_rank)
            width = max(int(w.rank.max()), X.shape[-1])
            X, Y, w.X, w.Y = (
                _pad_cols(X, width),
                _pad_rows(Y, width),
                _pad_cols(w.X, width),
                _pad_rows(w.Y, width),
            )
        # Over-relaxation weight: grow it while progress is slow; reset it and revert when res rises.
        bad = ratio >= 1
        slow = ~bad & (ratio > 0.7)
        w.inc = torch.where(bad, torch.maximum(0.1 * w.alf, 0.1 * w.inc), w.inc)
        w.inc = torch.where(slow, torch.maximum(w.inc, 0.25 * w.alf), w.inc)
        w.alf = torch.where(bad, 0.0, torch.where(slow, w.alf + w.inc, w.alf))
        for j in bad.nonzero()[:, 0].tolist():  # back to the last accepted iterate and its rank
            X[j], Y[j], resn[j] = w.X[j], w.Y[j], w.res[j]
            Rn[j].copy_(w.R[j])
        w.rank = torch.where(bad, rank_now, w.rank)
        w.X, w.Y, w.R, w.Rb, w.res = X, Y, Rn, w.R, resn
        rel = w.res / w.nrm
        stop = (rel < tol) | ((reschg < 0.5 * tol) & (w.itr_rank > 5)) | (w.it >= max_iter)
        if bool(stop.any()):
            for j in stop.nonzero()[:, 0].tolist():
                i, r = int(w.idx[j]), int(rank_now[j])  # columns grown in this iteration are still zero
                out[i] = (w.X[j, :, :r], w.Y[j, :r, :].T)
                ranks[i], iters[i], relres[i] = r, w.it[j], rel[j]
            w = w.take(~stop)
    width = int(ranks.max())
    Xs = torch.stack([_pad_cols(x, width) for x, _ in out])
    Ys = torch.stack([_pad_cols(y, width) for _, y in out])  # [B, q, r]
    U, V = (Ys, Xs) if flip else (Xs, Ys)
    return LMaFitResult(U, V, ranks, iters, relres, time.perf_counter() - start)


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


def config_dtype(cfg: LowRankConfig) -> torch.dtype:
    """The precision of LMaFit and ADMM: ``cfg.dtype`` (float64 by default, SPEC 3.4)."""
    return torch.float32 if cfg.dtype == "float32" else torch.float64


def lmafit_for(hy: Tensor, hk: Tensor, cfg: LowRankConfig, **options: Any) -> LMaFitResult:
    """LMaFit on Hankel matrices with the settings of ``cfg`` (``options`` go to ``lmafit``)."""
    return lmafit(
        hy,
        hk,
        rank=cfg.rank,
        tol=cfg.lmafit_tol,
        max_iter=cfg.lmafit_max_iter,
        max_rank=cfg.max_rank,
        dtype=config_dtype(cfg),
        **options,
    )


def init_low_rank(
    y_patches: Tensor, known_patches: Tensor, cfg: LowRankConfig, **options: Any
) -> tuple[LowRankState, Tensor, LMaFitResult]:
    """SPEC 3.2-3.3: LMaFit on ``H(y D)`` (known: ``H(D) == 1``), ``L0 = H(y D) - U V^T``.

    ``y_patches [B, C, P, P]``, ``known_patches [B, 1, P, P]`` (bool). Returns the state (in
    ``cfg.dtype``), the start ``x = DC(H^+(U V^T - L0))`` and the LMaFit result (ranks, iterations).
    ``options`` (``start_rank``, ``rank_step``, ``init``) go to ``lmafit``.
    """
    dtype = config_dtype(cfg)
    D = known_patches.to(dtype).expand_as(y_patches)
    y = y_patches.to(dtype) * D
    hy = hankel(y, cfg.window)
    fit = lmafit_for(hy, hankel(D, cfg.window) > 0.5, cfg, **options)
    U, V = fit.U, fit.V
    UV = (V @ U.transpose(1, 2)).transpose(1, 2)
    L0 = hy - UV
    x = Inpainting(known_patches).prox_l2(hankel_pinv(UV - L0, cfg.window), y)
    return LowRankState(U, V, L0), x, fit
