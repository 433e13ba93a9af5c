"""A comparison picture: the input, other methods, esdiff and the truth side by side, with PSNR.

    python examples/compare.py --mask caption -o docs/compare_caption.png
    python examples/compare.py photo.png --mask strokes:thick --seed 3 -o strokes.png
    python examples/compare.py --methods biharmonic,fsr,esdiff,esdiff:texture -o fills.png

Without a photo it uses scikit-image's astronaut (256x256), as `examples/sample.py` does. Each panel is
labelled with its PSNR on the whole image and inside the holes (the truth is the photo itself).
``esdiff:texture`` is esdiff with `--fill texture`.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from skimage import data
from skimage.transform import resize

from esdiff.config import DEFAULT_SAMPLER
from esdiff.io import read_image
from esdiff.masks import resolve_mask
from esdiff.methods import MethodOptions, run_method
from esdiff.metrics import psnr

METHODS = ("fsr", "biharmonic", "aloha", "esdiff")
LABEL_HEIGHT = 30


def panel(image: np.ndarray, title: str) -> Image.Image:
    """One labelled tile: the image with its title in a strip underneath."""
    pixels = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    tile = Image.new("RGB", (pixels.shape[1], pixels.shape[0] + LABEL_HEIGHT), "white")
    tile.paste(Image.fromarray(pixels), (0, 0))
    ImageDraw.Draw(tile).multiline_text((4, pixels.shape[0] + 2), title, fill="black", spacing=2)
    return tile


def sheet(tiles: list[Image.Image]) -> Image.Image:
    """The tiles side by side, in order."""
    out = Image.new("RGB", (sum(t.width for t in tiles), tiles[0].height), "white")
    for i, tile in enumerate(tiles):
        out.paste(tile, (i * tiles[0].width, 0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("photo", nargs="?", type=Path, help="photo to mask (default: the astronaut)")
    parser.add_argument("--mask", default="caption", help="mask spec (esdiff mask --help)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mask and the samplers")
    parser.add_argument("-o", "--out", type=Path, default=Path("compare.png"))
    parser.add_argument(
        "--methods", default=",".join(METHODS), help="comma-separated methods (esdiff inpaint --method)"
    )
    args = parser.parse_args()
    if args.photo is None:
        truth = np.asarray(resize(data.astronaut(), (256, 256), anti_aliasing=True), np.float64)
    else:
        truth = read_image(args.photo).pixels.astype(np.float64)
    known = resolve_mask(args.mask, truth.shape[0], truth.shape[1], seed=args.seed)
    observed = np.where(known[..., None], truth, 0.0)
    share = 100 * (~known).mean()
    tiles = [panel(observed, f"input ({args.mask})\n{share:.{0 if share >= 10 else 1}f} % missing")]
    for name in args.methods.split(","):
        method, _, fill = name.partition(":")
        settings = {"config": replace(DEFAULT_SAMPLER, fill=fill)} if fill else {}
        out = run_method(method, truth, known, MethodOptions(seed=args.seed, settings=settings))
        whole, holes = psnr(out, truth), psnr(out, truth, ~known)
        tiles.append(panel(out, f"{name}\n{whole:.2f} dB ({holes:.2f} in holes)"))
        print(f"{name:10s} psnr {whole:6.2f}  holes {holes:6.2f}", flush=True)
    tiles.append(panel(truth, "truth"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet(tiles).save(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
