"""DSM loss, warm-up, EMA, crops, and the train loop (resume replays the uninterrupted run exactly)."""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from esdiff.checkpoints import load_model, load_training_state
from esdiff.config import NETWORK_PRESETS, RECIPES, ModelConfig, MPTConfig, TrainConfig
from esdiff.data import CropSampler, load_training_images
from esdiff.errors import EsdiffError
from esdiff.io import write_image
from esdiff.prior import Prior, edm_scalings
from esdiff.sde import VESDE
from esdiff.training import ema_update, learning_rate, new_model, train, train_step, training_loss
from esdiff.transforms import impt, virtual_mask

TINY = ModelConfig(network=NETWORK_PRESETS["tiny"])


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def images() -> list[np.ndarray]:
    from skimage import data

    return [
        (data.astronaut()[100:172, 150:230] / 255.0).astype(np.float32),
        (data.coffee()[50:114, 200:270] / 255.0).astype(np.float32),
    ]


class ExactScore(nn.Module):
    """The true score of data concentrated on one image ``c``: ``-(x - c) / sigma^2``."""

    def __init__(self, c: Tensor) -> None:
        super().__init__()
        self.c = c

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        return -(x - self.c) / sigma.view(-1, 1, 1, 1) ** 2


def test_dsm_loss_is_zero_for_the_exact_score_and_half_dim_for_zero() -> None:
    sde, gen = VESDE(), torch.Generator().manual_seed(0)
    c = torch.rand(1, 3, 8, 8)
    x0 = c.expand(64, -1, -1, -1)
    cfg = ModelConfig(mpt=MPTConfig(enabled=False))
    keep = torch.ones(8, 8, dtype=torch.bool)
    exact = Prior(ExactScore(c), cfg.precond)
    assert float(training_loss(exact, x0, keep, cfg, TrainConfig(), sde, gen)) < 1e-3
    zero = Prior(lambda x, s: torch.zeros_like(x), cfg.precond)  # type: ignore[arg-type]
    value = training_loss(zero, x0, keep, cfg, TrainConfig(), sde, gen)
    assert float(value) == pytest.approx(0.5 * 3 * 8 * 8, rel=0.05)


def test_edm_loss_is_zero_for_the_exact_denoiser_and_one_for_the_skip() -> None:
    """For data on one image c the exact denoiser is c (loss 0); a zero network F leaves D = c_skip x
    around the mean, whose EDM-weighted error is 1 per element on data of std sigma_data (EDM's unit
    effective weight), whatever the noise level."""
    precond, kw = RECIPES["edm"]
    cfg = ModelConfig(mpt=MPTConfig(enabled=False), precond=precond)
    train_cfg = TrainConfig(**kw)
    sde, gen = VESDE(), torch.Generator().manual_seed(0)
    x0 = torch.full((256, 3, 8, 8), 0.5)
    keep = torch.ones(8, 8, dtype=torch.bool)

    class Const(nn.Module):
        def __init__(self, value: float | None) -> None:
            super().__init__()
            self.value = value

        def raw(self, h: Tensor, label: Tensor) -> Tensor:
            if self.value is None:
                return torch.zeros_like(h)
            sigma = (4 * label).exp().view(-1, 1, 1, 1)
            c_skip, c_out, c_in = edm_scalings(sigma.flatten(), precond.sigma_data)
            return -c_skip * (h / c_in) / c_out  # cancels the skip: D = 0.5

    exact = training_loss(Prior(Const(0.5), precond), x0, keep, cfg, train_cfg, sde, gen)
    assert float(exact) < 1e-8
    spread = 0.5 + precond.sigma_data * torch.randn(x0.shape, generator=gen)
    skip = training_loss(Prior(Const(None), precond), spread, keep, cfg, train_cfg, sde, gen)
    assert float(skip) == pytest.approx(1.0, rel=0.02)


