"""Named benchmark image sets and mask protocols of the paper's evaluation (SPEC 4)."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from esdiff.errors import EsdiffError
from esdiff.io import center_crop_resize, list_images, read_image

BENCHMARKS: dict[str, str] = {
    "lsun100": "lsun_bedroom/lsun100",
    "standard6": "standard6",
    "cbsd68": "cbsd68",
}
"""Benchmark name -> folder under the data root."""

STANDARD6 = ("baboon", "barbara", "boat_gray", "cameraman_gray", "house", "peppers")

MASK_PROTOCOLS: dict[str, tuple[str, ...]] = {
    "table1": ("block:4:0.8", "text1", "text2", "random:0.9", "random:0.8", "random:0.7"),
    "table2": ("random:0.8", "random:0.5"),
    "users": (
        "random:0.8",
        "text1",
        "text2",
        "caption:20",
        "caption",
        "scratches:thin",
        "scratches:thick",
        "strokes:thick",
        "box:120,120,16,16",
        "box:112,112,32,32",
        "box:96,96,64,64",
    ),
}
"""The paper's Table I (LSUN: block covering 80 %, two text overlays, random 90/80/70 % missing) and
Table II (standard images: random 80 % and 50 % missing); ``users``: what users meet beyond the paper,
random 80 %, the two text overlays, meme-style captions at two font sizes (20 px and the default),
thin and thick scratches, LaMa's thick strokes and centred solid boxes of 16, 32 and 64 px (centred in a
256 x 256 image)."""

WHERE_TO_GET = {
    "lsun100": "100 LSUN-bedroom photographs (https://github.com/fyu/lsun, bedroom category)",
    "standard6": "baboon, barbara, boat_gray, cameraman_gray, house, peppers as PNG",
    "cbsd68": "the 68 colour BSDS300 test images (CBSD68)",
}


@dataclass(frozen=True)
class BenchImage:
    name: str
    pixels: np.ndarray


def data_root(explicit: Path | None = None) -> Path:
    """``--data``, else ``$ESDIFF_DATA``, else ``shared/data`` or ``../shared/data`` from here."""
    if explicit is not None:
        return explicit
    if os.environ.get("ESDIFF_DATA"):
        return Path(os.environ["ESDIFF_DATA"])
    for candidate in (Path("shared/data"), Path("../shared/data")):
        if candidate.is_dir():
            return candidate
    return Path("../shared/data")


def benchmark_files(name: str, data: Path | None = None) -> list[Path]:
    """The image files of a named benchmark, or of ``folder:PATH``."""
    if name.startswith("folder:"):
        folder = Path(name[len("folder:") :])
        files = list_images(folder)
        if not files:
            raise EsdiffError(f"{folder}: no image files in this folder")
        return files
    if name not in BENCHMARKS:
        raise EsdiffError(f"unknown benchmark {name!r} (choose from {', '.join(BENCHMARKS)}, folder:PATH)")
    folder = data_root(data) / BENCHMARKS[name]
    if not folder.is_dir():
        raise EsdiffError(
            f"benchmark {name}: folder {folder} not found; it should hold {WHERE_TO_GET[name]} "
            "(point --data or ESDIFF_DATA at the folder that contains it)"
        )
    files = list_images(folder)
    if name == "standard6":
        files = [f for f in files if f.stem in STANDARD6]
    if not files:
        raise EsdiffError(f"benchmark {name}: no image files in {folder}")
    return files


def load_benchmark(
    name: str,
    data: Path | None = None,
    limit: int | None = None,
    full_size: bool = False,
    crop: int | None = None,
) -> list[BenchImage]:
    """Images of a benchmark, centre-cropped to 256 x 256 (short side resized) unless ``full_size``;
    ``crop``: then only the centre ``crop x crop`` of each (at most the whole image; no resize, so the
    scale stays the benchmark's)."""
    if crop is not None and crop < 1:
        raise EsdiffError(f"crop must be a positive number of pixels (got {crop})")
    files = benchmark_files(name, data)[:limit]
    images = []
    for path in files:
        pixels = read_image(path).pixels
        pixels = pixels if full_size else center_crop_resize(pixels, 256)
        if crop is not None:
            top, left = max(0, (pixels.shape[0] - crop) // 2), max(0, (pixels.shape[1] - crop) // 2)
            pixels = np.ascontiguousarray(pixels[top : top + crop, left : left + crop])
        images.append(BenchImage(path.stem, pixels))
    return images


def parse_masks(text: str) -> tuple[str, ...]:
    """A protocol name (``table1``, ``table2``, ``users``) or a comma-separated list of mask specs
    (``;``-separated when one is a box); each spec's syntax is checked here, its fit on an image when a
    mask is drawn."""
    from esdiff.masks import check_mask_spec

    if text in MASK_PROTOCOLS:
        return MASK_PROTOCOLS[text]
    if ";" in text:
        specs = tuple(s.strip() for s in text.split(";") if s.strip())
    else:
        specs = _split_commas(text)
    if not specs:
        raise EsdiffError("--masks is empty")
    for spec in specs:
        check_mask_spec(spec)
    return specs


def _split_commas(text: str) -> tuple[str, ...]:
    """Comma-separated specs, where a ``box:X,Y,W,H`` keeps its own three commas."""
    parts = [p.strip() for p in text.split(",")]
    specs: list[str] = []
    while parts:
        part = parts.pop(0)
        if part.startswith("box:"):
            part = ",".join([part, *parts[:3]])
            del parts[:3]
        if part:
            specs.append(part)
    return tuple(specs)


def mask_seed(image: str, spec: str) -> int:
    """A fixed seed per (image, mask), the same on every machine."""
    return zlib.crc32(f"{image}|{spec}".encode())
