"""Iterative inpainting (the paper's Algorithm 1) as a list of short steps over batched patches.

One sampler step at noise level ``sigma_i`` runs the step list once. ESDiff's list (SPEC 3.4) is
``[predictor, low_rank, data_consistency, corrector, low_rank, data_consistency]``; the ablations of the
paper's Table IV are other lists (``STEP_LISTS``), each saying whether it needs the low-rank state.

The default list, ``pnp-near``, is plug-and-play ADMM: one ADMM iteration, then the prior's denoised
estimate ``D(x, sigma)`` near the known pixels in place of ADMM's x-update.

Randomness comes from one generator per patch, seeded from the image's seed and the patch index, so a
result does not depend on how patches are batched. The generators live on the device the patches are
on, so on a GPU the noise is drawn there, never copied over (a GPU draws other numbers than the CPU for
the same seed; each device is deterministic on its own).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from esdiff.config import SamplerConfig
from esdiff.hankel import hankel, hankel_pinv
from esdiff.lowrank import LowRankState, admm_step, image_hole_fill, image_trend, init_low_rank, patch_trend
from esdiff.operators import Inpainting, within
from esdiff.schedule import noise_schedule
from esdiff.sde import VESDE
from esdiff.transforms import Encoding


@dataclass
class State:
    """The RGB patch estimates and the ADMM variables that persist across steps; with
    ``state="mpt"`` also the network-space object ``psi`` and the RGB ``psi_x`` it decoded to."""

    x: Tensor
    lowrank_state: LowRankState | None
    psi: Tensor | None = None
    psi_x: Tensor | None = None

    def encoded(self, ctx: Context) -> Tensor:
        """The network-space input: MPT of ``x``, or (``state="mpt"``) the kept object moved by MPT of
        what the RGB-space steps changed since (MPT is linear, so the slots keep their own noise)."""
        if ctx.cfg.state == "rgb" or self.psi is None or self.psi_x is None:
            return ctx.encoding.encode(self.x)
        return self.psi + ctx.encoding.encode(self.x - self.psi_x)

    def decoded(self, psi: Tensor, ctx: Context) -> State:
        """The state after a network-space move to ``psi``."""
        x = ctx.encoding.decode(psi)
        return replace(self, x=x, psi=psi if ctx.cfg.state == "mpt" else None, psi_x=x)


def patch_generators(
    seed: int, indices: Iterable[int], device: str | torch.device = "cpu", level: int | None = None
) -> list[torch.Generator]:
    """One generator per patch on ``device``, seeded from the image seed, the patch's index ``k`` in its
    grid and, for a grid drawn anew at each level (the whole-image sampler's tiles), that ``level``:
    a hash of the three (``stream_seed``), so no two of them share a stream, however large the image,
    the seed or the number of levels."""
    return [torch.Generator(device=device).manual_seed(stream_seed(seed, level, int(k))) for k in indices]


def stream_seed(seed: int, level: int | None, index: int) -> int:
    """A 63-bit seed for the noise of patch ``index`` at ``level`` (None: the patch's own stream for every
    level) of an image sampled with ``seed``: the first bytes of a SHA-256 of the three."""
    key = f"{seed}/{'-' if level is None else level}/{index}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1


@dataclass
class Context:
    """Everything a step reads and nothing it changes."""

    score: Callable[[Tensor, float], Tensor]
    encoding: Encoding
    op: Inpainting
    y: Tensor
    cfg: SamplerConfig
    generators: Sequence[torch.Generator]
    sigma: float
    step_var: float
    near_weight: Tensor | None = None
    """The ``pnp-near`` weights of these patches (``near_known_weight``) when they are cut from a larger
    image's, so that a patch edge is no rim; None: computed from ``op.mask``."""

    def noise(self, like: Tensor) -> Tensor:
        """One normal draw per patch from that patch's own generator, on the generator's device."""
        shape = like.shape[1:]
        draws = [
            torch.randn(shape, generator=g, device=g.device, dtype=torch.float32) for g in self.generators
        ]
        return torch.stack(draws).to(device=like.device, dtype=like.dtype)


Step = Callable[[State, Context], State]


def predictor(state: State, ctx: Context) -> State:
    """Predictor on ``Psi = MPT(x)``, then i-MPT + fusion (Alg. 1, SPEC 3.4): the paper's reverse
    diffusion ``Psi + (sigma_i^2 - sigma_{i+1}^2) s``, or (``predictor="ddim"``) the deterministic
    probability-flow step ``D + (sigma_{i+1} / sigma_i) (Psi - D)``, i.e. ``Psi + sigma_i (sigma_i -
    sigma_{i+1}) s`` (DDIM / Euler in sigma, Karras et al. 2022 Alg. 1 without the second order)."""
    psi = state.encoded(ctx)
    if ctx.cfg.predictor == "ddim":
        lower = max(ctx.sigma**2 - ctx.step_var, 0.0) ** 0.5
        psi = psi + ctx.sigma * (ctx.sigma - lower) * ctx.score(psi, ctx.sigma)
    else:
        psi = psi + ctx.step_var * ctx.score(psi, ctx.sigma)
    if ctx.cfg.predictor_noise:
        psi = psi + ctx.step_var**0.5 * ctx.noise(psi)
    return state.decoded(psi, ctx)


def corrector_step_size(z: Tensor, g: Tensor, sigma: float, snr: float, cap: float | None) -> Tensor:
    """Langevin step ``2 (snr ||z|| / ||g||)^2`` per patch (SPEC 3.4), at most ``cap sigma^2``.

    For a score of the right size, ``||g|| ~ ||z|| / sigma``, the step is ``2 snr^2 sigma^2`` (0.011
    sigma^2 at snr 0.075); a small score (a nearly clean state, an untrained network) would make it
    unbounded and throw pixels far out of range, which the cap prevents."""
    ratio = z.flatten(1).norm(dim=1) / g.flatten(1).norm(dim=1).clamp_min(1e-12)
    eps = 2 * (snr * ratio) ** 2
    if cap is not None:
        eps = eps.clamp_max(cap * sigma**2)
    return eps.view(-1, *([1] * (z.dim() - 1)))


def corrector(state: State, ctx: Context) -> State:
    """Annealed Langevin corrector with a bounded step (``corrector_step_size``)."""
    psi = state.encoded(ctx)
    for _ in range(ctx.cfg.corrector_samples):
        g = ctx.score(psi, ctx.sigma)
        z = ctx.noise(psi)
        eps = corrector_step_size(z, g, ctx.sigma, ctx.cfg.snr, ctx.cfg.corrector_cap)
        psi = psi + eps * g + (2 * eps).sqrt() * z
    return state.decoded(psi, ctx)


def low_rank(state: State, ctx: Context) -> State:
    """One ADMM iteration on the block-Hankel matrix of ``x`` (Eqs. 17-20), back through ``H^+``."""
    lrs = state.lowrank_state
    assert lrs is not None, "low_rank needs the LMaFit start (a StepList with needs_low_rank)"
    window = ctx.cfg.low_rank.window
    trend = None if lrs.trend is None else lrs.trend.to(lrs.U.dtype)
    x = state.x.to(lrs.U.dtype)
    hx = hankel(x if trend is None else x - trend, window)
    U, V, L, x_lr = admm_step(hx, lrs.U, lrs.V, lrs.L, ctx.cfg.low_rank.mu)
    x = hankel_pinv(x_lr, window, (state.x.shape[-2], state.x.shape[-1]))
    x = (x if trend is None else x + trend).to(state.x.dtype)
    return replace(state, x=x, lowrank_state=LowRankState(U, V, L, lrs.trend))


def data_consistency(state: State, ctx: Context) -> State:
    """Eq. 22: known pixels back from the observation (``dc_lambda = 0``: replaced exactly)."""
    return replace(state, x=ctx.op.prox_l2(state.x, ctx.y, ctx.cfg.dc_lambda))


def denoise(state: State, ctx: Context) -> State:
    """The prior's clean estimate ``D = x + sigma^2 s(x, sigma)`` (Tweedie, through MPT and i-MPT +
    fusion) in place of the noisy state."""
    psi = ctx.encoding.encode(state.x)
    clean = ctx.encoding.decode(psi + ctx.sigma**2 * ctx.score(psi, ctx.sigma))
    return replace(state, x=clean, psi=None, psi_x=None)


NEAR_REACH = 2
"""The farthest (Chebyshev) distance from a known pixel at which ``pnp-near`` takes the prior's estimate."""


def near_known_weight(known: Tensor) -> Tensor:
    """``[B, 1, h, w]`` weights of the ``pnp-near`` list: 1 on known pixels and on missing pixels next to
    one (Chebyshev distance 1), 0.5 at distance 2 (``NEAR_REACH``), 0 farther inside a hole."""
    return (within(known, 1).float() + within(known, NEAR_REACH).float()) / 2


def denoise_pnp(state: State, ctx: Context) -> State:
    """``denoise`` as the plug-and-play list runs it: with ``cfg.pnp_noise`` the image first gets that
    share of the level's noise, ``pnp_noise sigma z``, known pixels included, so the network sees an image
    as noisy as it is told; a clean image told ``sigma`` comes back darkened and smeared on solid holes
    (docs/results.md)."""
    share = ctx.cfg.pnp_noise
    noisy = replace(state, x=state.x + share * ctx.sigma * ctx.noise(state.x)) if share else state
    return denoise(noisy, ctx)


def denoise_near_known(state: State, ctx: Context) -> State:
    """``denoise_pnp``, its estimate taken only near known pixels (``near_known_weight``): inside a wide
    hole the state keeps the low-rank estimate, which the denoiser, shown a smooth fill between clean
    known pixels, would darken and smear."""
    clean = denoise_pnp(state, ctx)
    weight = near_known_weight(ctx.op.mask) if ctx.near_weight is None else ctx.near_weight
    weight = weight.to(state.x.dtype)
    return replace(clean, x=torch.lerp(state.x, clean.x, weight))


@dataclass(frozen=True)
class StepList:
    """The steps run once per noise level, in order."""

    functions: tuple[Step, ...]
    needs_low_rank: bool
    """The list holds ``low_rank``, so the start must set up its ADMM state (LMaFit), whatever the start."""

    @property
    def calls_network(self) -> bool:
        """A step of the list runs the network (every list but ``no-prior``)."""
        network = (predictor, corrector, denoise, denoise_pnp, denoise_near_known)
        return any(f in network for f in self.functions)

    @property
    def runs_predictor_corrector(self) -> bool:
        """The list holds the predictor or the corrector (which the predictor-corrector settings act on)."""
        return any(f in (predictor, corrector) for f in self.functions)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.functions)

    def for_config(self, cfg: SamplerConfig) -> StepList:
        """The list as ``cfg`` runs it: with ``corrector_samples = 0`` without the corrector, which would
        only re-encode the state (the low-rank and DC steps after it stay: a second ADMM iteration per
        level, measured to matter on thin text)."""
        if cfg.corrector_samples:
            return self
        return replace(self, functions=tuple(f for f in self.functions if f is not corrector))


