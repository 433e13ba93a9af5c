"""Validation while training: one-step denoising PSNR on a fixed, seeded set of crops from held-out images.

The same :class:`esdiff.prior.Prior` the sampler uses denoises each noisy crop (MPT encode, ``D``, i-MPT and
fusion), so the figure is what the prior is worth as a denoiser at the levels inpainting visits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from esdiff.data import CropSampler
from esdiff.prior import Prior, denoise_patches
from esdiff.transforms import Encoding

VAL_SIGMAS = (10, 25, 50)
"""Noise levels of the validation, on the 0-255 scale."""


def psnr_batch(x: Tensor, ref: Tensor) -> Tensor:
    """PSNR (dB, peak 1) of each ``[B, ...]`` item after clipping ``x`` to [0, 1]."""
    mse = (x.clamp(0, 1) - ref).pow(2).flatten(1).mean(dim=1).clamp_min(1e-12)
    return -10 * torch.log10(mse)


@dataclass(frozen=True)
class ValidationSet:
    """Clean crops ``[N, 3, 64, 64]`` and, per level in ``sigmas`` (0-255 scale), their noisy copies."""

    clean: Tensor
    noisy: dict[int, Tensor]

    @classmethod
    def from_images(
        cls,
        images: Sequence[np.ndarray],
        crops: int = 32,
        seed: int = 0,
        sigmas: Sequence[int] = VAL_SIGMAS,
        size: int = 64,
    ) -> ValidationSet:
        """``crops`` random crops spread over the images (the same for the same images and seed)."""
        generator = torch.Generator().manual_seed(seed)
        per_image = max(1, -(-crops // len(images)))
        clean = CropSampler(images, size, per_image).sample(generator)[:crops]
        noisy = {s: clean + s / 255 * torch.randn(clean.shape, generator=generator) for s in sigmas}
        return cls(clean, noisy)

    @torch.no_grad()
    def psnr(self, prior: Prior, encoding: Encoding, batch: int = 32) -> dict[int, float]:
        """Mean denoising PSNR per level; the prior runs in eval mode on its own device."""
        device = prior.device
        was_training = prior.training
        prior.eval()
        try:
            result = {}
            for sigma, noisy in self.noisy.items():
                values = [
                    psnr_batch(
                        denoise_patches(prior, encoding, noisy[k : k + batch].to(device), sigma / 255).cpu(),
                        self.clean[k : k + batch],
                    )
                    for k in range(0, noisy.shape[0], batch)
                ]
                result[sigma] = float(torch.cat(values).mean())
            return result
        finally:
            prior.train(was_training)
