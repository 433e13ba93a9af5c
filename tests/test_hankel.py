"""Block-Hankel operator: shape and layout, exact pseudo-inverse, true adjoint (SPEC 3.2)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from esdiff.hankel import hankel, hankel_adjoint, hankel_pinv, overlap_count

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def patches() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 64, 64, generator=g, dtype=torch.float64)


def test_shape_and_layout(patches: torch.Tensor) -> None:
    H = hankel(patches)
    assert H.shape == (2, 3249, 192)
    # row = window position (row-major), column = channel * 64 + offset (row-major in the 8x8 window)
    b, c, i, j, di, dj = 1, 2, 5, 40, 3, 6
    assert H[b, i * 57 + j, c * 64 + di * 8 + dj] == patches[b, c, i + di, j + dj]


def test_equals_torch_unfold(patches: torch.Tensor) -> None:
    assert torch.equal(hankel(patches), F.unfold(patches, 8).transpose(1, 2))
    odd = patches[:, :2, :20, :13]
    assert torch.equal(hankel(odd, 4), F.unfold(odd, 4).transpose(1, 2))


def test_pinv_inverts(patches: torch.Tensor) -> None:
    torch.testing.assert_close(hankel_pinv(hankel(patches)), patches, rtol=0, atol=1e-12)
    odd = patches[:, :, :20, :13]
    torch.testing.assert_close(hankel_pinv(hankel(odd, 4), 4, size=(20, 13)), odd, rtol=0, atol=1e-12)


def test_adjoint(patches: torch.Tensor) -> None:
    Y = torch.randn(2, 3249, 192, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    lhs = (hankel(patches) * Y).sum()
    rhs = (patches * hankel_adjoint(Y)).sum()
    assert abs(float(lhs - rhs)) <= 1e-10 * abs(float(lhs))


def test_overlap_count() -> None:
    count = overlap_count((64, 64), dtype=torch.float64)
    assert count[0, 0] == 1 and count[32, 32] == 64 and count[0, 32] == 8
    assert float(count.sum()) == 3249 * 64


def test_pinv_of_non_hankel_is_average() -> None:
    Y = torch.zeros(1, 3249, 192, dtype=torch.float64)
    Y[0, 0, 0] = 1.0  # one entry landing on pixel (0, 0) of channel 0, which only it covers
    Y[0, 57 * 57 - 1, 63] = 2.0  # the last pixel (63, 63) of channel 0
    Y[0, 1, 0] = 3.0  # pixel (0, 1): covered twice
    x = hankel_pinv(Y)
    assert x[0, 0, 0, 0] == 1.0 and x[0, 0, 63, 63] == 2.0 and x[0, 0, 0, 1] == 1.5
