"""Sampler settings and models side by side on centre crops of lsun100 photos (never train10).

Each run is ``NAME=MODEL|CONFIG[|STEPS]``: MODEL a checkpoint path (``builtin`` for the built-in one),
CONFIG a Python expression for a ``SamplerConfig`` over ``DEFAULT_SAMPLER``, ``SamplerConfig``,
``replace`` and ``LowRankConfig``, or a baseline's name (``biharmonic``, ``aloha``,
...); STEPS an entry of ``esdiff.sampler.STEP_LISTS`` (default: the config's ``step_list``). Prints mean
PSNR on the whole image and on the holes, and CPU seconds per image, for every run and mask (masks seeded
by the photo's index); JSON with per-image values to ``--out``.

    python benchmarks/sampler_sweep.py --limit 4 --size 256 --masks "random:0.8;caption" \\
        'before=builtin|replace(DEFAULT_SAMPLER, t_start=0.5, predictor="reverse-diffusion")' \\
        'after=builtin|DEFAULT_SAMPLER' 'biharmonic=builtin|biharmonic'
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from esdiff.config import DEFAULT_SAMPLER, LowRankConfig, SamplerConfig
from esdiff.inpaint import inpaint_image
from esdiff.io import read_image
from esdiff.masks import resolve_mask
from esdiff.methods import BASELINES, MethodOptions, run_method
from esdiff.metrics import psnr


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", help="NAME=MODEL|CONFIG[|STEPS]")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--limit", type=int, default=4, help="first N lsun100 photos")
    parser.add_argument("--size", type=int, default=256, help="centre crop size")
    parser.add_argument("--masks", default="random:0.8;caption", help="mask specs separated by ;")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sampler_sweep.json"))
    args = parser.parse_args()
    names = {
        "DEFAULT_SAMPLER": DEFAULT_SAMPLER,
        "SamplerConfig": SamplerConfig,
        "replace": replace,
        "LowRankConfig": LowRankConfig,
    }
    files = sorted((args.data / "lsun_bedroom" / "lsun100").iterdir())[: args.limit]
    results = {}
    for run in args.runs:
        name, spec = run.split("=", 1)
        model, expr, *rest = spec.split("|")
        step_list = rest[0] if rest else None
        cfg = expr if expr in BASELINES else eval(expr, names)  # noqa: S307 - the user's own expression
        for mask in args.masks.split(";"):
            whole, hole, seconds = [], [], []
            for i, path in enumerate(files):
                img = read_image(path).pixels.astype(np.float64)
                top, left = (img.shape[0] - args.size) // 2, (img.shape[1] - args.size) // 2
                img = img[top : top + args.size, left : left + args.size]
                known = resolve_mask(mask, args.size, args.size, seed=i)
                start = time.process_time()
                if isinstance(cfg, str):
                    out = run_method(cfg, img, known, MethodOptions(seed=i))
                else:
                    chosen = None if model == "builtin" else model
                    out = inpaint_image(
                        img * known[..., None], known, model=chosen, config=cfg, seed=i, step_list=step_list
                    )
                seconds.append(time.process_time() - start)
                whole.append(psnr(out, img))
                hole.append(psnr(out, img, ~known))
            results[f"{name} {mask}"] = {
                "psnr": float(np.mean(whole)),
                "psnr_missing": float(np.mean(hole)),
                "cpu_seconds": float(np.mean(seconds)),
                "per_image": [round(v, 3) for v in whole],
            }
            print(
                f"{name:12s} {mask:22s} psnr {np.mean(whole):6.2f}  hole {np.mean(hole):6.2f}"
                f"  cpu {np.mean(seconds):6.1f} s/image",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
