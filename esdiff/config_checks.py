"""Checks of the configs in ``esdiff.config``: what makes a model config impossible to build, or a
sampler config impossible to run or holding a setting its step list never reads. The library and the
command line check every config with them before any work; checkpoints are checked at load."""

from __future__ import annotations

import math
import typing
from typing import Any, Literal

from esdiff.config import (
    PATCH_SIZE,
    FillMode,
    FusionMode,
    HoleFill,
    LowRankInit,
    ModelConfig,
    Parametrisation,
    PredictorMode,
    SamplerConfig,
    SamplingMode,
    StartMode,
    StateMode,
    StepListName,
    TilingMode,
)


def model_config_problems(cfg: ModelConfig) -> list[str]:
    """What makes a model config impossible to build or sample with, one phrase each naming its field
    (empty: none). Checkpoints are checked with it at load."""
    net, mpt, sde = cfg.network, cfg.mpt, cfg.sde
    problems = [
        f"{name} must be a positive integer (got {value!r})"
        for name, value in [
            ("network.channels", net.channels),
            ("network.nf", net.nf),
            ("network.num_res_blocks", net.num_res_blocks),
            ("network.image_size", net.image_size),
            ("mpt.size", mpt.size),
            *((f"network.ch_mult[{i}]", m) for i, m in enumerate(net.ch_mult)),
        ]
        if not _is_positive_int(value)
    ]
    if not net.ch_mult:
        problems.append("network.ch_mult must name at least one level")
    elif PATCH_SIZE % 2 ** (len(net.ch_mult) - 1):
        problems.append(
            f"network.ch_mult has {len(net.ch_mult)} levels: too many for {PATCH_SIZE}-pixel patches"
        )
    if not net.fir_kernel or not _is_finite(sum(net.fir_kernel)) or sum(net.fir_kernel) <= 0:
        problems.append(f"network.fir_kernel must be non-empty with a positive sum (got {net.fir_kernel!r})")
    if not (_is_finite(net.dropout) and 0 <= net.dropout < 1):
        problems.append(f"network.dropout must be in [0, 1) (got {net.dropout!r})")
    if not (_is_finite(net.fourier_scale) and net.fourier_scale > 0):
        problems.append(f"network.fourier_scale must be positive (got {net.fourier_scale!r})")
    if mpt.enabled and mpt.size != PATCH_SIZE:
        problems.append(f"mpt.size must be the {PATCH_SIZE}-pixel patch size (got {mpt.size!r})")
    kinds = typing.get_args(Parametrisation)
    if cfg.precond.kind not in kinds:
        problems.append(f"precond.kind must be one of {', '.join(kinds)} (got {cfg.precond.kind!r})")
    if not (_is_finite(cfg.precond.sigma_data) and cfg.precond.sigma_data > 0):
        problems.append(f"precond.sigma_data must be positive (got {cfg.precond.sigma_data!r})")
    if not _is_finite(mpt.ratio):
        problems.append(f"mpt.ratio must be a finite number (got {mpt.ratio!r})")
    if not (_is_finite(sde.sigma_min) and _is_finite(sde.sigma_max) and 0 < sde.sigma_min < sde.sigma_max):
        got = f"sigma_min {sde.sigma_min!r}, sigma_max {sde.sigma_max!r}"
        problems.append(f"sde needs 0 < sigma_min < sigma_max (got {got})")
    if not (_is_finite(sde.eps) and 0 < sde.eps < 1):
        problems.append(f"sde.eps must be in (0, 1) (got {sde.eps!r})")
    return problems


NETWORK_FREE_LISTS = ("no-prior",)
"""Step lists that never call the network."""
PREDICTOR_LISTS = ("esdiff", "no-lowrank")
"""Step lists with the predictor and the corrector, the only steps the predictor-corrector settings
(``PC_SETTINGS``) act on."""
PC_SETTINGS = ("predictor", "predictor_noise", "corrector_samples", "snr", "corrector_cap", "state")
"""The ``SamplerConfig`` fields that only the predictor and corrector read."""
MAX_SHIFTS = 4
"""The most grid shifts a sampler averages (``esdiff.patches.GRID_SHIFTS``)."""


