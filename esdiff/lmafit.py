"""LMaFit (Wen, Yin & Zhang 2012, "Solving a low-rank factorization model for matrix completion by a
nonlinear successive over-relaxation algorithm", Math. Prog. Comp. 4:333-361): fits ``M ~ U V^T`` on the
known entries by alternating least squares with over-relaxation, raising the rank whenever the residual
stalls. It is batched over patches: every patch keeps its own rank (its active columns; the rest are
zero), step size, stopping test and iteration count, so a batch gives what each patch would alone.

Also the record of every run (``logged_fits``) and the entry point with a ``LowRankConfig``'s settings
(``lmafit_for``), which the low-rank start of ``esdiff.lowrank`` and ALOHA use.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from esdiff.config import LowRankConfig


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
    stuck: Tensor  # iterations in a row that did not lower the residual
    cap: Tensor  # the largest rank this patch may reach

    def take(self, keep: Tensor) -> _Work:
        """The patches where ``keep``; the scratch storage is new, not copied (it holds nothing live)."""
        kept = {f: getattr(self, f)[keep] for f in self.__dataclass_fields__ if f not in ("Rb", "XY")}
        return _Work(**kept, Rb=torch.empty_like(kept["R"]), XY=torch.empty_like(kept["R"]))


def _col_mask(rank: Tensor, width: int, dtype: torch.dtype) -> Tensor:
    return (torch.arange(width, device=rank.device) < rank[:, None]).to(dtype)[:, None, :]


def _pad_cols(t: Tensor, width: int) -> Tensor:
    return t if t.shape[-1] >= width else torch.nn.functional.pad(t, (0, width - t.shape[-1]))


def _pad_rows(t: Tensor, width: int) -> Tensor:
    return t if t.shape[-2] >= width else torch.nn.functional.pad(t, (0, 0, 0, width - t.shape[-2]))


def _start(
    data: Tensor, W: Tensor, k0: int, init: tuple[Tensor, Tensor] | None, flip: bool, cap: Tensor
) -> _Work:
    B, p, q = data.shape
    if init is None:  # X = 0, Y = eye(k, n): Z = data
        X = data.new_zeros(B, p, k0)
        # LMaFit's eye(k, n) picks the first k columns; a column with no known entry would leave X = 0
        # and the iteration stuck, so the first k columns that hold a known entry (the same eye whenever
        # the first k do).
        holds = (W.sum(1) > 0).to(torch.int8)
        first = torch.sort(holds, dim=1, descending=True, stable=True).indices[:, :k0]
        Y = data.new_zeros(B, k0, q).scatter_(2, first[:, :, None], 1.0)
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
    return _Work(idx, data, W, X, Y, R, *scratch, res, nrm, zero, zero + 1, zi + k0, zi, zi, zi, cap)


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
    patience: int = 10,
    sync_every: int = 1,
) -> LMaFitResult:
    """Complete ``M [B, m, n]`` from the entries where ``known [B, m, n]`` (bool) is True.

    ``rank=None``: adaptive rank (LMaFit ``est_rank = 2``) from ``start_rank``, +1 whenever the residual
    stalls (relative change < 10 tol), +2 from rank 50, at most ``max_rank`` (use ``min(m, n) - 1``);
    ``rank_step`` multiplies those steps (1 is LMaFit; larger ramps up faster, a cheaper option).
    An integer fixes the rank. The slow ramp matters: on Hankel matrices with most pixels missing, a high
    fixed rank or a high start rank fits the known entries and ruins the rest.
    Stops when ``relres < tol``, when the residual stalls at the final rank, after ``patience``
    iterations in a row that did not lower the residual (nothing left to fit), or after ``max_iter``
    iterations. ``init=(U0, V0)`` warm-starts from
    ``M ~ U0 V0^T`` (its width is the start rank). Solves on the transposed problem when ``m > n``
    (``X = 0, Y = eye(k, n)`` start, on the first ``k`` columns that hold a known entry).

    ``sync_every``: iterations between the host's looks at the device (which patches stopped, how wide
    the rank has grown). 1 looks every iteration. On a GPU a larger value keeps the device busy: a patch
    that stops is frozen in place (its result is what it would be alone) until the next look drops it,
    and the factors carry room for the rank to grow until then (zero columns, which change the rounding
    of the QR steps but not what they compute).
    """
    if M.ndim != 3 or known.shape != M.shape:
        raise ValueError(f"expected M and known of one shape [B, m, n], got {M.shape} and {known.shape}")
    flip = M.shape[1] > M.shape[2]
    W = (known.transpose(1, 2) if flip else known).to(dtype).contiguous()
    data = (M.transpose(1, 2) if flip else M).to(dtype) * W
    B, p, q = data.shape
    adaptive = rank is None
    k0 = int(init[0].shape[-1]) if init is not None else (start_rank if rank is None else rank)
    if not 1 <= k0 <= min(p, q) or rank_step < 1 or sync_every < 1:
        raise ValueError(
            f"need a start rank in [1, {min(p, q)}] (got {k0}), rank_step >= 1 and sync_every >= 1"
        )
    start = time.perf_counter()
    cap = torch.full((B,), max_rank, dtype=torch.int64, device=data.device)
    w = _start(data, W, k0, init, flip, cap)
    out: list[tuple[Tensor, Tensor]] = [(data, data)] * B
    ranks, iters, relres = torch.zeros_like(w.rank), torch.zeros_like(w.rank), data.new_zeros(B)
    room = min(2 * rank_step * (sync_every - 1), max_rank)  # growth the factors hold between looks
    frozen = torch.zeros(B, dtype=torch.bool, device=data.device)  # stopped, not yet dropped
    stop_rank = torch.zeros_like(w.rank)
    n = 0
    while w.idx.numel():
        n += 1
        look = n % sync_every == 0
        live = ~frozen
        w.it, w.itr_rank = w.it + live, w.itr_rank + live
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
            grow = live & (reschg < 10 * tol) & (w.rank < w.cap) & (w.itr_rank > 1)
            step = torch.where(w.rank < 50, rank_step, 2 * rank_step)
            w.rank = torch.where(grow, torch.minimum(w.rank + step, w.cap), w.rank)
            w.itr_rank = torch.where(grow, 0, w.itr_rank)
            if look:
                width = min(max(int(w.rank.max()) + room, X.shape[-1]), p)
                X, Y, w.X, w.Y = (
                    _pad_cols(X, width),
                    _pad_rows(Y, width),
                    _pad_cols(w.X, width),
                    _pad_rows(w.Y, width),
                )
        # Over-relaxation weight: grow it while progress is slow; reset it and revert when res rises.
        # A frozen patch counts as bad: it keeps its iterate, and its weights are put back below.
        bad = (ratio >= 1) | frozen
        stuck = torch.where(bad, w.stuck + 1, 0)
        slow = ~bad & (ratio > 0.7)
        inc = torch.where(bad, torch.maximum(0.1 * w.alf, 0.1 * w.inc), w.inc)
        inc = torch.where(slow, torch.maximum(inc, 0.25 * w.alf), inc)
        alf = torch.where(bad, 0.0, torch.where(slow, w.alf + inc, w.alf))
        w.stuck, w.inc, w.alf = (
            torch.where(frozen, old, new) for old, new in ((w.stuck, stuck), (w.inc, inc), (w.alf, alf))
        )
        back = bad[:, None, None]  # back to the last accepted iterate and its rank
        X, Y = torch.where(back, w.X, X), torch.where(back, w.Y, Y)
        if sync_every > 1 or bool(bad.any()):  # a look at the device costs nothing when it looks anyway
            Rn, resn = torch.where(back, w.R, Rn, out=Rn), torch.where(bad, w.res, resn)
        w.rank = torch.where(bad, rank_now, w.rank)
        w.X, w.Y, w.R, w.Rb, w.res = X, Y, Rn, w.R, resn
        rel = w.res / w.nrm
        stalled = (reschg < 0.5 * tol) & (w.itr_rank > 5)
        stop = live & ((rel < tol) | stalled | (w.stuck >= patience) | (w.it >= max_iter))
        stop_rank = torch.where(stop, rank_now, stop_rank)  # columns grown this iteration are still zero
        frozen = frozen | stop
        if look and bool(frozen.any()):
            for j in frozen.nonzero()[:, 0].tolist():
                i, r = int(w.idx[j]), int(stop_rank[j])
                out[i] = (w.X[j, :, :r], w.Y[j, :r, :].T)
                ranks[i], iters[i], relres[i] = r, w.it[j], rel[j]
            keep = ~frozen
            w, frozen, stop_rank = w.take(keep), frozen[keep], stop_rank[keep]
    width = int(ranks.max())
    Xs = torch.stack([_pad_cols(x, width) for x, _ in out])
    Ys = torch.stack([_pad_cols(y, width) for _, y in out])  # [B, q, r]
    U, V = (Ys, Xs) if flip else (Xs, Ys)
    return LMaFitResult(U, V, ranks, iters, relres, time.perf_counter() - start)


def config_dtype(cfg: LowRankConfig) -> torch.dtype:
    """The precision of LMaFit and ADMM: ``cfg.dtype`` (float64 by default, SPEC 3.4)."""
    return torch.float32 if cfg.dtype == "float32" else torch.float64


DEVICE_SYNC_EVERY = 8
"""``lmafit``'s ``sync_every`` on a GPU: a patch stays at most 7 iterations frozen before it is dropped."""