STEP_LISTS: dict[str, StepList] = {
    "esdiff": StepList(
        (predictor, low_rank, data_consistency, corrector, low_rank, data_consistency), needs_low_rank=True
    ),
    "no-lowrank": StepList((predictor, data_consistency, corrector, data_consistency), needs_low_rank=False),
    "no-prior": StepList((low_rank, data_consistency, low_rank, data_consistency), needs_low_rank=True),
    "pnp-near": StepList(
        (low_rank, data_consistency, denoise_near_known, data_consistency), needs_low_rank=True
    ),
}
"""Algorithm 1 (``esdiff``, the paper's list) and its ablation without the low-rank step (``no-lowrank``:
the NCSN++ baseline with a 3-channel model); the default, ``pnp-near``: one ADMM iteration, then the
prior's denoised estimate at the level's sigma in place of ADMM's x-update, taken only within two pixels
of a known one; and ``no-prior``, the low-rank completion's own ADMM iterations from the clean LMaFit
start, two a level, the network never called (what the prior adds is the difference)."""


def start_state(
    y: Tensor,
    known: Tensor,
    ctx: Context,
    step_list: StepList,
    fill: Tensor | None = None,
    fill_given: Tensor | None = None,
    trend: Tensor | None = None,
    deep: Tensor | None = None,
) -> State:
    """The start of both drivers: the low-rank start (``init_low_rank``: the LMaFit estimate ``DC(H^+(U
    V^T))``; ``fill``: the patches of ``ImageStart.holes``; ``fill_given``: which of its rows are given;
    ``trend`` and ``deep``: the patches of ``ImageStart.trend`` and ``.deep``, the trend kept on the
    patches that hold a deep pixel, ``lowrank.patch_trend``), the same plus noise at the first level, or
    ``y D + sigma_0 z (1 - D)`` (sde)."""
    lowrank_state, x = None, None
    if step_list.needs_low_rank or ctx.cfg.start != "noise":
        gated = patch_trend(trend, deep)
        lowrank_state, x, _ = init_low_rank(
            y, known, ctx.cfg.low_rank, fill=fill, fill_given=fill_given, trend=gated
        )
        x = x.to(y.dtype)
    if ctx.cfg.start == "noise" or x is None:
        x = y * known + ctx.sigma * ctx.noise(y) * ~known
    elif ctx.cfg.start == "lmafit-noisy":
        x = x + ctx.sigma * ctx.noise(y)
    return State(x=x, lowrank_state=lowrank_state)


