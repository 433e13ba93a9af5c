"""What a prior trained on the user's own kind of photos buys: built-in, fine-tuned and from-scratch priors
against the same pipeline without the network and the best classical method, on photos of one kind.

From a set of photos (sorted by name): the first ``--train`` are the training photos, the next ``--test``
the test photos, and ``--val`` (indices) the validation photos of the training runs, so no photo is both
trained on and tested on. Two priors are trained on the training photos with `esdiff train` (one
thread each, one after the other): fine-tuned from the built-in model (`--init builtin`, its default
budget unless ``--finetune-steps``) and from scratch with the default recipe for as many steps, which at
the same network and batch is the same wall time (both times are printed). ``--finetuned`` and
``--scratch`` take models trained before instead. Then on the test photos (256 x 256 centre crops),
for each mask: the default pipeline (``esdiff``) with each prior, the same pipeline without the network
(the ``no-prior`` step list), and the classical methods among ``CLASSICAL`` that this esdiff has, the
best of them per mask in the table; and each prior's one-step denoising PSNR at sigma 10 and 25.
Results go to a resumable work folder, the table to stdout and ``docs/results/domain_<set>.json``.

    python benchmarks/domain.py --set cbsd68                       # train 10, test 20 (hours on a CPU)
    python benchmarks/domain.py --set lsun100 --train-from ../shared/data/lsun_bedroom/train10 --val 90:94
    python benchmarks/domain.py --set cbsd68 --test 5 --masks random:0.8 --finetuned RUN/model.safetensors
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from esdiff.benchmarks import benchmark_files, data_root, mask_seed
from esdiff.config import DEFAULT_SAMPLER
from esdiff.io import center_crop_resize, list_images, read_image
from esdiff.masks import check_mask_spec, generate_mask
from esdiff.metrics import psnr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_table import save_table  # noqa: E402

CLASSICAL = ("fsr", "telea", "ns", "biharmonic")
"""The classical methods compared, those of them that ``esdiff.methods`` has at run time."""
PRIORS = ("builtin", "finetuned", "scratch")
SIGMAS = (10, 25)
DEFAULT_MASKS = "random:0.8,caption,scratches:thick"


def masks(text: str) -> list[str]:
    """The mask specs of a comma-separated list, each checked."""
    specs = [s.strip() for s in text.split(",") if s.strip()]
    for spec in specs:
        check_mask_spec(spec)
    return specs


def index_range(text: str) -> tuple[int, int]:
    start, end = (int(x) for x in text.split(":"))
    return start, end


def link_folder(folder: Path, files: list[Path]) -> Path:
    """A folder of symbolic links to ``files`` (what `esdiff train` reads), made afresh."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for f in files:
        (folder / f.name).symlink_to(f.resolve())
    return folder


