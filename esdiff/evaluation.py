"""`esdiff evaluate`: every (image, mask, method) job, resumable, with tables, CSV/JSON and figures."""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from esdiff.benchmarks import BenchImage, mask_seed
from esdiff.io import atomic_write_bytes, read_image, write_image
from esdiff.masks import generate_mask, load_mask, save_mask
from esdiff.methods import (
    SAMPLERS,
    MethodOptions,
    check_mask,
    default_model,
    finished,
    run_method,
    sampler_settings,
)
from esdiff.metrics import evaluate

METRICS = ("psnr", "ssim", "psnr_missing", "ssim_missing", "texture_missing")
"""A record's metrics (``esdiff.metrics.evaluate``); one that cannot be measured (no pixel deep enough in a
hole for the texture) is stored as None."""


def _measured(metrics: dict[str, float]) -> dict[str, float | None]:
    """``metrics`` for a JSON record: nan as None."""
    return {k: None if math.isnan(metrics[k]) else float(metrics[k]) for k in METRICS}


def _mean(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    """The mean of ``key`` over the rows that have it measured; None if none has."""
    values = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(values)) if values else None


@dataclass(frozen=True)
class Job:
    image: BenchImage
    mask: str
    method: str
    label: str = ""
    """Column name and results folder; the method's name unless a variant of it (ablations)."""
    oracle: str = ""
    """``image`` or ``patch``: the column of the sampler's best iterate by PSNR against the ground truth
    (``esdiff.oracle``), named ``<column>-oracle-<kind>``; empty: the honest final iterate."""

    @property
    def base(self) -> str:
        """The honest column whose settings the job runs with."""
        return self.label or self.method

    @property
    def column(self) -> str:
        return f"{self.base}-oracle-{self.oracle}" if self.oracle else self.base

    @property
    def key(self) -> str:
        return f"{self.image.name}__{slug(self.mask)}"


@dataclass
class EvalOptions:
    seed: int = 0
    device: str = "cpu"
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    oracle: bool = False
    """Sampler jobs also pick their best iterates against the ground truth (``Job.oracle`` columns)."""


ORACLE_KINDS = ("image", "patch")
"""The oracle columns: best iterate per image, best iterate per patch (the lab's, with its patience)."""


def slug(spec: str) -> str:
    return "".join(c if c.isalnum() or c in "._" else "-" for c in spec)


def versions() -> dict[str, str]:
    from importlib.metadata import version

    import torch

    import esdiff

    return {
        "esdiff": esdiff.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scikit-image": version("scikit-image"),
    }


def fingerprint(method: str, settings: dict[str, Any], seed: int) -> str:
    """What a stored result depends on besides image and mask: method, seed, settings, and the model
    file's content (a retrained model or other settings must not reuse old results)."""
    described = {k: str(v) for k, v in sorted(settings.items()) if v is not None}
    model = settings.get("model") or default_model(method)
    if model is not None and Path(model).is_file():
        path = Path(model).resolve()
        stat = path.stat()
        described["model"] = file_digest(str(path), stat.st_size, stat.st_mtime_ns)
    text = json.dumps([method, seed, described], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=16)
def file_digest(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file (cached per path, size and modification time)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()[:16]}"


def job_mask(out: Path, image: BenchImage, spec: str) -> np.ndarray:
    """The mask of (image, spec): generated from a fixed seed once, then read back from its file (made
    again if that one was drawn on an image of another size)."""
    path = out / "masks" / f"{image.name}__{slug(spec)}.png"
    height, width = image.pixels.shape[:2]
    if path.exists():
        known = load_mask(path)
        if known.shape == (height, width):
            return known
    path.parent.mkdir(parents=True, exist_ok=True)
    known = generate_mask(spec, height, width, seed=mask_seed(image.name, spec))
    save_mask(path, known)
    return known


