"""Frozen configuration dataclasses for every part of ESDiff, with JSON round trips.

Each dataclass holds the numbers of one part of the method (SPEC sections 1-3). They travel as JSON
inside checkpoints, so they must stay plain: numbers, strings, booleans, tuples and nested configs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

T = TypeVar("T")

FusionMode = Literal["softmax", "softmax0", "mean"]
StartMode = Literal["lmafit", "lmafit-noisy", "noise"]
LowRankInit = Literal["zero", "residual", "lab"]
HoleFill = Literal["biharmonic", "none"]
TilingMode = Literal["overlap", "tile"]
StateMode = Literal["rgb", "mpt"]
PredictorMode = Literal["reverse-diffusion", "ddim"]
SamplingMode = Literal["patches", "image"]
Parametrisation = Literal["score-sde", "edm"]
NoiseDistribution = Literal["log-uniform", "log-normal"]
NoiseSpace = Literal["channels", "rgb"]


@dataclass(frozen=True)
class MPTConfig:
    """Virtual mask and mutual perturbation transform (SPEC 1)."""

    ratio: float = 2.81
    """Swap where z >= ratio, z ~ N(0, 1); 2.81 swaps 0.25 % of the pixels."""
    seed: int = 0
    """Seed of the virtual mask drawn for a new model."""
    size: int = 64
    """Spatial size of the virtual mask (the patch size)."""
    enabled: bool = True
    """False gives the 3-channel NCSN++ baseline (no MPT)."""

    @property
    def channels(self) -> int:
        return 12 if self.enabled else 3


@dataclass(frozen=True)
class SDEConfig:
    """Variance-exploding SDE (SPEC 2)."""

    sigma_min: float = 0.01
    sigma_max: float = 378.0
    eps: float = 1e-5
    """Smallest time used in training and at the end of sampling."""


@dataclass(frozen=True)
class NetworkConfig:
    """NCSN++ architecture (Song et al. 2021); the paper size by default (SPEC 2)."""

    channels: int = 12
    image_size: int = 64
    nf: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 2, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.0
    fourier_scale: float = 16.0
    fir_kernel: tuple[int, ...] = (1, 3, 3, 1)
    skip_rescale: bool = True
    init_scale: float = 0.0


NETWORK_PRESETS: dict[str, NetworkConfig] = {
    "paper": NetworkConfig(),
    "mid": NetworkConfig(nf=48, ch_mult=(1, 1, 2, 2, 2), num_res_blocks=1, attn_resolutions=(16,)),
    "base": NetworkConfig(nf=32, ch_mult=(1, 1, 2, 2, 2), num_res_blocks=1, attn_resolutions=(16,)),
    "tiny": NetworkConfig(nf=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=()),
}


@dataclass(frozen=True)
class PrecondConfig:
    """How the network's output becomes a denoised estimate ``D(x, sigma)`` (see ``esdiff.prior``).

    ``score-sde`` (SPEC 2): the network sees ``2 x - 1`` and ``log sigma`` and its output divided by sigma is
    the score, so ``D = x + sigma^2 s``. ``edm`` (Karras et al. 2022): ``D = c_skip x + c_out F(c_in x,
    ln(sigma) / 4)`` around the data mean 0.5, with ``sigma_data`` the data's standard deviation; the skip
    carries the input at low noise, so the network learns a bounded residual at every level. A config
    without this field (every checkpoint before it) is ``score-sde``.
    """

    kind: Parametrisation = "score-sde"
    sigma_data: float = 0.25
    """Standard deviation of the [0, 1] training pixels (EDM's 0.5 on [-1, 1] data)."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and data settings of `esdiff train` (SPEC 2); the defaults are SPEC 2's recipe, which
    is what a checkpoint written before the recipe fields existed means (``RECIPES`` names the others)."""

    steps: int = 3000
    crops_per_image: int = 1
    flips: bool = False
    rotations: bool = False
    """Random 90-degree rotations of the crops (with ``flips``: the eight symmetries of the square)."""
    noise: NoiseDistribution = "log-uniform"
    """Training noise levels: ``log-uniform`` over ``[sigma_lo, sigma_hi]`` (SPEC 2: ``t ~ U(eps, 1)`` on the
    SDE's range) or ``log-normal``: ``ln sigma ~ N(p_mean, p_std^2)`` (EDM)."""
    sigma_lo: float | None = None
    """Lower end of the log-uniform band; None: the SDE's ``t ~ U(eps, 1)``, exactly as SPEC 2."""
    sigma_hi: float | None = None
    p_mean: float = -1.9
    p_std: float = 1.2
    noise_space: NoiseSpace = "channels"
    """Where the training noise is drawn: ``channels``, independently in all 12 network channels (SPEC 2),
    or ``rgb``: in the RGB crop before MPT, so the four slots share it, as they do when the sampler or
    ``esdiff.prior.denoise`` encodes a noisy RGB image."""
    redraw_mask: bool = False
    lr: float = 2e-4
    beta1: float = 0.9
    adam_eps: float = 1e-8
    warmup: int = 5000
    decay: int = 0
    """Anneal the step size linearly to zero over the last ``decay`` steps before ``steps`` (0: constant);
    ``--resume`` may set it, so a run can be finished with a cool-down."""
    grad_clip: float = 1.0
    ema_rate: float = 0.999
    checkpoint_every: int = 100
    val_every: int = 250
    """Steps between validations (with `esdiff train --val`)."""
    seed: int = 0


RECIPES: dict[str, tuple[PrecondConfig, dict[str, Any]]] = {
    "score-sde": (PrecondConfig(), {}),
    "edm": (PrecondConfig(kind="edm"), {"noise": "log-normal"}),
    "edm-rgb": (PrecondConfig(kind="edm"), {"noise": "log-normal", "noise_space": "rgb", "flips": True}),
    "edm-band": (
        PrecondConfig(kind="edm"),
        {"noise": "log-uniform", "sigma_lo": 0.005, "sigma_hi": 2.0, "noise_space": "rgb"},
    ),
}
"""Training recipes by name: the parametrisation and the TrainConfig fields each sets (`esdiff train
--recipe`). ``score-sde`` is SPEC 2's; ``edm`` is EDM's preconditioning and log-normal levels with SPEC's
per-channel noise; ``edm-rgb`` draws the noise in RGB before MPT, as the sampler sees it; ``edm-band``
spends training on a log-uniform band over the levels the sampler visits."""
DEFAULT_RECIPE = "edm-rgb"
"""The recipe `esdiff train` uses unless told otherwise: the best of the measured comparison (README)."""


@dataclass(frozen=True)
class LowRankConfig:
    """Block-Hankel low-rank machinery: LMaFit start and ADMM (SPEC 3.2, Eqs. 17-20)."""

    window: int = 8
    mu: float = 1.0
    rank: int | None = None
    """None: LMaFit's adaptive rank; an integer fixes it."""
    lmafit_tol: float = 1.25e-4
    lmafit_max_iter: int = 3000
    max_rank: int = 191
    dtype: Literal["float64", "float32"] = "float64"
    cap_rank: bool = False
    """Stop the adaptive rank at the largest rank the known entries of a patch can determine
    (``lmafit.dof_rank``); False lets it climb to ``max_rank`` (SPEC 3.2)."""
    init: LowRankInit = "zero"
    """The start from LMaFit's ``U V^T`` (SPEC 3.3, correction): ``zero`` is ``x = DC(H^+(U V^T))`` with the
    multiplier ``L0 = 0`` (ALOHA's); ``residual`` the same ``x`` with ``L0 = H(y D) - U V^T``; ``lab`` the
    lab's pair ``x = DC(H^+(U V^T - L0))`` with that ``L0``, twice the LMaFit estimate on missing pixels."""
    fill: HoleFill = "biharmonic"
    """Hankel rows with no known entry (inside a solid hole) have a zero completion. ``biharmonic``: in a
    patch with such rows, each row's estimate counts by the fraction of its window that is known, the rest
    comes from a biharmonic interpolation of the patch; ``none`` leaves the completion as it is."""
    trend: float | None = None
    """Pixels ``window`` or more from every known one lie in no Hankel row with a known entry, so the
    completion's nuclear norm alone decides them and pulls them towards zero: solid holes come back dark
    and grey. With a number, the sampler's completion of each patch that holds such a pixel is of the
    image less a smooth trend (``lowrank.image_trend``: a normalised Gaussian blur with that standard
    deviation in pixels of the known pixels and the solid-hole fill), so they are pulled towards the
    trend instead; None: no trend (SPEC, ALOHA)."""


FAST_LMAFIT = LowRankConfig(dtype="float32", lmafit_tol=1e-3)
"""ALOHA's default: LMaFit (and ADMM) in float32 with tolerance 1e-3, measured to give ALOHA the PSNR of
SPEC's float64 / 1.25e-4 at a fraction of the CPU time (README); ``LowRankConfig()`` is the faithful one."""


@dataclass(frozen=True)
class SamplerConfig:
    """Predictor-corrector inpainting of Algorithm 1 (SPEC 3)."""

    steps: int = 1000
    step_list: str = "esdiff"
    """The steps run at each level, an entry of ``esdiff.sampler.STEP_LISTS``: ``esdiff`` is Algorithm 1
    (a model without MPT runs it as ``no-lowrank``)."""
    snr: float = 0.075
    start: StartMode = "lmafit"
    """``lmafit``: the LMaFit estimate as is (lab); ``lmafit-noisy``: plus noise at ``sigma(t_start)``;
    ``noise``: known pixels plus noise at ``sigma(t_start)`` on the missing ones (sde)."""
    t_start: float = 1.0
    """The time label of the first step; the grid is ``linspace(t_start, t_end, steps)``."""
    t_end: float | None = None
    """The time label of the last step; None: the SDE's ``eps`` (SPEC 3), where sigma is ``sigma_min``."""
    deep_holes: tuple[float, float] | None = None
    """How deep a mask's holes count (``esdiff.schedule.hole_depth``, 0 to 1): 0 below the first share of
    missing pixels three or more pixels from every known one, 1 above the second, linear between. Deep
    holes bring the last step from ``t_end`` back to ``eps`` (linearly in t) and get ``pnp_noise``;
    None: every mask ends at ``t_end`` and gets ``pnp_noise`` as it is."""
    pnp_noise: float = 0.0
    """With the plug-and-play lists (``pnp``, ``pnp-near``): the share, 0 to 1, of the level's noise
    ``sigma z`` put on the image the denoiser sees, known pixels included (``esdiff.sampler.denoise_pnp``).
    With ``deep_holes`` the share times the mask's hole depth (0 for random masks and thin text, 1 for
    solid boxes, captions and brush strokes)."""
    predictor: PredictorMode = "reverse-diffusion"
    """``reverse-diffusion`` (paper) or ``ddim``, the deterministic probability-flow step."""
    predictor_noise: bool = False
    corrector_samples: int = 1
    corrector_cap: float | None = None
    """Largest Langevin step as a multiple of ``sigma^2``; None leaves SPEC's step unbounded."""
    tiling: TilingMode = "overlap"
    sampling: SamplingMode = "patches"
    """``patches``: every patch of the grid runs all steps on its own and the patches are stitched at the
    end (paper); ``image``: the image is the state, the network steps run on tiles of a grid that moves
    by a random offset every step and the low-rank step on the fixed grid (``esdiff.image_sampling``)."""
    fusion: FusionMode = "softmax"
    """How the four i-MPT estimates become one RGB patch (SPEC 1, fusion)."""
    tau: float = 1.0
    """Softmax temperature of the fusion weights."""
    state: StateMode = "rgb"
    """What the predictor and corrector move: ``rgb`` re-encodes the RGB iterate with MPT before every
    network step (lab); ``mpt`` keeps the 12-channel object between steps and shifts it by MPT of each
    low-rank/DC correction, so its four slots keep independent noise (SPEC 3, known weakness)."""
    shifts: int = 1
    """Runs averaged, each on a patch grid offset by half a window (``patches.GRID_SHIFTS``, 1 to 4): more
    runs smooth the seams between patches at that multiple of the time (not in the paper)."""
    patch_batch: int = 25
    dc_lambda: float = 0.0
    """0 is the noiseless data-consistency step (replace known pixels)."""
    fresh_noise: float = 0.0
    """With the ``x0`` step lists (``esdiff.sampler``): the share of the re-noising variance drawn fresh at
    each level, 0 to 1 (0: the estimate's own noise direction, DDIM; 1: all new noise)."""
    low_rank_weight: float = 1.0
    """How far each low-rank step moves the state towards its ADMM estimate ``H^+(X_LR)``, 0 to 1 (1: all
    the way, SPEC 3.4); lower keeps more of what the prior put there."""
    known_noise: bool = False
    """Before each network step of the predictor-corrector lists, give the known pixels noise at the
    current level (score-SDE inpainting; the noise is taken out again after the step), so the network
    sees an image noisy everywhere at the level it is told. False feeds it the clean known pixels (paper),
    which it denoises as if they were noisy: measured, that darkens solid holes by 6-9 grey levels."""
    fsr_start: int = 0
    """Whole-image sampling: with ``r > 0`` the start's missing pixels ``r`` or more pixels (Chebyshev) from
    every known one take OpenCV's FSR fill (``esdiff.baselines.opencv``, the ``opencv`` extra) in place of
    the low-rank start, where the completion is weakest; 0: off (an experiment, not a default)."""
    low_rank: LowRankConfig = field(default_factory=LowRankConfig)


PC_SAMPLER = SamplerConfig(
    steps=25,
    start="lmafit-noisy",
    t_start=0.25,
    predictor="ddim",
    corrector_samples=0,
    known_noise=True,
    low_rank=LowRankConfig(dtype="float32", lmafit_tol=1e-2),
)
"""The previous defaults: Algorithm 1's list (``esdiff``) fitted to the CPU budget (README, "Defaults").
25 steps score like 50 and more; the start needs only a rough LMaFit estimate, because the sampler's
ADMM steps keep refining U and V, so a loose tolerance (in float32) is as good and cheaper. The noisy
LMaFit start at t = 0.25 (sigma 0.14, not far above the start's own error) followed by the deterministic
DDIM step keeps what the start got right instead of drowning it in noise the network then has to remove
(thick text gains most); a clean start at sigma_max would blow the corrector up (its step size grows as
1/||score||^2). At these levels the corrector's Langevin step (``2 snr^2 sigma^2``, about 1 % of the
level's variance) moved no PSNR figure by more than 0.02 dB for a network call per level, so there is
none; the network sees the known pixels noised to its level (``known_noise``), which halves how much it
darkens solid holes. Measured since: in this list the prior adds nothing on random masks (the ADMM
multiplier undoes the network's step; README, "What the learned prior adds")."""

DEFAULT_SAMPLER = dataclasses.replace(
    PC_SAMPLER,
    low_rank=dataclasses.replace(PC_SAMPLER.low_rank, trend=8.0),
    step_list="pnp-near",
    start="lmafit",
    t_end=0.08,
    deep_holes=(0.1, 0.25),
    pnp_noise=1.0,
    sampling="image",
)
"""The defaults of `esdiff inpaint` (and of the library's esdiff method), chosen by measurement on
validation photos (README, "Measured"); ``SamplerConfig()`` holds SPEC's faithful settings. The
``pnp-near`` list (plug-and-play ADMM: one ADMM iteration, then the prior's denoised estimate next to
known pixels) from the clean LMaFit start, 25 levels from t = 0.25 (sigma 0.14) down to t = 0.08 (sigma
0.023, about the error the completion leaves at random 80 %: ending at the SDE's eps, sigma 0.01, lost
0.1-0.2 dB at random 80-90 %), except where the mask's holes are deep (``deep_holes``): on their rims a
last denoising at sigma 0.023 smears and darkens (captions -0.25 dB, 16 px boxes -0.5), so such masks
end at eps, and the denoiser sees them with the level's noise on every pixel (``pnp_noise``): shown clean
known pixels and a smooth fill it darkens the rims (16 px boxes +1.2 dB, captions +0.14 with the noise;
random 80 % -0.3 with it, so scattered holes go without). The image is the state (moving tiles: +0.16
dB at random 90 %); ADMM's ``mu`` stays 1 (2 gained 0.03-0.09 on random masks and lost 0.5 on
captions). The predictor-corrector settings it keeps from ``PC_SAMPLER`` act only if a
predictor-corrector list is chosen."""

NCSNPP_SAMPLER = dataclasses.replace(
    PC_SAMPLER,
    step_list="no-lowrank",
    start="noise",
    t_start=1.0,
    steps=50,
    predictor="reverse-diffusion",
    corrector_samples=1,
    known_noise=False,
)
"""The NCSN++ baseline: the same predictor-corrector sampler, but a pure diffusion sampler, so it starts
from noise at ``sigma_max`` (no LMaFit, which belongs to the low-rank part) and takes 50 steps, since it
has the whole noise range to cover (measured: README)."""


@dataclass(frozen=True)
class ModelConfig:
    """Everything a checkpoint needs to rebuild its network and encoding."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    mpt: MPTConfig = field(default_factory=MPTConfig)
    sde: SDEConfig = field(default_factory=SDEConfig)
    precond: PrecondConfig = field(default_factory=PrecondConfig)


PATCH_SIZE = 64
"""The side of the patches the sampler cuts (``esdiff.patches``), which every model must take."""


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


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as plain JSON-ready data (tuples become lists)."""
    return dataclasses.asdict(cfg)


def to_json(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), sort_keys=True)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a (nested) config dataclass; unknown keys are an error, missing keys take defaults."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value)  # type: ignore[arg-type]
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def from_json(cls: type[T], text: str) -> T:
    return from_dict(cls, json.loads(text))
