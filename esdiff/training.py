"""Prior learning (SPEC 2): continuous denoising score matching on MPT-encoded crops, Adam with warm-up and
clipping, an EMA of the weights (the weights used for sampling); checkpoints, resume, DDP under torchrun.

Randomness: one ``torch.Generator`` per process, seeded ``seed + rank``, draws crops, flips, masks, times
and noise in a fixed order; its state goes into every checkpoint, so a resumed run replays the stream an
uninterrupted one would have drawn. Weight initialisation uses the global RNG inside ``fork_rng``.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import esdiff
from esdiff.checkpoints import (
    CHECKPOINT_NAME,
    MODEL_NAME,
    Validation,
    load_model,
    load_training_state,
    load_weights,
    read_info,
    restore_optimizer,
    save_checkpoint,
)
from esdiff.config import ModelConfig, MPTConfig, TrainConfig, to_dict
from esdiff.data import CropSampler
from esdiff.errors import EsdiffError
from esdiff.nn import ScoreModel, build_score_model
from esdiff.plots import write_curves
from esdiff.prior import Prior, edm_loss_weight
from esdiff.runs import (
    METRICS_NAME,
    MetricsLog,
    ProcessGroup,
    StopSignals,
    clean_temp_files,
    prepare_run_dir,
    resume_conflicts,
    write_run_config,
)
from esdiff.sde import VESDE
from esdiff.transforms import Encoding, mpt, virtual_mask
from esdiff.validation import ValidationSet

Callback = Callable[..., None]
"""``callback(step, total, loss=..., patches_per_s=..., [val={sigma: psnr}])``, called after every step
(rank 0 only); ``val`` is the latest validation once there is one."""
CURVES_NAME = "curves.png"
"""File name of the training-curve picture inside a run folder."""


class DivergedError(EsdiffError):
    """Training produced a non-finite loss; the last checkpoint on disk is the last finite one."""


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    checkpoint: Path
    step: int
    loss: float | None
    """Loss of the last step run in this call (None if nothing was left to run)."""
    interrupted: bool
    model: Path | None = None
    """The final model (``MODEL_NAME``), written once the run reached its planned steps; None if not."""
    signal: int | None = None
    """The signal that stopped an interrupted run (SIGINT, SIGTERM)."""


def draw_sigma(batch: int, cfg: TrainConfig, sde: VESDE, generator: torch.Generator) -> Tensor:
    """Training noise levels ``[batch]`` (on the generator's device) by ``cfg.noise``: SPEC 2's
    ``sigma(t), t ~ U(eps, 1)``, a log-uniform band ``[sigma_lo, sigma_hi]``, or EDM's log-normal."""
    device = generator.device
    if cfg.noise == "log-normal":
        return (cfg.p_mean + cfg.p_std * torch.randn(batch, generator=generator, device=device)).exp()
    if cfg.sigma_lo is None or cfg.sigma_hi is None:
        return sde.sigma(sde.sample_time(batch, generator))
    lo, hi = math.log(cfg.sigma_lo), math.log(cfg.sigma_hi)
    return (lo + (hi - lo) * torch.rand(batch, generator=generator, device=device)).exp()


def training_loss(
    prior: nn.Module,
    crops: Tensor,
    keep: Tensor,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    sde: VESDE,
    generator: torch.Generator,
    bf16: bool = False,
) -> Tensor:
    """Denoising loss on a batch of RGB crops ``[B, 3, 64, 64]`` (on the training device).

    ``x_t = x0 + sigma z`` in the network's space, ``z`` drawn per channel or in RGB then encoded
    (``cfg.noise_space``). ``score-sde``: SPEC 2's DSM, batch mean of ``0.5 |sigma s + z|^2`` with
    ``s = (D - x_t) / sigma^2``; ``edm``: batch mean of ``lambda(sigma) mean |D - x0|^2``.
    ``prior`` is a :class:`esdiff.prior.Prior` (or DDP around one): its forward is ``D``.
    """
    x0 = encode(crops, keep, model_cfg.mpt)
    sigma = draw_sigma(x0.shape[0], cfg, sde, generator).to(x0.device)
    shape = crops.shape if cfg.noise_space == "rgb" else x0.shape
    z = torch.randn(shape, generator=generator, device=generator.device).to(x0.device)
    if cfg.noise_space == "rgb":
        z = encode(z, keep, model_cfg.mpt)  # MPT is a permutation: the four slots share the noise
    if not x0.is_contiguous():  # channels-last input
        z = z.contiguous(memory_format=torch.channels_last)
    s = sigma.reshape(-1, 1, 1, 1)
    x_t = x0 + s * z
    with torch.autocast(x0.device.type, dtype=torch.bfloat16, enabled=bf16):
        denoised = prior(x_t, sigma).float()
    if model_cfg.precond.kind == "score-sde":
        residual = (denoised - x_t) / s + z
        return 0.5 * residual.pow(2).flatten(1).sum(dim=1).mean()
    weight = edm_loss_weight(sigma, model_cfg.precond.sigma_data)
    return (weight * (denoised - x0).pow(2).flatten(1).mean(dim=1)).mean()


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, ``lr * min(1, (step + 1) / warmup)`` for the 0-based ``step``, then with ``decay``
    a linear cool-down to zero over the run's last ``decay`` steps."""
    scale = min(1.0, (step + 1) / cfg.warmup) if cfg.warmup > 0 else 1.0
    if cfg.decay > 0:
        scale = min(scale, max(0.0, (cfg.steps - step) / cfg.decay))
    return cfg.lr * scale


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, num_updates: int, rate: float) -> None:
    """score_sde's EMA: decay ``min(rate, (1 + n) / (10 + n))`` after ``n`` updates; buffers copied."""
    decay = min(rate, (1 + num_updates) / (10 + num_updates))
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, 1.0 - decay)
    for eb, b in zip(ema.buffers(), model.buffers(), strict=True):
        eb.copy_(b)


