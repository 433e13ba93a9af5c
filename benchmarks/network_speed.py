"""How fast each network preset runs: a sampling call (forward, no gradient) and a training step.

The training step is the library's own: crops from the images, MPT encoding, DSM loss, backward,
clipping, Adam, EMA update, what ``esdiff train`` runs each step (``--batch`` crops; the paper: 10
images). The sampling call is the prior (the network and its parametrisation) on ``--forward-batch``
12-channel 64x64 patches at once, as the samplers batch them (``SamplerConfig.patch_batch``). A first
untimed run of each warms up; then ``--steps`` runs (paper: 2) are timed and the median taken.

    python benchmarks/network_speed.py                 # tiny, base, paper on the CPU
    python benchmarks/network_speed.py --device cuda --batch 64 --bf16 --channels-last

Prints a table and writes JSON (default ``benchmarks/results/network_speed.json``). On a shared CPU other
jobs slow the figures: ``--threads 1`` keeps them comparable between runs.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from esdiff.config import DEFAULT_RECIPE, NETWORK_PRESETS, PATCH_SIZE, RECIPES, ModelConfig, TrainConfig
from esdiff.data import CropSampler
from esdiff.nn import count_parameters
from esdiff.prior import Prior
from esdiff.sde import VESDE
from esdiff.training import ema_update, learning_rate, new_model, train_step, training_loss
from esdiff.transforms import virtual_mask

DEFAULT_STEPS = {"tiny": 5, "base": 5, "paper": 2}


def measure(
    preset: str,
    steps: int,
    batch: int,
    forward_batch: int,
    device: torch.device,
    bf16: bool,
    channels_last: bool,
) -> dict:
    """Seconds per training step and patches/s of one preset (random 128x128 images, ``batch`` crops per
    step), and seconds per sampling call of ``forward_batch`` patches."""
    precond, recipe = RECIPES[DEFAULT_RECIPE]
    cfg = ModelConfig(network=NETWORK_PRESETS[preset], precond=precond)
    train_cfg = TrainConfig(**recipe, warmup=0)
    rng = np.random.default_rng(0)
    images = [rng.random((128, 128, 3), dtype=np.float32) for _ in range(batch)]
    sampler = CropSampler(images)
    keep = virtual_mask(cfg.mpt.ratio)
    gen = torch.Generator().manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = new_model(cfg, seed=0).to(device, memory_format=fmt)
    ema = copy.deepcopy(model).requires_grad_(False)
    prior = Prior(model, cfg.precond)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg.lr, eps=train_cfg.adam_eps)
    sde = VESDE.from_config(cfg.sde)
    times = []
    for step in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        tick = time.perf_counter()
        crops = sampler.sample(gen).to(device).contiguous(memory_format=fmt)
        loss = functools.partial(training_loss, prior, crops, keep, cfg, train_cfg, sde, gen, bf16)
        train_step(prior, optimizer, loss, learning_rate(step, train_cfg), train_cfg.grad_clip)
        ema_update(ema, model, step + 1, train_cfg.ema_rate)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - tick)
    per_step = float(np.median(times[1:]))
    return {
        "preset": preset,
        "parameters": count_parameters(model),
        "batch": batch,
        "steps_timed": steps,
        "seconds_per_step": per_step,
        "patches_per_s": batch / per_step,
        "first_step_s": times[0],
        "forward_batch": forward_batch,
        "forward_s": time_forward(Prior(ema, cfg.precond), cfg, forward_batch, steps, device, fmt, bf16),
    }


def time_forward(
    prior: Prior,
    cfg: ModelConfig,
    batch: int,
    runs: int,
    device: torch.device,
    fmt: torch.memory_format,
    bf16: bool,
) -> float:
    """Median seconds of one sampling call: the prior on ``batch`` random patches, no gradient."""
    gen = torch.Generator().manual_seed(1)
    channels = cfg.network.channels
    x = (
        torch.rand(batch, channels, PATCH_SIZE, PATCH_SIZE, generator=gen)
        .to(device)
        .contiguous(memory_format=fmt)
    )
    sigma = torch.full((batch,), 0.5, device=device)
    times = []
    for _ in range(runs + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        tick = time.perf_counter()
        with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            prior(x, sigma)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - tick)
    return float(np.median(times[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(DEFAULT_STEPS), choices=list(NETWORK_PRESETS))
    parser.add_argument("--steps", type=int, default=None, help="timed steps per preset (default 5; paper 2)")
    parser.add_argument("--batch", type=int, default=10, help="patches per step (the paper: 10 images)")
    parser.add_argument("--forward-batch", type=int, default=25, help="patches per sampling call")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "network_speed.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    print(f"{'preset':<8}{'params':>12}{'batch':>7}{'s/step':>10}{'patches/s':>11}{'call s':>9}")
    for preset in args.presets:
        steps = args.steps or DEFAULT_STEPS.get(preset, 5)
        row = measure(preset, steps, args.batch, args.forward_batch, device, args.bf16, args.channels_last)
        rows.append(row)
        print(
            f"{preset:<8}{row['parameters']:>12,}{row['batch']:>7}"
            f"{row['seconds_per_step']:>10.3f}{row['patches_per_s']:>11.2f}{row['forward_s']:>9.3f}",
            flush=True,
        )
    report = {
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "bf16": args.bf16,
        "channels_last": args.channels_last,
        "forward_batch": args.forward_batch,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
