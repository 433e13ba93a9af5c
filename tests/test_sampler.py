"""The sampler against closed-form answers (Gaussian priors whose posterior is known, a point mass) and
its bookkeeping (seeds, shifts, state, configs). The shipped model's quality floor is in test_inpaint_cli."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from esdiff.config import DEFAULT_SAMPLER, LowRankConfig, SamplerConfig
from esdiff.image_sampling import Tiles, sample_whole_image
from esdiff.inpaint import sample_images
from esdiff.operators import Inpainting
from esdiff.patches import make_grid
from esdiff.sampler import STEP_LISTS, Context, State, sample_patches
from esdiff.sde import VESDE
from esdiff.transforms import Encoding, mpt, virtual_mask

pytestmark = pytest.mark.usefixtures("one_thread")

CHEAP = SamplerConfig(steps=30, low_rank=LowRankConfig(rank=40, lmafit_max_iter=200, dtype="float32"))
BOOKKEEPING = SamplerConfig(steps=2, low_rank=LowRankConfig(rank=8, lmafit_max_iter=20, dtype="float32"))
"""For tests of what goes where, not of quality: the cheapest LMaFit start."""

SPREAD = 0.03


def gaussian_score(target: torch.Tensor):
    """Exact score of N(target, SPREAD^2 I) smoothed at noise level sigma: a prior peaked at the truth."""

    def score(psi: torch.Tensor, sigma: float) -> torch.Tensor:
        return -(psi - target) / (sigma**2 + SPREAD**2)

    return score


def patches(astronaut: np.ndarray, missing: float = 0.8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(astronaut[:64, :64]).permute(2, 0, 1)[None].contiguous()
    known = torch.from_numpy(np.random.default_rng(0).random((1, 1, 64, 64)) > missing)
    return x, x * known, known


@pytest.mark.parametrize(
    ("steps", "floor_db", "state"),
    [
        ("esdiff", 24.0, "rgb"),
        ("esdiff", 24.0, "mpt"),
        ("no-lowrank", 35.0, "rgb"),
        ("no-lowrank", 35.0, "mpt"),
    ],
)
def test_exact_score_recovers_the_image(
    astronaut: np.ndarray, steps: str, floor_db: float, state: str
) -> None:
    """With the exact score of a prior peaked at the truth, sampling must land near the truth; the
    low-rank step caps what a fixed rank-40 Hankel approximation can represent."""
    x, y, known = patches(astronaut)
    keep = virtual_mask(2.81, 64, 0)
    encoding = Encoding(keep)
    gens = [torch.Generator().manual_seed(1)]
    cfg = replace(CHEAP, state=state)
    out = sample_patches(
        gaussian_score(mpt(x, keep)), encoding, VESDE(), y, known, cfg, gens, STEP_LISTS[steps]
    )
    assert torch.equal(out[known.expand_as(out)], x[known.expand_as(x)])
    mse = float(((out - x) ** 2).mean())
    assert -10 * np.log10(mse) > floor_db, mse


class LowRankGaussian:
    """A prior on 3x64x64 patches: ``x = MEAN + AMPLITUDE Q c + SPREAD e`` with ``c ~ N(0, I_K)``, ``e ~ N(0,
    I)`` and ``Q`` six orthonormal smooth patterns; every patch is one draw. Its score at noise level sigma
    and its posterior mean given some pixels are closed-form, so a sampler can be checked against them."""

    MEAN, AMPLITUDE, SPREAD, K = 0.5, 20.0, 0.05, 6

    def __init__(self, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
        patterns = []
        for k in range(self.K):
            wave = torch.cos(math.pi * ((k % 3) + 0.5) * yy / 64) * torch.cos(
                math.pi * ((k // 3) + 0.5) * xx / 64
            )
            patterns.append((torch.randn(3, 1, 1, generator=gen) * wave).reshape(-1))
        self.Q = torch.linalg.qr(torch.stack(patterns, 1).double()).Q
        self.gen = gen

    def draw(self) -> torch.Tensor:
        c = torch.randn(self.K, generator=self.gen, dtype=torch.float64)
        e = torch.randn(self.Q.shape[0], generator=self.gen, dtype=torch.float64)
        return (self.MEAN + self.AMPLITUDE * self.Q @ c + self.SPREAD * e).reshape(1, 3, 64, 64)

    def score(self, psi: torch.Tensor, sigma: float) -> torch.Tensor:
        """``-C_sigma^-1 (psi - MEAN)`` with ``C_sigma = (SPREAD^2 + sigma^2) I + AMPLITUDE^2 Q Q^T``."""
        v = (psi - self.MEAN).reshape(psi.shape[0], -1).double()
        c, a2 = self.SPREAD**2 + sigma**2, self.AMPLITUDE**2
        inverse = v / c - (v @ self.Q) @ self.Q.T * (a2 / (c * (c + a2)))
        return (-inverse).reshape(psi.shape).to(psi.dtype)

    def posterior_mean(self, x: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """``E[x | x on known pixels]``: the known pixels, and ``MEAN + A c_bar`` elsewhere (Gaussian
        conditioning on the coefficients ``c``)."""
        k = known.expand_as(x).reshape(-1)
        flat = x.reshape(-1)
        A = self.AMPLITUDE * self.Q[k]
        precision = torch.eye(self.K, dtype=torch.float64) + A.T @ A / self.SPREAD**2
        c_bar = torch.linalg.solve(precision, A.T @ (flat[k] - self.MEAN) / self.SPREAD**2)
        mean = self.MEAN + self.AMPLITUDE * self.Q @ c_bar
        return torch.where(k, flat, mean).reshape(x.shape)


GAUSSIAN = SamplerConfig(
    steps=50, start="noise", t_start=1.0, low_rank=LowRankConfig(rank=8, lmafit_max_iter=30, dtype="float32")
)


@pytest.mark.parametrize(
    ("steps", "changes"),
    [
        ("no-lowrank", {}),
        ("no-lowrank", {"start": "lmafit-noisy"}),
        (
            "no-lowrank",
            {"start": "lmafit", "t_start": 0.5},
        ),  # a clean start at sigma_max blows the corrector up
        ("no-lowrank", {"predictor_noise": True}),
        ("no-lowrank", {"corrector_samples": 2}),
        ("no-lowrank", {"corrector_samples": 0, "predictor_noise": True}),
        ("no-lowrank", {"dc_lambda": 0.1}),
    ],
    ids=lambda c: c if isinstance(c, str) else ",".join(f"{k}={v}" for k, v in c.items()) or "noise-start",
)
def test_sampler_lands_on_the_gaussian_posterior_mean(steps: str, changes: dict) -> None:
    """The pure diffusion sampler (no low-rank step) with a Gaussian prior's exact score: the mean of eight
    draws for one observation (80 %
    missing) must lie near the closed-form posterior mean, far closer than the prior mean does. A wrong
    score scale, a missing DC step or a wrong schedule fails."""
    prior = LowRankGaussian()
    x = prior.draw().float()
    known = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(3)) > 0.8
    want = prior.posterior_mean(x.double(), known).float()
    y, k = (x * known).expand(8, -1, -1, -1).contiguous(), known.expand(8, -1, -1, -1).contiguous()
    gens = [torch.Generator().manual_seed(10 + i) for i in range(8)]
    cfg = replace(GAUSSIAN, **changes)
    out = sample_patches(prior.score, Encoding(None), VESDE(), y, k, cfg, gens, STEP_LISTS[steps])
    missing = ~known.expand_as(x)
    error = float((out.mean(0, keepdim=True) - want)[missing].pow(2).mean().sqrt())
    prior_error = float((prior.MEAN - want)[missing].pow(2).mean().sqrt())
    assert error < 0.25 * prior_error, (error, prior_error)
    on_known = (out - y).abs()[known.expand_as(out)]
    if cfg.dc_lambda == 0:
        assert float(on_known.max()) == 0.0
    else:  # known pixels are pulled towards the observation, not replaced
        assert 0 < float(on_known.max()) < 0.05


def test_prior_sampling_has_the_prior_spread() -> None:
    """Nothing known: with predictor noise the reverse diffusion draws from the prior N(0.5, 0.2^2)."""
    s0, m = 0.2, 0.5

    def score(psi: torch.Tensor, sigma: float) -> torch.Tensor:
        return -(psi - m) / (s0**2 + sigma**2)

    y, known = torch.zeros(4, 3, 64, 64), torch.zeros(4, 1, 64, 64, dtype=torch.bool)
    cfg = replace(GAUSSIAN, steps=200, predictor_noise=True)
    gens = [torch.Generator().manual_seed(i) for i in range(4)]
    out = sample_patches(score, Encoding(None), VESDE(), y, known, cfg, gens, STEP_LISTS["no-lowrank"])
    assert float(out.mean()) == pytest.approx(m, abs=0.01)
    assert float(out.std()) == pytest.approx(s0, rel=0.05)


def sample_image(observed: np.ndarray, known: np.ndarray, **kwargs) -> np.ndarray:
    """The patch sampler on one image, every patch sampled."""
    (out,) = sample_images([observed], [known], wanted=[None], **kwargs)
    return out


@pytest.mark.parametrize(
    ("tiling", "bias", "sampler"),
    [("overlap", 0.01, sample_image), ("tile", 0.05, sample_image), ("overlap", 0.01, sample_whole_image)],
    ids=["patches-overlap", "patches-tile", "whole-image"],
)
def test_sample_image_stitches_patch_posteriors(tiling: str, bias: float, sampler) -> None:
    """A whole 70x90 image through the patch grid: each channel is constant, and the prior lets each
    patch's channels shift by one unknown offset, so every patch's posterior mean is the constant. Plain
    tiles hold more canvas padding (unknown pixels) than the lab's overlapping windows, so their draws
    settle more slowly (measured mean offsets: 0.001 and 0.026). Whole-image sampling moves its tiles
    every step and mirrors the image into their margins, so it must settle as well as the best grid."""
    colour = torch.tensor([0.2, 0.5, 0.7], dtype=torch.float64)
    ones = torch.zeros(3, 3, 64, 64, dtype=torch.float64)
    for c in range(3):
        ones[c, c] = 1 / 64  # unit patterns: one per channel
    basis = ones.reshape(3, -1).T
    a2, s2 = 10.0**2, 0.02**2

    def score(psi: torch.Tensor, sigma: float) -> torch.Tensor:
        v = (psi - 0.5).reshape(psi.shape[0], -1).double()
        c = s2 + sigma**2
        return (-(v / c - (v @ basis) @ basis.T * (a2 / (c * (c + a2))))).reshape(psi.shape).float()

    image = colour.float().view(1, 1, 3).expand(70, 90, 3).numpy()
    known = np.random.default_rng(4).random((70, 90)) > 0.5
    observed = np.where(known[..., None], image, 0.0)
    cfg = replace(GAUSSIAN, tiling=tiling, patch_batch=4, steps=100)
    calls: list[tuple[int, int]] = []
    out = sampler(
        observed,
        known,
        score=score,
        encoding=Encoding(None),
        sde=VESDE(),
        step_list=STEP_LISTS["no-lowrank"],
        cfg=cfg,
        seed=0,
        device="cpu",
        progress=lambda done, total: calls.append((done, total)),
    )
    assert out.shape == image.shape and np.array_equal(out[known], image[known])
    filled = out[~known]  # one draw per pixel: the constant plus noise
    np.testing.assert_allclose(filled.mean(axis=0), colour.numpy(), atol=bias)
    assert float(np.sqrt(((filled - colour.numpy()) ** 2).mean())) < 0.05
    if sampler is sample_whole_image:  # it counts steps
        assert calls[-1] == (cfg.steps, cfg.steps)
    else:  # half the pixels missing: every patch is sampled, and counted
        count = make_grid(70, 90, tiling).count
        assert calls[-1] == (count, count) and len(calls) == cfg.steps * -(-count // cfg.patch_batch)


def test_kept_mpt_state_moves_by_the_rgb_correction(astronaut: np.ndarray) -> None:
    """state="mpt": the kept 12-channel object shifts by MPT(dx) when an RGB step changes x by dx, so
    its slots keep their own noise and it still decodes to the corrected x."""
    x, _, _ = patches(astronaut)
    keep = virtual_mask(2.81, 64, 0)
    encoding = Encoding(keep, "mean")
    ctx = Context(None, encoding, None, x, SamplerConfig(state="mpt"), [], 1.0, 1.0)  # type: ignore[arg-type]
    psi = mpt(x, keep) + 0.1 * torch.randn(1, 12, 64, 64, generator=torch.Generator().manual_seed(0))
    state = State(x=x, lowrank_state=None).decoded(psi, ctx)
    assert torch.equal(state.encoded(ctx), psi)
    dx = 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    moved = replace(state, x=state.x + dx)
    assert torch.allclose(moved.encoded(ctx), psi + mpt(dx, keep), atol=1e-6)
    assert torch.allclose(encoding.decode(moved.encoded(ctx)), moved.x, atol=1e-5)
    rgb = Context(None, encoding, None, x, SamplerConfig(), [], 1.0, 1.0)  # type: ignore[arg-type]
    assert torch.equal(moved.encoded(rgb), mpt(moved.x, keep))


def test_same_seed_same_result(astronaut: np.ndarray) -> None:
    x, y, known = patches(astronaut)
    keep = virtual_mask(2.81, 64, 0)
    encoding = Encoding(keep)

    def score(psi: torch.Tensor, sigma: float) -> torch.Tensor:
        return -(psi - 0.5) / (sigma**2 + 1.0)

    def run(seed: int) -> torch.Tensor:
        cfg = replace(BOOKKEEPING, steps=5)
        return sample_patches(score, encoding, VESDE(), y, known, cfg, [torch.Generator().manual_seed(seed)])

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_inpaint_refuses_sampler_settings_it_cannot_run(tiny_model: Path, astronaut: np.ndarray) -> None:
    from esdiff.errors import EsdiffError
    from esdiff.inpaint import inpaint_image

    known = np.random.default_rng(1).random((64, 64)) > 0.5
    observed = np.where(known[..., None], astronaut[:64, :64], 0.0)
    refusals = (
        ({"sampling": "image", "state": "mpt"}, "state"),
        ({"pnp_noise": 1.5}, "pnp_noise"),
    )
    for changes, message in refusals:
        with pytest.raises(EsdiffError, match=message):
            cfg = replace(BOOKKEEPING, **changes)
            inpaint_image(observed, known, model=tiny_model, config=cfg)


def test_inpaint_image_uses_the_config_it_is_given(
    tiny_model: Path, astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``config`` reaches the sampler as given (its patch batch too); ``steps`` replaces only the count."""
    import esdiff.inpaint
    from esdiff.inpaint import inpaint_image

    seen: list[SamplerConfig] = []
    real = esdiff.inpaint.sample_images

    def spy(*args, **kwargs):
        seen.append(kwargs["cfg"])
        return real(*args, **kwargs)

    monkeypatch.setattr(esdiff.inpaint, "sample_images", spy)
    image = astronaut[:70, :90]
    known = np.random.default_rng(1).random((70, 90)) > 0.5
    observed = np.where(known[..., None], image, 0.0)
    cfg = replace(BOOKKEEPING, patch_batch=3, tiling="tile")
    out = inpaint_image(observed, known, model=tiny_model, config=cfg, seed=5)
    assert seen == [cfg]
    assert out.shape == image.shape and np.array_equal(out[known], image[known])
    assert np.array_equal(out, inpaint_image(observed, known, model=tiny_model, config=cfg, seed=5))
    inpaint_image(observed, known, model=tiny_model, config=cfg, steps=1)
    assert seen[-1] == replace(cfg, steps=1)
    assert DEFAULT_SAMPLER.patch_batch == SamplerConfig().patch_batch  # one default of the batch size


