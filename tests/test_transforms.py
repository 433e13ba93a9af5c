import math

import pytest
import torch

from esdiff.transforms import (
    expected_swap_fraction,
    fuse,
    fusion_weights,
    impt,
    mpt,
    pair_correlations,
    virtual_mask,
)


@pytest.mark.parametrize("ratio", [0.0, 0.5, 1.7, 2.81, 3.5])
@pytest.mark.parametrize("seed", [0, 7, 123])
def test_impt_inverts_mpt_exactly(ratio: float, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed + 1000)
    x = torch.rand(3, 3, 64, 64, generator=gen)
    keep = virtual_mask(ratio, 64, seed)
    estimates = impt(mpt(x, keep), keep)
    for k in range(4):
        assert torch.equal(estimates[:, k], x)


def test_mpt_layout_matches_spec() -> None:
    x = torch.rand(1, 3, 64, 64)
    keep = virtual_mask(0.0, 64, 3)
    obj = mpt(x, keep)
    r, g, b = x[0]
    m = keep.float()
    assert torch.equal(obj[0, :3], x[0])
    assert torch.allclose(obj[0, 3], r * m + g * (1 - m)) and torch.allclose(obj[0, 4], g * m + r * (1 - m))
    assert torch.equal(obj[0, 5], b)
    assert torch.equal(obj[0, 6], r)
    assert torch.allclose(obj[0, 7], g * m + b * (1 - m)) and torch.allclose(obj[0, 8], b * m + g * (1 - m))
    assert torch.allclose(obj[0, 9], r * m + b * (1 - m)) and torch.equal(obj[0, 10], g)
    assert torch.allclose(obj[0, 11], b * m + r * (1 - m))


@pytest.mark.parametrize("ratio", [0.0, 1.0, 2.0, 2.81])
def test_swap_fraction_matches_normal_tail(ratio: float) -> None:
    keep = virtual_mask(ratio, (512, 512), seed=5)
    p = expected_swap_fraction(ratio)
    observed = float((~keep).double().mean())
    sd = math.sqrt(p * (1 - p) / keep.numel())
    assert abs(observed - p) < 5 * sd + 1e-9
    assert expected_swap_fraction(2.81) == pytest.approx(0.0025, abs=1e-4)


def test_virtual_mask_is_seeded() -> None:
    assert torch.equal(virtual_mask(1.0, 64, 4), virtual_mask(1.0, 64, 4))
    assert not torch.equal(virtual_mask(1.0, 64, 4), virtual_mask(1.0, 64, 5))


def test_fusion_weights() -> None:
    x = torch.rand(2, 3, 16, 16)
    estimates = torch.stack([x] * 4, dim=1)
    soft = fusion_weights(estimates, "softmax")
    assert soft[:, 0].eq(0).all() and torch.allclose(soft.sum(1), torch.ones(2))
    rho = pair_correlations(x)
    assert torch.allclose(soft[:, 1:], torch.softmax(rho, dim=1))
    with0 = fusion_weights(estimates, "softmax0")
    assert torch.allclose(with0, torch.softmax(torch.cat([torch.ones(2, 1), rho], 1), 1))
    assert torch.equal(fusion_weights(estimates, "mean"), torch.full((2, 4), 0.25))


def test_pair_correlation_is_pearson() -> None:
    x = torch.rand(1, 3, 8, 8)
    x[0, 1] = 2 * x[0, 0] + 1  # R and G perfectly correlated
    assert pair_correlations(x)[0, 0] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("mode", ["softmax", "softmax0", "mean"])
def test_fuse_of_clean_object_returns_the_patch(mode: str) -> None:
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    keep = virtual_mask(2.81, 64, 0)
    assert torch.allclose(fuse(mpt(x, keep), keep, mode), x, atol=1e-12)