def sampler_config_problems(cfg: SamplerConfig) -> list[str]:
    """What makes a sampler config impossible to run, or holds a setting its step list never reads, one
    phrase each naming its field (empty: none). The library (``esdiff.inpaint.inpaint_images``) and the
    command line check configs with it; unread settings are those of the predictor and corrector
    (``PC_SETTINGS``) that differ from ``SamplerConfig()``'s where the list or ``corrector_samples``
    leaves those steps out."""
    lr = cfg.low_rank
    problems = [
        f"{name} must be a positive integer (got {value!r})"
        for name, value in [
            ("steps", cfg.steps),
            ("patch_batch", cfg.patch_batch),
            ("low_rank.window", lr.window),
            ("low_rank.lmafit_max_iter", lr.lmafit_max_iter),
            ("low_rank.max_rank", lr.max_rank),
        ]
        if not _is_positive_int(value)
    ]
    if not (_is_int(cfg.refine_steps) and cfg.refine_steps >= 0):
        problems.append(f"refine_steps must be a whole number, 0 or more (got {cfg.refine_steps!r})")
    choices: list[tuple[str, object, Any]] = [
        ("step_list", cfg.step_list, StepListName),
        ("start", cfg.start, StartMode),
        ("predictor", cfg.predictor, PredictorMode),
        ("tiling", cfg.tiling, TilingMode),
        ("sampling", cfg.sampling, SamplingMode),
        ("fusion", cfg.fusion, FusionMode),
        ("state", cfg.state, StateMode),
        ("fill", cfg.fill, FillMode),
        ("low_rank.fill", lr.fill, HoleFill),
        ("low_rank.dtype", lr.dtype, Literal["float64", "float32"]),
        ("low_rank.init", lr.init, LowRankInit),
    ]
    for name, value, kind in choices:
        if value not in typing.get_args(kind):
            problems.append(f"{name} must be one of {', '.join(typing.get_args(kind))} (got {value!r})")
    if not (_is_int(cfg.shifts) and 1 <= cfg.shifts <= MAX_SHIFTS):
        problems.append(f"shifts must be 1 to {MAX_SHIFTS} (got {cfg.shifts!r})")
    if not (_is_int(cfg.corrector_samples) and cfg.corrector_samples >= 0):
        problems.append(f"corrector_samples must be 0 or more (got {cfg.corrector_samples!r})")
    t_start, t_end = _number(cfg.t_start), _number(cfg.t_end)
    if t_start is None or not 0 < t_start <= 1:
        problems.append(f"t_start must be above 0 and at most 1 (got {cfg.t_start!r})")
    elif cfg.t_end is not None and (t_end is None or not 0 < t_end <= t_start):
        problems.append(f"t_end must be above 0 and at most t_start {cfg.t_start} (got {cfg.t_end!r})")
    holes = cfg.deep_holes
    shares = [_number(h) for h in holes] if isinstance(holes, tuple) and len(holes) == 2 else []
    if holes is not None and not (shares and shares[0] is not None and shares[1] is not None):
        problems.append(f"deep_holes must be two shares 0 <= low < high <= 1 (got {holes!r})")
    elif holes is not None and not 0 <= shares[0] < shares[1] <= 1:  # type: ignore[operator]
        problems.append(f"deep_holes must be two shares 0 <= low < high <= 1 (got {holes!r})")
    side = cfg.coarse_side
    if side is not None and not (_is_positive_int(side) and side >= PATCH_SIZE):
        problems.append(f"coarse_side must be None or an integer of at least {PATCH_SIZE} (got {side!r})")
    refine_t = _number(cfg.refine_t_start)
    if refine_t is None or not 0 < refine_t <= 1:
        problems.append(f"refine_t_start must be above 0 and at most 1 (got {cfg.refine_t_start!r})")
    energy = _number(lr.svd_energy)
    if energy is None or not 0 < energy <= 1:
        problems.append(f"low_rank.svd_energy must be above 0 and at most 1 (got {lr.svd_energy!r})")
    pnp_noise = _number(cfg.pnp_noise)
    if pnp_noise is None or not 0 <= pnp_noise <= 1:
        problems.append(f"pnp_noise must be 0 to 1 (got {cfg.pnp_noise!r})")
    for name, value in [("snr", cfg.snr), ("dc_lambda", cfg.dc_lambda), ("low_rank.mu", lr.mu)]:
        number = _number(value)
        if number is None or number < 0:
            problems.append(f"{name} must be 0 or more (got {value!r})")
    optional: list[tuple[str, object]] = [
        ("corrector_cap", cfg.corrector_cap),
        ("low_rank.trend", lr.trend),
        ("low_rank.lmafit_tol", lr.lmafit_tol),
    ]
    for name, value in optional:
        number = _number(value)
        if value is not None and (number is None or number <= 0):
            problems.append(f"{name} must be above 0 (got {value!r})")
    top = lr.max_rank if _is_positive_int(lr.max_rank) else 191
    if lr.rank is not None and not (_is_positive_int(lr.rank) and lr.rank <= top):
        problems.append(f"low_rank.rank must be 1 to low_rank.max_rank {top} (got {lr.rank!r})")
    if problems:
        return problems
    # Settings the chosen steps cannot run, or never read.
    if cfg.sampling == "image" and cfg.state != "rgb":
        problems.append('state "mpt" needs sampling "patches" (whole-image sampling keeps the RGB image)')
    if not (_is_int(cfg.fsr_start) and cfg.fsr_start >= 0):
        problems.append(f"fsr_start must be 0 or more (got {cfg.fsr_start!r})")
    elif cfg.fsr_start and cfg.sampling != "image":
        problems.append('fsr_start needs sampling "image"')
    if cfg.fill != "smooth" and cfg.sampling != "image":
        problems.append(f'fill {cfg.fill} needs sampling "image" (with sampling "patches" set fill smooth)')
    if cfg.step_list in NETWORK_FREE_LISTS and cfg.start != "lmafit":
        problems.append(
            f'step_list {cfg.step_list} has no network step to take noise off: use start "lmafit"'
        )
    plain = SamplerConfig()
    if cfg.step_list not in PREDICTOR_LISTS:
        unread = [name for name in PC_SETTINGS if getattr(cfg, name) != getattr(plain, name)]
        reason = f"a predictor-corrector step list ({' or '.join(PREDICTOR_LISTS)}), not {cfg.step_list}"
    else:
        unread = [name for name in ("snr", "corrector_cap") if getattr(cfg, name) != getattr(plain, name)]
        unread = unread if cfg.corrector_samples == 0 else []
        reason = "the corrector, which corrector_samples 0 turns off"
    if unread:
        problems.append(f"{', '.join(unread)} {'acts' if len(unread) == 1 else 'act'} only on {reason}")
    return problems


def _number(value: object) -> float | None:
    """``value`` as a float when it is a finite number (not a bool); else None."""
    return float(value) if _is_finite(value) else None  # type: ignore[arg-type]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
