"""Two `esdiff inpaint` jobs at once against one alone (issue: parallel runs slowed each other 13-17x).

Each variant inpaints a 128x128 photo (``--mask random:0.8 --set steps=10``, CPU) alone, then twice at the
same moment, then alone again; the reference is the mean of the two alone runs, measured in the same call
so that the machine's load is the same. Prints a table (wall and CPU seconds of every run, the ratio of
the slower simultaneous run to the reference) and writes JSON.

    python benchmarks/parallel_jobs.py
    python benchmarks/parallel_jobs.py --variants default,all-cores,all-cores-spin

Variants: ``default`` is `esdiff inpaint` as shipped (idle threads sleep; half the usable cores);
``all-cores`` adds ``--threads <usable cores>``; ``all-cores-spin`` also skips the entry point's wait
policy, so OpenMP spins as it did before the thread settings (the behaviour the issue measured).
``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``OMP_WAIT_POLICY`` are removed from the jobs' environment,
so each job gets what a user who sets nothing gets. Each job starts in its own session, as jobs started
from two terminals do: Linux's scheduler (autogroup) shares the CPU between sessions first, so two jobs
of one session would split one session's share whatever their threads do. Other jobs on the machine
disturb the figures: the load average before and after is recorded; run it when the machine is quiet.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ENTRY = "from esdiff_cli.app import main; main()"
SPIN_ENTRY = "from esdiff_cli.app import app; app()"  # no wait policy: OpenMP's default spinning
VARIANTS = ("default", "all-cores", "all-cores-spin")


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def autogroup() -> str:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip()
    except OSError:
        return "unknown"


def job_command(variant: str, image: Path, out: Path, steps: int) -> list[str]:
    entry = SPIN_ENTRY if variant == "all-cores-spin" else ENTRY
    args = ["inpaint", str(image), "--mask", "random:0.8", "--set", f"steps={steps}", "--device", "cpu"]
    args += ["-o", str(out), "--overwrite", "--quiet"]
    if variant != "default":
        args += ["--threads", str(usable_cpus())]
    return [sys.executable, "-c", entry, *args]


def job_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY"):
        env.pop(name, None)
    return env


def run_at_once(commands: list[list[str]]) -> list[dict[str, float]]:
    """Start every command at the same moment; wall and CPU (user + system) seconds of each."""
    began = time.perf_counter()
    procs = [
        subprocess.Popen(
            c, env=job_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        for c in commands
    ]
    results: dict[int, dict[str, float]] = {}
    while len(results) < len(procs):
        pid, status, usage = os.wait4(-1, 0)
        for i, proc in enumerate(procs):
            if proc.pid == pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                if proc.returncode != 0:
                    assert proc.stderr is not None
                    sys.exit(f"job failed ({proc.returncode}): {proc.stderr.read().decode().strip()}")
                wall = time.perf_counter() - began
                results[i] = {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2)}
    return [results[i] for i in range(len(procs))]


def measure(variant: str, folder: Path, image: Path, steps: int) -> dict[str, object]:
    def command(name: str) -> list[str]:
        return job_command(variant, image, folder / f"{variant}_{name}.png", steps)

    alone_before = run_at_once([command("alone")])[0]
    pair = run_at_once([command("a"), command("b")])
    alone_after = run_at_once([command("alone")])[0]
    alone = (alone_before["wall_s"] + alone_after["wall_s"]) / 2
    return {
        "variant": variant,
        "alone": [alone_before, alone_after],
        "together": pair,
        "alone_mean_s": round(alone, 2),
        "ratio": round(max(p["wall_s"] for p in pair) / alone, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", default="default,all-cores-spin", help=f"from {', '.join(VARIANTS)}")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/parallel_jobs.json"))
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        parser.error(f"unknown variant {', '.join(unknown) or '(none)'} (choose from {', '.join(VARIANTS)})")

    from skimage import data
    from skimage.transform import resize

    from esdiff.io import write_image

    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        image = folder / "photo.png"
        write_image(image, resize(data.astronaut(), (128, 128), anti_aliasing=True).astype(np.float32))
        for variant in variants:
            rows.append(measure(variant, folder, image, args.steps))
            r = rows[-1]
            print(f"{variant}: alone {r['alone_mean_s']} s, two at once {r['ratio']}x", flush=True)
    load_after = os.getloadavg()

    print()
    print(f"usable cores {usable_cpus()}; load average (1/5/15 min) before {load_before}, after {load_after}")
    print("| variant | alone (s, before / after) | two at once (s, each) | CPU s alone / at once | ratio |")
    print("|---|---|---|---|---|")
    for r in rows:
        alone, pair = r["alone"], r["together"]
        print(
            f"| {r['variant']} | {alone[0]['wall_s']} / {alone[1]['wall_s']} | "  # type: ignore[index]
            f"{pair[0]['wall_s']}, {pair[1]['wall_s']} | "  # type: ignore[index]
            f"{alone[0]['cpu_s']} / {pair[0]['cpu_s']}, {pair[1]['cpu_s']} | {r['ratio']}x |"  # type: ignore[index]
        )
    meta = {
        "usable_cpus": usable_cpus(),
        "autogroup": autogroup(),
        "load_before": load_before,
        "load_after": load_after,
        "machine": platform.machine(),
        "steps": args.steps,
        "image": "astronaut 128x128, random:0.8",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
