"""Speed of `esdiff inpaint` on the photos users bring, the current code beside a pinned earlier release.

Each case (a scikit-image photo resized, a mask spec) runs as its own ``esdiff inpaint ... --threads N
--gt TRUTH --json`` process, once with this checkout's code and once with the baseline revision's, on
the same input file; the process's wall and CPU seconds and peak resident memory come from ``os.wait4``
(that child and its own children only), the PSNR of the whole image and of its holes from the JSON.
FSR (OpenCV's ``xphoto.inpaint``, FSR_FAST) and biharmonic (scikit-image) run on the same input in a
process of their own, timed around the call alone. Prints the table with the ratios old / new and saves
it as ``docs/results/speed.json`` (``results_table.save_table``).

The baseline is a ``git worktree`` of ``--baseline-rev`` under ``runs/speed/baseline-REV`` (git-ignored)
with its own venv (``python -m venv``, ``pip install torch==2.13.0``, ``pip install -e .``), made on the
first run and reused afterwards. Nothing else is kept between runs: every case of either code runs
afresh.

With ``--repeat N`` each code runs N times per case, in turn (old new, new old, ...), and the table takes
the median seconds: on a shared machine a change in load then hits both codes alike.

    .venv/bin/python benchmarks/speed.py --cases 256-random,256-caption --repeat 2 --load "idle"

``--baseline-cases`` picks the cases the old code runs as well (default all but ``2160-caption``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_table import ROOT, save_table  # noqa: E402

BASELINE_REV = "4706bce"
"""The release the current code is measured against (the commit before coarse to fine)."""
TORCH = "torch==2.13.0"


@dataclass(frozen=True)
class Case:
    photo: str
    """A scikit-image ``data`` photo."""
    width: int
    height: int
    mask: str
    """An `esdiff inpaint --mask` spec (drawn with mask seed 0)."""


CASES: dict[str, Case] = {
    "256-random": Case("astronaut", 256, 256, "random:0.8"),
    "256-caption": Case("astronaut", 256, 256, "caption"),
    "1080-caption": Case("coffee", 1920, 1080, "caption"),
    "1080-strokes": Case("chelsea", 1920, 1080, "strokes:thick"),
    "2160-caption": Case("astronaut", 3840, 2160, "caption"),
}
SMALL = ("256-random", "256-caption")
BASELINE_CASES = ("256-random", "256-caption", "1080-caption", "1080-strokes")
"""The cases the old code runs by default: at 3840x2160 it would take over half an hour."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)}")
    p.add_argument("--baseline-rev", default=BASELINE_REV, help="git revision of the old code")
    p.add_argument("--skip-baseline", action="store_true", help="run the current code only")
    p.add_argument(
        "--baseline-cases",
        default=",".join(BASELINE_CASES),
        help="comma-separated cases the old code runs too (the others show '-' in its columns)",
    )
    p.add_argument("--skip-classical", action="store_true", help="no FSR and biharmonic runs")
    p.add_argument("--threads", type=int, default=2, help="esdiff inpaint --threads")
    p.add_argument(
        "--repeat", type=int, default=1, help="runs of each code per case, in turn (old new, new old, ...)"
    )
    p.add_argument("--load", default="idle", help="what else the machine was doing (stamped on the table)")
    p.add_argument("--no-save", action="store_true", help="print only; docs/results/speed.json unchanged")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "speed", help="inputs, outputs, baseline")
    p.add_argument("--classical", help=argparse.SUPPRESS)  # internal: METHOD,INPUT,MASK in this process
    return p.parse_args(argv)


def baseline_esdiff(work: Path, rev: str) -> Path:
    """The ``esdiff`` executable of ``rev``: its worktree and venv under ``work``, made if missing."""
    tree = work / f"baseline-{rev}"
    if not (tree / ".git").exists():
        work.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=ROOT, check=True)
    venv = tree / ".venv"
    exe = venv / "bin" / "esdiff"
    if not exe.exists():
        print(f"setting up {venv} (once)", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, TORCH], check=True)
        subprocess.run([*pip, "-e", str(tree)], check=True)
    return exe


