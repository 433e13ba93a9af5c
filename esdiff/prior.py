"""A trained network as a prior: the denoiser ``D(x, sigma)`` and the score ``(D(x, sigma) - x) / sigma^2``.

This is the one place where a network output becomes an estimate, whatever the parametrisation
(``config.PrecondConfig``): training's loss, the sampler's score and :func:`denoise` all go through
:class:`Prior`. Tweedie's formula ties the two views: for ``x = x0 + sigma z`` the posterior mean is
``E[x0 | x] = x + sigma^2 grad log p_sigma(x)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from esdiff.config import FusionMode, PrecondConfig
from esdiff.errors import EsdiffError
from esdiff.nn import ScoreModel
from esdiff.patches import make_grid
from esdiff.sde import VESDE
from esdiff.transforms import Encoding

BUILTIN_MODEL = Path(__file__).parent / "weights" / "builtin.safetensors"
NCSNPP_MODEL = Path(__file__).parent / "weights" / "ncsnpp.safetensors"
"""The 3-channel model (`esdiff train --no-mpt`) of the paper's NCSN++ baseline, made like BUILTIN_MODEL."""


def _per_sample(sigma: Tensor | float, x: Tensor) -> Tensor:
    """``sigma`` as a float32 vector ``[B]`` on ``x``'s device."""
    s = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1)
    return s.expand(x.shape[0]) if s.numel() == 1 else s


def edm_scalings(sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor]:
    """Karras et al. 2022, Table 1: ``c_skip, c_out, c_in`` for noise levels ``sigma [B]``, each [B,1,1,1]."""
    s2, d2 = sigma.pow(2), sigma_data**2
    c_skip = d2 / (s2 + d2)
    c_out = sigma * sigma_data / (s2 + d2).sqrt()
    c_in = 1.0 / (s2 + d2).sqrt()
    return tuple(c.reshape(-1, 1, 1, 1) for c in (c_skip, c_out, c_in))  # type: ignore[return-value]


def edm_loss_weight(sigma: Tensor, sigma_data: float) -> Tensor:
    """EDM's ``lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2``: unit weight on ``F``."""
    return (sigma.pow(2) + sigma_data**2) / (sigma * sigma_data).pow(2)


