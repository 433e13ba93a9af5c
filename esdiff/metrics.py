"""PSNR and SSIM of the paper's evaluation (SPEC 4), on the whole image or on a region such as the holes.

Images are float H x W x C (or H x W) in [0, 1]; peak / data range 1.0. Outputs are not clipped here:
clip them to [0, 1] before measuring, as an 8-bit image file would.
"""

from __future__ import annotations

import math

import numpy as np

from esdiff.errors import EsdiffError

SSIM_SIGMA = 1.5
"""Gaussian window of SSIM (Wang et al. 2004): sigma 1.5, truncated at 3.5 sigma (11 x 11)."""


def _pair(
    x: np.ndarray, ref: np.ndarray, region: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Check shapes; return float64 copies and the region as bool H x W."""
    x, ref = np.asarray(x, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if x.shape != ref.shape:
        raise EsdiffError(f"image and reference differ in shape: {x.shape} vs {ref.shape}")
    if x.ndim not in (2, 3):
        raise EsdiffError(f"expected an H x W or H x W x C image, got shape {x.shape}")
    if region is not None:
        region = np.asarray(region, dtype=bool)
        if region.shape != x.shape[:2]:
            raise EsdiffError(f"region is {region.shape} but the image is {x.shape[:2]} (H x W)")
    return x, ref, region


def psnr(x: np.ndarray, ref: np.ndarray, region: np.ndarray | None = None) -> float:
    """PSNR in dB (peak 1.0) over all channels of the region's pixels (whole image if None).

    Identical images give ``inf``; an empty region gives ``nan``.
    """
    x, ref, region = _pair(x, ref, region)
    err = (x - ref) ** 2
    if region is not None:
        err = err[region]
    if err.size == 0:
        return math.nan
    mse = float(err.mean())
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def ssim(x: np.ndarray, ref: np.ndarray, region: np.ndarray | None = None) -> float:
    """SSIM (Gaussian window sigma 1.5, per channel, data range 1.0), as scikit-image computes it.

    Whole image (``region=None``): scikit-image's mean, which leaves out a 5-pixel border. Region: the
    mean of the full SSIM map (border included) over the region's pixels and all channels; an empty
    region gives ``nan``.
    """
    from skimage.metrics import structural_similarity

    x, ref, region = _pair(x, ref, region)
    try:
        mean, full = structural_similarity(
            x,
            ref,
            gaussian_weights=True,
            sigma=SSIM_SIGMA,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=-1 if x.ndim == 3 else None,
            full=True,
        )
    except ValueError as exc:  # e.g. an image smaller than the 11 x 11 window
        raise EsdiffError(f"cannot compute SSIM on a {x.shape} image: {exc}") from None
    if region is None:
        return float(mean)
    values = full[region]
    return float(values.mean()) if values.size else math.nan


def evaluate(x: np.ndarray, ref: np.ndarray, known: np.ndarray) -> dict[str, float]:
    """PSNR and SSIM on the whole image and on the missing pixels (``~known``); nan if none is missing."""
    missing = ~np.asarray(known, dtype=bool)
    return {
        "psnr": psnr(x, ref),
        "ssim": ssim(x, ref),
        "psnr_missing": psnr(x, ref, missing),
        "ssim_missing": ssim(x, ref, missing),
    }
