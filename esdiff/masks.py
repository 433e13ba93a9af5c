"""Inpainting masks: seeded generators (random, block, box, text, caption, strokes, scratches) and mask
files (SPEC 4).

A mask is ``known``: a bool H x W array, True on observed pixels, False on missing ones.
Mask files follow the LaMa / OpenCV convention: white (non-zero) = missing, black = known.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from esdiff.errors import EsdiffError
from esdiff.mask_drawing import (
    CAPTION_SIZE,
    SCRATCHES,
    STROKES,
    caption_mask,
    scratches_mask,
    strokes_mask,
    text_mask,
)

SPEC_HELP = (
    "valid mask specs: 'random:P' (fraction P in [0, 1) of pixels missing), "
    "'block:SIZE:P' (SIZE x SIZE blocks until a fraction P is missing), "
    "'box:X,Y,W,H' (one missing rectangle, X = column, Y = row of its top-left corner), "
    "'text1' (large text, about 13 % missing), 'text2' (small sparse text, about 5 % missing), "
    "'caption' or 'caption:SIZE' (meme-style bold capitals, font size SIZE px, default 9/64 of the image "
    "height: about 15 % missing, 8 px strokes at 256 x 256), "
    "'strokes:thin', 'strokes:medium', 'strokes:thick' (free-form brush strokes, LaMa's three classes); "
    "'scratches:thin' (polylines 2-4 px wide), 'scratches:thick' (5-10 px); "
    "anything else is read as a mask file (white = missing)"
)

_KINDS = ("random", "block", "box", "caption", "strokes", "scratches")
_TEXTS = ("text1", "text2", "caption")


def is_mask_spec(text: str) -> bool:
    """True if ``text`` names a mask generator (``random:``, ``block:``, ``box:``, ``caption``,
    ``strokes:``, ``scratches:``, text1, text2)."""
    return text in _TEXTS or (":" in text and text.split(":", 1)[0] in _KINDS)


def check_mask_spec(spec: str) -> None:
    """Check a generator spec's syntax and numbers, for any image size (an EsdiffError if bad)."""
    _parse(spec)


def _parse(spec: str) -> tuple[str, tuple[float, ...]]:
    """``spec`` as its kind and numbers: ``(text1|text2, ())``, ``(random, (P,))``, ``(block, (SIZE,
    P))`` or ``(box, (X, Y, W, H))``."""
    if spec in _TEXTS:
        return spec, ()
    if not is_mask_spec(spec):
        raise EsdiffError(f"unknown mask spec {spec!r}; {SPEC_HELP}")
    kind, _, args = spec.partition(":")
    if kind == "caption":
        return kind, (_positive_int(args, spec),)
    if kind == "strokes":
        if args not in STROKES:
            raise EsdiffError(f"bad mask spec {spec!r}: expected strokes:{'|'.join(STROKES)}; {SPEC_HELP}")
        return kind, (list(STROKES).index(args),)
    if kind == "scratches":
        if args not in SCRATCHES:
            raise EsdiffError(
                f"bad mask spec {spec!r}: expected scratches:{'|'.join(SCRATCHES)}; {SPEC_HELP}"
            )
        return kind, (list(SCRATCHES).index(args),)
    if kind == "random":
        return kind, (_fraction(args, spec),)
    if kind == "block":
        size_text, sep, p_text = args.partition(":")
        if not sep:
            raise EsdiffError(f"bad mask spec {spec!r}: expected 'block:SIZE:P'; {SPEC_HELP}")
        return kind, (_positive_int(size_text, spec), _fraction(p_text, spec))
    parts = args.split(",")
    if len(parts) != 4:
        raise EsdiffError(f"bad mask spec {spec!r}: expected 'box:X,Y,W,H'; {SPEC_HELP}")
    return kind, (*(_int(p, spec) for p in parts[:2]), *(_positive_int(p, spec) for p in parts[2:]))


