"""A crop of a big photo's inpainting, side by side: the input, biharmonic, OpenCV FSR, the given esdiff
outputs and the truth, each labelled with its PSNR inside the holes of the crop.

    python examples/compare_crop.py runs/speed/inputs/1080-caption.png --mask caption \\
        --esdiff before=runs/speed/outputs/1080-caption_baseline-4706bce.png \\
        --esdiff now=runs/speed/outputs/1080-caption_main.png --box 225,30,480,180 \\
        -o docs/compare_1080_caption.png
    python examples/compare_crop.py runs/speed/inputs/1080-strokes.png --mask strokes:thick \\
        --esdiff now=runs/speed/outputs/1080-strokes_main.png --box 480,210,480,180 \\
        -o docs/compare_1080_strokes.png

The esdiff outputs come from `esdiff inpaint PHOTO --mask SPEC` (`benchmarks/speed.py` keeps them, named
after the case and the folder of the checkout that ran them: `main` here); biharmonic and FSR run here on
the whole photo, so every panel fills the same holes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from compare import panel, sheet  # examples/compare.py, beside this file

from esdiff.io import read_image
from esdiff.masks import resolve_mask
from esdiff.methods import MethodOptions, run_method
from esdiff.metrics import psnr


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("photo", type=Path, help="the true photo")
    parser.add_argument("--mask", default="caption", help="mask spec the outputs were made with")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mask")
    parser.add_argument("--esdiff", action="append", default=[], help="NAME=PATH of an esdiff output")
    parser.add_argument("--box", default="0,0,512,256", help="crop X,Y,W,H")
    parser.add_argument("-o", "--out", type=Path, default=Path("compare_crop.png"))
    args = parser.parse_args()
    truth = read_image(args.photo).pixels.astype(np.float64)
    known = resolve_mask(args.mask, truth.shape[0], truth.shape[1], seed=args.seed).astype(bool)
    observed = truth * known[..., None]
    x, y, w, h = (int(v) for v in args.box.split(","))
    crop = np.s_[y : y + h, x : x + w]
    panels = {"input": observed}
    for method in ("biharmonic", "fsr"):
        panels[method] = run_method(method, observed, known, MethodOptions())
    for pair in args.esdiff:
        name, _, path = pair.partition("=")
        panels[f"esdiff {name}"] = read_image(path).pixels.astype(np.float64)
    panels["truth"] = truth
    tiles = []
    for name, image in panels.items():
        hole = (
            ""
            if name in ("input", "truth")
            else f"\nhole {psnr(image[crop], truth[crop], ~known[crop]):.2f} dB"
        )
        tiles.append(panel(image[crop], name + hole))
    sheet(tiles).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
