"""PSNR and SSIM of the paper's evaluation (SPEC 4), on the whole image or on a region such as the holes,
and the texture ratio of a fill (``texture``), which tells a blur from a detailed fill where PSNR cannot.

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


TEXTURE_SIGMA = 2.0
"""The Gaussian blur (px) whose residual is the texture metric's fine detail."""

TEXTURE_RIM = 3
"""The texture metric counts hole pixels this far or farther (Chebyshev distance) from every known one."""


def grey(x: np.ndarray) -> np.ndarray:
    """Luminance ``0.2125 R + 0.7154 G + 0.0721 B`` (scikit-image's ``rgb2gray``); a 2-D image as it is."""
    x = np.asarray(x, dtype=np.float64)
    return x if x.ndim == 2 else x[..., :3] @ np.array([0.2125, 0.7154, 0.0721])


def detail(x: np.ndarray) -> np.ndarray:
    """Fine detail: ``|g - G_sigma * g|`` of the grey image ``g``, Gaussian sigma ``TEXTURE_SIGMA``
    (mirrored at the image border)."""
    from scipy.ndimage import gaussian_filter

    g = grey(x)
    return np.abs(g - gaussian_filter(g, TEXTURE_SIGMA, mode="mirror"))


def deep_hole(known: np.ndarray, rim: int = TEXTURE_RIM) -> np.ndarray:
    """Missing pixels ``rim`` or more pixels (Chebyshev) from every known one, H x W bool."""
    from scipy.ndimage import binary_dilation

    known = np.asarray(known, dtype=bool)
    near = binary_dilation(known, np.ones((3, 3), dtype=bool), iterations=rim - 1) if rim > 1 else known
    return ~near


def texture(x: np.ndarray, ref: np.ndarray, known: np.ndarray) -> float:
    """Fine-detail energy of ``x`` inside the hole relative to the truth's: the mean of ``detail(x)`` over
    ``deep_hole(known)`` divided by the mean of ``detail(ref)`` there. 1 for the truth, below 1 for a
    fill smoother than the photo (0: no detail at all), above 1 for a noisier one; nan when no pixel is
    that deep in a hole (random and thin masks) or the truth has no detail there."""
    x, ref, region = _pair(x, ref, known)
    assert region is not None
    deep = deep_hole(region)
    if not deep.any():
        return math.nan
    truth = float(detail(ref)[deep].mean())
    return float(detail(x)[deep].mean()) / truth if truth > 0 else math.nan


def evaluate(x: np.ndarray, ref: np.ndarray, known: np.ndarray) -> dict[str, float]:
    """PSNR and SSIM on the whole image and on the missing pixels (``~known``), nan if none is missing;
    the texture ratio of the hole (``texture``)."""
    missing = ~np.asarray(known, dtype=bool)
    return {
        "psnr": psnr(x, ref),
        "ssim": ssim(x, ref),
        "psnr_missing": psnr(x, ref, missing),
        "ssim_missing": ssim(x, ref, missing),
        "texture_missing": texture(x, ref, known),
    }
