"""How inpainting time and memory grow with the image: esdiff (or ALOHA) and biharmonic, per size, mask.

Sizes 256x256 to 3840x2160 of one real photo (scikit-image's astronaut, or ``--photo``, resized with
``skimage.transform.resize``), masks ``random:0.8``, ``text2``, ``caption`` (thick text) and a centred
200x100 box. Each case runs in a fresh subprocess (so its peak resident memory, ``ru_maxrss``, is its
own), once for the method and once for biharmonic on the same input. Reports wall and CPU seconds
(``time.process_time``: wall alone misleads on a loaded machine), peak memory, the memory of the
process before the run (imports, model) and the patches sampled out of the grid's. Prints a table and
writes JSON (rewritten after every case).

    .venv/bin/python benchmarks/scaling.py --sizes 256,512 --masks box,text2 --steps 3 --out /tmp/s.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

SIZES = ("256x256", "512x512", "1024x1024", "2048x1536", "3840x2160")
"""Width x height."""
MASKS = ("random:0.8", "text2", "caption", "box")
"""``box`` is a 200x100 box in the middle of the image."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=",".join(SIZES), help="WxH (or N for NxN), comma-separated")
    p.add_argument("--masks", default=",".join(MASKS), help="mask specs or 'box', comma-separated")
    p.add_argument("--method", choices=["esdiff", "aloha"], default="esdiff")
    p.add_argument("--steps", type=int, help="sampler steps (default: the method's)")
    p.add_argument("--iterations", type=int, help="ALOHA's ADMM iterations (default: its own)")
    p.add_argument("--model", help="checkpoint (default: the built-in model)")
    p.add_argument("--photo", type=Path, help="image to resize (default: scikit-image's astronaut)")
    p.add_argument("--no-biharmonic", action="store_true", help="skip the biharmonic runs")
    p.add_argument("--threads", type=int, default=1, help="torch / BLAS threads per case")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("scaling.json"))
    p.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case and print its JSON
    return p.parse_args(argv)


def size_of(text: str) -> tuple[int, int]:
    """``WxH`` or ``N`` as (height, width)."""
    w, _, h = text.partition("x")
    return int(h or w), int(w)


def mask_spec(name: str, height: int, width: int) -> str:
    return f"box:{(width - 200) // 2},{(height - 100) // 2},200,100" if name == "box" else name


def run_case(args: argparse.Namespace, method: str, size: str, mask: str) -> dict:
    """In this process: load, resize, mask, inpaint once; the figures as a dict."""
    import numpy as np
    import torch
    from skimage import data, transform

    from esdiff.masks import generate_mask
    from esdiff.methods import MethodOptions, run_method
    from esdiff.patches import make_grid

    torch.set_num_threads(args.threads)
    height, width = size_of(size)
    photo = data.astronaut() / 255.0 if args.photo is None else _read(args.photo)
    image = transform.resize(photo, (height, width), anti_aliasing=True).astype(np.float32)
    known = generate_mask(mask_spec(mask, height, width), height, width, seed=args.seed)
    settings: dict = {}
    if method == "esdiff" and args.model is not None:
        settings["model"] = args.model
    if method == "esdiff" and args.steps is not None:
        settings["steps"] = args.steps
    if method == "aloha" and args.iterations is not None:
        settings["iterations"] = args.iterations
    seen: list[tuple[float, int]] = []
    before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    wall, cpu = time.perf_counter(), time.process_time()
    run_method(
        method,
        image,
        known,
        MethodOptions(args.seed, "cpu", settings),
        lambda done, total, **_: seen.append((done, total)),
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    row = {
        "method": method,
        "size": size,
        "mask": mask,
        "missing": float(1 - known.mean()),
        "seconds": wall,
        "cpu_seconds": cpu,
        "peak_mib": peak_kib / 1024,
        "before_mib": before_kib / 1024,
        "image_mib": height * width * 3 * 8 / 2**20,
    }
    if method in ("esdiff", "aloha"):
        row["patches"] = int(seen[-1][1]) if seen else 0
        row["grid_patches"] = make_grid(height, width).count
    return row


def _read(path: Path):
    from esdiff.io import read_image

    return read_image(path).pixels


def in_subprocess(argv: list[str], method: str, size: str, mask: str, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    case = json.dumps([method, size, mask])
    done = subprocess.run(
        [sys.executable, __file__, *argv, "--case", case], env=env, capture_output=True, text=True
    )
    if done.returncode:
        return {"method": method, "size": size, "mask": mask, "error": done.stderr.strip().splitlines()[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    head = (
        f"{'size':>10} {'mask':>10} {'method':>10} {'patches':>11} {'s':>8} {'cpu s':>8} "
        f"{'peak MiB':>9} {'base MiB':>9} {'img MiB':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['size']:>10} {r['mask']:>10} {r['method']:>10}  failed: {r['error']}")
            continue
        patches = f"{r['patches']}/{r['grid_patches']}" if "patches" in r else "-"
        lines.append(
            f"{r['size']:>10} {r['mask']:>10} {r['method']:>10} {patches:>11} {r['seconds']:8.1f} "
            f"{r['cpu_seconds']:8.1f} {r['peak_mib']:9.0f} {r['before_mib']:9.0f} {r['image_mib']:8.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args, *json.loads(args.case))))
        return
    methods = [args.method] + ([] if args.no_biharmonic else ["biharmonic"])
    rows: list[dict] = []
    for size in args.sizes.split(","):
        for mask in args.masks.split(","):
            for method in methods:
                rows.append(in_subprocess(argv, method, size, mask, args.threads))
                print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
                settings = {k: v for k, v in vars(args).items() if k != "case"}
                args.out.write_text(json.dumps({"settings": settings, "rows": rows}, indent=1, default=str))
    print(table(rows))


if __name__ == "__main__":
    main()