def test_rgb_noise_space_shares_the_noise_between_the_four_slots() -> None:
    """With ``noise_space=rgb`` the noisy 12-channel object is MPT of a noisy RGB crop."""
    seen: list[Tensor] = []

    class Spy(nn.Module):
        def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
            seen.append(x)
            return torch.zeros_like(x)

    cfg = ModelConfig(network=dataclasses.replace(NETWORK_PRESETS["tiny"], image_size=64))
    keep = virtual_mask(1.0)  # many swaps
    crops = torch.rand(2, 3, 64, 64)
    gen = torch.Generator().manual_seed(0)
    for space in ("rgb", "channels"):
        training_loss(
            Prior(Spy(), cfg.precond), crops, keep, cfg, TrainConfig(noise_space=space), VESDE(), gen
        )
    rgb, channels = (impt(x, keep) for x in seen)
    assert torch.allclose(rgb[:, 1:], rgb[:, :1].expand_as(rgb[:, 1:]), atol=1e-5)
    assert not torch.allclose(channels[:, 1:], channels[:, :1].expand_as(channels[:, 1:]), atol=1e-2)


def test_learning_rate_warm_up() -> None:
    cfg = TrainConfig(lr=2e-4, warmup=100)
    assert learning_rate(0, cfg) == pytest.approx(2e-6)
    assert learning_rate(49, cfg) == pytest.approx(1e-4)
    assert learning_rate(99, cfg) == learning_rate(5000, cfg) == pytest.approx(2e-4)
    assert learning_rate(0, dataclasses.replace(cfg, warmup=0)) == 2e-4


def test_learning_rate_cool_down() -> None:
    """``decay`` anneals linearly to zero over the last steps and leaves the earlier ones alone."""
    cfg = TrainConfig(lr=2e-4, warmup=100, steps=1000, decay=400)
    assert learning_rate(599, cfg) == pytest.approx(2e-4)
    assert learning_rate(800, cfg) == pytest.approx(1e-4)
    assert learning_rate(999, cfg) == pytest.approx(2e-4 / 400)
    assert learning_rate(50, dataclasses.replace(cfg, decay=1000)) == pytest.approx(2e-4 * 51 / 100)


def test_ema_update_rate() -> None:
    model, ema = nn.Linear(2, 2), nn.Linear(2, 2)
    before = ema.weight.detach().clone()
    ema_update(ema, model, num_updates=10**6, rate=0.999)
    assert torch.allclose(ema.weight, 0.999 * before + 0.001 * model.weight)
    ema_update(ema, model, num_updates=0, rate=0.999)  # score_sde's early decay (1 + n) / (10 + n) = 0.1
    assert torch.allclose(ema.weight, 0.1 * (0.999 * before + 0.001 * model.weight) + 0.9 * model.weight)


def test_crop_sampler_shapes_seed_and_flips(images: list[np.ndarray]) -> None:
    sampler = CropSampler(images, crops_per_image=3, flips=True)
    a = sampler.sample(torch.Generator().manual_seed(5))
    b = sampler.sample(torch.Generator().manual_seed(5))
    assert a.shape == (6, 3, 64, 64) and sampler.batch_size == 6
    assert torch.equal(a, b)
    whole = torch.as_tensor(images[1]).permute(2, 0, 1)  # 64 rows: every crop spans the full height
    for crop in a[3:]:
        found = any(
            torch.equal(c, whole[:, :, left : left + 64])
            for left in range(whole.shape[2] - 63)
            for c in (crop, crop.flip(-1))
        )
        assert found


def test_toy_distribution_score() -> None:
    """Data = constant colour c + N(0, s0^2): the score at sigma is -(x - c) / (s0^2 + sigma^2).

    The tiny 3-channel net on 8x8 patches, 200 steps of the library's train step (lr 2e-3, no warm-up);
    the EMA network must be within 20 % (relative L2) at sigma >= 0.5 and 35 % at sigma = 0.1, where a
    zero network is at 100 %. Measured when written: 11-13 % at sigma >= 0.5, 18 % at 0.1.
    """
    size, s0 = 8, 0.1
    cfg = ModelConfig(
        network=dataclasses.replace(NETWORK_PRESETS["tiny"], channels=3, image_size=size),
        mpt=MPTConfig(enabled=False),
    )
    model = new_model(cfg, seed=0)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters())
    sde, gen = VESDE(), torch.Generator().manual_seed(0)
    keep = torch.ones(size, size, dtype=torch.bool)
    c = torch.tensor([0.3, 0.5, 0.7]).view(1, 3, 1, 1)
    for step in range(200):
        x0 = c + s0 * torch.randn(16, 3, size, size, generator=gen)
        prior = Prior(model, cfg.precond)
        loss = functools.partial(training_loss, prior, x0, keep, cfg, TrainConfig(), sde, gen)
        train_step(prior, optimizer, loss, lr=2e-3, grad_clip=1.0)
        ema_update(ema, model, step + 1, 0.999)
    with torch.no_grad():
        for sigma, tol in [(0.1, 0.35), (0.5, 0.2), (2.0, 0.2), (10.0, 0.2), (50.0, 0.2)]:
            x = c + (s0**2 + sigma**2) ** 0.5 * torch.randn(64, 3, size, size, generator=gen)
            true = -(x - c) / (s0**2 + sigma**2)
            err = (ema(x, torch.full((64,), sigma)) - true).norm() / true.norm()
            assert float(err) < tol, f"sigma {sigma}: relative error {float(err):.3f}"


