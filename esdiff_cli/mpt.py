"""`esdiff mpt`: show the 12-channel MPT object of an image and prove the round trip exact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from esdiff_cli.common import MAX_SEED, cli_errors, fail, info


def command(
    image: Annotated[Path, typer.Argument(help="Image file (PNG, JPEG, TIFF, BMP).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Folder for the object and the picture.")],
    ratio: Annotated[
        float, typer.Option(help="Perturbation ratio: swap where z >= ratio, z ~ N(0,1).")
    ] = 2.81,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed of the virtual mask.")] = 0,
    check: Annotated[bool, typer.Option("--check", help="Verify impt(mpt(x)) == x exactly.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")] = False,
) -> None:
    """Encode IMAGE with the mutual perturbation transform (SPEC 1).

    Writes OUT/<stem>_mpt.safetensors (the 12-channel object and the virtual keep-mask) and
    OUT/<stem>_mpt.png (the four RGB groups and the swap map side by side).
    """
    with cli_errors():
        if ratio < 0:
            raise fail(f"--ratio must be >= 0 (got {ratio}); 0 swaps half the pixels, 2.81 swaps 0.25 %")
        from esdiff.mpt_tool import encode_image, output_paths, write_outputs

        if out.exists() and not out.is_dir():
            raise fail(f"{out}: exists and is not a folder")
        existing = [p for p in output_paths(image.stem, out) if p.exists()]
        if existing and not overwrite:
            raise fail(f"{existing[0]}: exists (use --overwrite to replace it)")
        result = encode_image(image, ratio=ratio, seed=seed)
        tensors, picture = write_outputs(result, out)
        info(
            f"swap fraction {result.swap_fraction:.4%} (expected 1 - Phi({ratio:g}) = {result.expected:.4%})"
        )
        info(f"wrote {tensors}")
        info(f"wrote {picture}")
        if check:
            if not result.round_trip_exact:
                raise fail("round trip NOT exact: impt(mpt(x)) differs from x", 1)
            info("round trip exact: impt(mpt(x)) == x for all four groups")
