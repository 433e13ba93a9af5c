"""PSNR / SSIM of Deep Image Prior inpainting against the number of iterations, on one image.

    python benchmarks/dip_curve.py --missing 0.8 --iterations 2000 --every 100 --out dip_curve.json

Without ``--image`` it uses scikit-image's astronaut resized to 256x256. The random mask (``--missing``
fraction of pixels unknown) comes from ``numpy.random.default_rng(--mask-seed)``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def load_image(path: str | None, size: int) -> np.ndarray:
    from skimage import data, io
    from skimage.transform import resize

    if path is None:
        img = data.astronaut()
    else:
        img = io.imread(path)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = img[..., :3]
        h, w = img.shape[:2]
        side = min(h, w)
        img = img[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
    img = img.astype(np.float64) / (255.0 if img.dtype == np.uint8 else float(np.max(img)))
    return resize(img, (size, size), anti_aliasing=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=None, help="image file (default: skimage astronaut)")
    parser.add_argument("--size", type=int, default=256, help="centre-cropped and resized to size x size")
    parser.add_argument("--missing", type=float, default=0.8, help="fraction of pixels unknown")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--every", type=int, default=100, help="evaluate every this many iterations")
    parser.add_argument("--channels", type=int, default=None, help="network width (default: DIP's 128)")
    parser.add_argument("--seed", type=int, default=0, help="DIP seed (weights and input noise)")
    parser.add_argument("--mask-seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=Path("dip_curve.json"))
    args = parser.parse_args()
    if not 0.0 < args.missing < 1.0 or args.iterations < 1 or args.every < 1:
        parser.error("need 0 < --missing < 1, --iterations >= 1 and --every >= 1")

    import torch
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from esdiff.baselines import dip

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    truth = load_image(args.image, args.size)
    known = np.random.default_rng(args.mask_seed).random(truth.shape[:2]) >= args.missing
    observed = np.where(known[..., None], truth, 0.0)
    rows: list[dict] = []
    start = time.perf_counter()

    def record(iteration: int, estimate: np.ndarray) -> None:
        psnr = peak_signal_noise_ratio(truth, estimate, data_range=1.0)
        ssim = structural_similarity(
            truth,
            estimate,
            channel_axis=-1,
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        hole = peak_signal_noise_ratio(truth[~known], estimate[~known], data_range=1.0)
        rows.append(
            {
                "iteration": iteration,
                "psnr": psnr,
                "ssim": ssim,
                "psnr_missing": hole,
                "seconds": time.perf_counter() - start,
            }
        )
        print(f"{iteration:>9d} {psnr:8.2f} {ssim:8.4f} {hole:10.2f} {rows[-1]['seconds']:9.1f}", flush=True)

    print(f"{'iteration':>9} {'PSNR':>8} {'SSIM':>8} {'PSNR hole':>10} {'seconds':>9}")
    record(0, observed)
    width = {} if args.channels is None else {"channels": args.channels}
    dip.inpaint(
        observed,
        known,
        seed=args.seed,
        device=args.device,
        iterations=args.iterations,
        snapshot=record,
        snapshot_every=args.every,
        **width,
    )
    total = time.perf_counter() - start
    result = {
        "image": args.image or "skimage.data.astronaut",
        "size": args.size,
        "missing": args.missing,
        "iterations": args.iterations,
        "seed": args.seed,
        "mask_seed": args.mask_seed,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "settings": {**dip.DEFAULTS, **width, "iterations": args.iterations},
        "seconds_total": total,
        "seconds_per_iteration": total / args.iterations,
        "curve": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"{total / args.iterations:.2f} s/iteration; wrote {args.out}")


if __name__ == "__main__":
    main()
