"""Figures for a short time on a GPU: the network call eager / bf16 / compiled, one 256x256 photo end to
end, and the table1 protocol on a few photos extrapolated to lsun100's 100, one job at a time and with the
photos' patches in shared batches (``--image-batch``).

Run by ``benchmarks/gpu_check.sh``, which also runs the ``gpu`` tests; ``--device cpu`` is a smoke test
of the same code (small settings, figures meaningless for speed).

    python benchmarks/gpu_check.py --device cuda --photos 4 --out gpu_check/figures.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from esdiff.benchmarks import load_benchmark
from esdiff.inpaint import inpaint_image
from esdiff.masks import resolve_mask
from esdiff.metrics import psnr
from esdiff.prior import Runtime, load, scorer

RUNTIMES = {
    "eager": Runtime(),
    "bf16": Runtime(bf16=True),
    "compiled": Runtime(compile=True),
    "bf16+compiled": Runtime(bf16=True, compile=True),
}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def network_call(device: str, batch: int, repeats: int) -> dict[str, float]:
    """Seconds per score call of the built-in model on ``batch`` patches, best of ``repeats``, per runtime
    (the first call, which compiles, is timed apart)."""
    prior, _, _ = load(None, device)
    psi = torch.rand(batch, 12, 64, 64, generator=torch.Generator().manual_seed(0)).to(device)
    out: dict[str, float] = {}
    for name, runtime in RUNTIMES.items():
        score = scorer(prior, runtime)
        _sync(device)
        start = time.perf_counter()
        score(psi, 0.1)
        _sync(device)
        out[f"{name}_first_s"] = time.perf_counter() - start
        times = []
        for k in range(repeats):
            _sync(device)
            start = time.perf_counter()
            score(psi, 0.1 + 0.01 * k)
            _sync(device)
            times.append(time.perf_counter() - start)
        out[f"{name}_s"] = min(times)
    return out


def one_photo(image: np.ndarray, device: str, steps: int | None) -> dict[str, float]:
    """Seconds and PSNR of a 256x256 photo at random 80 % (default settings), eager and bf16 + compiled
    (each after a warm-up run, so compile time is not counted)."""
    known = resolve_mask("random:0.8", *image.shape[:2], seed=0)
    observed = np.where(known[..., None], image, 0.0)
    out: dict[str, float] = {}
    for name in ("eager", "bf16+compiled"):
        runtime = RUNTIMES[name]
        inpaint_image(observed, known, device=device, steps=steps, runtime=runtime)  # warm-up
        _sync(device)
        start = time.perf_counter()
        result = inpaint_image(observed, known, device=device, steps=steps, runtime=runtime)
        _sync(device)
        out[f"{name}_s"] = time.perf_counter() - start
        out[f"{name}_psnr"] = psnr(result, image)
    return out


def table1(
    data: Path | None, photos: int, device: str, steps: int | None, work: Path, extra: Sequence[str] = ()
) -> dict[str, float]:
    """Wall time of ``esdiff evaluate --masks table1 --methods esdiff`` (and ``extra`` options) on the
    first ``photos`` lsun100 photos, and that time scaled to 100 photos."""
    command = [sys.executable, "-m", "esdiff_cli", "evaluate", "--benchmark", "lsun100", "--masks", "table1"]
    command += ["--methods", "esdiff", "--limit", str(photos), "--device", device, "-o", str(work), "-q"]
    command += [] if data is None else ["--data", str(data)]
    command += [] if steps is None else ["--steps", str(steps)]
    command += list(extra)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - start
    return {"photos": photos, "seconds": seconds, "per_100_photos_min": seconds / photos * 100 / 60}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--data", type=Path, default=None, help="data root (default: ../shared/data)")
    parser.add_argument("--photos", type=int, default=4, help="lsun100 photos for the table1 timing")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: esdiff's)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("gpu_check/figures.json"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figures: dict[str, object] = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "steps": args.steps,
    }

    def save() -> None:
        args.out.write_text(json.dumps(figures, indent=2))

    figures["network_call_b25"] = network_call(args.device, 25, args.repeats)
    save()
    print("network call, batch 25:", json.dumps(figures["network_call_b25"]), flush=True)
    photo = load_benchmark("lsun100", args.data, 1, False)[0].pixels.astype(np.float64)
    figures["photo_256"] = one_photo(photo, args.device, args.steps)
    save()
    print("one 256x256 photo, random 80 %:", json.dumps(figures["photo_256"]), flush=True)
    work = args.out.parent / "table1"
    figures["table1"] = table1(args.data, args.photos, args.device, args.steps, work)
    save()
    print("table1:", json.dumps(figures["table1"]), flush=True)
    batched = ["--image-batch", str(args.photos), "--patch-batch", "100"]
    work = args.out.parent / "table1_batched"
    figures["table1_batched"] = {
        "options": " ".join(batched),
        **table1(args.data, args.photos, args.device, args.steps, work, batched),
    }
    save()
    print("table1, photos batched together:", json.dumps(figures["table1_batched"]), flush=True)


if __name__ == "__main__":
    main()
