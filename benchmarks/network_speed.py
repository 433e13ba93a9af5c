"""Speed of the NCSN++ presets: parameters, forward time (batch 25) and DSM train-step time (batch 10).

Usage: python benchmarks/network_speed.py [--presets base tiny] [--candidates] [--repeats 3]
       [--threads N] [--clock wall|process] [--out PATH]

A train step is the one of SPEC 2: forward, backward, clipping and Adam on a batch of 64x64 crops with the
continuous denoising score-matching loss. The paper preset is timed by one forward pass only (slow on a
CPU). Times are the best of `--repeats` runs after one warm-up run (the minimum is the least disturbed by
other load). `--candidates` adds the CPU-sized networks that were weighed for the `base` preset. On a
busy shared machine two OpenMP threads slow down many-fold; `--threads 1 --clock process` (CPU seconds of
this process) stays comparable, and two idle cores run roughly 1.5-1.9 times faster than that.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from esdiff.config import NETWORK_PRESETS, NetworkConfig, to_dict
from esdiff.nn import ScoreModel, build_score_model, count_parameters

CANDIDATES: dict[str, NetworkConfig] = {
    f"nf{nf}-{''.join(map(str, mult))}-r{r}-a{'/'.join(map(str, attn)) or 'none'}": NetworkConfig(
        nf=nf, ch_mult=mult, num_res_blocks=r, attn_resolutions=attn
    )
    for nf, mult, r, attn in [
        (32, (1, 2, 2, 2), 1, (16,)),
        (32, (1, 2, 2, 2), 2, (16,)),
        (32, (1, 2, 2, 2), 1, ()),
        (32, (1, 2, 2), 1, (16,)),
        (32, (1, 2, 2, 2, 2), 1, (16,)),
        (32, (1, 1, 2, 2), 1, (16,)),
        (32, (1, 1, 2, 2), 2, (16,)),
        (32, (1, 1, 2, 2, 2), 1, (16,)),
        (24, (1, 2, 2, 2), 1, (16,)),
        (48, (1, 2, 2), 1, (16,)),
    ]
}
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "process": time.process_time}
SIGMA_MIN, SIGMA_MAX = 0.01, 378.0


def _best_time(fn: Callable[[], object], repeats: int, device: torch.device, clock: str) -> float:
    now, times = CLOCKS[clock], []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = now()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(now() - start)
    return min(times)


def _batch(
    cfg: NetworkConfig, batch: int, device: torch.device, g: torch.Generator
) -> tuple[torch.Tensor, ...]:
    x = torch.rand(batch, cfg.channels, cfg.image_size, cfg.image_size, generator=g).to(device)
    t = torch.rand(batch, generator=g) * (1 - 1e-5) + 1e-5
    sigma = (SIGMA_MIN * (SIGMA_MAX / SIGMA_MIN) ** t).to(device)
    z = torch.randn(x.shape, generator=g).to(device)
    return x, sigma, z


def time_forward(
    model: ScoreModel, batch: int, repeats: int, device: torch.device, clock: str = "wall"
) -> float:
    """Seconds per `torch.no_grad` forward pass (eval mode)."""
    x, sigma, _ = _batch(model.config, batch, device, torch.Generator().manual_seed(0))
    model.eval()

    def step() -> None:
        with torch.no_grad():
            model(x, sigma)

    step()  # warm-up
    return _best_time(step, repeats, device, clock)


def time_train_step(
    model: ScoreModel, batch: int, repeats: int, device: torch.device, clock: str = "wall"
) -> float:
    """Seconds per DSM step: forward, backward, gradient clipping and Adam."""
    x, sigma, z = _batch(model.config, batch, device, torch.Generator().manual_seed(1))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.9, 0.999), eps=1e-8)
    s = sigma[:, None, None, None]

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        score = model(x + s * z, sigma)
        loss = 0.5 * ((s * score + z) ** 2).sum(dim=(1, 2, 3)).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    step()  # warm-up
    return _best_time(step, repeats, device, clock)


def measure(
    name: str,
    cfg: NetworkConfig,
    repeats: int,
    device: torch.device,
    clock: str = "wall",
    forward_only: bool = False,
) -> dict[str, object]:
    """One row of the table: parameter count, forward (batch 25) and train step (batch 10) seconds."""
    torch.manual_seed(0)
    model = build_score_model(cfg).to(device)
    row: dict[str, object] = {"preset": name, "parameters": count_parameters(model), "config": to_dict(cfg)}
    row["forward_b25_s"] = time_forward(model, 25, 1 if forward_only else repeats, device, clock)
    row["train_step_b10_s"] = None if forward_only else time_train_step(model, 10, repeats, device, clock)
    return row


def _fmt(v: object) -> str:
    return "-" if v is None else f"{v:.3f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(NETWORK_PRESETS), choices=list(NETWORK_PRESETS))
    parser.add_argument("--candidates", action="store_true", help="also time the base-preset candidates")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (best taken)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/network_speed.json"))
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    nets = {name: NETWORK_PRESETS[name] for name in args.presets}
    if args.candidates:
        nets.update(CANDIDATES)

    rows = []
    width = max(map(len, nets)) + 1
    print(f"{'preset':<{width}} {'parameters':>12} {'forward b25 [s]':>16} {'train step b10 [s]':>19}")
    for name, cfg in nets.items():
        row = measure(name, cfg, args.repeats, device, args.clock, forward_only=name == "paper")
        rows.append(row)
        print(
            f"{name:<{width}} {row['parameters']:>12,} {_fmt(row['forward_b25_s']):>16}"
            f" {_fmt(row['train_step_b10_s']):>19}",
            flush=True,
        )

    result = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "clock": args.clock,
        "repeats": args.repeats,
        "machine": platform.processor() or platform.machine(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