def run_job(
    job: Job, out: Path, options: EvalOptions, progress: Callable[..., None] | None
) -> dict[str, Any]:
    """Inpaint one (image, mask) with one method, save the result and its metrics; skip if done with the
    same method, seed, settings and model (otherwise the job runs again and replaces the old result)."""
    settings = options.settings.get(job.base, {})
    oracle = options.oracle and job.method in SAMPLERS
    jobs = [job] if not oracle else [replace(job, oracle=kind) for kind in ("", *ORACLE_KINDS)]
    keys = {j.column: fingerprint(j.method, _oracle_settings(settings, j.oracle), options.seed) for j in jobs}
    stored = {j.column: _stored(out, j, keys[j.column]) for j in jobs}
    if all(stored.values()):
        return stored[job.column]  # type: ignore[return-value]
    from esdiff.lmafit import fit_summary, logged_fits  # torch: only when a job runs

    known = job_mask(out, job.image, job.mask)
    method_options = MethodOptions(options.seed, options.device, settings)
    start = time.perf_counter()
    with logged_fits() as fits:
        if oracle:
            results = run_with_oracle(job.method, job.image.pixels, known, method_options, progress)
        else:
            result = run_method(job.method, job.image.pixels, known, method_options, progress)
            results = {"": (result, {})}
    seconds = time.perf_counter() - start
    summary = fit_summary(fits) if fits else None
    records = {}
    for j in jobs:
        result, extra = results[j.oracle]
        records[j.column] = write_record(
            j, out, options, result, known, settings, keys[j.column], seconds, summary, extra
        )
    return records[job.column]


ORACLE_NOTE = "selected by PSNR against the ground truth: an oracle, not a result a user can get"


def run_together(
    jobs: Sequence[Job], out: Path, options: EvalOptions, progress: Callable[..., None] | None
) -> list[dict[str, Any]]:
    """``run_job`` on sampler jobs of one column (no oracle) whose images' patches share batches
    (``methods.run_sampler_images``: on a GPU the batch stays full), each result its own run's to the
    last bits. Finished jobs are read back; the others run in one call and share its seconds (each record:
    the call's seconds over its images, ``batched_images`` of them) and its LMaFit summary."""
    (column,) = {j.column for j in jobs}
    if options.oracle or jobs[0].method not in SAMPLERS or any(j.oracle for j in jobs):
        raise ValueError(f"only a sampler's honest jobs run together (got {column})")
    settings = options.settings.get(jobs[0].base, {})
    key = fingerprint(jobs[0].method, settings, options.seed)
    stored = [_stored(out, j, key) for j in jobs]
    pending = [j for j, record in zip(jobs, stored, strict=True) if record is None]
    if not pending:
        return stored  # type: ignore[return-value]
    from esdiff.lmafit import fit_summary, logged_fits  # torch: only when a job runs
    from esdiff.methods import run_sampler_images

    knowns = [job_mask(out, j.image, j.mask) for j in pending]
    method_options = MethodOptions(options.seed, options.device, settings)
    start = time.perf_counter()
    with logged_fits() as fits:
        images = [j.image.pixels for j in pending]
        results = run_sampler_images(pending[0].method, images, knowns, method_options, progress)
    seconds = (time.perf_counter() - start) / len(pending)
    summary = fit_summary(fits) if fits else None
    extra = {"batched_images": len(pending)}
    made = {
        j.key: write_record(j, out, options, result, known, settings, key, seconds, summary, extra)
        for j, result, known in zip(pending, results, knowns, strict=True)
    }
    return [made[j.key] if record is None else record for j, record in zip(jobs, stored, strict=True)]


def job_groups(jobs: Sequence[Job], options: EvalOptions, size: int) -> list[list[int]]:
    """Indices of ``jobs`` in the groups that run together (``run_together``): a sampler's honest jobs
    of one column, ``size`` at a time in their order; every other job alone. Groups come in the order of
    their first job."""
    groups: list[list[int]] = []
    open_group: dict[str, list[int]] = {}
    for i, job in enumerate(jobs):
        if size <= 1 or options.oracle or job.oracle or job.method not in SAMPLERS:
            groups.append([i])
            continue
        group = open_group.get(job.column)
        if group is None or len(group) == size:
            group = open_group[job.column] = []
            groups.append(group)
        group.append(i)
    return groups


