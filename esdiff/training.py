"""Prior learning (SPEC 2): continuous denoising score matching on MPT-encoded crops, Adam with warm-up and
clipping, an EMA of the weights (the weights used for sampling); checkpoints, resume, DDP under torchrun.

Randomness: one ``torch.Generator`` per process, seeded ``seed + rank``, draws crops, flips, masks, times
and noise in a fixed order; its state goes into every checkpoint, so a resumed run replays the stream an
uninterrupted one would have drawn. Weight initialisation uses the global RNG inside ``fork_rng``.
"""

from __future__ import annotations

import copy
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

import esdiff
from esdiff.checkpoints import (
    CHECKPOINT_NAME,
    load_training_state,
    load_weights,
    restore_optimizer,
    save_checkpoint,
)
from esdiff.config import ModelConfig, MPTConfig, TrainConfig, to_dict
from esdiff.data import CropSampler
from esdiff.errors import EsdiffError
from esdiff.nn import ScoreModel, build_score_model
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
from esdiff.transforms import mpt, virtual_mask

Callback = Callable[..., None]
"""``callback(step, total, loss=..., patches_per_s=...)``, called after every step (rank 0 only)."""


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    checkpoint: Path
    step: int
    loss: float | None
    """Loss of the last step run in this call (None if nothing was left to run)."""
    interrupted: bool


def dsm_loss(
    model: nn.Module, x0: Tensor, sde: VESDE, generator: torch.Generator, bf16: bool = False
) -> Tensor:
    """Continuous DSM: ``t ~ U(eps, 1)``, ``x_t = x0 + sigma z``, batch mean of ``0.5 |sigma s + z|^2``."""
    t = sde.sample_time(x0.shape[0], generator).to(x0.device)
    z = torch.randn(x0.shape, generator=generator, device=generator.device).to(x0.device)
    if x0.dim() == 4 and not x0.is_contiguous():  # channels-last input
        z = z.contiguous(memory_format=torch.channels_last)
    x_t, sigma = sde.perturb(x0, t, z)
    with torch.autocast(x0.device.type, dtype=torch.bfloat16, enabled=bf16):
        score = model(x_t, sigma)
    residual = sigma.reshape(-1, *([1] * (x0.dim() - 1))) * score.float() + z
    return 0.5 * residual.pow(2).flatten(1).sum(dim=1).mean()


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up: ``lr * min(1, (step + 1) / warmup)`` for the 0-based ``step``."""
    return cfg.lr * min(1.0, (step + 1) / cfg.warmup) if cfg.warmup > 0 else cfg.lr


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, num_updates: int, rate: float) -> None:
    """score_sde's EMA: decay ``min(rate, (1 + n) / (10 + n))`` after ``n`` updates; buffers copied."""
    decay = min(rate, (1 + num_updates) / (10 + num_updates))
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(b)


def encode(crops: Tensor, keep: Tensor, cfg: MPTConfig) -> Tensor:
    """MPT-encode RGB crops to 12 channels, or leave them as they are for the 3-channel baseline."""
    return mpt(crops, keep) if cfg.enabled else crops


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x0: Tensor,
    sde: VESDE,
    generator: torch.Generator,
    lr: float,
    grad_clip: float,
    bf16: bool = False,
) -> tuple[float, float]:
    """One optimiser step on a batch of encoded patches; returns ``(loss, gradient norm before clipping)``."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss = dsm_loss(model, x0, sde, generator, bf16)
    loss.backward()
    norm = nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else float("inf"))
    optimizer.step()
    return float(loss.detach()), float(norm)


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
    run_info: dict[str, object] | None = None,
) -> TrainResult:
    """Train, or with ``resume`` continue, up to ``train_config.steps`` steps; return where it stopped.

    Writes ``run_dir/config.json``, ``metrics.jsonl`` and ``checkpoint.safetensors`` (every
    ``checkpoint_every`` steps and at the end). A first SIGINT/SIGTERM finishes the current step, writes a
    checkpoint and returns ``interrupted=True``; a second abandons the step (the last checkpoint stays).
    ``run_info`` adds fields to ``config.json`` (the command line records the data folder there).
    """
    if model_config.network.channels != model_config.mpt.channels:
        raise EsdiffError(
            f"the network has {model_config.network.channels} input channels but the encoding gives "
            f"{model_config.mpt.channels}"
        )
    cfg, model_cfg = train_config, model_config
    group, device = ProcessGroup.setup(torch.device(device))
    log: MetricsLog | None = None
    try:
        run_dir = prepare_run_dir(run_dir, resume) if group.rank == 0 else Path(run_dir)
        group.barrier()
        sde = VESDE.from_config(model_cfg.sde)
        sampler = CropSampler(images, model_cfg.mpt.size, cfg.crops_per_image, cfg.flips)
        generator = torch.Generator().manual_seed(cfg.seed + group.rank)
        raw, ema, optimizer, keep, start = _initial_state(model_cfg, cfg, run_dir, resume, generator, group)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        raw.to(device, memory_format=fmt)
        ema.to(device, memory_format=fmt).requires_grad_(False)
        _move_optimizer_state(optimizer, device)
        model: nn.Module = raw
        if group.world > 1:
            ids = [device] if device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(raw, device_ids=ids)
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
                )
            group.barrier()

        loss: float | None = None
        step, began, patches = start, time.perf_counter(), sampler.batch_size * group.world
        with StopSignals() as stop:
            for step in range(start + 1, cfg.steps + 1):
                tick = time.perf_counter()
                crops = sampler.sample(generator)
                step_keep = keep
                if cfg.redraw_mask:
                    z = torch.randn(keep.shape, generator=generator, dtype=torch.float64)
                    step_keep = z < model_cfg.mpt.ratio
                x0 = encode(crops, step_keep, model_cfg.mpt).to(device).contiguous(memory_format=fmt)
                lr = learning_rate(step - 1, cfg)
                loss, norm = train_step(model, optimizer, x0, sde, generator, lr, cfg.grad_clip, bf16)
                ema_update(ema, raw, step, cfg.ema_rate)
                loss, stopping = group.mean_and_any(loss, stop.requested, device)
                now = time.perf_counter()
                if log is not None:
                    log.write(
                        {"step": step, "loss": loss, "lr": lr, "grad_norm": norm, "seconds": now - tick}
                    )
                if callback is not None and group.rank == 0:
                    callback(
                        step, cfg.steps, loss=loss, patches_per_s=patches * (step - start) / (now - began)
                    )
                if stopping or step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    save(step)
                if stopping:
                    break
        return TrainResult(run_dir, run_dir / CHECKPOINT_NAME, step, loss, interrupted=step < cfg.steps)
    finally:
        if log is not None:
            log.close()
        group.close()


def _initial_state(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    run_dir: Path,
    resume: bool,
    generator: torch.Generator,
    group: ProcessGroup,
) -> tuple[ScoreModel, ScoreModel, torch.optim.Optimizer, Tensor, int]:
    """Raw and EMA networks, optimizer, keep mask and first step: fresh, or restored from the checkpoint."""
    raw = new_model(model_cfg, cfg.seed)
    optimizer = torch.optim.Adam(raw.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999), eps=cfg.adam_eps)
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


def _move_optimizer_state(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, Tensor) and key != "step":
                state[key] = value.to(device)
