"""Frozen configuration dataclasses for every part of ESDiff, with JSON round trips.

Each dataclass holds the numbers of one part of the method (SPEC sections 1-3). They travel as JSON
inside checkpoints, so they must stay plain: numbers, strings, booleans, tuples and nested configs.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

T = TypeVar("T")

FusionMode = Literal["softmax", "softmax0", "mean"]
StartMode = Literal["lmafit", "lmafit-noisy", "noise"]
HoleFill = Literal["biharmonic", "none"]
LowRankInit = Literal["lmafit", "svd"]
TilingMode = Literal["overlap", "tile"]
StateMode = Literal["rgb", "mpt"]
PredictorMode = Literal["reverse-diffusion", "ddim"]
SamplingMode = Literal["patches", "image"]
Parametrisation = Literal["score-sde", "edm"]
NoiseDistribution = Literal["log-uniform", "log-normal"]
NoiseSpace = Literal["channels", "rgb"]
FillMode = Literal["smooth", "texture"]
StepListName = Literal["esdiff", "no-lowrank", "no-prior", "pnp-near"]
"""The step lists of ``esdiff.sampler.STEP_LISTS``."""


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
"""The recipe `esdiff train` uses unless told otherwise: the best of the measured comparison
(docs/results.md)."""


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
    init: LowRankInit = "lmafit"
    """Where the ADMM state starts: ``lmafit`` (SPEC 3.3) fits ``U, V`` to the known entries of each
    patch's Hankel matrix; ``svd`` fills the image first (the whole-image sampler's biharmonic fill, or
    the coarse pass's fill in coarse to fine) and takes ``U, V`` from a truncated SVD of each patch's
    Hankel matrix of that fill (``lowrank.svd_start``), a fraction of LMaFit's work."""
    svd_energy: float = 0.999
    """With ``init = "svd"``: the share of each Hankel matrix's squared norm its rank keeps."""


FAST_LMAFIT = LowRankConfig(dtype="float32", lmafit_tol=1e-3)
"""ALOHA's default: LMaFit (and ADMM) in float32 with tolerance 1e-3, which gives ALOHA the PSNR of SPEC's
float64 / 1.25e-4 at a fraction of the CPU time (docs/results.md); ``LowRankConfig()`` is the faithful
one."""


@dataclass(frozen=True)
class SamplerConfig:
    """Predictor-corrector inpainting of Algorithm 1 (SPEC 3)."""

    steps: int = 1000
    step_list: StepListName = "esdiff"
    """The steps run at each level, an entry of ``esdiff.sampler.STEP_LISTS``: ``esdiff`` is Algorithm 1
    (with a model without MPT: the paper's "NCSN++ + low rank")."""
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
    """With the plug-and-play list (``pnp-near``): the share, 0 to 1, of the level's noise
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
    state: StateMode = "rgb"
    """What the predictor and corrector move: ``rgb`` re-encodes the RGB iterate with MPT before every
    network step (lab); ``mpt`` keeps the 12-channel object between steps and shifts it by MPT of each
    low-rank/DC correction, so its four slots keep independent noise (SPEC 3, known weakness)."""
    shifts: int = 1
    """Runs averaged, each on a patch grid offset by half a window (``patches.GRID_SHIFTS``, 1 to 4): more
    runs smooth the seams between patches at that multiple of the time (not in the paper). With
    ``sampling="image"`` the offset strip holds the image and its mask mirrored, not a hole."""
    patch_batch: int = 25
    dc_lambda: float = 0.0
    """0 is the noiseless data-consistency step (replace known pixels)."""
    fsr_start: int = 0
    """Whole-image sampling: with ``r > 0`` the start's missing pixels ``r`` or more pixels (Chebyshev) from
    every known one take OpenCV's FSR fill (``esdiff.baselines.opencv``, the ``opencv`` extra) in place of
    the low-rank start, where the completion is weakest; 0: off (an experiment, not a default)."""
    low_rank: LowRankConfig = field(default_factory=LowRankConfig)
    coarse_side: int | None = None
    """Coarse to fine for big photos (``esdiff.coarse_to_fine``; whole-image sampling only): an image
    whose long side is above ``COARSE_ABOVE`` times this is first inpainted downscaled to this long side,
    then its holes are refined at full resolution from the upsampled fill; None: every image at full
    resolution."""
    refine_steps: int = 2
    """Coarse to fine: the levels of the full-resolution refinement; 0: none (the upsampled coarse fill,
    corrected at the rim, is the result)."""
    refine_t_start: float = 0.15
    """Coarse to fine: the time label of the refinement's first level (lower than ``t_start``: the coarse
    fill is already close; at least the config's ``t_end``)."""
    fill: FillMode = "smooth"
    """Whole-image sampling: what fills the missing pixels three or more pixels (Chebyshev) from every known
    one but within a Hankel window (``low_rank.window``) of one, where the prior's estimate does not reach
    (``pnp-near``): ``smooth``, the sampler's own completion; ``texture``, OpenCV's FSR fill
    (``esdiff.baselines.opencv``), which carries the surrounding texture into thin
    holes (captions, scratches), kept as it is while the sampler completes the rest. Farther inside a hole
    both complete around the smooth trend (``low_rank.trend``), and ``texture`` then adds the detail of
    the surroundings, mirrored across the hole's rim (``esdiff.texture``). docs/method.md says why not the
    prior."""


