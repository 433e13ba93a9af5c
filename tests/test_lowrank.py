"""LMaFit completion, batching, and the ADMM step of Eqs. 17-20 (SPEC 3.2-3.4, 5)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from esdiff.config import LowRankConfig
from esdiff.hankel import hankel
from esdiff.lmafit import lmafit
from esdiff.lowrank import admm_step, init_low_rank

pytestmark = pytest.mark.usefixtures("one_thread")


def _low_rank(m: int, n: int, r: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, r, generator=g, dtype=torch.float64) @ torch.randn(
        r, n, generator=g, dtype=torch.float64
    )


def _known(shape: tuple[int, ...], frac: float, seed: int) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < frac


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


@pytest.mark.parametrize("shape", [(200, 60), (60, 200)])
def test_recovers_low_rank(shape: tuple[int, int]) -> None:
    A = _low_rank(*shape, 5, seed=0)[None]
    known = _known(A.shape, 0.5, seed=1)
    fit = lmafit(A * known, known, tol=1e-7)
    assert fit.U.shape == (1, shape[0], 5) and fit.V.shape == (1, shape[1], 5)
    assert int(fit.ranks[0]) == 5
    assert _rel(fit.U @ fit.V.transpose(1, 2), A) < 1e-3


def test_fixed_rank_and_float32() -> None:
    A = _low_rank(150, 50, 4, seed=2)[None]
    known = _known(A.shape, 0.5, seed=3)
    fit = lmafit(A * known, known, rank=4, tol=1e-6, dtype=torch.float32)
    assert fit.U.dtype == torch.float32 and int(fit.ranks[0]) == 4
    assert _rel(fit.U.double() @ fit.V.double().transpose(1, 2), A) < 1e-3


def test_batch_equals_alone() -> None:
    A = torch.stack([_low_rank(120, 40, 3, seed=4), _low_rank(120, 40, 7, seed=5)])
    known = _known(A.shape, 0.6, seed=6)
    both = lmafit(A * known, known, tol=1e-6)
    assert both.ranks.tolist() == [3, 7]
    for i in range(2):
        alone = lmafit(A[i : i + 1] * known[i : i + 1], known[i : i + 1], tol=1e-6)
        assert int(alone.iterations[0]) == int(both.iterations[i])
        r = int(alone.ranks[0])
        assert not both.U[i, :, r:].any() and not both.V[i, :, r:].any()  # zero-padded past the rank
        torch.testing.assert_close(both.U[i] @ both.V[i].T, alone.U[0] @ alone.V[0].T, rtol=0, atol=1e-10)


@pytest.mark.parametrize("rank", [4, None])
def test_sync_every_freezes_stopped_patches(rank: int | None) -> None:
    """Looking at the device only every 8 iterations (the GPU path) gives each patch the result it gets
    with a look every iteration: stopped patches are frozen until dropped. A fixed rank gives it bit for
    bit; the adaptive one carries zero columns of room for growth, which change only QR rounding."""
    A = torch.stack([_low_rank(120, 40, r, seed=20 + r) for r in (2, 4, 6)])
    known = _known(A.shape, 0.6, seed=11)
    known[1] &= _known(A.shape[1:], 0.5, seed=12)  # patches that stop at different iterations
    every = lmafit(A * known, known, rank=rank, tol=1e-6)
    sparse = lmafit(A * known, known, rank=rank, tol=1e-6, sync_every=8)
    assert sparse.iterations.tolist() == every.iterations.tolist()
    assert sparse.ranks.tolist() == every.ranks.tolist()
    assert len(set(every.iterations.tolist())) == 3  # the test covers patches that stop apart
    tol = 0 if rank is not None else 1e-8
    for i in range(3):
        torch.testing.assert_close(sparse.U[i] @ sparse.V[i].T, every.U[i] @ every.V[i].T, rtol=0, atol=tol)
    with pytest.raises(ValueError, match="sync_every"):
        lmafit(A * known, known, sync_every=0)


def test_known_zeros_are_known() -> None:
    """Known entries come from the mask, not from non-zero values: a known zero row stays zero."""
    A = _low_rank(100, 40, 3, seed=7)
    A[:, :5] = 0.0  # rank still 3, five known-zero columns
    known = _known(A.shape, 0.6, seed=8)
    fit = lmafit((A * known)[None], known[None], tol=1e-7)
    assert _rel(fit.U[0] @ fit.V[0].T, A) < 1e-3


def test_warm_start_and_max_iter() -> None:
    A = _low_rank(100, 40, 3, seed=9)[None]
    known = _known(A.shape, 0.6, seed=10)
    capped = lmafit(A * known, known, max_iter=7)
    assert int(capped.iterations[0]) == 7
    warm = lmafit(A * known, known, tol=1e-7, init=(capped.U, capped.V))
    assert _rel(warm.U @ warm.V.transpose(1, 2), A) < 1e-3


def _direct_admm(Hx, U, V, L, mu):
    """Eqs. 17-20 transcribed literally in numpy, one matrix at a time."""
    Hx, U, V, L = (np.asarray(t) for t in (Hx, U, V, L))
    eye = np.eye(U.shape[1])
    U = mu * (Hx + L) @ V @ np.linalg.inv(eye + mu * V.T @ V)
    V = mu * (Hx + L).T @ U @ np.linalg.inv(eye + mu * U.T @ U)
    L = Hx - U @ V.T + L
    return U, V, L, U @ V.T - L


def test_admm_step_matches_equations() -> None:
    g = torch.Generator().manual_seed(11)
    Hx, L = (torch.randn(2, 90, 30, generator=g, dtype=torch.float64) for _ in range(2))
    U, V = (
        torch.randn(2, 90, 4, generator=g, dtype=torch.float64),
        torch.randn(2, 30, 4, generator=g, dtype=torch.float64),
    )
    got = admm_step(Hx, U, V, L, 10.0)
    for b in range(2):
        want = _direct_admm(Hx[b], U[b], V[b], L[b], 10.0)
        for g_, w_ in zip(got, want, strict=True):
            np.testing.assert_allclose(g_[b].numpy(), w_, rtol=1e-10, atol=1e-10)
    # zero-padded columns stay zero and change nothing
    pad = admm_step(Hx, torch.nn.functional.pad(U, (0, 2)), torch.nn.functional.pad(V, (0, 2)), L, 10.0)
    assert not pad[0][..., 4:].any() and not pad[1][..., 4:].any()
    torch.testing.assert_close(pad[3], got[3], rtol=0, atol=1e-10)


def _hankel_low_rank_patch() -> torch.Tensor:
    """A 3x16x16 patch whose 4x4-window block-Hankel matrix has rank 3: each channel is a constant plus
    one shared 2-D cosine (the windows of ``1, e^{i w.p}, e^{-i w.p}`` span every column)."""
    i, j = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    wave = torch.cos(0.7 * i + 0.4 * j + 0.3)
    level, swing = torch.tensor([0.5, 0.4, 0.6]), torch.tensor([0.3, -0.2, 0.25])
    return (level[:, None, None] + swing[:, None, None] * wave)[None].double()


def test_lmafit_start_recovers_a_low_rank_patch() -> None:
    """LMaFit on ``H(y D)`` recovers a patch whose Hankel matrix is exactly low rank, so the start must be
    that patch on the missing pixels too (SPEC 3.3, correction: the sound start ``DC(H^+(U V^T))``)."""
    x = _hankel_low_rank_patch()
    known = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(12)) < 0.6
    cfg = LowRankConfig(window=4, max_rank=47, lmafit_tol=1e-7)
    state, start, fit = init_low_rank(x * known, known, cfg)
    assert int(fit.ranks[0]) == 3
    UV = state.U @ state.V.transpose(1, 2)
    assert _rel(UV, hankel(x, 4)) < 1e-5  # the completion: H(x) itself
    assert torch.equal(start[known.expand_as(start)], x[known.expand_as(x)])
    missing = ~known.expand_as(x)
    assert float((start - x)[missing].abs().max()) < 1e-3, "the start is not the LMaFit completion"


def _astronaut_patch() -> torch.Tensor:
    from skimage import data

    return torch.from_numpy(data.astronaut()[100:164, 180:244] / 255.0).permute(2, 0, 1)[None]


def _undetermined_masks() -> dict[str, torch.Tensor]:
    hole = torch.ones(1, 1, 64, 64, dtype=torch.bool)
    hole[..., 12:52, 12:52] = False
    corner = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    corner[..., 60:, 60:] = True  # the first windows hold no known pixel (LMaFit's eye start)
    one = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    one[..., 30, 30] = True
    return {"hole-40x40": hole, "corner-4x4": corner, "one-pixel": one}


@pytest.mark.parametrize("which", ["sampler", "aloha"])
@pytest.mark.parametrize("name", ["hole-40x40", "corner-4x4", "one-pixel"])
def test_undetermined_patch_stops_early(which: str, name: str) -> None:
    """Issue 14: a patch whose known pixels cannot determine its Hankel completion ends in a bounded
    number of LMaFit iterations, far below the cap (it used to run all 3000 when the first windows held
    no known pixel)."""
    from esdiff.config import DEFAULT_SAMPLER, FAST_LMAFIT
    from esdiff.hankel import hankel as H
    from esdiff.lmafit import lmafit_for

    cfg = DEFAULT_SAMPLER.low_rank if which == "sampler" else FAST_LMAFIT
    known = _undetermined_masks()[name]
    D = known.double().expand(1, 3, 64, 64)
    fit = lmafit_for(H(_astronaut_patch() * D, 8), H(D, 8) > 0.5, cfg)
    bound = 500 if name == "hole-40x40" else 100
    assert int(fit.iterations[0]) <= bound < cfg.lmafit_max_iter


def _hole_psnr(x: np.ndarray, ref: np.ndarray, known: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / ((x - ref) ** 2)[~known].mean()))


def test_solid_hole_start_is_filled() -> None:
    """Issue 15: inside a solid 16x16 hole no Hankel row holds a known pixel, so the completion there is
    zero (a dark blob); the start fills those rows from a biharmonic interpolation and scores at least
    biharmonic's hole PSNR less a small margin."""
    from skimage.restoration import inpaint_biharmonic

    from esdiff.config import DEFAULT_SAMPLER

    x = _astronaut_patch()
    known = torch.ones(1, 1, 64, 64, dtype=torch.bool)
    known[..., 24:40, 24:40] = False
    ref, k = x[0].permute(1, 2, 0).numpy(), known[0, 0].numpy()
    observed = np.where(k[..., None], ref, 0.0)
    floor = _hole_psnr(inpaint_biharmonic(observed, ~k, channel_axis=-1), ref, k) - 1.0
    scores = {}
    for fill in ("biharmonic", "none"):
        cfg = replace(DEFAULT_SAMPLER.low_rank, fill=fill)
        _, start, _ = init_low_rank(x * known, known, cfg)
        scores[fill] = _hole_psnr(start[0].permute(1, 2, 0).double().numpy(), ref, k)
    assert scores["biharmonic"] >= floor, scores
    assert scores["none"] < floor - 3.0, scores  # what the fill is for


