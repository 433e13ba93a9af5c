"""Tests of the NCSN++ score network (esdiff.nn)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from esdiff.config import NETWORK_PRESETS, NetworkConfig
from esdiff.nn import ScoreModel, build_score_model, count_parameters
from esdiff.nn.layers import AttnBlockpp, variance_scaling_
from esdiff.nn.ncsnpp import UpLevel
from esdiff.nn.up_or_down_sampling import downsample_2d, setup_kernel, upsample_2d

TINY = NETWORK_PRESETS["tiny"]


def tiny_model(seed: int = 0, **changes: Any) -> ScoreModel:
    torch.manual_seed(seed)
    return build_score_model(dataclasses.replace(TINY, **changes))


def up_levels(model: ScoreModel) -> list[UpLevel]:
    return [up for up in model.up_levels if isinstance(up, UpLevel)]


def randomise_outputs(model: ScoreModel) -> None:
    """Give the zero-initialised output convolutions unit scale, so outputs are not ~0."""
    for up in up_levels(model):
        variance_scaling_(up.out_conv.weight)


def inputs(batch: int = 2, channels: int = 12, size: int = 32, seed: int = 1) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, channels, size, size, generator=g)
    sigma = torch.exp(torch.empty(batch).uniform_(-4.0, 5.0, generator=g))
    return x, sigma


def upfirdn2d_naive(
    x: torch.Tensor, k: torch.Tensor, up: int, down: int, pad: tuple[int, int]
) -> torch.Tensor:
    """StyleGAN2's upfirdn2d by definition: zero insertion, padding, flipped-kernel FIR, decimation."""
    b, c, h, w = x.shape
    y = torch.zeros(b, c, h * up, w * up, dtype=x.dtype)
    y[:, :, ::up, ::up] = x
    y = F.pad(y, (pad[0], pad[1], pad[0], pad[1]))
    y = F.conv2d(y.reshape(b * c, 1, *y.shape[2:]), torch.flip(k, (0, 1))[None, None])
    return y.reshape(b, c, *y.shape[2:])[:, :, ::down, ::down]


