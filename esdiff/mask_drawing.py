"""Masks drawn with Pillow: text overlays (``text1``, ``text2``), meme-style captions, LaMa's
free-form brush strokes and scratches (thin polylines, as on an old print). ``esdiff.masks`` parses the
specs and calls these; each is seeded and draws the same mask on every machine with the same Pillow.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from esdiff.errors import EsdiffError

if TYPE_CHECKING:
    from PIL.Image import Image

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


_STREAMS = {"text1": 0, "text2": 1, "caption": 3, "strokes": 4, "scratches": 5}
"""Second seed word of each kind's random stream (fixed: changing one changes every mask of that kind)."""


def text_mask(name: str, height: int, width: int, seed: int) -> np.ndarray:
    """Lines of seeded random words drawn over the image with Pillow's built-in font (no system fonts).

    Images under 256 px high are drawn supersampled, then the most-inked pixels of the area average go
    missing, so the missing fraction stays at its 256 x 256 value and thin strokes do not vanish.
    """
    rng = np.random.default_rng([seed, _STREAMS[name]])  # each kind draws its own words
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


def caption_mask(size: int, height: int, width: int, seed: int) -> np.ndarray:
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
    rng = np.random.default_rng([seed, _STREAMS["caption"]])
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


def strokes_mask(params: dict[str, int], height: int, width: int, seed: int) -> np.ndarray:
    """LaMa's irregular mask: strokes of 1-5 straight segments from a random start, each segment
    ``10 + U[0, max_len)`` long at an angle of ``0.01 + U{0..max_angle-1}`` radians (mirrored on every
    other stroke) with a round brush ``5 + U[0, max_width)`` wide; lengths and widths scale with
    ``min(H, W) / 256``. Masks over ``MAX_STROKE_AREA`` are redrawn from the same stream."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    rng = np.random.default_rng([seed, _STREAMS["strokes"]])
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


SCRATCHES: dict[str, tuple[int, int]] = {"thin": (2, 4), "thick": (5, 10)}
"""Scratch width classes: the range of line widths in px at 256 px (scaled with ``min(H, W) / 256``)."""


def scratches_mask(widths: tuple[int, int], height: int, width: int, seed: int) -> np.ndarray:
    """Scratches: 3 to 6 polylines, each of 3 to 6 segments ``U[20, 60)`` px long (at 256 px, scaled with
    ``min(H, W) / 256``) from a random start, heading random and turning by up to 0.6 rad at each joint,
    drawn ``U{widths}`` px wide with round joints. They cross the image rather than cover it: thin ones
    take a few per cent of the pixels, thick ones several."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    rng = np.random.default_rng([seed, _STREAMS["scratches"]])
    scale = min(height, width) / 256
    canvas = PILImage.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(3, 7))):
        x, y = float(rng.uniform(0, width)), float(rng.uniform(0, height))
        heading = float(rng.uniform(0, 2 * math.pi))
        points = [(x, y)]
        for _ in range(int(rng.integers(3, 7))):
            heading += float(rng.uniform(-0.6, 0.6))
            length = scale * float(rng.uniform(20, 60))
            x, y = x + length * math.cos(heading), y + length * math.sin(heading)
            points.append((x, y))
        line_width = max(1, round(scale * int(rng.integers(widths[0], widths[1] + 1))))
        draw.line(points, fill=255, width=line_width, joint="curve")
    return np.asarray(canvas) < 128