def test_solid_hole_fill_is_image_level_and_only_where_needed(astronaut: np.ndarray) -> None:
    """A 64x64 hole fills a whole patch, where an interpolation of the patch has nothing to go on: the
    image-level fill is the biharmonic interpolation of the hole from its border (exactly, on the hole),
    and a random or thin mask, with no window lacking a known pixel, gets none (no cost)."""
    from skimage.restoration import inpaint_biharmonic

    from esdiff.lowrank import solid_hole_fill

    image = astronaut.astype(np.float64)  # 96x128
    known = np.ones((96, 128), dtype=bool)
    known[16:80, 32:96] = False
    observed = image * known[..., None]
    filled = solid_hole_fill(observed, known, 8, 64)
    assert filled is not None
    want = inpaint_biharmonic(observed, ~known, channel_axis=-1)
    np.testing.assert_allclose(filled[~known], want[~known], atol=1e-6)
    assert _hole_psnr(filled, image, known) > _hole_psnr(observed, image, known) + 3.0
    sparse = np.random.default_rng(0).random((96, 128)) > 0.5
    assert solid_hole_fill(image * sparse[..., None], sparse, 8, 64) is None
    line = np.ones((96, 128), dtype=bool)
    line[:, 60:67] = False  # 7 px wide: every 8x8 window holds a known pixel
    assert solid_hole_fill(image * line[..., None], line, 8, 64) is None