_FIT_LOG: ContextVar[list[LMaFitResult] | None] = ContextVar("lmafit_log", default=None)


@contextmanager
def logged_fits() -> Iterator[list[LMaFitResult]]:
    """Within the block, every LMaFit run of ``lmafit_for`` (ESDiff's start, ALOHA) is appended to the
    list it yields, so a benchmark can report iterations and ranks per patch beside its seconds."""
    log: list[LMaFitResult] = []
    token = _FIT_LOG.set(log)
    try:
        yield log
    finally:
        _FIT_LOG.reset(token)


def fit_summary(fits: list[LMaFitResult]) -> dict[str, float]:
    """Patches, mean and largest LMaFit iterations and rank per patch, and seconds over ``fits``."""
    if not fits:
        return {}
    iterations = torch.cat([f.iterations for f in fits]).double()
    ranks = torch.cat([f.ranks for f in fits]).double()
    return {
        "patches": int(iterations.numel()),
        "iterations_mean": float(iterations.mean()),
        "iterations_max": int(iterations.max()),
        "rank_mean": float(ranks.mean()),
        "rank_max": int(ranks.max()),
        "seconds": float(sum(f.seconds for f in fits)),
    }


def lmafit_for(hy: Tensor, hk: Tensor, cfg: LowRankConfig, **options: Any) -> LMaFitResult:
    """LMaFit on Hankel matrices with the settings of ``cfg`` (``options`` go to ``lmafit``), logged
    inside ``logged_fits``. Off the CPU the host looks at the device every ``DEVICE_SYNC_EVERY``
    iterations, not every one."""
    options.setdefault("sync_every", 1 if hy.device.type == "cpu" else DEVICE_SYNC_EVERY)
    fit = lmafit(
        hy,
        hk,
        rank=cfg.rank,
        tol=cfg.lmafit_tol,
        max_iter=cfg.lmafit_max_iter,
        max_rank=cfg.max_rank,
        dtype=config_dtype(cfg),
        **options,
    )
    log = _FIT_LOG.get()
    if log is not None:
        log.append(fit)
    return fit