def encode(crops: Tensor, keep: Tensor, cfg: MPTConfig) -> Tensor:
    """MPT-encode RGB crops to 12 channels, or leave them as they are for the 3-channel baseline."""
    return mpt(crops, keep) if cfg.enabled else crops


def train_step(
    prior: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[], Tensor],
    lr: float,
    grad_clip: float,
) -> tuple[float, float]:
    """One optimiser step on the loss ``loss_fn()`` (e.g. :func:`training_loss` of a batch); returns
    ``(loss, gradient norm before clipping)``. A loss that is not finite raises :class:`DivergedError`
    before any weight changes."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn()
    value = float(loss.detach())
    if not math.isfinite(value):
        raise DivergedError(f"the loss became {value}")
    loss.backward()
    norm = nn.utils.clip_grad_norm_(prior.parameters(), grad_clip if grad_clip > 0 else float("inf"))
    optimizer.step()
    return value, float(norm)


def new_model(cfg: ModelConfig, seed: int) -> ScoreModel:
    """A freshly initialised network whose weights depend on ``seed`` only (the global RNG is untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_score_model(cfg.network)


def train(
    images: Sequence[np.ndarray | Tensor],
    model_config: ModelConfig,
    train_config: TrainConfig,
    run_dir: str | os.PathLike[str],
    device: torch.device | str = "cpu",
    callback: Callback | None = None,
    resume: bool = False,
    bf16: bool = False,
    channels_last: bool = False,
    val_images: Sequence[np.ndarray] | None = None,
    run_info: dict[str, object] | None = None,
    init: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Train, or with ``resume`` continue, up to ``train_config.steps`` steps; return where it stopped.

    Writes ``run_dir/config.json``, ``metrics.jsonl``, ``checkpoint.safetensors`` (every
    ``checkpoint_every`` steps and at the end), ``model.safetensors`` (the EMA weights alone, once the run
    reaches its planned steps) and ``curves.png`` (when the call ends, however it ends). Both ``.safetensors``
    files record the validations so far (``esdiff.checkpoints.training_concern`` reads them).
    With ``val_images``, every ``val_every`` steps the EMA prior's denoising PSNR on fixed crops of them
    goes into the metrics (``val_psnr``) and the callback (``val``). A first SIGINT/SIGTERM finishes the
    current step, writes a checkpoint and returns ``interrupted=True``; a second abandons the step (the
    last checkpoint stays). A non-finite loss stops the run with an EsdiffError before anything is saved
    over the last (finite) checkpoint. ``run_info`` adds fields to ``config.json`` (the command line
    records the data folder there).

    ``init`` (a model file) fine-tunes: a new run starts from its EMA weights (as the raw weights and as
    the EMA) and its virtual mask; ``model_config`` must be the file's (``esdiff.finetune`` resolves the
    run's settings), and with ``val_images`` the model is validated once before the first step (step 0).
    On ``resume`` the run's own checkpoint is the start and ``init`` is not read.
    """
    if model_config.network.channels != model_config.mpt.channels:
        raise EsdiffError(
            f"the network has {model_config.network.channels} input channels but the encoding gives "
            f"{model_config.mpt.channels}"
        )
    if init is not None and not resume:  # before the run folder is made
        conflicts = init_conflicts(read_info(init).model_config, model_config)
        if conflicts:
            raise EsdiffError(f"{init}: cannot fine-tune this model with the settings asked ({conflicts[0]})")
    cfg, model_cfg = train_config, model_config
    group, device = ProcessGroup.setup(torch.device(device))
    log: MetricsLog | None = None
    try:
        run_dir = prepare_run_dir(run_dir, resume) if group.rank == 0 else Path(run_dir)
        group.barrier()
        sde = VESDE.from_config(model_cfg.sde)
        sampler = CropSampler(images, model_cfg.mpt.size, cfg.crops_per_image, cfg.flips, cfg.rotations)
        generator = torch.Generator().manual_seed(cfg.seed + group.rank)
        raw, ema, optimizer, keep, start = _initial_state(
            model_cfg, cfg, run_dir, resume, generator, group, None if resume else init
        )
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        # Module.to takes memory_format (documented), but torch's overloads of it leave the keyword out.
        raw.to(device, memory_format=fmt)  # type: ignore[call-overload]
        ema.to(device, memory_format=fmt).requires_grad_(False)  # type: ignore[call-overload]
        _move_optimizer_state(optimizer, device)
        prior = Prior(raw, model_cfg.precond)
        model: nn.Module = prior
        if group.world > 1:
            ids = [device] if device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(prior, device_ids=ids)
        validation = ValidationSet.from_images(val_images) if val_images and group.rank == 0 else None
        ema_prior = Prior(ema, model_cfg.precond)
        log = MetricsLog(run_dir / METRICS_NAME, start) if group.rank == 0 else None
        if group.rank == 0:
            clean_temp_files(run_dir)
            write_run_config(
                run_dir,
                model=to_dict(model_cfg),
                train=to_dict(cfg),
                world_size=group.world,
                device=str(device),
                bf16=bf16,
                channels_last=channels_last,
                images=len(sampler.images),
                esdiff_version=esdiff.__version__,
                **(run_info or {}),
            )

        history: list[tuple[int, dict[int, float]]] = []
        if resume and group.rank == 0:
            history += read_info(run_dir / CHECKPOINT_NAME).validation

        def save(step: int) -> None:
            rng = group.gather(generator.get_state(), device)
            if group.rank == 0:
                save_checkpoint(
                    run_dir / CHECKPOINT_NAME,
                    ema=ema.state_dict(),
                    keep=keep,
                    model_config=model_cfg,
                    step=step,
                    train_config=cfg,
                    model=raw.state_dict(),
                    optimizer=optimizer,
                    rng=rng,
                    validation=tuple(history),
                )
            group.barrier()

        loss: float | None = None
        saved_step, val = start, None
        if validation is not None and init is not None and start == 0 and log is not None:
            val = validation.psnr(ema_prior, _encoding(keep, model_cfg))
            log.write({"step": 0, "val_psnr": {str(k): v for k, v in val.items()}})
        step, began, patches = start, time.perf_counter(), sampler.batch_size * group.world
        with StopSignals() as stop:
            for step in range(start + 1, cfg.steps + 1):
                tick = time.perf_counter()
                crops = sampler.sample(generator)
                step_keep = keep
                if cfg.redraw_mask:
                    z = torch.randn(keep.shape, generator=generator, dtype=torch.float64)
                    step_keep = z < model_cfg.mpt.ratio
                lr = learning_rate(step - 1, cfg)
                batch = crops.to(device).contiguous(memory_format=fmt)
                try:
                    loss, norm = train_step(
                        model,
                        optimizer,
                        functools.partial(
                            training_loss, model, batch, step_keep, model_cfg, cfg, sde, generator, bf16
                        ),
                        lr,
                        cfg.grad_clip,
                    )
                except DivergedError as exc:
                    raise DivergedError(
                        f"training diverged at step {step}: {exc}; kept the last finite checkpoint "
                        f"(step {saved_step}) in {run_dir / CHECKPOINT_NAME}; try a lower --lr"
                    ) from None
                ema_update(ema, raw, step, cfg.ema_rate)
                loss, stopping = group.mean_and_any(loss, stop.requested, device)
                now = time.perf_counter()
                record: dict[str, Any] = {
                    "step": step,
                    "loss": loss,
                    "lr": lr,
                    "grad_norm": norm,
                    "seconds": now - tick,
                }
                if validation is not None and (step % cfg.val_every == 0 or step == cfg.steps):
                    val = validation.psnr(ema_prior, _encoding(keep, model_cfg))
                    record["val_psnr"] = {str(k): v for k, v in val.items()}
                    history.append((step, val))
                if log is not None:
                    log.write(record)
                if callback is not None and group.rank == 0:
                    extra = {"val": val} if val is not None else {}
                    rate = patches * (step - start) / (now - began)
                    callback(step, cfg.steps, loss=loss, patches_per_s=rate, **extra)
                if stopping or step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    save(step)
                    saved_step = step
                if stopping:
                    break
        final = None
        if step >= cfg.steps and group.rank == 0:
            final = save_final_model(run_dir, ema, keep, model_cfg, cfg, step, tuple(history))
        return TrainResult(
            run_dir,
            run_dir / CHECKPOINT_NAME,
            step,
            loss,
            interrupted=step < cfg.steps,
            model=final,
            signal=stop.signal if step < cfg.steps else None,
        )
    finally:
        if log is not None:
            log.close()
            write_curves(log.path, log.path.parent / CURVES_NAME)
        group.close()


def save_final_model(
    run_dir: Path,
    ema: nn.Module,
    keep: Tensor,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    step: int,
    validation: Validation,
) -> Path:
    """``run_dir/model.safetensors``: the EMA weights alone, what ``--model`` takes for sampling."""
    return save_checkpoint(
        run_dir / MODEL_NAME,
        ema=ema.state_dict(),
        keep=keep,
        model_config=model_cfg,
        step=step,
        train_config=cfg,
        validation=validation,
    )


def _initial_state(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    run_dir: Path,
    resume: bool,
    generator: torch.Generator,
    group: ProcessGroup,
    init: str | os.PathLike[str] | None = None,
) -> tuple[ScoreModel, ScoreModel, torch.optim.Optimizer, Tensor, int]:
    """Raw and EMA networks, optimizer, keep mask and first step: fresh, from the model ``init``, or
    restored from the checkpoint."""
    raw = new_model(model_cfg, cfg.seed)
    optimizer = torch.optim.Adam(raw.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999), eps=cfg.adam_eps)
    if init is not None:
        model, keep, _ = load_model(init)
        raw.load_state_dict(model.state_dict())  # the EMA weights, cast to the trained dtype
        return raw, copy.deepcopy(raw), optimizer, keep.cpu(), 0
    if not resume:
        keep = virtual_mask(model_cfg.mpt.ratio, model_cfg.mpt.size, model_cfg.mpt.seed)
        return raw, copy.deepcopy(raw), optimizer, keep, 0
    path = run_dir / CHECKPOINT_NAME
    state = load_training_state(path)
    info = state.info
    conflicts = resume_conflicts(info.model_config, model_cfg, info.train_config, cfg)
    if conflicts:
        raise EsdiffError(f"--resume: settings conflict with the saved run ({'; '.join(conflicts)})")
    load_weights(raw, state.model, path, "raw")
    restore_optimizer(optimizer, state.optim, str(path))
    ema = copy.deepcopy(raw)
    load_weights(ema, state.ema, path, "EMA")
    if state.rng.shape[0] == group.world:
        generator.set_state(state.rng[group.rank].clone())  # a view with an offset crashes set_state
    else:
        warnings.warn(
            f"the run was trained by {state.rng.shape[0]} processes, now {group.world}: the random stream "
            "is reseeded",
            stacklevel=3,
        )
        generator.manual_seed(cfg.seed + 1009 * info.step + group.rank)
    return raw, ema, optimizer, state.keep, info.step


def init_conflicts(model: ModelConfig, asked: ModelConfig) -> list[str]:
    """How a model config asked for a fine-tune differs from the config of the model it starts from
    (empty: none), one phrase per field, e.g. ``network.nf is 32 in the model, 16 asked``."""
    return [
        c.replace(" in the run,", " in the model,")
        for c in resume_conflicts(model, asked, None, TrainConfig())
    ]


def _encoding(keep: Tensor, cfg: ModelConfig) -> Encoding:
    return Encoding(keep.bool() if cfg.mpt.enabled else None)


def _move_optimizer_state(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, Tensor) and key != "step":
                state[key] = value.to(device)
