import torch

from esdiff.operators import Inpainting


def as_matrix(f, shape: tuple[int, ...]) -> torch.Tensor:
    """The dense matrix of a linear map on tensors of ``shape``: column k is f of the k-th unit tensor."""
    n = int(torch.tensor(shape).prod())
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    return torch.stack([f(e).flatten() for e in basis], dim=1)


def test_forward_is_the_mask_and_adjoint_its_transpose() -> None:
    """``A`` is the diagonal matrix of the mask (known pixels kept, missing ones zeroed, in every
    channel), and ``A_adjoint`` is the transpose of ``A``'s matrix, both built entry by entry."""
    mask = torch.rand(1, 1, 4, 5, generator=torch.Generator().manual_seed(0)) > 0.5
    op = Inpainting(mask)
    shape = (2, 3, 4, 5)
    a = as_matrix(op.A, shape)
    assert torch.equal(a, torch.diag(mask.expand(shape).flatten().double()))
    assert torch.equal(as_matrix(op.A_adjoint, shape), a.T)


def test_prox_l2_is_the_least_squares_solution() -> None:
    torch.manual_seed(0)
    mask = torch.rand(6, 6) > 0.4
    op = Inpainting(mask)
    z, x_true = torch.randn(3, 6, 6, dtype=torch.float64), torch.randn(3, 6, 6, dtype=torch.float64)
    y = op.A(x_true)
    lam = 0.7
    # argmin ||A x - y||^2 + lam ||x - z||^2 as a stacked linear least-squares problem
    a = torch.diag(mask.repeat(3, 1, 1).flatten().double())
    system = torch.cat([a, lam**0.5 * torch.eye(a.shape[0], dtype=torch.float64)])
    rhs = torch.cat([y.flatten(), lam**0.5 * z.flatten()])
    solution = torch.linalg.lstsq(system, rhs[:, None]).solution.reshape(3, 6, 6)
    assert torch.allclose(op.prox_l2(z, y, lam), solution, atol=1e-10)


def test_noiseless_limit_replaces_known_pixels() -> None:
    mask = torch.rand(1, 1, 8, 8) > 0.5
    op = Inpainting(mask)
    z, y = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    out = op.prox_l2(z, y)
    assert torch.equal(out[mask.expand_as(out)], y[mask.expand_as(y)])
    assert torch.equal(out[~mask.expand_as(out)], z[~mask.expand_as(z)])
