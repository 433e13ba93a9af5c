"""Inpainting masks: seeded generators (random, block, box, text, caption, strokes) and mask files (SPEC 4).

A mask is ``known``: a bool H x W array, True on observed pixels, False on missing ones.
Mask files follow the LaMa / OpenCV convention: white (non-zero) = missing, black = known.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from esdiff.errors import EsdiffError

if TYPE_CHECKING:
    from PIL.Image import Image

SPEC_HELP = (
    "valid mask specs: 'random:P' (fraction P in [0, 1) of pixels missing), "
    "'block:SIZE:P' (SIZE x SIZE blocks until a fraction P is missing), "
    "'box:X,Y,W,H' (one missing rectangle, X = column, Y = row of its top-left corner), "
    "'text1' (large text, about 13 % missing), 'text2' (small sparse text, about 5 % missing), "
    "'caption' or 'caption:SIZE' (meme-style bold capitals, font size SIZE px, default 9/64 of the image "
    "height: about 15 % missing, 8 px strokes at 256 x 256), "
    "'strokes:thin', 'strokes:medium', 'strokes:thick' (free-form brush strokes, LaMa's three classes); "
    "anything else is read as a mask file (white = missing)"
)

_KINDS = ("random", "block", "box", "caption", "strokes")
_TEXTS = ("text1", "text2", "caption")

# Fixed word list for the text overlays: changing it changes every text mask.
_WORDS = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore "
    "et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip "
    "ex ea commodo consequat duis aute irure in reprehenderit voluptate velit esse cillum fugiat nulla "
    "pariatur excepteur sint occaecat cupidatat non proident sunt culpa qui officia deserunt mollit "
    "anim id est laborum"
).split()

# Text styles at the paper's 256 x 256, scaled linearly with the image height: (font size px, line
# pitch px). text1 is the heavier overlay (the paper's text1 scores lower PSNR than its text2).
_TEXT_STYLES = {"text1": (22.0, 32.0), "text2": (10.0, 48.0)}


def is_mask_spec(text: str) -> bool:
    """True if ``text`` names a mask generator (``random:``, ``block:``, ``box:``, ``caption``,
    ``strokes:``, text1, text2)."""
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
        return _text_mask(kind, height, width, seed)
    if kind == "caption":
        size = int(numbers[0]) if numbers else max(1, round(height * CAPTION_SIZE / 256))
        return _caption_mask(size, height, width, seed)
    if kind == "strokes":
        return _strokes_mask(list(STROKES.values())[int(numbers[0])], height, width, seed)
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


def _text_mask(name: str, height: int, width: int, seed: int) -> np.ndarray:
    """Lines of seeded random words drawn over the image with Pillow's built-in font (no system fonts).

    Images under 256 px high are drawn supersampled, then the most-inked pixels of the area average go
    missing, so the missing fraction stays at its 256 x 256 value and thin strokes do not vanish.
    """
    rng = np.random.default_rng([seed, _TEXTS.index(name)])  # text1 and text2 draw different words
    ss = math.ceil(256 / height) if height < 256 else 1
    font_px, pitch_px = (v * ss * height / 256 for v in _TEXT_STYLES[name])
    ink = np.asarray(_draw_text_lines(ss * height, ss * width, font_px, pitch_px, rng))
    if ss == 1:
        return ink < 128
    # Keep the supersampled missing fraction: the most-covered pixels of the area average go missing.
    coverage = ink.reshape(height, ss, width, ss).astype(np.float64).mean(axis=(1, 3))
    n_missing = round(float((ink >= 128).mean()) * height * width)
    known = np.ones(height * width, dtype=bool)
    known[np.argsort(-coverage.ravel(), kind="stable")[:n_missing]] = False
    return known.reshape(height, width)


def _draw_text_lines(
    height: int, width: int, font_px: float, pitch_px: float, rng: np.random.Generator
) -> Image:
    """Grey image (PIL, mode L) with full-width lines of random words, ink = 255."""
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont

    try:  # scalable built-in font (Pillow >= 10.1 with FreeType)
        font: ImageFont.ImageFont | ImageFont.FreeTypeFont = ImageFont.load_default(size=font_px)
        scale = 1
    except (TypeError, ImportError, OSError):  # the bitmap default font (about 11 px), scaled up
        font, scale = ImageFont.load_default(), max(1, round(font_px / 11))
    canvas = PILImage.new("L", (math.ceil(width / scale), math.ceil(height / scale)), 0)
    draw = ImageDraw.Draw(canvas)
    pitch = pitch_px / scale
    y = float(rng.uniform(0, pitch / 2))
    while y < canvas.height:
        x = -float(rng.uniform(0, 2 * font_px / scale))  # lines start mid-word at the left edge
        words: list[str] = []
        while x + draw.textlength(" ".join(words), font=font) < canvas.width:
            words.append(_WORDS[int(rng.integers(len(_WORDS)))])
        draw.text((x, y), " ".join(words), fill=255, font=font)
        y += pitch
    if scale > 1:
        canvas = canvas.resize((canvas.width * scale, canvas.height * scale), PILImage.Resampling.NEAREST)
    return canvas.crop((0, 0, width, height))


CAPTION_SIZE = 36
"""Default caption letter size (font size in px) at an image height of 256; it scales with the height."""


_CAPTION_DRAWS = 24
"""Words drawn per caption line; those that no longer fit are skipped, so lines come out nearly full."""


def _caption_mask(size: int, height: int, width: int, seed: int) -> np.ndarray:
    """Meme-style captions: one line at the top and two at the bottom of seeded random capitalised
    words, centred, in Pillow's built-in font (the same on every machine with the same Pillow) thickened
    by an outline of ``size / 20`` px each side. At the default size on 256 x 256 the letters are about
    8 px thick and about 15 % of the pixels go missing."""
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # no FreeType: no scalable font to draw with
        raise EsdiffError("caption masks need Pillow with FreeType (the scalable built-in font)") from None
    stroke = max(1, round(size / 20))
    rng = np.random.default_rng([seed, len(_TEXTS)])
    canvas = PILImage.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    margin = max(1, round(0.03 * height))
    pitch = size + 2 * stroke  # baseline to baseline: the outlined letters just do not touch
    for line in range(3):  # top, bottom-but-one, bottom
        words: list[str] = []
        for _ in range(_CAPTION_DRAWS):  # words that fit in 85 % of the width, skipping those that do not
            word = _WORDS[int(rng.integers(len(_WORDS)))].upper()
            if draw.textlength(" ".join([*words, word]), font=font) + 2 * stroke <= 0.85 * width:
                words.append(word)
        text = " ".join(words) or _WORDS[0].upper()
        left, up, right, down = draw.textbbox((0, 0), text, font=font, stroke_width=stroke)
        x = (width - (right - left)) / 2 - left
        jitter = int(rng.integers(0, margin + 1))
        if line == 0:
            y = margin + jitter - up
        else:
            y = height - margin - jitter - down - (2 - line) * pitch
        draw.text((x, y), text, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    return np.asarray(canvas) < 128


STROKES: dict[str, dict[str, int]] = {
    "thin": {"min_times": 4, "max_times": 50, "max_width": 10, "max_angle": 4, "max_len": 40},
    "medium": {"min_times": 4, "max_times": 5, "max_width": 50, "max_angle": 4, "max_len": 100},
    "thick": {"min_times": 1, "max_times": 5, "max_width": 100, "max_angle": 4, "max_len": 200},
}
"""LaMa's free-form stroke classes (Suvorov et al. 2022, configs/data_gen/random_{thin,medium,thick}_256):
strokes per mask, brush width, angle and segment length ranges at 256 px. LaMa's medium and thick sets
also draw boxes in 30 % of the masks; these are the strokes alone (``box:`` covers boxes)."""

MAX_STROKE_AREA = 0.5
"""LaMa discards masks that cover more than half the image (``max_tamper_area``); they are redrawn."""


def _strokes_mask(params: dict[str, int], height: int, width: int, seed: int) -> np.ndarray:
    """LaMa's irregular mask: strokes of 1-5 straight segments from a random start, each segment
    ``10 + U[0, max_len)`` long at an angle of ``0.01 + U{0..max_angle-1}`` radians (mirrored on every
    other stroke) with a round brush ``5 + U[0, max_width)`` wide; lengths and widths scale with
    ``min(H, W) / 256``. Masks over ``MAX_STROKE_AREA`` are redrawn from the same stream."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    rng = np.random.default_rng([seed, len(_TEXTS) + 1])
    scale = min(height, width) / 256
    while True:
        canvas = PILImage.new("L", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        for i in range(int(rng.integers(params["min_times"], params["max_times"] + 1))):
            x, y = float(rng.integers(width)), float(rng.integers(height))
            for _ in range(1 + int(rng.integers(5))):
                angle = 0.01 + int(rng.integers(params["max_angle"]))
                if i % 2 == 0:
                    angle = 2 * math.pi - angle
                length = scale * (10 + int(rng.integers(params["max_len"])))
                brush = max(1.0, scale * (5 + int(rng.integers(params["max_width"]))))
                x1 = min(max(x + length * math.sin(angle), 0.0), width)
                y1 = min(max(y + length * math.cos(angle), 0.0), height)
                draw.line([(x, y), (x1, y1)], fill=255, width=round(brush))
                for cx, cy in ((x, y), (x1, y1)):  # round ends, as a brush leaves
                    r = brush / 2
                    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
                x, y = x1, y1
        known = np.asarray(canvas) < 128
        if 1.0 - known.mean() <= MAX_STROKE_AREA:
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