def test_shifts_average_runs_on_offset_grids(tiny_model: Path, astronaut: np.ndarray) -> None:
    """``shifts=2`` is exactly the mean of the plain run and a run on the image offset by (28, 28)."""
    from esdiff.errors import EsdiffError
    from esdiff.inpaint import inpaint_image
    from esdiff.patches import GRID_SHIFTS

    image = astronaut[:70, :90]
    known = np.random.default_rng(2).random((70, 90)) > 0.6
    observed = np.where(known[..., None], image, 0.0)
    kwargs = dict(model=tiny_model, seed=3)
    one = inpaint_image(observed, known, config=BOOKKEEPING, **kwargs)
    two = inpaint_image(observed, known, config=replace(BOOKKEEPING, shifts=2), **kwargs)
    dy, dx = GRID_SHIFTS[1]
    moved = inpaint_image(
        np.pad(observed, ((dy, 0), (dx, 0), (0, 0))),
        np.pad(known, ((dy, 0), (dx, 0))),
        config=BOOKKEEPING,
        **kwargs,
    )[dy:, dx:]
    assert np.array_equal(two[known], image[known])
    assert not np.allclose(one, moved)  # the offset grid is a different estimate
    np.testing.assert_allclose(two, np.where(known[..., None], image, (one + moved) / 2), atol=1e-6)
    with pytest.raises(EsdiffError, match="shifts"):
        inpaint_image(observed, known, config=replace(BOOKKEEPING, shifts=5), **kwargs)