def make_input(work: Path, name: str, case: Case) -> Path:
    """The case's photo, resized with anti-aliasing, as an 8-bit PNG (the input and the ground truth)."""
    import numpy as np
    from skimage import data, transform

    from esdiff.io import write_image

    path = work / "inputs" / f"{name}.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        photo = getattr(data, case.photo)() / 255.0
        image = transform.resize(photo, (case.height, case.width), anti_aliasing=True)
        write_image(path, np.clip(image, 0, 1))
    return path


def timed(cmd: list[str], env: dict[str, str]) -> tuple[int, str, str, dict[str, float]]:
    """Run ``cmd``; its exit status, stdout, stderr, and wall s, CPU s and peak MiB of it and its children."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        figures = {
            "seconds": wall,
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_mib": usage.ru_maxrss / 1024,
        }
        return proc.returncode, out.read().decode(), err.read().decode(), figures


def run_esdiff(exe: Path, image: Path, case: Case, threads: int, out_dir: Path) -> dict[str, float | str]:
    """One `esdiff inpaint` process on ``image`` (its own ground truth)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    out = out_dir / f"{image.stem}_{exe.parent.parent.parent.name}.png"
    cmd = [str(exe), "inpaint", str(image), "--mask", case.mask, "-o", str(out), "--overwrite"]
    cmd += ["--threads", str(threads), "--gt", str(image), "--json", "--quiet"]
    code, stdout, stderr, figures = timed(cmd, env)
    if code:
        lines = stderr.strip().splitlines() or [f"exit {code}"]
        return {"error": lines[-1]}
    metrics = json.loads(stdout)["metrics"]
    return {**figures, "psnr": metrics["psnr"], "psnr_missing": metrics["psnr_missing"]}


def median_run(runs: list[dict]) -> dict | None:
    """The median seconds and CPU seconds of ``runs``, their largest peak, and the first run's PSNR
    (the same in every run); the first error if any failed; None if there were none."""
    import statistics

    if not runs:
        return None
    failed = [r for r in runs if "error" in r]
    if failed:
        return failed[0]
    median = {k: statistics.median(r[k] for r in runs) for k in ("seconds", "cpu_seconds")}
    return {**runs[0], **median, "peak_mib": max(r["peak_mib"] for r in runs)}


