"""Deep Image Prior inpainting.

Ulyanov, Vedaldi & Lempitsky 2018, "Deep Image Prior", CVPR (and IJCV 2020). A randomly initialised
encoder-decoder ``f`` maps a fixed noise tensor ``z`` to an image; its weights are fitted by Adam to
the known pixels only, ``min ||m * (f(z) - y)||^2``, and the structure of the network fills the holes
before it overfits. The network is the paper's "skip" architecture (supplementary material): ``levels``
levels, each a stride-2 3x3 conv and a 3x3 conv down, bilinear x2 upsampling, concatenation with a 1x1
skip branch, BatchNorm, a 3x3 and a 1x1 conv up; LeakyReLU(0.2), reflection padding, sigmoid output.
The image is padded (as unknown pixels) to a multiple of ``2^levels`` and the output cropped back.

Default settings (``DEFAULTS``): ``iterations=1000`` (the paper runs thousands; an iteration on a
256x256 image is slow on a CPU, so this is a GPU setting),
``lr=0.01``, ``input_channels=32``, ``input_scale=0.1`` (``z ~ U[0, 0.1)``), ``reg_noise_std=1/30``
(fresh Gaussian noise added to ``z`` each iteration), ``levels=5``, ``channels=128`` (down and up),
``skip_channels=4``. Outputs are reproducible for a given seed, device and torch thread count.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from esdiff.baselines.common import check_inputs, merge_settings

DEFAULTS: dict = {
    "iterations": 1000,
    "lr": 0.01,
    "input_channels": 32,
    "input_scale": 0.1,
    "reg_noise_std": 1.0 / 30.0,
    "levels": 5,
    "channels": 128,
    "skip_channels": 4,
}


def inpaint(
    image: np.ndarray,
    known: np.ndarray,
    *,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    device: str = "cpu",
    snapshot: Callable[[int, np.ndarray], None] | None = None,
    snapshot_every: int = 100,
    **settings,
) -> np.ndarray:
    """Fill the pixels where ``known`` is False with a Deep Image Prior fitted to the known ones.

    ``snapshot(iteration, estimate)``, when given, receives every ``snapshot_every`` iterations the
    image this function would return if it stopped there (for PSNR-against-iterations curves).
    """
    cfg = merge_settings("dip", DEFAULTS, settings)
    image, known = check_inputs(image, known)
    H, W = known.shape
    step = 2 ** cfg["levels"]
    pad = (0, (-W) % step, 0, (-H) % step)  # left, right, top, bottom
    gen = torch.Generator(device="cpu").manual_seed(seed)

    observed = np.where(known[..., None], image, 0.0)
    y = torch.from_numpy(observed.transpose(2, 0, 1)[None]).float()
    m = torch.from_numpy(known[None, None].astype(np.float32))
    y, m = F.pad(y, pad).to(device), F.pad(m, pad).to(device)
    net = skip_net(cfg["input_channels"], 3, cfg["levels"], cfg["channels"], cfg["skip_channels"])
    _init_weights(net, gen)
    net = net.to(device)
    z = (torch.rand((1, cfg["input_channels"], *y.shape[2:]), generator=gen) * cfg["input_scale"]).to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=cfg["lr"], fused=True)  # fused: ~25 % faster on CPU

    def estimate() -> np.ndarray:
        with torch.no_grad():
            out = net(z)[0, :, :H, :W].permute(1, 2, 0).double().cpu().numpy()
        return np.where(known[..., None], image, np.clip(out, 0.0, 1.0))

    for it in range(cfg["iterations"]):
        z_it = z
        if cfg["reg_noise_std"] > 0:
            noise = torch.randn(z.shape, generator=gen).to(device)
            z_it = z + cfg["reg_noise_std"] * noise
        optimiser.zero_grad()
        loss = torch.mean((net(z_it) * m - y * m) ** 2)
        loss.backward()
        optimiser.step()
        if progress is not None:
            progress(it + 1, cfg["iterations"])
        if snapshot is not None and (it + 1) % snapshot_every == 0:
            snapshot(it + 1, estimate())
    return estimate()


def skip_net(
    in_channels: int, out_channels: int, levels: int, channels: int, skip_channels: int
) -> nn.Module:
    """The DIP "skip" encoder-decoder (Ulyanov et al., supplementary material), as nested levels."""
    inner: nn.Module | None = None
    for level in reversed(range(levels)):
        c_in = in_channels if level == 0 else channels
        inner = _Level(c_in, channels, channels, skip_channels, inner)
    assert inner is not None
    return nn.Sequential(inner, nn.Conv2d(channels, out_channels, 1), nn.Sigmoid())


def _conv(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Sequential:
    """Reflection pad, conv, BatchNorm, LeakyReLU(0.2)."""
    pad = [nn.ReflectionPad2d((k - 1) // 2)] if k > 1 else []
    return nn.Sequential(
        *pad, nn.Conv2d(c_in, c_out, k, stride=stride), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)
    )


class _Level(nn.Module):
    """One level: ``up(bn(cat(skip(x), upsample(deeper(down(x))))))``."""

    def __init__(self, c_in: int, down: int, up: int, skip: int, deeper: nn.Module | None):
        super().__init__()
        self.skip = _conv(c_in, skip, 1) if skip > 0 else None
        self.down = nn.Sequential(_conv(c_in, down, 3, stride=2), _conv(down, down, 3))
        self.deeper = deeper if deeper is not None else nn.Identity()
        c_cat = skip + (up if deeper is not None else down)
        self.up = nn.Sequential(nn.BatchNorm2d(c_cat), _conv(c_cat, up, 3), _conv(up, up, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deep = F.interpolate(self.deeper(self.down(x)), scale_factor=2, mode="bilinear")
        if self.skip is not None:
            deep = torch.cat([self.skip(x), deep], dim=1)
        return self.up(deep)


def _init_weights(net: nn.Module, gen: torch.Generator) -> None:
    """PyTorch's default conv initialisation (uniform, bound 1/sqrt(fan_in)) drawn from ``gen``."""
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                bound = 1.0 / np.sqrt(module.weight[0].numel())
                module.weight.uniform_(-bound, bound, generator=gen)
                if module.bias is not None:
                    module.bias.uniform_(-bound, bound, generator=gen)