def write_record(
    job: Job,
    out: Path,
    options: EvalOptions,
    result: np.ndarray,
    known: np.ndarray,
    settings: dict[str, Any],
    key: str,
    seconds: float,
    lmafit: dict[str, Any] | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Save a job's result image and its record (metrics against the ground truth, seconds, settings,
    fingerprint ``key``); ``extra``: what an oracle chose, or how many images ran together."""
    record_path = out / "results" / job.column / f"{job.key}.json"
    record_path.parent.mkdir(parents=True, exist_ok=True)
    write_image(record_path.with_suffix(".png"), result)
    metrics = evaluate(result, job.image.pixels, known)
    record = {
        "image": job.image.name,
        "mask": job.mask,
        "method": job.column,
        **_measured(metrics),
        "seconds": round(seconds, 3),
        "seed": options.seed,
        "mask_seed": mask_seed(job.image.name, job.mask),
        "missing_fraction": float(1 - known.mean()),
        "size": [job.image.pixels.shape[1], job.image.pixels.shape[0]],
        **({"lmafit": lmafit} if lmafit else {}),
        **({"oracle": ORACLE_NOTE} if job.oracle else {}),
        **extra,
        "settings": {k: str(v) for k, v in _oracle_settings(settings, job.oracle).items()},
        "fingerprint": key,
        "versions": versions(),
    }
    atomic_write_bytes(record_path, json.dumps(record, indent=2).encode())
    return record


def _oracle_settings(settings: dict[str, Any], kind: str) -> dict[str, Any]:
    """What an oracle column's result depends on besides the honest column's settings."""
    if not kind:
        return settings
    from esdiff.oracle import LAB_PATIENCE, PATIENCE_SIGMA

    if kind != "patch":
        return {**settings, "oracle": kind, "patience": None}
    return {**settings, "oracle": kind, "patience": LAB_PATIENCE, "patience_from_sigma": PATIENCE_SIGMA}


def _stored(out: Path, job: Job, key: str) -> dict[str, Any] | None:
    """The job's stored record if it was made with the same fingerprint on an image of the same size
    (``esdiff ablate --size``), else None."""
    path = out / "results" / job.column / f"{job.key}.json"
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    height, width = job.image.pixels.shape[:2]
    same = record.get("fingerprint") == key and record.get("size") == [width, height]
    return record if same else None


def run_with_oracle(
    name: str,
    image: np.ndarray,
    known: np.ndarray,
    options: MethodOptions,
    progress: Callable[..., None] | None,
) -> dict[str, Any]:
    """``(image, what was chosen)`` by kind: the sampler's final iterate (as ``run_method`` gives it)
    under ``""``, its best iterate against ``image`` under each of ``ORACLE_KINDS``."""
    from esdiff.oracle import oracle_inpaint

    check_mask(known, image.shape[:2])
    if known.all():
        same = run_method(name, image, known, options, progress)
        return {kind: (same, {}) for kind in ("", *ORACLE_KINDS)}
    settings = sampler_settings(name, options.settings)
    run = oracle_inpaint(
        image, known, seed=options.seed, device=options.device, progress=progress, **settings
    )
    steps = np.asarray(run.patch_steps)
    patch_extra = {"patch_step_mean": float(steps.mean()), "patch_step_min": int(steps.min())}
    return {
        "": (finished(name, run.final, image, known), {}),
        "image": (finished(name, run.best_image, image, known), {"best_step": run.best_step}),
        "patch": (finished(name, run.best_patch, image, known), patch_extra),
    }


def zero_fill_record(image: BenchImage, spec: str, out: Path) -> dict[str, Any]:
    """The observation itself (missing pixels 0), the floor every method must beat."""
    known = job_mask(out, image, spec)
    observed = np.where(known[..., None], image.pixels, 0.0)
    metrics = evaluate(observed, image.pixels, known)
    return {
        "image": image.name,
        "mask": spec,
        "method": "observation",
        **_measured(metrics),
    }


def summarize(records: Sequence[dict[str, Any]], masks: Sequence[str], methods: Sequence[str]) -> dict:
    """Mean PSNR/SSIM (and seconds) per (mask, method)."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for spec in masks:
        table[spec] = {}
        for method in methods:
            rows = [r for r in records if r["mask"] == spec and r["method"] == method]
            if rows:
                table[spec][method] = {
                    "psnr": float(np.mean([r["psnr"] for r in rows])),
                    "ssim": float(np.mean([r["ssim"] for r in rows])),
                    "psnr_missing": _mean(rows, "psnr_missing"),
                    "texture_missing": _mean(rows, "texture_missing"),
                    "seconds": float(np.mean([r.get("seconds", 0.0) for r in rows])),
                    "count": len(rows),
                }
                fits = [r["lmafit"] for r in rows if "lmafit" in r]
                if fits:  # LMaFit per patch, averaged over the images (the largest: over all of them)
                    table[spec][method]["lmafit"] = {
                        "iterations_mean": float(np.mean([f["iterations_mean"] for f in fits])),
                        "iterations_max": int(max(f["iterations_max"] for f in fits)),
                        "rank_mean": float(np.mean([f["rank_mean"] for f in fits])),
                        "rank_max": int(max(f["rank_max"] for f in fits)),
                        "seconds": float(np.mean([f["seconds"] for f in fits])),
                    }
    return table