def train_prior(
    name: str, photos: Path, val: Path, out: Path, extra: list[str], log: Path
) -> tuple[Path, float, int]:
    """Run `esdiff train` (one thread) unless ``out`` already holds its finished model; return the
    checkpoint, the seconds the steps took (from its metrics) and the step reached."""
    checkpoint = out / "checkpoint.safetensors"
    if not (out / "done").exists():
        resume = ["--resume"] if checkpoint.exists() else []
        command = [
            sys.executable,
            "-m",
            "esdiff_cli",
            "train",
            str(photos),
            "-o",
            str(out),
            "--val",
            str(val),
        ]
        command += ["--threads", "1", "-q", *resume, *extra]
        print(f"training {name}: {shlex.join(command)}", flush=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        tick = time.perf_counter()
        with open(log, "a") as stream:
            subprocess.run(command, check=True, env=env, stdout=stream, stderr=stream)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        spent = {"wall_seconds": time.perf_counter() - tick, "cpu_seconds": cpu}
        (out / "done").write_text(json.dumps(spent))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    seconds = sum(r.get("seconds", 0.0) for r in records)
    return checkpoint, seconds, max(r["step"] for r in records)


def trained_steps(checkpoint: Path) -> int:
    """The step a model file was saved at."""
    from esdiff.checkpoints import read_info

    return read_info(checkpoint).step


def classical_methods() -> list[str]:
    from esdiff.methods import METHODS

    return [m for m in CLASSICAL if m in METHODS]


def inpaint(method: str, model: Path | None, image: np.ndarray, known: np.ndarray) -> np.ndarray:
    from esdiff.methods import MethodOptions, run_method

    if method == "no-prior":
        settings: dict[str, Any] = {"config": replace(DEFAULT_SAMPLER, step_list="no-prior")}
        return run_method("esdiff", image, known, MethodOptions(settings=settings))
    if method in PRIORS:
        return run_method("esdiff", image, known, MethodOptions(settings={"model": model}))
    return run_method(method, image, known, MethodOptions())


def noisy_copy(image: np.ndarray, sigma: int, name: str) -> np.ndarray:
    """The image plus seeded N(0, (sigma/255)^2) noise (not clipped)."""
    rng = np.random.default_rng(mask_seed(name, f"noise:{sigma}"))
    return image + sigma / 255 * rng.standard_normal(image.shape)


class Records:
    """``records.jsonl`` in the work folder: one figure per (what, method, photo), kept across runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.values: dict[tuple[str, str, str], dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                r = json.loads(line)
                self.values[(r["what"], r["method"], r["image"])] = r

    def get(self, what: str, method: str, image: str) -> dict[str, Any] | None:
        return self.values.get((what, method, image))

    def add(self, what: str, method: str, image: str, value: float, seconds: float) -> None:
        r = {"what": what, "method": method, "image": image, "psnr": value, "seconds": seconds}
        self.values[(what, method, image)] = r
        with open(self.path, "a") as f:
            f.write(json.dumps(r) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=None, help="data root (default: ../shared/data)")
    parser.add_argument("--set", default="cbsd68", help="a benchmark set (cbsd68, lsun100) or folder:PATH")
    parser.add_argument("--train", type=int, default=10, help="training photos: the first N of the set")
    parser.add_argument("--train-from", type=Path, default=None, help="a folder of training photos instead")
    parser.add_argument(
        "--test", type=int, default=20, help="test photos: the next N (all N with --train-from)"
    )
    parser.add_argument("--val", type=index_range, default=(30, 34), help="START:END validation photos")
    parser.add_argument("--masks", default=DEFAULT_MASKS, help=f"comma-separated (default {DEFAULT_MASKS})")
    parser.add_argument("--finetune-steps", type=int, default=None, help="default: --init's budget")
    parser.add_argument("--scratch-steps", type=int, default=None, help="default: the fine-tune's steps")
    parser.add_argument("--priors", default=",".join(PRIORS), help="which of them to train and compare")
    parser.add_argument("--finetuned", type=Path, default=None, help="a fine-tuned model: skip its training")
    parser.add_argument("--scratch", type=Path, default=None, help="a from-scratch model: skip its training")
    parser.add_argument("--work", type=Path, default=None, help="resumable folder (default runs/domain_SET)")
    parser.add_argument("--load", default="idle", help="what else the machine was doing (for the table)")
    parser.add_argument("--no-save", action="store_true", help="print only; write no docs/results table")
    parser.add_argument("--notes", default="", help="added to the saved table's notes")
    parser.add_argument(
        "--methods",
        default=None,
        help="run only these of the priors, no-prior and the classical methods (the table shows all done)",
    )
    parser.add_argument(
        "--table-only",
        action="store_true",
        help="run nothing: the table from the work folder's records (each row over the photos done)",
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    label = args.set.removeprefix("folder:").rstrip("/").split("/")[-1]
    work = args.work or Path("runs") / f"domain_{label}"
    work.mkdir(parents=True, exist_ok=True)
    files = benchmark_files(args.set, args.data)
    train_files = list_images(args.train_from) if args.train_from else files[: args.train]
    first_test = 0 if args.train_from else args.train
    test_files = files[first_test : first_test + args.test]
    val_files = files[args.val[0] : args.val[1]]
    used = {f.resolve() for f in test_files}
    if used & {f.resolve() for f in train_files} or used & {f.resolve() for f in val_files}:
        parser.error("the test photos overlap the training or validation photos")
    specs = masks(args.masks)
    print(
        f"data {data_root(args.data)}: train {len(train_files)}, test {len(test_files)}, val {len(val_files)}"
    )

    models: dict[str, Path | None] = {"builtin": None}
    seconds: dict[str, float] = {}
    priors = [p for p in PRIORS if p in args.priors.split(",")]
    if "finetuned" not in priors:
        args.finetuned = Path("-")
    if "scratch" not in priors:
        args.scratch = Path("-")
    if args.table_only:  # the models' files are not read
        args.finetuned = args.finetuned or Path("-")
        args.scratch = args.scratch or Path("-")
    if args.finetuned is None or args.scratch is None:
        photos = link_folder(work / "train_photos", train_files)
        val = link_folder(work / "val_photos", val_files)
    if args.finetuned is None:
        extra = ["--init", "builtin"] + (["--steps", str(args.finetune_steps)] if args.finetune_steps else [])
        models["finetuned"], seconds["finetuned"], steps = train_prior(
            "finetuned", photos, val, work / "finetuned", extra, work / "train.log"
        )
    elif "finetuned" in priors:
        models["finetuned"], steps = args.finetuned, trained_steps(args.finetuned)
    else:
        steps = args.finetune_steps or 0
    if args.scratch is None:
        extra = ["--steps", str(args.scratch_steps or steps)]
        models["scratch"], seconds["scratch"], _ = train_prior(
            "scratch", photos, val, work / "scratch", extra, work / "train.log"
        )
    elif "scratch" in priors:
        models["scratch"] = args.scratch
    for name, secs in seconds.items():
        spent = json.loads((work / name / "done").read_text() or "{}")
        cpu = f", {spent['cpu_seconds'] / 60:.1f} CPU min in all" if "cpu_seconds" in spent else ""
        print(f"{name}: {secs / 60:.1f} min of training steps{cpu} ({models[name]})")

    records = Records(work / "records.jsonl")
    test = [(f.stem, center_crop_resize(read_image(f).pixels, 256)) for f in test_files]
    methods = [*priors, "no-prior", *classical_methods()]
    chosen = args.methods.split(",") if args.methods else methods
    for spec in [] if args.table_only else specs:
        for method in [m for m in methods if m in chosen]:
            for name, image in test:
                if records.get(spec, method, name):
                    continue
                known = generate_mask(spec, image.shape[0], image.shape[1], seed=mask_seed(name, spec))
                tick = time.perf_counter()
                out = inpaint(method, models.get(method), image, known)
                records.add(spec, method, name, psnr(out, image), time.perf_counter() - tick)
                r = records.get(spec, method, name)
                assert r is not None
                print(
                    f"{spec:>14} {method:>10} {name:>8}: {r['psnr']:.2f} dB {r['seconds']:.0f} s", flush=True
                )
    from esdiff.prior import denoise

    for sigma in [] if args.table_only else SIGMAS:
        for method in priors:
            for name, image in test:
                if records.get(f"denoise:{sigma}", method, name):
                    continue
                tick = time.perf_counter()
                out = np.clip(
                    denoise(noisy_copy(image, sigma, name), sigma / 255, model=models[method]), 0, 1
                )
                records.add(f"denoise:{sigma}", method, name, psnr(out, image), time.perf_counter() - tick)

    columns, rows = table(records, specs, methods, [n for n, _ in test])
    print()
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(f"{c:.2f}" if isinstance(c, float) else str(c or "") for c in row) + " |")
    if not args.no_save:
        notes = (
            f"Training photos: {', '.join(f.name for f in train_files)}; test photos: the next "
            f"{len(test_files)} of {args.set} (256 x 256 centre crops); validation photos of the runs: "
            f"{', '.join(f.name for f in val_files)}. Fine-tuned: `esdiff train --init builtin` "
            f"({steps} steps); from scratch: "
            + (
                "the default recipe for as many steps, the same wall time "
                f"({', '.join(f'{k} {v / 60:.1f} min' for k, v in seconds.items()) or 'trained before'}). "
                if "scratch" in priors
                else "not run. "
            )
            + "Denoising rows: one-step denoising PSNR at that sigma (0-255 scale). PSNR in dB, whole "
            "image; a row's means are over its photos column. " + args.notes
        )
        path = save_table(
            f"domain_{label}",
            f"Priors for one kind of photo ({label}): built-in, fine-tuned, from scratch",
            columns,
            rows,
            model="builtin; " + "; ".join(f"{k} {v}" for k, v in models.items() if k != "builtin"),
            load=args.load,
            notes=notes,
        )
        print(f"wrote {path}")


def table(
    records: Records, specs: list[str], methods: list[str], images: list[str]
) -> tuple[list[str], list[list[Any]]]:
    """Mean PSNR per row (a mask, or a denoising level) and method, the best classical method, the
    fine-tuned prior minus the built-in one, and on how many photos the fine-tuned one is ahead. A row's
    means are over its photos that every prior run on that row has done (``photos``), so a mask run on
    fewer photos than the others still has its row; another method that has not done all of them stays
    blank."""
    classical = [m for m in methods if m in CLASSICAL]
    columns = [
        "mask",
        *PRIORS,
        "no-prior",
        "best classical",
        "fine-tuned - built-in",
        "photos ahead",
        "photos",
    ]
    rows: list[list[Any]] = []
    for what in [*specs, *(f"denoise:{s}" for s in SIGMAS)]:
        run = [m for m in methods if m in PRIORS and any(records.get(what, m, name) for name in images)]
        done = [name for name in images if run and all(records.get(what, m, name) for m in run)]
        found = {m: [records.get(what, m, name) for name in done] for m in methods}
        values = {m: [r["psnr"] for r in rs if r is not None] for m, rs in found.items()}
        means = {m: float(np.mean(v)) if v and len(v) == len(done) else None for m, v in values.items()}
        best = max(classical, key=lambda m: means[m] or -1.0, default=None)
        best_mean = means[best] if best else None
        best_cell = f"{best_mean:.2f} ({best})" if best_mean is not None else ""
        tuned, builtin = values.get("finetuned", []), values.get("builtin", [])
        ahead = (
            f"{sum(t > b for t, b in zip(tuned, builtin, strict=True))} / {len(done)}"
            if tuned and len(tuned) == len(builtin)
            else ""
        )
        tuned_mean, builtin_mean = means.get("finetuned"), means.get("builtin")
        gain = tuned_mean - builtin_mean if tuned_mean is not None and builtin_mean is not None else None
        cells = [means.get(m) for m in (*PRIORS, "no-prior")]
        rows.append([what, *cells, best_cell, gain, ahead, len(done)])
    return columns, rows


if __name__ == "__main__":
    main()
