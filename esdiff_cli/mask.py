"""`esdiff mask`: write any generated mask as a file (255 = missing, 0 = known)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from esdiff_cli.common import cli_errors, fail, info


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` -> (height, width)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise fail(f"--size must look like WIDTHxHEIGHT with positive numbers, e.g. 256x256 (got {text!r})")
    return int(match[2]), int(match[1])


def command(
    spec: Annotated[str, typer.Argument(help="random:P | block:SIZE:P | box:X,Y,W,H | text1 | text2")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Mask file to write (PNG).")],
    size: Annotated[str, typer.Option(help="WIDTHxHEIGHT of the mask.")] = "256x256",
    seed: Annotated[int, typer.Option(help="Seed of the generator.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing file.")] = False,
) -> None:
    """Generate a mask from SPEC and write it to OUT (white = missing, the LaMa/OpenCV convention)."""
    with cli_errors():
        height, width = parse_size(size)
        if out.suffix.lower() != ".png":
            raise fail(f"{out}: masks are written as PNG (use a .png name)")
        if out.exists() and not overwrite:
            raise fail(f"{out}: exists (use --overwrite to replace it)")
        from esdiff.masks import generate_mask, missing_fraction, save_mask

        known = generate_mask(spec, height, width, seed=seed)
        save_mask(out, known)
        info(f"wrote {out}: {width}x{height}, {missing_fraction(known):.2%} missing")