def table_cells(row: dict[str, dict[str, float]], methods: Sequence[str]) -> list[str]:
    """One table row's cells: ``PSNR/SSIM`` per method, a dash where a method has no result."""
    return [f"{row[m]['psnr']:.2f}/{row[m]['ssim']:.4f}" if m in row else "–" for m in methods]


def hole_cells(row: dict[str, dict[str, Any]], methods: Sequence[str]) -> list[str]:
    """One row's cells for the missing region: ``PSNR/texture ratio`` per method (``esdiff.metrics.texture``;
    a dash where it cannot be measured)."""

    def cell(m: str) -> str:
        if m not in row or row[m].get("psnr_missing") is None:
            return "–"
        texture = row[m].get("texture_missing")
        return f"{row[m]['psnr_missing']:.2f}/" + ("–" if texture is None else f"{texture:.2f}")

    return [cell(m) for m in methods]


HOLE_TITLE = "missing region: PSNR (dB) / texture ratio (1 = the photo's fine detail), mean over images"


def markdown_table(table: dict, methods: Sequence[str], cells: Callable[..., list[str]] = table_cells) -> str:
    """The table as Markdown, one row per mask; ``cells`` makes a row's cells (``hole_cells``: the holes)."""
    lines = ["| mask | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for spec, row in table.items():
        lines.append(f"| {spec} | " + " | ".join(cells(row, methods)) + " |")
    return "\n".join(lines) + "\n"


def write_reports(out: Path, records: list[dict[str, Any]], table: dict, methods: Sequence[str]) -> None:
    """table.md, per_image.csv, per_image.json, summary.json."""
    note = "".join(f"\n`{m}`: {ORACLE_NOTE}.\n" for m in methods if "-oracle-" in m)
    title = "PSNR (dB) / SSIM, mean over images\n\n"
    holes = f"\n{HOLE_TITLE}\n\n" + markdown_table(table, methods, hole_cells)
    atomic_write_bytes(out / "table.md", (title + markdown_table(table, methods) + holes + note).encode())
    atomic_write_bytes(out / "per_image.json", json.dumps(records, indent=2).encode())
    atomic_write_bytes(out / "summary.json", json.dumps(table, indent=2).encode())
    buffer = io.StringIO()
    fields = ["image", "mask", "method", *METRICS, "seconds", "seed", "mask_seed", "missing_fraction"]
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    atomic_write_bytes(out / "per_image.csv", buffer.getvalue().encode())


def comparison_figure(out: Path, image: BenchImage, spec: str, methods: Sequence[str]) -> Path:
    """Ground truth, observation and each method in a row, with a 4x zoom of the centre below (Fig. 7)."""
    from PIL import Image, ImageDraw

    known = job_mask(out, image, spec)
    panels = [("ground truth", image.pixels), ("observation", np.where(known[..., None], image.pixels, 0.0))]
    for method in methods:
        path = out / "results" / method / f"{image.name}__{slug(spec)}.png"
        if path.exists():
            panels.append((method, read_image(path).pixels))
    h, w = image.pixels.shape[:2]
    s = max(8, min(h, w) // 4)
    top, left = (h - s) // 2, (w - s) // 2
    rows = []
    for title, pixels in panels:
        zoom = np.kron(pixels[top : top + s, left : left + s], np.ones((w // s, w // s, 1)))
        zoom = np.pad(zoom, ((0, 0), (0, w - zoom.shape[1]), (0, 0)), constant_values=1.0)
        column = np.concatenate([pixels, np.ones((4, w, 3)), zoom], axis=0)
        canvas = Image.fromarray((np.clip(column, 0, 1) * 255).round().astype(np.uint8))
        ImageDraw.Draw(canvas).text((4, 4), title, fill=(255, 255, 0))
        rows.append(np.asarray(canvas, np.float32) / 255)
        rows.append(np.ones((rows[-1].shape[0], 4, 3), np.float32))
    figure = np.concatenate(rows[:-1], axis=1)
    path = out / "figures" / f"{image.name}__{slug(spec)}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, figure)
    return path
