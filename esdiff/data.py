"""Training data: a folder of a few images, and random 64x64 crops drawn with a torch.Generator (SPEC 2)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from esdiff.errors import EsdiffError
from esdiff.io import IMAGE_SUFFIXES, list_images, read_image


def load_training_images(folder: str | os.PathLike[str], patch: int = 64) -> list[np.ndarray]:
    """Every readable image directly in ``folder`` as float32 ``H x W x 3``, sorted by file name (see
    :func:`load_named_images`)."""
    return [pixels for _, pixels in load_named_images(folder, patch)]


def load_named_images(folder: str | os.PathLike[str], patch: int = 64) -> list[tuple[Path, np.ndarray]]:
    """Every readable image directly in ``folder`` with its path, as float32 ``H x W x 3``, sorted by
    file name.

    Unreadable files are skipped with a warning; an empty folder, a folder with no readable image, or an
    image smaller than ``patch`` on a side is an EsdiffError.
    """
    folder = Path(folder)
    if folder.is_file():
        raise EsdiffError(f"{folder}: is a file; give the folder that holds the training images")
    paths = list_images(folder)
    if not paths:
        raise EsdiffError(f"{folder}: no images found (looked for {', '.join(IMAGE_SUFFIXES)})")
    images: list[tuple[Path, np.ndarray]] = []
    skipped: list[str] = []
    for path in paths:
        try:
            pixels = read_image(path).pixels
        except EsdiffError as exc:
            skipped.append(str(exc))
            continue
        h, w = pixels.shape[:2]
        if h < patch or w < patch:
            raise EsdiffError(f"{path}: {w}x{h} pixels is smaller than the {patch}x{patch} training patch")
        images.append((path, pixels))
    if not images:
        raise EsdiffError(f"{folder}: none of the {len(paths)} image files could be read ({skipped[0]})")
    for reason in skipped:
        warnings.warn(f"skipping {reason}", stacklevel=2)
    return images


HOLDOUT_MIN_IMAGES = 3
"""The fewest training images from which :func:`holdout_indices` holds one out (two stay to train on)."""


def holdout_indices(count: int) -> list[int]:
    """Which of ``count`` training images (sorted by name) to hold out for validation when no validation
    images are given: none below ``HOLDOUT_MIN_IMAGES``, one of up to eight, two of more, spread over
    the list (the middle one; or the ones a quarter and three quarters of the way)."""
    if count < HOLDOUT_MIN_IMAGES:
        return []
    held = 1 if count <= 8 else 2
    return [(2 * k + 1) * count // (2 * held) for k in range(held)]


class CropSampler:
    """Random ``size x size`` crops: ``crops_per_image`` from every image per draw, optional h-flips and
    90-degree rotations.

    Images are kept as CPU float32 tensors ``[3, H, W]``. All randomness comes from the generator passed
    to :meth:`sample`, in a fixed order, so a saved generator state replays the same crops.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray | Tensor],
        size: int = 64,
        crops_per_image: int = 1,
        flips: bool = False,
        rotations: bool = False,
    ) -> None:
        if not images:
            raise EsdiffError("no training images")
        if crops_per_image < 1:
            raise EsdiffError(f"crops per image must be at least 1, got {crops_per_image}")
        self.images = [_as_chw(img) for img in images]
        for i, img in enumerate(self.images):
            if img.shape[1] < size or img.shape[2] < size:
                raise EsdiffError(f"image {i}: {img.shape[2]}x{img.shape[1]} is smaller than {size}x{size}")
        self.size = size
        self.crops_per_image = crops_per_image
        self.flips = flips
        self.rotations = rotations

    @property
    def batch_size(self) -> int:
        return len(self.images) * self.crops_per_image

    def sample(self, generator: torch.Generator) -> Tensor:
        """One batch ``[len(images) * crops_per_image, 3, size, size]`` on the CPU, image-major."""
        crops = []
        for img in self.images:
            _, h, w = img.shape
            for _ in range(self.crops_per_image):
                top = int(torch.randint(0, h - self.size + 1, (1,), generator=generator))
                left = int(torch.randint(0, w - self.size + 1, (1,), generator=generator))
                crop = img[:, top : top + self.size, left : left + self.size]
                if self.flips and bool(torch.rand((), generator=generator) < 0.5):
                    crop = crop.flip(-1)
                if self.rotations:
                    crop = crop.rot90(int(torch.randint(0, 4, (1,), generator=generator)), dims=(1, 2))
                crops.append(crop)
        return torch.stack(crops)


def _as_chw(img: np.ndarray | Tensor) -> Tensor:
    t = torch.as_tensor(np.asarray(img, dtype=np.float32) if isinstance(img, np.ndarray) else img)
    if t.dim() != 3 or t.shape[2] != 3:
        raise EsdiffError(f"expected an H x W x 3 image, got shape {tuple(t.shape)}")
    return t.float().permute(2, 0, 1).contiguous()
