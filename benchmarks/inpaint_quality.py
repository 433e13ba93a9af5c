"""Built-in ESDiff model against ALOHA and biharmonic on lsun100 (issue: iterative inpainting).

Prints a table (mask x method: mean PSNR/SSIM, seconds per image) and writes JSON. With ``--steps-curve``
it instead measures quality against the number of sampler steps for the esdiff method.

    python benchmarks/inpaint_quality.py --limit 20 --out benchmarks/results/inpaint_quality.json
    python benchmarks/inpaint_quality.py --limit 10 --steps-curve 25,50,100,200 --masks random:0.8

On a GPU, several workers share one job folder (``--shard 0/3`` ... ``--shard 2/3``, each with the same
``--work``); a last run without ``--shard`` finds every job done and prints the whole table. The seconds of
a job are what it took under the load of its time.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from esdiff.benchmarks import load_benchmark, parse_masks
from esdiff.evaluation import EvalOptions, Job, markdown_table, run_job, summarize, versions


def shard(text: str) -> tuple[int, int]:
    """``K/N`` with ``0 <= K < N``, checked before any image is read."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be K/N (got {text!r})") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"K/N needs 0 <= K < N (got {text!r})")
    return k, n


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=None, help="data root (default: ../shared/data)")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument(
        "--masks",
        default="random:0.9;random:0.8;random:0.7;text1;text2;block:4:0.8;caption;strokes:thick;"
        "box:120,120,16,16;box:112,112,32,32;box:96,96,64,64",
        help="mask specs (; between them if one is a box) or a protocol: table1, table2, users",
    )
    parser.add_argument("--methods", default="esdiff,aloha,biharmonic")
    parser.add_argument("--model", type=Path, default=None, help="checkpoint (default: built-in)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--shard",
        type=shard,
        default=(0, 1),
        help="K/N: run only jobs K, K+N, ... (parallel workers on one --work)",
    )
    parser.add_argument("--steps-curve", default="", help="comma-separated step counts for esdiff")
    parser.add_argument(
        "--work", type=Path, default=Path("runs/inpaint_quality"), help="resumable job folder"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/inpaint_quality.json"))
    args = parser.parse_args()

    images = load_benchmark("lsun100", args.data, args.limit)
    specs = parse_masks(args.masks)
    if args.steps_curve:
        labels = [f"esdiff-{n}" for n in args.steps_curve.split(",")]
        settings = {label: {"model": args.model, "steps": int(label.split("-")[1])} for label in labels}
        jobs = [Job(im, s, "esdiff", label=label) for im in images for s in specs for label in labels]
    else:
        labels = args.methods.split(",")
        settings = {"esdiff": {"model": args.model}}
        jobs = [Job(im, s, m) for im in images for s in specs for m in labels]
    k, n = args.shard
    if n > 1:
        jobs = jobs[k::n]
    options = EvalOptions(device=args.device, settings=settings)
    records = []
    for i, job in enumerate(jobs, 1):
        records.append(run_job(job, args.work, options, None))
        r = records[-1]
        print(
            f"[{i}/{len(jobs)}] {job.column:>12} {job.mask:>12} {job.image.name[:12]}  "
            f"{r['psnr']:.2f} dB  {r['ssim']:.4f}  {r['seconds']:.1f} s",
            flush=True,
        )
    table = summarize(records, specs, labels)
    print()
    print(markdown_table(table, labels))
    print("seconds per image:")
    for spec, row in table.items():
        print(f"  {spec}: " + ", ".join(f"{m} {row[m]['seconds']:.1f}" for m in labels if m in row))
    print("LMaFit per patch (iterations mean/max, rank mean/max, seconds per image):")
    for spec, row in table.items():
        cells = [
            f"{m} {f['iterations_mean']:.0f}/{f['iterations_max']} it, "
            f"r {f['rank_mean']:.0f}/{f['rank_max']}, {f['seconds']:.1f} s"
            for m in labels
            if m in row and (f := row[m].get("lmafit"))
        ]
        if cells:
            print(f"  {spec}: " + "; ".join(cells))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "images": len(images),
        "machine": platform.machine(),
        "device": args.device,
        "versions": versions(),
    }
    args.out.write_text(json.dumps({"meta": meta, "table": table, "records": records}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