def test_train_writes_run_files(images: list[np.ndarray], tmp_path: Path) -> None:
    calls: list[tuple[int, int, dict[str, float]]] = []
    cfg = TrainConfig(steps=3, checkpoint_every=2, warmup=10)
    result = train(images, TINY, cfg, tmp_path / "run", callback=lambda s, t, **kw: calls.append((s, t, kw)))
    assert result.step == 3 and not result.interrupted
    assert [c[0] for c in calls] == [1, 2, 3] and set(calls[0][2]) == {"loss", "patches_per_s"}
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2, 3]
    assert set(lines[0]) >= {"step", "loss", "lr", "seconds"}
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["steps"] == 3 and config["model"]["network"]["nf"] == 16
    state = load_training_state(result.checkpoint)
    assert state.info.step == 3 and state.rng.shape == (1, 5056) and state.rng.dtype == torch.uint8
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")] == []


def test_resume_replays_the_uninterrupted_run(images: list[np.ndarray], tmp_path: Path) -> None:
    cfg = TrainConfig(steps=4, checkpoint_every=2, warmup=3, flips=True, redraw_mask=True)
    train(images, TINY, cfg, tmp_path / "straight")
    train(images, TINY, dataclasses.replace(cfg, steps=2), tmp_path / "split")
    result = train(images, TINY, cfg, tmp_path / "split", resume=True)
    assert result.step == 4
    a = load_training_state(tmp_path / "straight" / "checkpoint.safetensors")
    b = load_training_state(result.checkpoint)
    for name in ("model", "ema", "optim"):
        sa, sb = getattr(a, name), getattr(b, name)
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name
    assert torch.equal(a.rng, b.rng)
    losses = [
        [json.loads(line)["loss"] for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        for run in ("straight", "split")
    ]
    assert losses[0] == losses[1]


def test_resume_refuses_changed_settings(images: list[np.ndarray], tmp_path: Path) -> None:
    cfg = TrainConfig(steps=1)
    train(images, TINY, cfg, tmp_path / "run")
    with pytest.raises(EsdiffError, match="lr"):
        train(images, TINY, dataclasses.replace(cfg, steps=2, lr=1e-3), tmp_path / "run", resume=True)
    with pytest.raises(EsdiffError, match="already holds a training run"):
        train(images, TINY, cfg, tmp_path / "run")


def test_bf16_and_channels_last_run_on_cpu(images: list[np.ndarray], tmp_path: Path) -> None:
    """Both train like the plain run, and a channels-last run saves the weights it trained, in the
    standard layout: the same values as the plain run's, up to the rounding of a different conv order
    (two Adam steps move a weight by at most 2 lr, so a flip of the sign of a tiny gradient stays under
    4 lr, while weights saved in the wrong memory order differ by their own size)."""
    cfg = TrainConfig(steps=2, warmup=0, lr=1e-3)
    plain = train(images, TINY, cfg, tmp_path / "plain")
    fast = train(images, TINY, cfg, tmp_path / "fast", bf16=True, channels_last=True)
    assert fast.step == 2 and fast.loss == pytest.approx(plain.loss, rel=0.02)
    last = train(images, TINY, cfg, tmp_path / "last", channels_last=True)
    want, got = load_training_state(plain.checkpoint), load_training_state(last.checkpoint)
    for part in ("model", "ema"):
        for name, value in getattr(want, part).items():
            torch.testing.assert_close(getattr(got, part)[name], value, rtol=0, atol=4 * cfg.lr)
    model, _, _ = load_model(last.checkpoint)
    assert all(torch.equal(p, got.ema[n]) for n, p in model.named_parameters())


def test_no_mpt_model_trains_and_loads(images: list[np.ndarray], tmp_path: Path) -> None:
    cfg = ModelConfig(
        network=dataclasses.replace(NETWORK_PRESETS["tiny"], channels=3), mpt=MPTConfig(enabled=False)
    )
    result = train(images, cfg, TrainConfig(steps=1, crops_per_image=2), tmp_path / "run")
    model, _, loaded = load_model(result.checkpoint)
    assert loaded.mpt.enabled is False and model.config.channels == 3
    with pytest.raises(EsdiffError, match="channels"):
        train(images, dataclasses.replace(cfg, mpt=MPTConfig()), TrainConfig(steps=1), tmp_path / "other")


def test_load_training_images_errors(tmp_path: Path, images: list[np.ndarray]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EsdiffError, match="no images"):
        load_training_images(empty)
    (empty / "broken.png").write_bytes(b"not a png")
    with pytest.raises(EsdiffError, match="could be read"):
        load_training_images(empty)
    write_image(empty / "good.png", images[0])
    with pytest.warns(UserWarning, match="broken.png"):
        assert len(load_training_images(empty)) == 1
    write_image(empty / "small.png", images[0][:40])
    with pytest.raises(EsdiffError, match="smaller than the 64x64"):
        load_training_images(empty)


def test_validation_goes_into_the_metrics_and_the_curves_picture(
    images: list[np.ndarray], tmp_path: Path
) -> None:
    from PIL import Image

    cfg = TrainConfig(steps=4, warmup=1, checkpoint_every=2, val_every=2)
    train(images, TINY, cfg, tmp_path / "run", val_images=images)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    vals = [r for r in records if "val_psnr" in r]
    assert [r["step"] for r in vals] == [2, 4]
    for r in vals:
        assert set(r["val_psnr"]) == {"10", "25", "50"}
        assert all(5 < v < 60 for v in r["val_psnr"].values())
    picture = Image.open(tmp_path / "run" / "curves.png")
    assert picture.size == (720, 520) and len(np.unique(np.asarray(picture.convert("L")))) > 2


def test_validation_psnr_rises_with_a_better_denoiser(images: list[np.ndarray]) -> None:
    """The identity (D = x) scores the noisy PSNR; an oracle that knows the clean crops scores far higher."""
    from esdiff.validation import ValidationSet

    val = ValidationSet.from_images(images, crops=8)
    identity = Prior(lambda x, s: torch.zeros_like(x), ModelConfig().precond)  # type: ignore[arg-type]
    from esdiff.transforms import Encoding

    psnr = val.psnr(identity, Encoding(None))
    assert psnr[25] == pytest.approx(-10 * np.log10((25 / 255) ** 2), abs=0.6)
    assert psnr[10] > psnr[25] > psnr[50]


def test_non_finite_loss_stops_and_keeps_the_last_finite_checkpoint(
    images: list[np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import esdiff.training as training

    real = training.training_loss
    calls = []

    def diverging(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss * float("nan") if len(calls) >= 3 else loss

    monkeypatch.setattr(training, "training_loss", diverging)
    with pytest.raises(EsdiffError, match="diverged at step 3.*step 2"):
        train(images, TINY, TrainConfig(steps=5, warmup=1, checkpoint_every=1), tmp_path / "run")
    state = load_training_state(tmp_path / "run" / "checkpoint.safetensors")
    assert state.info.step == 2
    assert all(torch.isfinite(v).all() for v in state.ema.values() if v.is_floating_point())
    assert (tmp_path / "run" / "curves.png").is_file()


def test_crop_sampler_rotations_are_seeded_and_rotate(images: list[np.ndarray]) -> None:
    square = [images[0][:64, :64]]
    sampler = CropSampler(square, rotations=True)
    draws = [sampler.sample(torch.Generator().manual_seed(k))[0] for k in range(12)]
    whole = torch.as_tensor(square[0]).permute(2, 0, 1)
    turns = {next(k for k in range(4) if torch.equal(d, whole.rot90(k, dims=(1, 2)))) for d in draws}
    assert len(turns) >= 3
    again = sampler.sample(torch.Generator().manual_seed(3))[0]
    assert torch.equal(again, draws[3])
