"""The `esdiff mpt` job: encode one image with MPT, check the round trip, render a readable picture."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from esdiff.io import atomic_write_bytes, encode_png, read_image
from esdiff.transforms import expected_swap_fraction, impt, mpt, virtual_mask


@dataclass(frozen=True)
class MPTResult:
    name: str
    obj: torch.Tensor
    """The 12-channel object ``[12, H, W]``."""
    keep: torch.Tensor
    """The virtual keep-mask ``[H, W]`` (True = not swapped)."""
    swap_fraction: float
    expected: float
    round_trip_exact: bool


def encode_image(path: Path, *, ratio: float = 2.81, seed: int = 0) -> MPTResult:
    """MPT of a whole image with a virtual mask of the image's size (SPEC 1, Eq. 7)."""
    image = read_image(path)
    x = torch.from_numpy(image.pixels).permute(2, 0, 1)[None]
    keep = virtual_mask(ratio, tuple(x.shape[-2:]), seed)  # type: ignore[arg-type]
    obj = mpt(x, keep)
    estimates = impt(obj, keep)
    exact = all(torch.equal(estimates[0, k], x[0]) for k in range(4))
    swapped = float((~keep).double().mean())
    return MPTResult(Path(path).stem, obj[0], keep, swapped, expected_swap_fraction(ratio), exact)


def picture(result: MPTResult, gap: int = 4) -> np.ndarray:
    """The four RGB groups and the swap map (white = swapped) side by side, like the paper's Fig. 2."""
    groups = result.obj.unflatten(0, (4, 3)).permute(0, 2, 3, 1).numpy()
    swap = np.repeat((~result.keep).numpy()[..., None].astype(np.float32), 3, axis=2)
    panels = [*groups, swap]
    height = panels[0].shape[0]
    spacer = np.ones((height, gap, 3), np.float32)
    row: list[np.ndarray] = []
    for panel in panels:
        row += [panel, spacer]
    return np.concatenate(row[:-1], axis=1)


def output_paths(stem: str, folder: Path) -> tuple[Path, Path]:
    """Where ``write_outputs`` puts the object and the picture of the image named ``stem``."""
    return folder / f"{stem}_mpt.safetensors", folder / f"{stem}_mpt.png"


def write_outputs(result: MPTResult, folder: Path) -> tuple[Path, Path]:
    """Write ``<stem>_mpt.safetensors`` and ``<stem>_mpt.png`` atomically into ``folder``."""
    from safetensors.torch import save

    folder.mkdir(parents=True, exist_ok=True)
    tensors, png = output_paths(result.name, folder)
    data = save(
        {"object": result.obj.contiguous(), "keep": result.keep.contiguous()},
        metadata={
            "layout": "R,G,B | RG group | GB group | BR group",
            "swap_fraction": str(result.swap_fraction),
        },
    )
    atomic_write_bytes(tensors, data)
    atomic_write_bytes(png, encode_png(picture(result)))
    return tensors, png
