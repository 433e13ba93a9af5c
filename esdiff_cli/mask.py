"""`esdiff mask`: write any generated mask as a file (255 = missing, 0 = known)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from esdiff_cli.common import MAX_PIXELS, MAX_SEED, cli_errors, fail, info


def parse_size(text: str, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """``WxH`` -> (height, width), at most ``max_pixels`` pixels."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise fail(f"--size must look like WIDTHxHEIGHT with positive numbers, e.g. 256x256 (got {text!r})")
    width, height = int(match[1]), int(match[2])
    if width * height > max_pixels:
        raise fail(
            f"--size {width}x{height}: too large: {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (--max-pixels raises it)"
        )
    return height, width


def command(
    spec: Annotated[str, typer.Argument(metavar="SPEC", help="Which mask: one of the specs above.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Mask file to write (PNG).")],
    size: Annotated[str, typer.Option(help="WIDTHxHEIGHT of the mask.")] = "256x256",
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed of the generator.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing file.")] = False,
    max_pixels: Annotated[
        int, typer.Option(min=1, help="Refuse larger sizes (width x height).")
    ] = MAX_PIXELS,
) -> None:
    """Generate a mask from SPEC and write it to OUT (white = missing, the LaMa/OpenCV convention).

    \b
    SPEC is one of:
      random:P        a fraction P of the pixels, uniformly
      block:SIZE:P    SIZE x SIZE squares until a fraction P is missing
      box:X,Y,W,H     one rectangle, its top-left corner at column X, row Y
      text1           lines of thin text, about 13 % missing
      text2           sparser, smaller text, about 5 % missing
      caption[:SIZE]  meme-style bold capitals, a line at the top and two at
                      the bottom, font SIZE px (default 9/64 of the height:
                      36 px at 256 x 256, about 15 % missing)
      strokes:thin|medium|thick
                      free-form brush strokes in LaMa's three width classes
                      (about 27 %, 26 %, 29 % missing, never over 50 %)
      scratches:thin|thick
                      3 to 6 polylines crossing the image, 2-4 px or
                      5-10 px wide at 256 x 256 (about 2 % and 6 % missing)

    The same SPEC, size and --seed give the same mask on every machine (with the same Pillow, whose
    built-in font draws the text). `esdiff inpaint --mask` takes the same specs.
    """
    with cli_errors():
        height, width = parse_size(size, max_pixels)
        if out.suffix.lower() != ".png":
            raise fail(f"{out}: masks are written as PNG (use a .png name)")
        if out.exists() and not overwrite:
            raise fail(f"{out}: exists (use --overwrite to replace it)")
        from esdiff.masks import generate_mask, missing_fraction, save_mask

        known = generate_mask(spec, height, width, seed=seed)
        save_mask(out, known)
        info(f"wrote {out}: {width}x{height}, {missing_fraction(known):.2%} missing")
