"""NCSN++ building blocks (Song et al. 2021, "Score-Based Generative Modeling through SDEs", App. H).

Written after the reference `layerspp.py` of score_sde: Gaussian Fourier noise embedding, BigGAN-style
residual blocks with FIR resampling, channel-wise self-attention, and the input-skip combiner. Weights
are initialised as there: uniform fan-avg variance scaling (scale 1), biases zero, and the last layer of
every residual branch at `init_scale` (0 by default, i.e. 1e-10). Initialisation draws from the global
RNG, so the caller seeds (`torch.manual_seed`); `forward` never draws random numbers unless dropout > 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from esdiff.nn.up_or_down_sampling import Downsample2d, Upsample2d

_SQRT2 = math.sqrt(2.0)


@torch.no_grad()
def variance_scaling_(weight: Tensor, scale: float = 1.0) -> Tensor:
    """In place: uniform fan-avg variance scaling (score_sde `default_init`); scale 0 means 1e-10."""
    scale = 1e-10 if scale == 0 else scale
    receptive = weight[0, 0].numel()
    fan_avg = (weight.shape[0] + weight.shape[1]) * receptive / 2
    bound = math.sqrt(3.0 * scale / fan_avg)
    return weight.uniform_(-bound, bound)


def conv2d(in_ch: int, out_ch: int, kernel_size: int, init_scale: float = 1.0) -> nn.Conv2d:
    """A `same`-padded convolution with score_sde's initialisation (`ddpm_conv3x3` / `ddpm_conv1x1`)."""
    conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2)
    variance_scaling_(conv.weight, init_scale)
    assert conv.bias is not None
    nn.init.zeros_(conv.bias)
    return conv


def conv3x3(in_ch: int, out_ch: int, init_scale: float = 1.0) -> nn.Conv2d:
    return conv2d(in_ch, out_ch, 3, init_scale)


def conv1x1(in_ch: int, out_ch: int, init_scale: float = 1.0) -> nn.Conv2d:
    """Also stands in for score_sde's `NIN` (a per-pixel linear layer: same maths, same init)."""
    return conv2d(in_ch, out_ch, 1, init_scale)


def linear(in_features: int, out_features: int) -> nn.Linear:
    layer = nn.Linear(in_features, out_features)
    variance_scaling_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with `min(C // 4, 32)` groups and eps 1e-6, as in NCSN++.

    Where that does not divide C (e.g. C = 144, which the reference rejects), the largest divisor below.
    """
    groups = max(min(channels // 4, 32), 1)
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(num_groups=groups, num_channels=channels, eps=1e-6)


class GaussianFourierProjection(nn.Module):
    """Random Fourier features of a scalar (Tancik et al. 2020): `[sin(2 pi W s), cos(2 pi W s)]`.

    `W ~ N(0, scale^2)` is fixed (a buffer, saved with the weights); the output has `2 * size` features.
    """

    W: Tensor

    def __init__(self, embedding_size: int, scale: float = 16.0) -> None:
        super().__init__()
        self.register_buffer("W", torch.randn(embedding_size) * scale)

    def forward(self, s: Tensor) -> Tensor:
        # At least float32 inside (sin of arguments in the hundreds); the result in W's dtype.
        dtype = torch.promote_types(torch.promote_types(s.dtype, self.W.dtype), torch.float32)
        proj = s.to(dtype)[:, None] * self.W.to(dtype)[None, :] * (2 * math.pi)
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1).to(self.W.dtype)


class Combine(nn.Module):
    """Input-skip combiner, method `sum`: `h + conv1x1(pyramid)`."""

    def __init__(self, dim1: int, dim2: int) -> None:
        super().__init__()
        self.conv = conv1x1(dim1, dim2)

    def forward(self, pyramid: Tensor, h: Tensor) -> Tensor:
        return self.conv(pyramid) + h


class AttnBlockpp(nn.Module):
    """Single-head self-attention over all pixels (DDPM's block), NIN q/k/v and output, skip rescale."""

    def __init__(self, channels: int, skip_rescale: bool = True, init_scale: float = 0.0) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        # q, k, v as one 1x1 convolution; each third initialised like its own NIN layer.
        self.qkv = conv1x1(channels, 3 * channels)
        for chunk in self.qkv.weight.chunk(3, dim=0):
            variance_scaling_(chunk)
        self.proj = conv1x1(channels, channels, init_scale)
        self.skip_rescale = skip_rescale

    def forward(self, x: Tensor) -> Tensor:
        b, c, hh, ww = x.shape
        q, k, v = self.qkv(self.norm(x)).chunk(3, dim=1)
        # [B, 1, HW, C]: one head of width C, softmax(q k^T / sqrt(C)) v. Contiguous: the fast CPU kernel.
        q, k, v = (t.reshape(b, 1, c, hh * ww).transpose(-1, -2).contiguous() for t in (q, k, v))
        h = F.scaled_dot_product_attention(q, k, v)
        h = h.transpose(-1, -2).reshape(b, c, hh, ww)
        h = self.proj(h)
        out = x + h
        return out / _SQRT2 if self.skip_rescale else out


class ResnetBlockBigGANpp(nn.Module):
    """BigGAN-style residual block of NCSN++, optionally resampling by 2 with the FIR kernel.

    `h = conv(drop(act(GN(conv(resample(act(GN(x)))) + Dense(act(temb))))))`, skip
    `conv1x1(resample(x))` when channels change or when resampling, sum divided by sqrt(2).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int | None = None,
        temb_dim: int | None = None,
        up: bool = False,
        down: bool = False,
        dropout: float = 0.0,
        fir_kernel: Sequence[float] = (1, 3, 3, 1),
        skip_rescale: bool = True,
        init_scale: float = 0.0,
    ) -> None:
        super().__init__()
        if up and down:
            raise ValueError("a block resamples up or down, not both")
        out_ch = out_ch or in_ch
        self.act = nn.SiLU()
        self.norm0 = group_norm(in_ch)
        self.resample: nn.Module | None = None
        if up:
            self.resample = Upsample2d(fir_kernel)
        elif down:
            self.resample = Downsample2d(fir_kernel)
        self.conv0 = conv3x3(in_ch, out_ch)
        self.dense = linear(temb_dim, out_ch) if temb_dim is not None else None
        self.norm1 = group_norm(out_ch)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv1 = conv3x3(out_ch, out_ch, init_scale)
        self.skip = conv1x1(in_ch, out_ch) if (in_ch != out_ch or up or down) else None
        self.skip_rescale = skip_rescale

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        h = self.act(self.norm0(x))
        if self.resample is not None:
            h = self.resample(h)
            x = self.resample(x)
        h = self.conv0(h)
        if self.dense is not None and temb is not None:
            h = h + self.dense(self.act(temb))[:, :, None, None]
        h = self.dropout(self.act(self.norm1(h)))
        h = self.conv1(h)
        if self.skip is not None:
            x = self.skip(x)
        out = x + h
        return out / _SQRT2 if self.skip_rescale else out