def test_corrector_step_is_bounded_with_a_zero_score() -> None:
    from esdiff.sampler import corrector_step_size

    z, zero = torch.randn(3, 12, 8, 8), torch.zeros(3, 12, 8, 8)
    unbounded = corrector_step_size(z, zero, 0.5, 0.075, None)
    assert float(unbounded.min()) > 1e10  # SPEC's step explodes on a zero score
    capped = corrector_step_size(z, zero, 0.5, 0.075, 0.1)
    assert torch.allclose(capped, torch.full_like(capped, 0.1 * 0.25))
    right_size = -z / 0.5  # ||g|| = ||z|| / sigma: the nominal 2 snr^2 sigma^2, below the cap
    nominal = corrector_step_size(z, right_size, 0.5, 0.075, 0.1)
    assert torch.allclose(nominal, torch.full_like(nominal, 2 * 0.075**2 * 0.25))


def test_capped_corrector_keeps_an_untrained_network_finite(astronaut: np.ndarray) -> None:
    """A zero score (an untrained network) with a clean LMaFit start: SPEC's step sends the hole to
    huge values; the capped one stays in a sane range."""
    x, y, known = patches(astronaut)
    gens = [torch.Generator().manual_seed(1)]

    def zero(psi: torch.Tensor, sigma: float) -> torch.Tensor:
        return torch.zeros_like(psi)

    cfg = replace(CHEAP, steps=5, start="lmafit", t_start=0.3, corrector_cap=0.1)
    out = sample_patches(zero, Encoding(None), VESDE(), y, known, cfg, gens, STEP_LISTS["no-lowrank"])
    assert torch.isfinite(out).all() and float(out.abs().max()) < 5
    wild = sample_patches(
        zero,
        Encoding(None),
        VESDE(),
        y,
        known,
        replace(cfg, corrector_cap=None),
        gens,
        STEP_LISTS["no-lowrank"],
    )
    assert not torch.isfinite(wild).all() or float(wild.abs().max()) > 1e3


