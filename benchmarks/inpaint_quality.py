"""Built-in ESDiff model against the classical tools (OpenCV's FSR, Telea, Navier-Stokes, biharmonic,
ALOHA) on lsun100 or cbsd68.

Prints a table (mask x method: mean PSNR/SSIM), then per mask esdiff's PSNR minus the best classical
method's and the number of photos on which esdiff beats every classical method, then the missing
region's PSNR and texture ratio per method (``esdiff.metrics.texture``: 1 is the photo's own fine
detail, below 1 a blur), seconds per image, and writes JSON. It saves the comparison with
``results_table.save_table`` as ``quality_<benchmark>`` (``--table``; ``--no-save`` for none; run
``benchmarks/render_results.py`` after it). With ``--steps-curve`` it instead measures quality against the
number of sampler steps for the esdiff method.

    python benchmarks/inpaint_quality.py --limit 20 --masks users --load "idle"
    python benchmarks/inpaint_quality.py --benchmark cbsd68 --limit 20 --masks users
    python benchmarks/inpaint_quality.py --limit 10 --steps-curve 25,50,100,200 --masks random:0.8

On a GPU, several workers share one job folder (``--shard 0/3`` ... ``--shard 2/3``, each with the same
``--work``); a last run without ``--shard`` finds every job done and prints the whole table. The seconds of
a job are what it took under the load of its time.
"""

from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from results_table import save_table

from esdiff.benchmarks import BENCHMARKS, MASK_PROTOCOLS, load_benchmark, parse_masks
from esdiff.evaluation import (
    HOLE_TITLE,
    EvalOptions,
    Job,
    hole_cells,
    markdown_table,
    run_job,
    summarize,
    versions,
)
from esdiff.methods import CLASSICAL


def shard(text: str) -> tuple[int, int]:
    """``K/N`` with ``0 <= K < N``, checked before any image is read."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be K/N (got {text!r})") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"K/N needs 0 <= K < N (got {text!r})")
    return k, n


def versus_classical(
    records: Sequence[dict[str, Any]], specs: Sequence[str], labels: Sequence[str], learned: str = "esdiff"
) -> dict[str, dict[str, Any]]:
    """Per mask: the best classical method by mean PSNR, ``learned``'s mean PSNR minus its, and on how
    many photos ``learned`` beats every classical method that ran (whole-image PSNR)."""
    classical = [m for m in labels if m in CLASSICAL]
    out: dict[str, dict[str, Any]] = {}
    if learned not in labels or not classical:
        return out
    for spec in specs:
        psnr: dict[str, dict[str, float]] = {}
        for r in records:
            if r["mask"] == spec:
                psnr.setdefault(r["method"], {})[r["image"]] = r["psnr"]
        if learned not in psnr or not any(m in psnr for m in classical):
            continue
        ran = [m for m in classical if m in psnr]
        means = {m: sum(psnr[m].values()) / len(psnr[m]) for m in [learned, *ran]}
        best = max(ran, key=lambda m: means[m])
        photos = [im for im in psnr[learned] if all(im in psnr[m] for m in ran)]
        wins = sum(all(psnr[learned][im] > psnr[m][im] for m in ran) for im in photos)
        out[spec] = {"best": best, "delta": means[learned] - means[best], "wins": wins, "photos": len(photos)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=None, help="data root (default: ../shared/data)")
    parser.add_argument("--benchmark", default="lsun100", choices=sorted(BENCHMARKS))
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument(
        "--masks",
        default=";".join(("random:0.9", "random:0.7", *MASK_PROTOCOLS["users"])),
        help="mask specs (; between them if one is a box) or a protocol: table1, table2, users",
    )
    parser.add_argument("--methods", default="esdiff,fsr,telea,ns,biharmonic,aloha")
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
    parser.add_argument("--table", default=None, help="name of the saved table (default quality_<benchmark>)")
    parser.add_argument("--no-save", action="store_true", help="save no table under docs/results/")
    parser.add_argument("--load", default="idle", help="what else the machine was doing, for the table")
    args = parser.parse_args()

    images = load_benchmark(args.benchmark, args.data, args.limit)
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
    versus = versus_classical(records, specs, labels)
    if versus:
        print("esdiff against the best classical method (whole-image PSNR):")
        for spec, v in versus.items():
            wins = f"esdiff wins {v['wins']} of {v['photos']} photos"
            print(f"  {spec}: {v['delta']:+.2f} dB vs {v['best']}, {wins}")
    print()
    print(HOLE_TITLE)
    print(markdown_table(table, labels, hole_cells))
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
    result = {"meta": meta, "table": table, "versus_classical": versus, "records": records}
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    if not args.no_save and not args.steps_curve and n == 1:
        name = args.table or f"quality_{args.benchmark}"
        saved = save_comparison(name, args, table, versus, specs, labels, len(images))
        print(f"wrote {saved} (now run benchmarks/render_results.py)")


def save_comparison(
    name: str,
    args: argparse.Namespace,
    table: dict[str, dict[str, dict[str, Any]]],
    versus: dict[str, dict[str, Any]],
    specs: Sequence[str],
    labels: Sequence[str],
    count: int,
) -> Path:
    """The table for ``docs/results.md``: per mask, each method's PSNR, esdiff minus the best classical
    method and esdiff's wins, then each method's hole PSNR / texture ratio."""
    columns = ["mask", *(f"{m} PSNR" for m in labels)]
    if versus:
        columns += ["esdiff - best classical", "photos esdiff wins"]
    columns += [f"{m} hole PSNR / texture" for m in labels]
    rows = []
    for spec in specs:
        row = table.get(spec, {})
        cells: list[Any] = [spec, *(row[m]["psnr"] if m in row else None for m in labels)]
        if versus:
            v = versus.get(spec)
            cells += (
                [None, None]
                if v is None
                else [f"{v['delta']:+.2f} ({v['best']})", f"{v['wins']} / {v['photos']}"]
            )
        cells += hole_cells(row, labels)
        rows.append(cells)
    title = (
        f"Inpainting quality on {args.benchmark} ({count} photos, 256 x 256): esdiff and the classical tools"
    )
    notes = (
        "PSNR in dB, mean over the photos; hole: the missing pixels only; texture: the fill's fine detail "
        "relative to the photo's (`esdiff.metrics.texture`, 1 = the photo's, below 1 a blur; a dash where no "
        "pixel lies 3 px inside a hole)."
    )
    return save_table(name, title, columns, rows, model=args.model, load=args.load, notes=notes)


if __name__ == "__main__":
    main()