@pytest.mark.parametrize("taps", [(1, 3, 3, 1), (1, 2, 1), (1, 1)])
def test_fir_resampling_matches_upfirdn2d(taps: tuple[int, ...]) -> None:
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    k = setup_kernel(taps).double()
    p = k.shape[0] - 2
    up_ref = upfirdn2d_naive(x, k * 4, up=2, down=1, pad=((p + 1) // 2 + 1, p // 2))
    down_ref = upfirdn2d_naive(x, k, up=1, down=2, pad=((p + 1) // 2, p // 2))
    torch.testing.assert_close(upsample_2d(x, k), up_ref)
    torch.testing.assert_close(downsample_2d(x, k), down_ref)
    assert upsample_2d(x, k).shape == (2, 3, 16, 16)
    assert downsample_2d(x, k).shape == (2, 3, 4, 4)


@pytest.mark.parametrize("channels", [12, 3])
def test_tiny_output_shape(channels: int) -> None:
    model = tiny_model(channels=channels)
    x, sigma = inputs(channels=channels, size=64)
    with torch.no_grad():
        out = model(x, sigma)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    assert model.config.channels == channels


def test_other_sizes_and_scalar_sigma() -> None:
    model = tiny_model(channels=3, ch_mult=(1, 2, 2), attn_resolutions=(32,))
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        out = model(x, torch.tensor(2.0))
        ref = model(x, torch.full((2,), 2.0))
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref)


@pytest.fixture(scope="module")
def paper_model() -> ScoreModel:
    torch.manual_seed(0)
    return build_score_model(NETWORK_PRESETS["paper"])


def test_rejects_bad_shapes() -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match="multiples of 2"):
        model(torch.rand(1, 12, 33, 32), torch.ones(1))
    with pytest.raises(ValueError, match="12"):
        model(torch.rand(1, 3, 32, 32), torch.ones(1))


def test_paper_parameter_count(paper_model: ScoreModel) -> None:
    n = count_parameters(paper_model)
    assert abs(n - 65.7e6) / 65.7e6 < 0.01, n


def test_paper_forward(paper_model: ScoreModel) -> None:
    """About 0.2 s on 2 idle CPU cores: not marked slow."""
    x, sigma = inputs(batch=1, size=64)
    with torch.no_grad():
        out = paper_model(x, sigma)
    assert out.shape == (1, 12, 64, 64)
    assert torch.isfinite(out).all()


def test_output_is_scaled_by_inverse_sigma() -> None:
    model = tiny_model().eval()
    randomise_outputs(model)
    inner: list[torch.Tensor] = []
    model.up_levels[-1].register_forward_hook(lambda mod, args, out: inner.append(out[1]))
    x, sigma = inputs()
    with torch.no_grad():
        out = model(x, sigma)
    assert inner[0].abs().mean() > 1e-2  # a real signal, not the zero-init output
    torch.testing.assert_close(out * sigma[:, None, None, None], inner[0])


def test_zero_init_output() -> None:
    """init_scale 0 makes the output convolutions (and so the initial score) nearly zero."""
    x, sigma = inputs()
    with torch.no_grad():
        out = tiny_model()(x, sigma)
    assert (out * sigma[:, None, None, None]).abs().max() < 1e-4


def test_determinism_given_seed() -> None:
    a, b = tiny_model(seed=3), tiny_model(seed=3)
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), name
    randomise_outputs(a)
    b.load_state_dict(a.state_dict())
    x, sigma = inputs()
    state = torch.get_rng_state()
    with torch.no_grad():
        out_a, out_b, out_a2 = a(x, sigma), b(x, sigma), a(x, sigma)
    assert torch.equal(torch.get_rng_state(), state)  # forward draws no global random numbers
    assert torch.equal(out_a, out_b) and torch.equal(out_a, out_a2)
    assert not torch.equal(tiny_model(seed=4).fourier.W, a.fourier.W)


def test_backward_gives_finite_gradients() -> None:
    model = tiny_model()
    x, sigma = inputs()
    z = torch.randn_like(x)
    loss = 0.5 * ((sigma[:, None, None, None] * model(x + sigma[:, None, None, None] * z, sigma) + z) ** 2)
    loss.sum(dim=(1, 2, 3)).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    grad = up_levels(model)[-1].out_conv.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_channels_last_and_double() -> None:
    model = tiny_model().eval()
    randomise_outputs(model)
    x, sigma = inputs()
    with torch.no_grad():
        ref = model(x, sigma)
        cl = model.to(memory_format=torch.channels_last)(  # type: ignore[call-overload]
            x.to(memory_format=torch.channels_last), sigma
        )
        dbl = model.double()(x.double(), sigma)
    torch.testing.assert_close(cl, ref, rtol=1e-4, atol=1e-4)
    assert dbl.dtype == torch.float64
    torch.testing.assert_close(dbl.float(), ref, rtol=1e-4, atol=1e-4)


def test_bf16_autocast() -> None:
    model = tiny_model().eval()
    randomise_outputs(model)
    x, sigma = inputs()
    with torch.no_grad():
        ref = model(x, sigma)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x, sigma)
    assert out.shape == ref.shape and torch.isfinite(out).all()
    err = (out.float() - ref).norm() / ref.norm()
    assert err < 0.05, err


def test_config_and_attention_placement() -> None:
    cfg = NetworkConfig(nf=16, ch_mult=(1, 2), num_res_blocks=2, attn_resolutions=(32,))
    model = build_score_model(cfg)
    assert model.config is cfg
    # Two in the 32x32 encoder level, one in the 32x32 decoder level, one in the middle.
    assert sum(isinstance(m, AttnBlockpp) for m in model.modules()) == 4


def test_golden_numbers() -> None:
    """Seeded tiny network in float64; the values were checked against a line-by-line port of score_sde's
    NCSNpp forward (same weights, agreement to 1e-15) when this was written. Regenerate only on purpose."""
    model = tiny_model(seed=0)
    randomise_outputs(model)
    model = model.double()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 12, 32, 32, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.1, 20.0], dtype=torch.float64)
    with torch.no_grad():
        out = model(x, sigma)
    golden_means = torch.tensor([1.1613561682816484, 0.0043392508666471276], dtype=torch.float64)
    torch.testing.assert_close(out.mean(dim=(1, 2, 3)), golden_means, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(out.abs().mean().item(), 3.301563399095043, rtol=1e-6, atol=0)