@pytest.mark.parametrize("predictor", ["reverse-diffusion", "ddim"])
def test_predictors_reach_the_truth_with_an_exact_score(astronaut: np.ndarray, predictor: str) -> None:
    x, y, known = patches(astronaut)
    keep = virtual_mask(2.81, 64, 0)
    gens = [torch.Generator().manual_seed(1)]
    cfg = replace(CHEAP, predictor=predictor, steps=15, start="noise", corrector_cap=0.1)
    out = sample_patches(
        gaussian_score(mpt(x, keep)), Encoding(keep), VESDE(), y, known, cfg, gens, STEP_LISTS["no-lowrank"]
    )
    assert -10 * np.log10(float(((out - x) ** 2).mean())) > 30.0


@pytest.mark.parametrize(
    ("height", "width", "offset"), [(70, 90, (0, 0)), (70, 90, (63, 5)), (20, 130, (7, 40))]
)
def test_moving_tiles_cut_and_stitch_back_exactly(height: int, width: int, offset: tuple[int, int]) -> None:
    """Every pixel lies in exactly one tile, whatever the offset; the margins mirror the image."""
    image = torch.rand(3, height, width, generator=torch.Generator().manual_seed(0))
    tiles = Tiles(height, width, offset)
    cut = tiles.cut(image)
    assert cut.shape == (tiles.shape[0] * tiles.shape[1], 3, 64, 64)
    assert torch.equal(tiles.stitch(cut), image)
    if offset == (63, 5):  # the margin above the image mirrors it: the row above row 0 is row 1
        assert torch.equal(cut[0, :, 62, 5:], image[:, 1, :59])