@dataclass(frozen=True)
class ImageStart:
    """The image-level parts of the low-rank start that each driver cuts into its patches for
    ``start_state``: the interpolation of the solid holes (``lowrank.image_hole_fill``, ``[3, H, W]``)
    and the trend the deep holes are completed around with those deep pixels (``lowrank.image_trend``,
    ``[3, H, W]`` and ``[1, H, W]``), each None where the config or the mask calls for none."""

    holes: Tensor | None = None
    trend: Tensor | None = None
    deep: Tensor | None = None


def image_start(
    observed: np.ndarray, known: np.ndarray, cfg: SamplerConfig, step_list: StepList
) -> ImageStart:
    """The ``ImageStart`` of ``observed [H, W, 3]`` with mask ``known [H, W]``; empty when the start runs
    no LMaFit (the noise start of a list without the low-rank step)."""
    if not (step_list.needs_low_rank or cfg.start != "noise"):
        return ImageStart()
    holes = image_hole_fill(observed, known, cfg.low_rank)
    holes = None if holes is None else holes.float()
    pair = image_trend(observed * known[..., None], known, holes, cfg.low_rank)
    return ImageStart(holes, *(pair or (None, None)))


def sample_patches(
    score: Callable[[Tensor, float], Tensor],
    encoding: Encoding,
    sde: VESDE,
    y: Tensor,
    known: Tensor,
    cfg: SamplerConfig,
    generators: Sequence[torch.Generator],
    step_list: StepList = STEP_LISTS["esdiff"],
    callback: Callable[[int, int], None] | None = None,
    fill: Tensor | None = None,
    observe: Callable[[int, Tensor], None] | None = None,
    fill_given: Tensor | None = None,
    trend: Tensor | None = None,
    deep: Tensor | None = None,
) -> Tensor:
    """Run ``step_list`` at each of the ``cfg.steps`` noise levels on patches ``y [B, 3, 64, 64]``.

    ``known [B, 1, 64, 64]`` marks observed pixels; returns the final iterate (no oracle selection).
    ``fill``: the same patches of an interpolation of solid holes, for the start (``start_state``;
    ``fill_given [B]``: the rows of ``fill`` that are given, the others interpolated per patch).
    ``observe(step, x)`` sees the iterate after each level (``esdiff.oracle``; it must not change it).
    ``trend``, ``deep``: the patches of the image's trend and deep pixels (``ImageStart``).
    """
    step_list = step_list.for_config(cfg)
    sigmas, step_vars = noise_schedule(sde, cfg.steps, cfg.t_start, cfg.t_end)
    op = Inpainting(known)
    ctx = Context(score, encoding, op, y, cfg, generators, float(sigmas[0]), float(step_vars[0]))
    state = start_state(y, known, ctx, step_list, fill, fill_given, trend, deep)
    for i in range(cfg.steps):
        ctx = replace(ctx, sigma=float(sigmas[i]), step_var=float(step_vars[i]))
        for step in step_list:
            state = step(state, ctx)
        if observe is not None:
            observe(i + 1, state.x)
        if callback is not None:
            callback(i + 1, cfg.steps)
    return state.x
