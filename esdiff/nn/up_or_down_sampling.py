"""FIR up- and down-sampling by a factor of 2 (StyleGAN2's `upfirdn2d`, as used by NCSN++).

Song et al. 2021 ("Score-Based Generative Modeling through SDEs", App. H) resample with the FIR kernel
`[1, 3, 3, 1]` (Zhang 2019, "Making convolutional networks shift-invariant again"). Both operations are
depthwise (one filter per channel) and are written as a single strided (transposed) convolution, which
equals `upfirdn2d(x, k, up=2, pad=...)` / `upfirdn2d(x, k, down=2, pad=...)` of the reference code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def setup_kernel(k: Sequence[float]) -> Tensor:
    """The separable 2-D FIR kernel `outer(k, k)`, normalised to sum 1 (float32)."""
    k1 = torch.as_tensor(list(k), dtype=torch.float64)
    if k1.ndim != 1 or k1.numel() < 1:
        raise ValueError(f"FIR kernel must be a non-empty 1-D sequence, got {k!r}")
    k2 = torch.outer(k1, k1)
    return (k2 / k2.sum()).to(torch.float32)


def _depthwise(kernel: Tensor, x: Tensor) -> Tensor:
    """The 2-D kernel as a depthwise weight `[C, 1, kh, kw]` in x's dtype and device."""
    c = x.shape[1]
    return kernel.to(device=x.device, dtype=x.dtype)[None, None].expand(c, 1, *kernel.shape)


def upsample_2d(x: Tensor, kernel: Tensor, factor: int = 2) -> Tensor:
    """Upsample `[B, C, H, W]` by `factor` with the 2-D FIR `kernel` (gain 1): `[B, C, fH, fW]`.

    Equals `upfirdn2d(x, kernel * factor**2, up=factor, pad=((p+1)//2 + factor-1, p//2))`,
    `p = kh - factor`: zero insertion, padding and correlation with the flipped kernel, which is what a
    transposed convolution computes.
    """
    kh = kernel.shape[0]
    p = kh - factor
    pad0, pad1 = (p + 1) // 2 + factor - 1, p // 2
    w = _depthwise(kernel * factor**2, x)
    # conv_transpose2d pads the zero-inserted signal by kh-1 on both sides; crop to (pad0, pad1 + f-1).
    crop0, crop1 = kh - 1 - pad0, kh - 1 - (pad1 + factor - 1)
    if crop0 == crop1 and crop0 >= 0:
        return F.conv_transpose2d(x, w, stride=factor, padding=crop0, groups=x.shape[1])
    y = F.conv_transpose2d(x, w, stride=factor, groups=x.shape[1])
    return F.pad(y, (-crop0, -crop1, -crop0, -crop1))


def downsample_2d(x: Tensor, kernel: Tensor, factor: int = 2) -> Tensor:
    """Downsample `[B, C, H, W]` by `factor` with the 2-D FIR `kernel` (gain 1): `[B, C, H/f, W/f]`.

    Equals `upfirdn2d(x, kernel, down=factor, pad=((p+1)//2, p//2))`, `p = kh - factor`.
    """
    kh = kernel.shape[0]
    p = kh - factor
    pad0, pad1 = (p + 1) // 2, p // 2
    w = _depthwise(torch.flip(kernel, (0, 1)), x)
    if pad0 == pad1:
        return F.conv2d(x, w, stride=factor, padding=pad0, groups=x.shape[1])
    x = F.pad(x, (pad0, pad1, pad0, pad1))
    return F.conv2d(x, w, stride=factor, groups=x.shape[1])


class Upsample2d(nn.Module):
    """FIR upsampling by 2 without a convolution (`Upsample(with_conv=False, fir=True)`)."""

    kernel: Tensor

    def __init__(self, fir_kernel: Sequence[float] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.register_buffer("kernel", setup_kernel(fir_kernel), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return upsample_2d(x, self.kernel)


class Downsample2d(nn.Module):
    """FIR downsampling by 2 without a convolution (`Downsample(with_conv=False, fir=True)`)."""

    kernel: Tensor

    def __init__(self, fir_kernel: Sequence[float] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.register_buffer("kernel", setup_kernel(fir_kernel), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return downsample_2d(x, self.kernel)