def test_whole_image_sampling_is_seeded_and_keeps_the_known_pixels(astronaut: np.ndarray) -> None:
    """Same seed, same bytes; another seed, another draw; known pixels exact; a fully known region far
    from the hole is never touched (its tiles and low-rank patches are skipped)."""
    image = astronaut[:100, :140].astype(np.float64)
    known = np.ones(image.shape[:2], dtype=bool)
    known[10:30, 15:40] = False
    known &= np.random.default_rng(0).random(known.shape) > 0.3
    known[:, 90:] = True
    observed = image * known[..., None]
    cfg = replace(BOOKKEEPING, steps=3, sampling="image", patch_batch=2)

    def run(seed: int) -> np.ndarray:
        return sample_whole_image(
            observed,
            known,
            score=gaussian_score(torch.tensor(0.5)),
            encoding=Encoding(virtual_mask(2.81, 64, 0)),
            sde=VESDE(),
            step_list=STEP_LISTS["esdiff"],
            cfg=cfg,
            seed=seed,
            device="cpu",
            progress=lambda done, total: None,
        )

    first, again, other = run(0), run(0), run(1)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    np.testing.assert_allclose(first[known], image[known], atol=1e-6)
    assert np.array_equal(first[:, 90:], observed[:, 90:].astype(np.float32).astype(np.float64))
    assert np.isfinite(first).all()