def generate_mask(spec: str, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Generate the seeded ``known`` mask (bool H x W) that ``spec`` describes; see ``SPEC_HELP``."""
    if height <= 0 or width <= 0:
        raise EsdiffError(f"mask size must be positive, got {height}x{width}")
    if seed < 0:
        raise EsdiffError(f"mask seed must be non-negative, got {seed}")
    kind, numbers = _parse(spec)
    if kind in ("text1", "text2"):
        return text_mask(kind, height, width, seed)
    if kind == "caption":
        size = int(numbers[0]) if numbers else max(1, round(height * CAPTION_SIZE / 256))
        return caption_mask(size, height, width, seed)
    if kind == "strokes":
        return strokes_mask(list(STROKES.values())[int(numbers[0])], height, width, seed)
    if kind == "scratches":
        return scratches_mask(list(SCRATCHES.values())[int(numbers[0])], height, width, seed)
    if kind == "random":
        return _random_mask(numbers[0], height, width, seed)
    if kind == "block":
        size, p = int(numbers[0]), numbers[1]
        if size > min(height, width):
            raise EsdiffError(f"bad mask spec {spec!r}: block size {size} exceeds the {height}x{width} image")
        return _block_mask(size, p, height, width, seed)
    x, y, w, h = (int(v) for v in numbers)
    return _box_mask(x, y, w, h, height, width, spec)


def _int(text: str, spec: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise EsdiffError(f"bad mask spec {spec!r}: {text!r} is not an integer; {SPEC_HELP}") from None


def _positive_int(text: str, spec: str) -> int:
    value = _int(text, spec)
    if value <= 0:
        raise EsdiffError(f"bad mask spec {spec!r}: sizes must be positive, got {value}; {SPEC_HELP}")
    return value


def _fraction(text: str, spec: str) -> float:
    try:
        p = float(text.strip())
    except ValueError:
        raise EsdiffError(f"bad mask spec {spec!r}: {text!r} is not a number; {SPEC_HELP}") from None
    if not 0.0 <= p < 1.0:
        raise EsdiffError(f"bad mask spec {spec!r}: missing fraction must be in [0, 1), got {p}; {SPEC_HELP}")
    return p


def _random_mask(p: float, height: int, width: int, seed: int) -> np.ndarray:
    """Exactly round(P H W) missing pixels, chosen uniformly without replacement."""
    n = height * width
    known = np.ones(n, dtype=bool)
    known[np.random.default_rng(seed).permutation(n)[: round(p * n)]] = False
    return known.reshape(height, width)


def _block_mask(size: int, p: float, height: int, width: int, seed: int) -> np.ndarray:
    """Square SIZE x SIZE holes at uniform positions (overlaps allowed) until a fraction >= P is missing."""
    rng = np.random.default_rng(seed)
    known = np.ones((height, width), dtype=bool)
    target = math.ceil(p * height * width)
    missing = 0
    while missing < target:
        r = int(rng.integers(0, height - size + 1))
        c = int(rng.integers(0, width - size + 1))
        window = known[r : r + size, c : c + size]
        missing += int(window.sum())
        window[...] = False
    return known


def _box_mask(x: int, y: int, w: int, h: int, height: int, width: int, spec: str) -> np.ndarray:
    """One missing rectangle, clipped to the image."""
    r0, r1 = max(y, 0), min(y + h, height)
    c0, c1 = max(x, 0), min(x + w, width)
    if r0 >= r1 or c0 >= c1:
        raise EsdiffError(f"bad mask spec {spec!r}: the box lies outside the {height}x{width} image")
    known = np.ones((height, width), dtype=bool)
    known[r0:r1, c0:c1] = False
    return known


def missing_fraction(known: np.ndarray) -> float:
    """Fraction of missing (False) pixels."""
    return 1.0 - float(np.asarray(known, dtype=bool).mean())


def _to_known(array: np.ndarray, name: str) -> np.ndarray:
    """Threshold a mask array (max over colour channels, alpha ignored) into ``known``.

    Missing: True (bool); >= 0.5 (float); non-zero if the values are only 0 and 1; else >= half the range
    of uint8 / uint16 (other integer arrays: of 0..255).
    """
    if array.ndim == 3 and array.shape[-1] in (2, 4):  # drop alpha
        array = array[..., : array.shape[-1] - 1]
    if array.ndim == 3 and array.shape[-1] in (1, 3):
        array = array.max(axis=-1)
    if array.ndim != 2:
        raise EsdiffError(
            f"cannot read mask {name}: expected a 2-D gray or RGB(A) mask, got shape {array.shape}"
        )
    if array.dtype == bool:
        return ~array
    if np.issubdtype(array.dtype, np.floating):
        half = 0.5
    elif not np.issubdtype(array.dtype, np.integer):
        raise EsdiffError(f"cannot read mask {name}: unsupported dtype {array.dtype}")
    elif array.size and array.min() >= 0 and array.max() == 1:
        half = 0.5  # a 0/1 mask stored in an integer type: non-zero = missing
    elif array.dtype in (np.uint8, np.uint16):
        half = np.iinfo(array.dtype).max / 2
    elif array.size and array.min() >= 0 and array.max() <= 255:
        half = 127.5
    else:
        raise EsdiffError(f"cannot read mask {name}: integer values outside 0..255 in a {array.dtype} array")
    return array < half


def load_mask(path: str | Path, *, invert: bool = False, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask file (image or ``.npy``; white/non-zero = missing) as ``known``; ``invert`` flips it."""
    path = Path(path)
    if not path.is_file():
        raise EsdiffError(f"cannot read mask {path}: no such file")
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except Exception as exc:  # numpy raises many types for unreadable files
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise EsdiffError(f"cannot read mask {path}: not a readable .npy array ({detail})") from None
    else:  # the image's checks: empty, not an image, truncated, too large (read from the header)
        from esdiff.io import MAX_PIXELS, decode_pixels

        limit = max(MAX_PIXELS, shape[0] * shape[1]) if shape is not None else MAX_PIXELS
        array = decode_pixels(path.read_bytes(), f"cannot read mask {path}", limit)
    known = _to_known(np.asarray(array), str(path))
    if invert:
        known = ~known
    if shape is not None and known.shape != tuple(shape):
        raise EsdiffError(
            f"mask {path} is {known.shape[0]}x{known.shape[1]} (HxW) but the image is {shape[0]}x{shape[1]}"
        )
    return known


def save_mask(path: str | Path, known: np.ndarray) -> None:
    """Write ``known`` as an 8-bit PNG: 255 = missing, 0 = known (``load_mask`` reads it back exactly)."""
    import imageio.v3 as iio

    known = np.asarray(known)
    if known.ndim != 2:
        raise EsdiffError(f"a mask must be 2-D (HxW), got shape {known.shape}")
    from esdiff.io import atomic_write_bytes

    data = iio.imwrite("<bytes>", np.where(known.astype(bool), 0, 255).astype(np.uint8), extension=".png")
    atomic_write_bytes(Path(path), data)


def resolve_mask(
    mask: str, height: int, width: int, *, seed: int = 0, invert: bool = False, stem: str | None = None
) -> np.ndarray:
    """The ``known`` mask that ``mask`` names for an ``height x width`` image: a generator spec (drawn
    with ``seed``), a mask file, or a folder holding one mask file per image, found by the image's
    ``stem``. ``invert`` reads mask files as white = known; a generated mask has no such convention."""
    if is_mask_spec(mask):
        if invert:
            raise EsdiffError(f"--invert-mask applies to mask files, not to the generated mask {mask!r}")
        return generate_mask(mask, height, width, seed)
    path = Path(mask)
    if path.is_dir():
        if stem is None:
            raise EsdiffError(f"mask {mask!r} is a folder: give a mask file or a spec")
        path = _find_by_stem(path, stem)
    elif not path.is_file():
        raise EsdiffError(f"mask {mask!r} is neither a mask spec nor an existing file; {SPEC_HELP}")
    return load_mask(path, invert=invert, shape=(height, width))


def _find_by_stem(folder: Path, stem: str) -> Path:
    from esdiff.io import IMAGE_SUFFIXES

    for candidate in sorted(folder.iterdir()):
        if candidate.stem == stem and candidate.suffix.lower() in (*IMAGE_SUFFIXES, ".npy"):
            return candidate
    raise EsdiffError(f"{folder}: no mask named {stem}.* for image {stem}")
