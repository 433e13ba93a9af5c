"""The training-curve picture of a run: loss (log scale, smoothed) and validation PSNR against step.

Drawn with Pillow (already a dependency of imageio), so no plotting library is needed.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from esdiff.io import atomic_write_bytes

COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14))


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (lines that do not parse are skipped)."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average (the first points average what there is)."""
    v = np.asarray(values, dtype=np.float64)
    c = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def _panel(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    series: list[tuple[str, np.ndarray, np.ndarray]],
    title: str,
    x_range: tuple[float, float],
    log_y: bool = False,
) -> None:
    font = ImageFont.load_default()
    left, top, right, bottom = box
    draw.rectangle(box, outline=(0, 0, 0))
    draw.text((left + 4, top - 14), title, fill=(0, 0, 0), font=font)
    ys = [y for _, _, y in series if len(y)]
    if not ys:
        draw.text((left + 10, top + 10), "no data yet", fill=(0, 0, 0), font=font)
        return
    allv = np.concatenate(ys)
    allv = np.log10(np.clip(allv, 1e-12, None)) if log_y else allv
    lo, hi = float(np.min(allv)), float(np.max(allv))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    x0, x1 = x_range
    x1 = x1 if x1 > x0 else x0 + 1

    def point(x: float, y: float) -> tuple[float, float]:
        yv = math.log10(max(y, 1e-12)) if log_y else y
        px = left + (x - x0) / (x1 - x0) * (right - left)
        py = bottom - (yv - lo) / (hi - lo) * (bottom - top)
        return px, py

    for k, (label, xs, yv) in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        pts = [point(float(a), float(b)) for a, b in zip(xs, yv, strict=True)]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        for p in pts if len(pts) < 60 else pts[-1:]:
            draw.ellipse((p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2), fill=colour)
        last = f"{yv[-1]:.4g}" if len(yv) else ""
        draw.text((right - 150, top + 4 + 12 * k), f"{label}: {last}", fill=colour, font=font)
    fmt = (lambda v: f"{10**v:.3g}") if log_y else (lambda v: f"{v:.2f}")
    draw.text((left - 46, top), fmt(hi), fill=(0, 0, 0), font=font)
    draw.text((left - 46, bottom - 10), fmt(lo), fill=(0, 0, 0), font=font)
    draw.text((left, bottom + 4), f"{x0:.0f}", fill=(0, 0, 0), font=font)
    draw.text((right - 40, bottom + 4), f"{x1:.0f}", fill=(0, 0, 0), font=font)


def curves_png(records: Sequence[dict[str, Any]]) -> bytes:
    """PNG bytes: training loss (smoothed, log scale) on top, validation PSNR per level below."""
    width, height = 720, 520
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    train = [r for r in records if "loss" in r and isinstance(r.get("loss"), int | float)]
    val = [r for r in records if "val_psnr" in r]
    steps = [r["step"] for r in records] or [0, 1]
    x_range = (float(min(steps)), float(max(steps)))
    loss_x = np.array([r["step"] for r in train], dtype=np.float64)
    loss_y = smooth([r["loss"] for r in train], max(1, len(train) // 50))
    _panel(draw, (60, 24, width - 20, 240), [("loss", loss_x, loss_y)], "training loss", x_range, True)
    levels = sorted({k for r in val for k in r["val_psnr"]}, key=float)
    series = [
        (
            f"sigma {k}",
            np.array([r["step"] for r in val if k in r["val_psnr"]], dtype=np.float64),
            np.array([r["val_psnr"][k] for r in val if k in r["val_psnr"]], dtype=np.float64),
        )
        for k in levels
    ]
    _panel(draw, (60, 284, width - 20, height - 30), series, "validation PSNR (dB)", x_range)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_curves(metrics: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Draw the run's ``metrics.jsonl`` into ``out`` (PNG, written atomically)."""
    out = Path(out)
    atomic_write_bytes(out, curves_png(read_metrics(metrics)))
    return out