def test_no_corrector_leaves_the_list_without_it() -> None:
    """``corrector_samples = 0``: the corrector leaves the list, the projections after it stay; lists
    without a corrector stay as they are."""
    from esdiff.sampler import corrector, data_consistency, low_rank, predictor

    none = replace(DEFAULT_SAMPLER, corrector_samples=0)
    twice = (predictor, low_rank, data_consistency, low_rank, data_consistency)
    assert STEP_LISTS["esdiff"].for_config(none).functions == twice
    assert STEP_LISTS["no-lowrank"].for_config(none).functions == (
        predictor,
        data_consistency,
        data_consistency,
    )
    assert corrector in STEP_LISTS["esdiff"].for_config(replace(none, corrector_samples=1)).functions
    assert corrector in STEP_LISTS["esdiff"].for_config(replace(none, corrector_samples=2)).functions
    assert STEP_LISTS["pnp-near"].for_config(none) == STEP_LISTS["pnp-near"]


def test_no_prior_list_is_aloha_with_the_samplers_low_rank_settings(
    tiny_model: Path, astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``no-prior`` ablation never calls the network and is, bit for bit, ALOHA with the sampler's
    LMaFit settings, its ``mu`` and two ADMM iterations a level; a noisy start is refused (no network
    step would take the noise off)."""
    import esdiff.inpaint
    from esdiff.baselines import aloha
    from esdiff.errors import EsdiffError

    def no_network(prior, runtime):
        def score(psi, sigma):
            raise AssertionError("the no-prior list called the network")

        return score

    monkeypatch.setattr(esdiff.inpaint, "scorer", no_network)
    known = np.random.default_rng(3).random((64, 96)) > 0.8
    observed = np.where(known[..., None], astronaut[:64, :96], 0.0)
    cfg = SamplerConfig(steps=3, start="lmafit", low_rank=LowRankConfig(dtype="float32", lmafit_tol=1e-2))
    out = esdiff.inpaint.inpaint_image(observed, known, model=tiny_model, config=cfg, step_list="no-prior")
    same = aloha.inpaint(observed, known, config=cfg.low_rank, iterations=6, mu=cfg.low_rank.mu)
    assert np.array_equal(out, same)
    fewer = aloha.inpaint(observed, known, config=cfg.low_rank, iterations=4, mu=cfg.low_rank.mu)
    assert not np.array_equal(out, fewer)
    with pytest.raises(EsdiffError, match="lmafit"):
        noisy = replace(cfg, start="lmafit-noisy")
        esdiff.inpaint.inpaint_image(observed, known, model=tiny_model, config=noisy, step_list="no-prior")


def test_pnp_list_lets_an_exact_score_count(astronaut: np.ndarray) -> None:
    """With the exact score of a prior peaked at the truth, the ``pnp-near`` list (the denoised estimate
    in place of ADMM's x-update near known pixels: at 80 % missing almost every pixel is within two of a
    known one) must gain far more over the low-rank steps alone (``no-prior``) than the predictor list
    does, whose network step the ADMM multiplier partly reflects away, and keep the known pixels exact."""
    x, y, known = patches(astronaut)
    keep = virtual_mask(2.81, 64, 0)
    score = gaussian_score(mpt(x, keep))

    def psnr_of(step_list: str, cfg: SamplerConfig) -> float:
        gens = [torch.Generator().manual_seed(1)]
        out = sample_patches(score, Encoding(keep), VESDE(), y, known, cfg, gens, STEP_LISTS[step_list])
        assert torch.equal(out[known.expand_as(out)], x[known.expand_as(x)])
        return -10 * math.log10(float(((out - x) ** 2).mean()))

    clean = replace(CHEAP, start="lmafit", t_start=0.25)
    alone = psnr_of("no-prior", clean)
    predictor = psnr_of("esdiff", replace(clean, start="lmafit-noisy", predictor="ddim", corrector_samples=0))
    near = psnr_of("pnp-near", clean)
    assert near > alone + 2.0 and near > predictor + 1.0, (alone, predictor, near)


def test_near_known_weight_falls_off_with_the_distance_to_a_known_pixel() -> None:
    """1 on and next to a known pixel, 0.5 two pixels away (Chebyshev), 0 farther."""
    from esdiff.sampler import near_known_weight

    known = torch.zeros(1, 1, 9, 9, dtype=torch.bool)
    known[0, 0, 4, 4] = True
    weight = near_known_weight(known)[0, 0]
    rows, cols = torch.meshgrid(torch.arange(9), torch.arange(9), indexing="ij")
    distance = torch.maximum((rows - 4).abs(), (cols - 4).abs())
    want = torch.where(distance <= 1, 1.0, torch.where(distance == 2, 0.5, 0.0))
    assert torch.equal(weight, want)


def test_deep_share_counts_missing_pixels_three_or_more_from_a_known_one() -> None:
    """A 16 px solid box: the 12 x 12 core of its 256 pixels; a 2 px line and scattered pixels: none;
    ``end_time`` moves linearly from ``t_end`` to eps between the two shares of ``deep_holes``."""
    from esdiff.schedule import deep_share, end_time

    known = np.ones((64, 64), dtype=bool)
    known[20:36, 30:46] = False
    assert deep_share(known) == pytest.approx(144 / 256)
    line = np.ones((64, 64), dtype=bool)
    line[30:32, :] = False
    assert deep_share(line) == 0.0 and deep_share(np.ones((8, 8), dtype=bool)) == 0.0
    cfg = replace(DEFAULT_SAMPLER, t_end=0.1, deep_holes=(0.2, 0.5))
    assert end_time(cfg, line, 1e-5) == 0.1 and end_time(cfg, known, 1e-5) is None
    half = np.ones((64, 64), dtype=bool)
    half[:, :8] = False  # 8 columns at the border: columns 0-5 are deep (the border is not known)
    share = deep_share(half)
    assert share == pytest.approx(6 / 8)
    assert end_time(replace(cfg, deep_holes=(0.5, 1.0)), half, 0.0) == pytest.approx(0.1 * (1 - 0.5))
    assert end_time(replace(cfg, deep_holes=None), known, 1e-5) == 0.1


def test_pnp_noise_puts_that_share_of_the_level_on_the_denoisers_input() -> None:
    """``denoise_pnp`` with a zero score returns its input: with ``pnp_noise`` 0 the state itself, bit for
    bit (no draw), with 0.5 the state plus noise of standard deviation ``0.5 sigma`` on every pixel, known
    ones included, drawn from the patches' own generators."""
    from esdiff.sampler import denoise_pnp, patch_generators

    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    known = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(1)) > 0.5

    def run(share: float) -> torch.Tensor:
        cfg = replace(SamplerConfig(), pnp_noise=share)
        ctx = Context(
            lambda psi, s: torch.zeros_like(psi), Encoding(None), Inpainting(known), x * known, cfg,
            patch_generators(4, [0, 1]), 0.2, 0.01,
        )  # fmt: skip
        return denoise_pnp(State(x.clone(), None), ctx).x

    assert torch.equal(run(0.0), x)
    moved = run(0.5) - x
    for where in (known.expand_as(x), ~known.expand_as(x)):
        assert float(moved[where].std()) == pytest.approx(0.5 * 0.2, rel=0.03)
    assert torch.equal(run(0.5), run(0.5))


