"""The inpainting forward model ``y = D x`` and its data-consistency step (paper Eqs. 21-22), and which
pixels lie near a known one."""

from __future__ import annotations

import torch
from torch import Tensor


class Inpainting:
    """``A x = D * x`` for a fixed mask ``D`` (1 or True on known pixels); never changes itself.

    The mask broadcasts against the images: ``[H, W]`` or ``[B, 1, H, W]`` for ``[B, C, H, W]`` images.
    """

    def __init__(self, mask: Tensor) -> None:
        self.mask = mask.bool()

    def A(self, x: Tensor) -> Tensor:  # noqa: N802 - the maths' name
        """Keep the known pixels, zero the missing ones."""
        return x * self.mask.to(x.dtype)

    def A_adjoint(self, y: Tensor) -> Tensor:  # noqa: N802 - the maths' name
        """``D`` is diagonal and real, so the adjoint is the same masking."""
        return y * self.mask.to(y.dtype)

    def prox_l2(self, z: Tensor, y: Tensor, lam: float = 0.0) -> Tensor:
        """Eq. 22 per pixel: ``argmin_x ||A x - y||^2 + lam ||x - z||^2``.

        Known pixels become ``(y + lam z) / (1 + lam)``, missing pixels keep ``z``; ``lam = 0`` is the
        noiseless limit, which puts the observation back exactly.
        """
        mask = self.mask.to(z.device)
        known = y if lam == 0 else (y + lam * z) / (1.0 + lam)
        return z.where(~mask, known.to(z.dtype))


def within(known: Tensor, r: int) -> Tensor:
    """``[..., h, w]`` bool: the pixels at Chebyshev distance ``r`` or less from a known one (``known [B,
    1, h, w]`` or ``[1, 1, h, w]``; outside the frame nothing is known)."""
    return torch.nn.functional.max_pool2d(known.float(), 2 * r + 1, stride=1, padding=r) > 0