def run_classical(method: str, image: Path, case: Case) -> dict[str, float | str]:
    """FSR or biharmonic in a process of its own, timed around the call (imports and reading excluded)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--classical", json.dumps([method, str(image), case.mask])]
    code, stdout, stderr, figures = timed(cmd, env)
    if code:
        lines = stderr.strip().splitlines() or [f"exit {code}"]
        return {"error": lines[-1]}
    return {**json.loads(stdout.strip().splitlines()[-1]), "peak_mib": figures["peak_mib"]}


def classical(method: str, path: str, mask: str) -> dict[str, float]:
    """In this process: read, mask, inpaint with ``method``; seconds of the call and the PSNRs."""
    import numpy as np

    from esdiff.io import read_image
    from esdiff.masks import resolve_mask
    from esdiff.metrics import evaluate

    truth = read_image(path).pixels.astype(np.float64)
    known = resolve_mask(mask, *truth.shape[:2], seed=0)
    start = time.perf_counter()
    if method == "fsr":
        import cv2

        src = np.round(truth * known[..., None] * 255).astype(np.uint8)
        dst = np.zeros_like(src)
        # xphoto's mask marks the valid pixels (non-zero), not the holes
        cv2.xphoto.inpaint(src, known.astype(np.uint8) * 255, dst, cv2.xphoto.INPAINT_FSR_FAST)
        result = dst.astype(np.float64) / 255
    else:
        from skimage.restoration import inpaint_biharmonic

        result = inpaint_biharmonic(truth * known[..., None], ~known, channel_axis=-1)
    seconds = time.perf_counter() - start
    result = np.where(known[..., None], truth, np.clip(result, 0, 1))
    metrics = evaluate(result, truth, known)
    return {"seconds": seconds, "psnr": metrics["psnr"], "psnr_missing": metrics["psnr_missing"]}


COLUMNS = [
    "case",
    "size",
    "mask",
    "old s",
    "new s",
    "old / new",
    "old CPU s",
    "new CPU s",
    "old MiB",
    "new MiB",
    "old PSNR",
    "new PSNR",
    "old hole PSNR",
    "new hole PSNR",
    "FSR s",
    "FSR PSNR",
    "biharmonic s",
    "biharmonic PSNR",
]


def _get(result: dict | None, key: str) -> float | None:
    return None if result is None or "error" in result else result[key]


def row(name: str, case: Case, old: dict | None, new: dict, fsr: dict | None, bih: dict | None) -> list:
    old_s, new_s = _get(old, "seconds"), _get(new, "seconds")
    ratio = None if old_s is None or new_s is None else old_s / new_s
    return [
        name,
        f"{case.width}x{case.height}",
        case.mask,
        old_s,
        new_s,
        ratio,
        _get(old, "cpu_seconds"),
        _get(new, "cpu_seconds"),
        _get(old, "peak_mib"),
        _get(new, "peak_mib"),
        _get(old, "psnr"),
        _get(new, "psnr"),
        _get(old, "psnr_missing"),
        _get(new, "psnr_missing"),
        _get(fsr, "seconds"),
        _get(fsr, "psnr"),
        _get(bih, "seconds"),
        _get(bih, "psnr"),
    ]


def render(rows: list[list]) -> str:
    def cell(v: object) -> str:
        if v is None:
            return "-"
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    table = [COLUMNS, *([cell(v) for v in r] for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in table]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.classical:
        print(json.dumps(classical(*json.loads(args.classical))))
        return
    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    old_cases = {n.strip() for n in args.baseline_cases.split(",") if n.strip()}
    unknown = [n for n in [*names, *sorted(old_cases)] if n not in CASES]
    if unknown or not names:
        sys.exit(f"speed.py: unknown case {', '.join(unknown) or '(none)'}; choose from {', '.join(CASES)}")
    new_exe = Path(sys.executable).with_name("esdiff")
    old_exe = None if args.skip_baseline else baseline_esdiff(args.work, args.baseline_rev)
    out_dir = args.work / "outputs"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, failures = [], []
    for name in names:
        case = CASES[name]
        image = make_input(args.work, name, case)
        results: dict[str, dict | None] = {}
        runs: dict[str, list[dict]] = {"old": [], "new": []}
        for r in range(args.repeat):  # in turn, so a change in the machine's load hits both codes
            order = [("old", old_exe), ("new", new_exe)]
            for label, exe in order if r % 2 == 0 else order[::-1]:
                if exe is not None and (label == "new" or name in old_cases):
                    runs[label].append(run_esdiff(exe, image, case, args.threads, out_dir))
        for label in ("old", "new"):
            results[label] = median_run(runs[label])
        for method in ("fsr", "biharmonic"):
            results[method] = None if args.skip_classical else run_classical(method, image, case)
        for label, result in results.items():
            if result is not None and "error" in result:
                failures.append(f"{name} {label}: {result['error']}")
        rows.append(row(name, case, results["old"], results["new"], results["fsr"], results["biharmonic"]))
        print(render(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(render(rows))
    for failure in failures:
        print(f"failed: {failure}", file=sys.stderr)
    if not args.no_save:
        baseline = "none" if args.skip_baseline else args.baseline_rev
        notes = (
            f"old: esdiff at {baseline} (cases {', '.join(sorted(old_cases & set(names))) or 'none'}); "
            "new: this commit; each case one `esdiff inpaint --threads "
            f"{args.threads} --gt --json` process per run, {args.repeat} run(s) of each code in turn, the "
            "median seconds and CPU seconds and the largest peak memory of the whole process (model loading "
            "included); FSR (OpenCV FSR_FAST) and biharmonic timed around the call, "
            "one thread"
        )
        title = "Speed: esdiff inpaint, the current code against an earlier release, and classical tools"
        path = save_table("speed", title, COLUMNS, rows, load=args.load, notes=notes)
        print(f"saved {path.relative_to(ROOT)}", file=sys.stderr)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