def test_for_mask_gives_only_deep_holes_the_pnp_noise() -> None:
    """``for_mask``: a solid box (hole depth 1) ends at eps with the full ``pnp_noise``, scattered pixels
    (depth 0) at ``t_end`` without it; the result resolves to itself; without ``deep_holes`` the config
    is used as it is."""
    from esdiff.schedule import for_mask, hole_depth

    box = np.ones((64, 64), dtype=bool)
    box[20:40, 20:40] = False
    scattered = np.random.default_rng(0).random((64, 64)) > 0.8
    cfg = replace(DEFAULT_SAMPLER, t_end=0.08, deep_holes=(0.1, 0.25), pnp_noise=0.7)
    deep, shallow = for_mask(cfg, box, 1e-5), for_mask(cfg, scattered, 1e-5)
    assert hole_depth(cfg, box) == 1.0 and hole_depth(cfg, scattered) == 0.0
    assert (deep.t_end, deep.pnp_noise) == (None, 0.7)
    assert (shallow.t_end, shallow.pnp_noise) == (0.08, 0.0)
    assert for_mask(deep, scattered, 1e-5) == deep and for_mask(shallow, box, 1e-5) == shallow
    literal = replace(cfg, deep_holes=None)
    assert for_mask(literal, scattered, 1e-5) == literal


