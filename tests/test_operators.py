import torch

from esdiff.operators import Inpainting


def test_adjoint() -> None:
    op = Inpainting(torch.rand(8, 8) > 0.5)
    x, y = torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.randn(2, 3, 8, 8, dtype=torch.float64)
    assert torch.allclose((op.A(x) * y).sum(), (x * op.A_adjoint(y)).sum())


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
