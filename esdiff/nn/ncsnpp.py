"""The NCSN++ score network (Song et al. 2021, "Score-Based Generative Modeling through SDEs", App. H).

A faithful re-implementation of score_sde's `ncsnpp` model in the configuration ESDiff uses (SPEC 2):
Gaussian Fourier embedding of `log sigma`, BigGAN residual blocks with FIR resampling, skip rescale,
self-attention at `attn_resolutions` and in the middle, `progressive = output_skip`,
`progressive_input = input_skip`, `progressive_combine = sum`, data in [0, 1] mapped to [-1, 1]
(`centered = False`), and the output divided by sigma (`scale_by_sigma = True`).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn

from esdiff.config import NetworkConfig
from esdiff.nn.layers import (
    AttnBlockpp,
    Combine,
    GaussianFourierProjection,
    ResnetBlockBigGANpp,
    conv3x3,
    group_norm,
    linear,
)
from esdiff.nn.up_or_down_sampling import Downsample2d, Upsample2d


class DownLevel(nn.Module):
    """One encoder resolution: residual blocks (+ attention), then a down block and the input skip."""

    def __init__(
        self,
        block: functools.partial[ResnetBlockBigGANpp],
        attn: functools.partial[AttnBlockpp] | None,
        in_ch: int,
        out_ch: int,
        num_blocks: int,
        last: bool,
        channels: int,
        fir_kernel: tuple[int, ...],
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(block(in_ch if i == 0 else out_ch, out_ch) for i in range(num_blocks))
        self.attns = nn.ModuleList(attn(out_ch) if attn else nn.Identity() for _ in range(num_blocks))
        self.down = None if last else block(out_ch, out_ch, down=True)
        self.pyramid_down = None if last else Downsample2d(fir_kernel)
        self.combine = None if last else Combine(channels, out_ch)

    def forward(self, h: Tensor, pyramid: Tensor, temb: Tensor, skips: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Appends every intermediate activation to `skips`; returns the new `h` and input pyramid."""
        for block, attn in zip(self.blocks, self.attns, strict=True):
            h = attn(block(h, temb))
            skips.append(h)
        if self.down is not None and self.pyramid_down is not None and self.combine is not None:
            h = self.down(h, temb)
            pyramid = self.pyramid_down(pyramid)
            h = self.combine(pyramid, h)
            skips.append(h)
        return h, pyramid


class UpLevel(nn.Module):
    """One decoder resolution: residual blocks on `[h, skip]`, attention, output skip, an up block."""

    def __init__(
        self,
        block: functools.partial[ResnetBlockBigGANpp],
        attn: functools.partial[AttnBlockpp] | None,
        in_chs: list[int],
        out_ch: int,
        first: bool,
        last: bool,
        channels: int,
        fir_kernel: tuple[int, ...],
        init_scale: float,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(block(c, out_ch) for c in in_chs)
        self.attn = attn(out_ch) if attn else None
        self.act = nn.SiLU()
        self.pyramid_up = None if first else Upsample2d(fir_kernel)
        self.out_norm = group_norm(out_ch)
        self.out_conv = conv3x3(out_ch, channels, init_scale)
        self.up = None if last else block(out_ch, out_ch, up=True)

    def forward(
        self, h: Tensor, pyramid: Tensor | None, temb: Tensor, skips: list[Tensor]
    ) -> tuple[Tensor, Tensor]:
        """Pops its skip activations from `skips`; returns the new `h` and output pyramid."""
        for block in self.blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), temb)
        if self.attn is not None:
            h = self.attn(h)
        out = self.out_conv(self.act(self.out_norm(h)))
        if pyramid is None or self.pyramid_up is None:
            pyramid = out
        else:
            pyramid = self.pyramid_up(pyramid) + out
        if self.up is not None:
            h = self.up(h, temb)
        return h, pyramid


