"""The learned prior on its own: one-step denoising against CBM3D, and inpainting by the prior alone.

For each model file (and CBM3D, ``pip install -e ".[bench]"``): denoising PSNR / SSIM on the first N
lsun100 photos (256 centre crops; never train10) at sigma = 5, 10, 25, 50 on the 0-255 scale, seeded
noise; then the "prior alone" inpainting at random 80 % missing (the ``no-lowrank`` step list, the
paper's predictor-corrector without the low-rank step, started from noise at t = 1) beside biharmonic
on the same masks. Seconds per image for each. Table on stdout,
JSON to ``--out``.

    python benchmarks/prior_quality.py --limit 10 --models builtin,runs/new/checkpoint.safetensors
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from esdiff.benchmarks import load_benchmark, mask_seed
from esdiff.evaluation import versions
from esdiff.masks import generate_mask
from esdiff.metrics import psnr, ssim

SIGMAS = (5, 10, 25, 50)
INPAINT_MASK = "random:0.8"


def noisy_copy(image: np.ndarray, sigma: int, index: int) -> np.ndarray:
    """The image plus N(0, (sigma/255)^2) noise, seeded by photo index and level (not clipped)."""
    rng = np.random.default_rng(1000 * index + sigma)
    return image + sigma / 255 * rng.standard_normal(image.shape)


def cbm3d(noisy: np.ndarray, sigma: float) -> np.ndarray:
    try:
        import bm3d
    except ImportError:
        raise SystemExit('CBM3D needs the bench extra: pip install -e ".[bench]"') from None
    return np.asarray(bm3d.bm3d_rgb(noisy, sigma), dtype=np.float64)


def denoiser(name: str, device: str) -> Any:
    if name == "cbm3d":
        return cbm3d
    from esdiff.prior import denoise

    model = None if name == "builtin" else name
    return lambda noisy, sigma: denoise(noisy, sigma, model=model, device=device)


def prior_alone(name: str, steps: int, device: str) -> Any:
    """Inpainting with the prior and data consistency only, from noise at t = 1."""
    from esdiff.config import NCSNPP_SAMPLER
    from esdiff.inpaint import inpaint_image

    cfg = replace(NCSNPP_SAMPLER, steps=steps)
    model = None if name == "builtin" else name

    def run(observed: np.ndarray, known: np.ndarray, seed: int) -> np.ndarray:
        return inpaint_image(observed, known, seed=seed, device=device, model=model, config=cfg)

    return run


def biharmonic(observed: np.ndarray, known: np.ndarray, seed: int) -> np.ndarray:
    from esdiff.baselines.biharmonic import inpaint

    return inpaint(observed, known)


def table_row(name: str, row: dict[str, Any]) -> str:
    """One Markdown row: PSNR / SSIM per level, the prior-alone inpainting, seconds (denoise, inpaint)."""
    cell = "{psnr:.2f} / {ssim:.4f}".format
    denoise, inpaint = row.get("denoise", {}), row.get("inpaint")
    cells = [cell(**denoise[str(s)]) if denoise else "-" for s in SIGMAS]
    cells.append(cell(**inpaint) if inpaint else "-")
    seconds = [f"{mean([denoise[str(s)]['seconds'] for s in SIGMAS]):.2f}" if denoise else "-"]
    seconds.append(f"{inpaint['seconds']:.1f}" if inpaint else "-")
    path, label = Path(name), name
    if path.suffix == ".safetensors":  # a run's checkpoint by its run folder, any other file by its name
        label = path.parent.name if path.stem == "checkpoint" else path.stem
    return f"| {label} | " + " | ".join(cells) + f" | {' + '.join(seconds)} |"


def mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=None, help="data root (default: ../shared/data)")
    parser.add_argument("--limit", type=int, default=10, help="first N lsun100 photos")
    parser.add_argument("--models", default="builtin", help="comma-separated: builtin or checkpoint paths")
    parser.add_argument("--no-cbm3d", action="store_true", help="skip CBM3D")
    parser.add_argument("--no-inpaint", action="store_true", help="skip the prior-alone inpainting")
    parser.add_argument("--steps", type=int, default=200, help="sampler steps of the prior-alone inpainting")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/prior_quality.json"))
    args = parser.parse_args()

    images = load_benchmark("lsun100", args.data, args.limit)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m != "builtin" and not Path(m).is_file():
            parser.error(f"--models: {m} is not a file")
    methods = models + ([] if args.no_cbm3d else ["cbm3d"])
    rows: dict[str, dict[str, Any]] = {}
    for name in methods:
        run = denoiser(name, args.device)
        row: dict[str, Any] = {}
        for sigma in SIGMAS:
            p, s, secs = [], [], []
            for i, im in enumerate(images):
                noisy = noisy_copy(im.pixels, sigma, i)
                tick = time.perf_counter()
                out = np.clip(run(noisy, sigma / 255), 0.0, 1.0)
                secs.append(time.perf_counter() - tick)
                p.append(psnr(out, im.pixels))
                s.append(ssim(out, im.pixels))
            row[str(sigma)] = {"psnr": mean(p), "ssim": mean(s), "seconds": mean(secs), "per_image": p}
            print(
                f"{name:>40} sigma {sigma:>2}: {mean(p):.2f} dB  {mean(s):.4f}  {mean(secs):.2f} s",
                flush=True,
            )
        rows[name] = {"denoise": row}
    if not args.no_inpaint:
        for name in [*models, "biharmonic"]:
            run = biharmonic if name == "biharmonic" else prior_alone(name, args.steps, args.device)
            p, s, secs = [], [], []
            for im in images:
                known = generate_mask(
                    INPAINT_MASK, *im.pixels.shape[:2], seed=mask_seed(im.name, INPAINT_MASK)
                )
                observed = im.pixels * known[..., None]
                tick = time.perf_counter()
                out = run(observed, known, 0)
                secs.append(time.perf_counter() - tick)
                p.append(psnr(out, im.pixels))
                s.append(ssim(out, im.pixels))
            rows.setdefault(name, {})["inpaint"] = {"psnr": mean(p), "ssim": mean(s), "seconds": mean(secs)}
            print(f"{name:>40} prior-alone {INPAINT_MASK}: {mean(p):.2f} dB  {mean(s):.4f}", flush=True)

    print()
    header = (
        "| method | "
        + " | ".join(f"sigma {s}" for s in SIGMAS)
        + f" | inpaint {INPAINT_MASK} | s/img (denoise + inpaint) |"
    )
    print(header)
    print("|" + "---|" * (len(SIGMAS) + 3))
    for name, row in rows.items():
        print(table_row(name, row))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "images": [im.name for im in images],
        "machine": platform.machine(),
        "device": args.device,
        "prior_alone": {"step_list": "no-lowrank", "steps": args.steps, "mask": INPAINT_MASK},
    }
    args.out.write_text(json.dumps({"meta": {**meta, "versions": versions()}, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