class Prior(nn.Module):
    """A score network under its parametrisation; ``forward`` is the denoiser ``D(x, sigma)``.

    ``x [B, C, H, W]`` lives in the network's space (12 MPT channels, or 3), pixels in [0, 1] plus noise;
    ``sigma`` is a float or one level per batch element. Wrapping the network as a module lets DDP see
    the denoiser as the forward pass.
    """

    def __init__(self, net: ScoreModel, precond: PrecondConfig) -> None:
        super().__init__()
        self.net = net
        self.precond = precond

    @property
    def device(self) -> torch.device:
        """Where the network's weights are (the CPU for a network without any)."""
        return next(iter(self.parameters()), torch.empty(0)).device

    def forward(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        s = _per_sample(sigma, x)
        if self.precond.kind == "score-sde":
            return x + s.reshape(-1, 1, 1, 1).pow(2) * self.net(x, s)
        c_skip, c_out, c_in = edm_scalings(s, self.precond.sigma_data)
        u = x - 0.5  # around the data mean, so c_in gives a unit-variance input
        out = self.net.raw(c_in * u, s.log() / 4)
        return 0.5 + c_skip * u + c_out * out.to(x.dtype)

    def score(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """``(D(x, sigma) - x) / sigma^2``; a ``score-sde`` network's output is the score itself, taken as
        is so that such a model samples exactly as it did before parametrisations existed."""
        s = _per_sample(sigma, x)
        if self.precond.kind == "score-sde":
            return self.net(x, s)
        return (self(x, s) - x) / s.reshape(-1, 1, 1, 1).pow(2)


@dataclass(frozen=True)
class Runtime:
    """How the network runs, not what it computes: on a GPU both options buy speed for a little
    rounding (`ESDIFF_BF16=1`, `ESDIFF_COMPILE=1` for `esdiff inpaint`; `esdiff evaluate --bf16 --compile`;
    `benchmarks/gpu_check.sh` measures them)."""

    bf16: bool = False
    """Run the network under bfloat16 autocast (convolutions and attention in bf16, the rest float32)."""
    compile: bool = False
    """``torch.compile`` the score (one compilation per batch shape; sigma is a tensor input, so the
    noise levels of a run reuse it)."""


def scorer(prior: Prior, runtime: Runtime = Runtime()) -> Callable[[Tensor, float], Tensor]:
    """The sampler's ``score(psi, sigma)`` of ``prior`` under ``runtime``, without autograd, in the
    input's dtype. The default runtime is ``prior.score`` itself."""
    if runtime == Runtime():
        return torch.inference_mode()(prior.score)
    net = _compiled(prior) if runtime.compile else prior.score
    autocast = torch.autocast(prior.device.type, dtype=torch.bfloat16, enabled=runtime.bf16)

    @torch.inference_mode()
    def score(psi: Tensor, sigma: float) -> Tensor:
        levels = torch.full((psi.shape[0],), sigma, dtype=torch.float32, device=psi.device)
        with autocast:
            return net(psi, levels).to(psi.dtype)

    return score


@functools.lru_cache(maxsize=4)
def _compiled(prior: Prior) -> Callable[[Tensor, Tensor], Tensor]:
    return torch.compile(prior.score, dynamic=False)


@functools.lru_cache(maxsize=2)
def load(path: str | None, device: str) -> tuple[Prior, Tensor | None, VESDE]:
    """The model at ``path`` (None: the built-in one) as a Prior, its keep-mask (None without MPT), SDE."""
    from esdiff.checkpoints import load_model

    file = Path(path) if path else BUILTIN_MODEL
    if file in (BUILTIN_MODEL, NCSNPP_MODEL) and not file.exists():
        raise EsdiffError(f"the shipped model {file.name} is not installed ({file}); pass a checkpoint")
    net, keep, cfg = load_model(file, device)
    prior = Prior(net, cfg.precond).eval().requires_grad_(False)
    return prior, (keep.bool() if cfg.mpt.enabled else None), VESDE.from_config(cfg.sde)


@torch.inference_mode()
def denoise_patches(prior: Prior, encoding: Encoding, patches: Tensor, sigma: float) -> Tensor:
    """One-step denoised RGB patches ``[B, 3, h, w]``: encode, ``D``, decode (i-MPT and fusion)."""
    return encoding.decode(prior(encoding.encode(patches), sigma))


def denoise(
    image: np.ndarray,
    sigma: float,
    *,
    model: str | Path | None = None,
    device: str = "cpu",
    patch_batch: int = 25,
    fusion: FusionMode = "softmax",
) -> np.ndarray:
    """The model's one-step denoised estimate of a noisy float ``H x W x 3`` image (noise std ``sigma`` on
    the [0, 1] scale): 64x64 patches cut and stitched as the sampler does, MPT encode and fusion when the
    model has MPT. ``model=None`` is the built-in one. Returns float64 ``H x W x 3``, not clipped."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise EsdiffError(f"expected an H x W x 3 image, got shape {image.shape}")
    if not (math.isfinite(sigma) and sigma > 0):
        raise EsdiffError(f"sigma must be a positive number, got {sigma}")
    prior, keep, _ = load(str(model) if model else None, device)
    return denoise_image(prior, Encoding(keep, fusion), image, sigma, patch_batch)


def denoise_image(
    prior: Prior, encoding: Encoding, image: np.ndarray, sigma: float, patch_batch: int = 25
) -> np.ndarray:
    """:func:`denoise` with a given prior and encoding, on the prior's device."""
    device = prior.device
    grid = make_grid(image.shape[0], image.shape[1])
    pixels = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)
    patches = grid.cut(pixels)
    out = [
        denoise_patches(prior, encoding, patches[k : k + patch_batch].to(device), sigma).cpu()
        for k in range(0, grid.count, patch_batch)
    ]
    return grid.stitch(torch.cat(out)).permute(1, 2, 0).numpy().astype(np.float64)