class ScoreModel(nn.Module):
    """NCSN++ score network `s(x, sigma) ~ grad log p_sigma(x)`, output already divided by sigma.

    `forward(x [B, C, H, W] in [0, 1], sigma [B]) -> [B, C, H, W]`; H and W multiples of
    `2 ** (len(ch_mult) - 1)`. Attention is placed by level, at the levels whose resolution at
    `config.image_size` is in `attn_resolutions`. The output dtype is the promotion of the network's and
    sigma's (float32 under bf16 autocast with a float32 sigma).
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        nf, ch, n_levels = config.nf, config.channels, len(config.ch_mult)
        fir = tuple(config.fir_kernel)
        resolutions = [config.image_size // 2**i for i in range(n_levels)]

        # Noise-level embedding: Fourier features of log sigma, two dense layers to 4 nf.
        self.fourier = GaussianFourierProjection(nf, config.fourier_scale)
        self.temb_0 = linear(2 * nf, 4 * nf)
        self.temb_1 = linear(4 * nf, 4 * nf)
        self.act = nn.SiLU()

        block = functools.partial(
            ResnetBlockBigGANpp,
            temb_dim=4 * nf,
            dropout=config.dropout,
            fir_kernel=fir,
            skip_rescale=config.skip_rescale,
            init_scale=config.init_scale,
        )
        attn = functools.partial(AttnBlockpp, skip_rescale=config.skip_rescale, init_scale=config.init_scale)

        def attn_at(level: int) -> functools.partial[AttnBlockpp] | None:
            return attn if resolutions[level] in config.attn_resolutions else None

        self.conv_in = conv3x3(ch, nf)
        skip_chs, in_ch = [nf], nf
        self.down_levels = nn.ModuleList()
        for i, mult in enumerate(config.ch_mult):
            out_ch = nf * mult
            last = i == n_levels - 1
            self.down_levels.append(
                DownLevel(block, attn_at(i), in_ch, out_ch, config.num_res_blocks, last, ch, fir)
            )
            skip_chs += [out_ch] * (config.num_res_blocks + (0 if last else 1))
            in_ch = out_ch

        self.mid_block_0 = block(in_ch, in_ch)
        self.mid_attn = attn(in_ch)
        self.mid_block_1 = block(in_ch, in_ch)

        self.up_levels = nn.ModuleList()
        for i in reversed(range(n_levels)):
            out_ch = nf * config.ch_mult[i]
            in_chs = []
            for _ in range(config.num_res_blocks + 1):
                in_chs.append(in_ch + skip_chs.pop())
                in_ch = out_ch
            first, last = i == n_levels - 1, i == 0
            self.up_levels.append(
                UpLevel(block, attn_at(i), in_chs, out_ch, first, last, ch, fir, config.init_scale)
            )
        assert not skip_chs

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        """The score estimate at noise level `sigma` (one per batch element, or a scalar)."""
        if sigma.numel() == 1:
            sigma = sigma.reshape(1).expand(x.shape[0])
        out = self.raw(2 * x - 1, torch.log(sigma))  # data in [0, 1] (centered = False)
        return out / sigma.reshape(-1, 1, 1, 1)

    def raw(self, x: Tensor, noise_label: Tensor) -> Tensor:
        """The network itself: input ``x`` as given, Fourier embedding of ``noise_label`` (one per batch
        element), no output scaling; ``esdiff.prior`` wraps it in a parametrisation."""
        factor = 2 ** (len(self.config.ch_mult) - 1)
        if x.ndim != 4 or x.shape[1] != self.config.channels or x.shape[2] % factor or x.shape[3] % factor:
            want = f"[B, {self.config.channels}, H, W] with H, W multiples of {factor}"
            raise ValueError(f"expected {want}, got {tuple(x.shape)}")
        if noise_label.numel() == 1:
            noise_label = noise_label.reshape(1).expand(x.shape[0])
        temb = self.fourier(noise_label)
        temb = self.temb_1(self.act(self.temb_0(temb)))

        pyramid = x
        h = self.conv_in(x)
        skips = [h]
        for down in self.down_levels:
            h, pyramid = down(h, pyramid, temb, skips)

        h = self.mid_block_0(h, temb)
        h = self.mid_attn(h)
        h = self.mid_block_1(h, temb)

        out: Tensor | None = None
        for up in self.up_levels:
            h, out = up(h, out, temb, skips)
        assert out is not None and not skips
        return out


def build_score_model(cfg: NetworkConfig) -> ScoreModel:
    """A freshly initialised NCSN++ for `cfg` (seed the global RNG first for reproducible weights)."""
    return ScoreModel(cfg)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