def test_deep_pixels_lie_a_window_from_every_known_pixel() -> None:
    """Chebyshev distance 8 or more from every known pixel (no 8x8 Hankel row through them holds a known
    entry): the 2 x 2 centre of a 16 px box, the centre of a 15 px one, nothing in a 14 px box or in a
    random 90 % mask; the trend is computed only where there is such a pixel."""
    from esdiff.lowrank import deep_pixels, image_trend

    def box(size: int) -> np.ndarray:
        known = np.ones((64, 64), dtype=bool)
        known[20 : 20 + size, 30 : 30 + size] = False
        return known

    want = np.zeros((64, 64), dtype=bool)
    want[27:29, 37:39] = True
    np.testing.assert_array_equal(deep_pixels(box(16), 8), want)
    assert np.argwhere(deep_pixels(box(15), 8)).tolist() == [[27, 37]]
    assert not deep_pixels(box(14), 8).any()
    scattered = np.random.default_rng(0).random((64, 64)) > 0.9
    assert not deep_pixels(scattered, 8).any()
    image = np.random.default_rng(1).random((64, 64, 3))
    cfg = LowRankConfig(trend=8.0)
    assert image_trend(image, scattered, None, cfg) is None
    assert image_trend(image, box(16), None, LowRankConfig()) is None  # no trend asked for
    trend, deep = image_trend(image * box(16)[..., None], box(16), None, cfg)  # type: ignore[misc]
    assert trend.shape == (3, 64, 64) and torch.equal(deep[0], torch.from_numpy(want))