def test_whole_image_pnp_near_weight_is_the_whole_images_cut_per_tile() -> None:
    """The whole-image sampler takes the denoised estimate with ``near_known_weight`` of the whole mask:
    a tile edge inside the image is no rim. With a denoiser that returns a constant ``c``, one
    ``denoise_near_known`` pass moves each pixel ``w (c - x)``, so the runs with ``c = 1`` and ``c = 0``
    differ by the weight itself."""
    from esdiff.sampler import StepList, denoise_near_known, near_known_weight

    known = np.random.default_rng(0).random((150, 170)) > 0.75
    known[40:80, 60:120] = False  # a solid hole across tile edges
    observed = np.zeros((*known.shape, 3))
    cfg = replace(BOOKKEEPING, steps=1, sampling="image", start="noise", pnp_noise=0.0)

    def run(c: float) -> np.ndarray:
        return sample_whole_image(
            observed,
            known,
            score=lambda psi, sigma: (c - psi) / sigma**2,
            encoding=Encoding(None),
            sde=VESDE(),
            step_list=StepList((denoise_near_known,), needs_low_rank=False),
            cfg=cfg,
            seed=3,
            device="cpu",
            progress=lambda done, total: None,
        )

    moved = run(1.0) - run(0.0)
    want = near_known_weight(torch.from_numpy(known)[None, None])[0, 0].numpy()
    assert 0.0 < float(want[~known].mean()) < 1.0
    for channel in range(3):
        np.testing.assert_allclose(moved[..., channel], want, atol=1e-3)  # float32 noise


def test_noise_streams_of_patches_levels_and_seeds_never_coincide() -> None:
    """Defect: ``seed * 1_000_003 + 7_919 * (level + 1) + k`` gave tile ``k + 7919`` at one level the noise
    of tile ``k`` at the next (images above about 32 megapixels), and with 127 levels or more seeds ``s``
    and ``s + 1`` shared streams. Every (seed, level, tile) has its own stream now."""
    from esdiff.sampler import patch_generators, stream_seed

    def draw(seed: int, k: int, level: int | None) -> torch.Tensor:
        (g,) = patch_generators(seed, [k], level=level)
        return torch.randn(4, generator=g)

    assert not torch.equal(draw(0, 7919 + 3, 0), draw(0, 3, 1))
    assert not torch.equal(draw(1, 3, 0), draw(0, 3, 127))
    assert not torch.equal(draw(0, 3, None), draw(0, 3, 0))
    keys = [(s, level, k) for s in (0, 1, 2) for level in (None, *range(130)) for k in (0, 1, 7919, 7920)]
    assert len({stream_seed(*key) for key in keys}) == len(keys)
    assert torch.equal(draw(5, 9, 3), draw(5, 9, 3))


def test_shifted_whole_image_runs_see_no_hole_in_the_offset_strip(
    tiny_model: Path, astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect: with ``shifts`` > 1 the whole-image sampler got the offset strip as missing pixels, a solid
    hole that it filled, completed around a trend and gave tiles of its own. The strip holds the image
    and its mask mirrored, so a scattered mask stays scattered (no deep pixel)."""
    import esdiff.inpaint
    from esdiff.inpaint import inpaint_image
    from esdiff.lowrank import deep_pixels

    seen: list[np.ndarray] = []
    real = esdiff.inpaint.sample_whole_image

    def spy(observed: np.ndarray, known: np.ndarray, **kwargs):
        seen.append(known.copy())
        return real(observed, known, **kwargs)

    monkeypatch.setattr(esdiff.inpaint, "sample_whole_image", spy)
    known = np.random.default_rng(2).random((64, 80)) > 0.5
    observed = np.where(known[..., None], astronaut[:64, :80], 0.0)
    cfg = replace(BOOKKEEPING, sampling="image", shifts=2)
    out = inpaint_image(observed, known, model=tiny_model, config=cfg)
    first, shifted = seen
    assert np.array_equal(first, known)
    dy, dx = shifted.shape[0] - 64, shifted.shape[1] - 80
    assert dy > 0 and dx > 0 and np.array_equal(shifted[dy:, dx:], known)
    assert np.array_equal(shifted[:dy, dx:], known[:dy][::-1])  # mirrored, not missing
    assert not deep_pixels(shifted, 8).any()
    assert np.isfinite(out).all() and np.array_equal(out[known], observed[known])