DEFAULT_SAMPLER = SamplerConfig(
    steps=12,
    step_list="pnp-near",
    start="lmafit",
    t_start=0.15,
    t_end=0.08,
    deep_holes=(0.1, 0.25),
    pnp_noise=1.0,
    sampling="image",
    low_rank=LowRankConfig(dtype="float32", lmafit_tol=1e-2, trend=8.0),
    coarse_side=512,
    refine_steps=0,
    fill="texture",
)
"""The defaults of `esdiff inpaint` (and of the library's esdiff method), chosen by measurement on the
validation photos (docs/results.md); ``SamplerConfig()`` holds SPEC's faithful settings. The ``pnp-near``
list (plug-and-play ADMM: one ADMM iteration, then the prior's denoised estimate next to known pixels)
from the clean LMaFit start (a loose float32 fit: the ADMM steps keep refining it), 12 levels from t =
0.15 down to ``t_end``, except where the mask's holes are deep (``deep_holes``): such masks end at the
SDE's eps and the denoiser sees them with the level's noise on every pixel (``pnp_noise``). The image is
the state (``sampling="image"``: moving tiles); deep holes are completed around a smooth trend
(``low_rank.trend``). Big photos run coarse to fine (``coarse_side``: a downscaled pass, its fill
upsampled and corrected at the rim, no refinement levels: ``refine_steps`` 0). The inner parts of thin
holes (captions, scratches) take OpenCV FSR's fill (``fill="texture"``), which carries the surrounding
texture where the prior's estimate does not reach, and the deeper parts of wide holes the detail of
their surroundings (``esdiff.texture``). It sets none of the predictor-corrector settings, which its
list does not read."""

NCSNPP_SAMPLER = SamplerConfig(steps=50, step_list="no-lowrank", start="noise")
"""The NCSN++ baseline: the paper's predictor-corrector sampler without the low-rank step, a pure
diffusion sampler, so it starts from noise at ``sigma_max`` (no LMaFit, which belongs to the low-rank
part) and takes 50 steps over the whole noise range."""


@dataclass(frozen=True)
class ModelConfig:
    """Everything a checkpoint needs to rebuild its network and encoding."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    mpt: MPTConfig = field(default_factory=MPTConfig)
    sde: SDEConfig = field(default_factory=SDEConfig)
    precond: PrecondConfig = field(default_factory=PrecondConfig)


PATCH_SIZE = 64
"""The side of the patches the sampler cuts (``esdiff.patches``), which every model must take."""
COARSE_ABOVE = 1.5
"""Coarse to fine runs on images whose long side is above this multiple of ``SamplerConfig.coarse_side``."""


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
        elif isinstance(value, list) and any(typing.get_origin(h) is tuple for h in _alternatives(hint)):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def with_changes(cfg: T, changes: dict[str, Any]) -> T:
    """``cfg`` (a config dataclass) with ``changes``: field names, nested ones with a dot
    (``low_rank.mu``), to values as JSON gives them (lists become tuples where a field holds one).
    An unknown name is a ValueError; the values are not checked
    (``config_checks.sampler_config_problems`` does)."""
    data = to_dict(cfg)
    for key, value in changes.items():
        *parents, name = key.split(".")
        node, path = data, []
        for part in parents:
            path.append(part)
            if not isinstance(node.get(part), dict):
                raise ValueError(f"unknown setting {key!r}: {'.'.join(path)} holds no settings")
            node = node[part]
        if name not in node:
            raise ValueError(f"unknown setting {key!r}")
        if isinstance(node[name], dict):
            raise ValueError(f"{key} holds settings: give them as {key}.NAME=VALUE")
        node[name] = value
    return from_dict(type(cfg), data)


def _alternatives(hint: Any) -> tuple[Any, ...]:
    """The types a hint allows: the members of a union (``X | None``), else the hint itself."""
    return typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)


def from_json(cls: type[T], text: str) -> T:
    return from_dict(cls, json.loads(text))