def test_the_trend_of_a_constant_image_is_that_constant() -> None:
    """The trend is a normalised blur: a constant image gives back its constant, inside the hole too,
    from the known pixels alone or with the solid-hole fill."""
    from esdiff.lowrank import image_hole_fill, image_trend

    known = np.ones((96, 96), dtype=bool)
    known[30:70, 20:60] = False
    image = np.broadcast_to(np.array([0.7, 0.5, 0.2]), (96, 96, 3)) * known[..., None]
    cfg = LowRankConfig(trend=8.0)
    holes = image_hole_fill(image, known, cfg)
    for fill in (None, holes):
        trend, _ = image_trend(image, known, fill, cfg)  # type: ignore[misc]
        np.testing.assert_allclose(
            trend.numpy(), np.broadcast_to([[[0.7]], [[0.5]], [[0.2]]], (3, 96, 96)), atol=1e-6
        )


def test_the_trend_near_deep_pixels_is_the_blur_of_the_whole_image() -> None:
    """``image_trend`` blurs only the box around the deep pixels: within a patch of them it is what the
    normalised blur of the whole image gives, and zero far away."""
    from scipy import ndimage

    from esdiff.lowrank import deep_pixels, image_trend

    known = np.ones((300, 400), dtype=bool)
    known[200:220, 300:330] = False
    image = np.random.default_rng(2).random((300, 400, 3)) * known[..., None]
    trend, _ = image_trend(image, known, None, LowRankConfig(trend=8.0))  # type: ignore[misc]
    weight = known.astype(np.float64)
    total = ndimage.gaussian_filter(weight, 8.0)
    whole = np.stack([ndimage.gaussian_filter(image[..., c] * weight, 8.0) / total for c in range(3)])
    near = ndimage.maximum_filter(deep_pixels(known, 8), size=127)
    np.testing.assert_allclose(trend.numpy()[:, near], whole[:, near], atol=1e-6)
    assert not trend[:, :50, :50].any()


def test_start_and_multiplier() -> None:
    """The start is the LMaFit estimate with the multiplier ``L0 = 0`` (SPEC 3.3)."""
    x = _hankel_low_rank_patch()
    known = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(12)) < 0.6
    cfg = LowRankConfig(window=4, max_rank=47, lmafit_tol=1e-7)
    state, start, _ = init_low_rank(x * known, known, cfg)
    torch.testing.assert_close(state.L, torch.zeros_like(state.L))
    missing = ~known.expand_as(x)
    assert float((start - x)[missing].abs().max()) < 1e-3


def test_logged_fits_collect_every_run_inside_the_block() -> None:
    from esdiff.lmafit import fit_summary, lmafit_for, logged_fits

    gen = torch.Generator().manual_seed(0)
    m = torch.randn(2, 30, 2, generator=gen) @ torch.randn(2, 2, 20, generator=gen)
    known = torch.rand(2, 30, 20, generator=gen) > 0.3
    cfg = LowRankConfig(lmafit_max_iter=50)
    with logged_fits() as fits:
        lmafit_for(m * known, known, cfg)
        lmafit_for(m[:1] * known[:1], known[:1], cfg)
    lmafit_for(m * known, known, cfg)  # outside: not logged
    assert len(fits) == 2
    summary = fit_summary(fits)
    assert summary["patches"] == 3 and summary["iterations_max"] <= 50
    assert summary["rank_max"] == int(max(f.ranks.max() for f in fits))
