"""Coarse to fine for big photos, as large-image inpainting tools work: inpaint a downscaled copy, where a
caption's strokes are about as wide as on the small photos the sampler is tuned on, upsample its fill as
the start, and refine only the holes at full resolution with a few levels from a lower noise level.

1. The coarse pass: the photo and its mask downscaled (area averages; a coarse pixel counts as known where
   more than half of it is, with the mean of its known pixels) to ``cfg.coarse_side`` on the long side,
   run through the whole-image sampler with the config as it is.
2. The start: the coarse result upsampled (bilinear) in the holes, the observation elsewhere.
3. The refinement: ``cfg.refine_steps`` levels from ``cfg.refine_t_start`` to the full-resolution mask's
   end (``schedule.for_mask``), the ADMM state from the SVD of the start (``lowrank.svd_start``), in
   blocks of ``BAND`` rows by ``BLOCK_WIDTH`` columns with ``OVERLAP`` pixels of context on every side,
   each block running all its levels before the next (so only one block's ADMM state is held, whatever
   the photo's size), blended linearly where blocks overlap. Tiles and low-rank patches without a
   missing pixel are skipped as always. The refinement runs with the smooth fill; with the texture fill
   the result then takes the detail of the surroundings (``texture.mirror_detail``) in its holes.

Known pixels stay exact; a seed gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from esdiff.config import COARSE_ABOVE, SamplerConfig
from esdiff.image_sampling import sample_whole_image
from esdiff.sampler import NEAR_REACH, StepList
from esdiff.schedule import for_mask
from esdiff.sde import VESDE
from esdiff.texture import mirror_detail
from esdiff.transforms import Encoding

RIM_LENGTH = 4.0
"""Coarse pixels over which the rim correction (``rim_correction``) fades by a factor e into a hole."""
RIM_SIGMA = 2.0
"""Full-resolution pixels of the Gaussian that smooths the rim correction along the rim."""
BAND = 128
"""Rows of the full-resolution image each refinement block keeps."""
BLOCK_WIDTH = 1024
"""Columns of the full-resolution image each refinement block keeps."""
OVERLAP = 32
"""Pixels of context a block reads on each side of those it keeps, over which neighbours are blended."""


def coarse_size(height: int, width: int, cfg: SamplerConfig) -> tuple[int, int] | None:
    """The coarse pass's ``(height, width)`` for an image of that size: the long side at
    ``cfg.coarse_side``, the aspect kept; None where the image runs at full resolution (coarse to fine off,
    or the long side at most ``COARSE_ABOVE`` times ``coarse_side``)."""
    side = cfg.coarse_side
    if side is None or cfg.sampling != "image" or max(height, width) <= COARSE_ABOVE * side:
        return None
    scale = side / max(height, width)
    return max(round(height * scale), 1), max(round(width * scale), 1)


def downscale(
    observed: np.ndarray, known: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """``observed [H, W, 3]`` and ``known [H, W]`` at ``size``: area averages of the known pixels; a coarse
    pixel is known where more than half of its area is."""
    mask = torch.from_numpy(np.ascontiguousarray(known, dtype=np.float64))[None, None]
    image = torch.from_numpy(np.ascontiguousarray(observed, dtype=np.float64)).permute(2, 0, 1)[None]
    share = F.interpolate(mask, size=size, mode="area")
    mean = F.interpolate(image * mask, size=size, mode="area") / share.clamp_min(1e-12)
    small_known = (share > 0.5)[0, 0]
    small = torch.where(small_known, mean[0], 0.0).permute(1, 2, 0)
    return small.numpy(), small_known.numpy()


def upsample(image: np.ndarray, size: tuple[int, int]) -> Tensor:
    """``image [h, w, 3]`` -> ``[3, H, W]`` float32, bilinear."""
    small = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    return F.interpolate(small, size=size, mode="bilinear", align_corners=False)[0]


def rim_correction(observed: np.ndarray, known: np.ndarray, upsampled: Tensor, length: float) -> Tensor:
    """``[3, H, W]``: what the upsampled coarse fill needs in the holes to meet the full-resolution known
    pixels at the rim: each missing pixel takes the residual (observation minus ``upsampled``) of its
    nearest known pixel, smoothed (``RIM_SIGMA``), fading as ``exp(-distance / length)`` into the hole;
    zero on known pixels."""
    filled = upsampled.permute(1, 2, 0).double().numpy()
    residual = np.where(known[..., None], observed - filled, 0.0)
    distance, (rows, cols) = ndimage.distance_transform_edt(~known, return_indices=True)
    nearest = residual[rows, cols]
    smooth = ndimage.gaussian_filter(nearest, (RIM_SIGMA, RIM_SIGMA, 0))
    fade = np.where(known, 0.0, np.exp(-distance / length))
    return torch.from_numpy(smooth * fade[..., None]).permute(2, 0, 1)


def bands(length: int, size: int | None = None) -> list[tuple[int, int]]:
    """The rows (or columns) ``[top, bottom)`` the refinement blocks keep, ``size`` (default ``BAND``) at
    a time."""
    size = BAND if size is None else size
    return [(top, min(top + size, length)) for top in range(0, length, size)]


def _spans(length: int, size: int | None = None) -> list[tuple[int, int, int, int]]:
    """``bands`` with the rows each reads: ``(top, bottom, lo, hi)``, ``OVERLAP`` more on either side."""
    return [(a, b, max(a - OVERLAP, 0), min(b + OVERLAP, length)) for a, b in bands(length, size)]


def band_weight(top: int, bottom: int, lo: int, hi: int) -> Tensor:
    """``[hi - lo]``: a block's weight on the rows (or columns) ``[lo, hi)`` it reads, 1 on those ``[top,
    bottom)`` it keeps, falling linearly towards 0 over the ``OVERLAP`` of context beyond them."""
    rows = torch.arange(lo, hi, dtype=torch.float64)
    one = torch.ones_like(rows)
    above = torch.where(rows < top, (rows - (top - OVERLAP) + 1) / (OVERLAP + 1), one)
    below = torch.where(rows >= bottom, (bottom - 1 + OVERLAP - rows + 1) / (OVERLAP + 1), one)
    return torch.minimum(above, below)


def sample_coarse_to_fine(
    observed: np.ndarray,
    known: np.ndarray,
    *,
    score: Callable[[Tensor, float], Tensor],
    encoding: Encoding,
    sde: VESDE,
    step_list: StepList,
    cfg: SamplerConfig,
    seed: int,
    device: str,
    progress: Callable[[float, int], None],
) -> np.ndarray:
    """The module's three stages on ``observed [H, W, 3]`` (zeros where ``known [H, W]`` is False) with
    the unresolved ``cfg`` (each scale resolves it for its own mask, ``schedule.for_mask``); float64
    ``[H, W, 3]`` like ``sample_whole_image``. ``progress(done, cfg.steps)`` runs once through both passes,
    each block's share by its missing pixels."""
    height, width = known.shape
    size = coarse_size(height, width, cfg)
    if size is None:
        raise ValueError(f"a {height}x{width} image runs at full resolution (coarse_side {cfg.coarse_side})")
    small_observed, small_known = downscale(observed, known, size)
    plain = replace(cfg, coarse_side=None)
    coarse_cfg = for_mask(plain, small_known, sde.eps)
    fine = for_mask(plain, known, sde.eps)
    t_start = max(cfg.refine_t_start, fine.t_end if fine.t_end is not None else 0.0)
    fine = replace(fine, steps=cfg.refine_steps, t_start=t_start)
    # The coarse fill carries the texture fill's FSR pixels already; FSR's own fill at full resolution
    # would outline every letter where it meets the upsampled one: the refinement runs smooth and its
    # result takes the surroundings' detail (esdiff.texture) from where pnp-near stops.
    textured = fine.fill == "texture"
    fine = replace(fine, fill="smooth", low_rank=replace(fine.low_rank, init="svd"))

    # progress: the coarse pass and each block by their missing pixels times their levels
    blocks = [(rows, cols) for rows in _spans(height) for cols in _spans(width, BLOCK_WIDTH)]
    work = [coarse_cfg.steps * float((~small_known).sum())]
    work += [fine.steps * float((~known[r[2] : r[3], c[2] : c[3]]).sum()) for r, c in blocks]
    total = max(sum(work), 1.0)
    done = [0.0]

    def part(k: int) -> Callable[[float, int], None]:
        def report(step: float, steps: int) -> None:
            progress(cfg.steps * (done[0] + work[k] * step / steps) / total, cfg.steps)

        return report

    coarse = sample_whole_image(
        small_observed,
        small_known,
        score=score,
        encoding=encoding,
        sde=sde,
        step_list=step_list,
        cfg=coarse_cfg,
        seed=seed,
        device=device,
        progress=part(0),
    )
    done[0] += work[0]
    y = torch.from_numpy(np.ascontiguousarray(observed, dtype=np.float32)).permute(2, 0, 1)
    mask = torch.from_numpy(np.ascontiguousarray(known))[None]
    upsampled = upsample(coarse, (height, width))
    length = RIM_LENGTH * max(height, width) / max(size)
    start = torch.where(mask, y, upsampled + rim_correction(observed, known, upsampled, length))
    if fine.steps == 0:
        result = start.double().permute(1, 2, 0).numpy()
    else:
        total_image = torch.zeros(3, height, width, dtype=torch.float64)
        weights = torch.zeros(height, width, dtype=torch.float64)
        for k, ((top, bottom, lo, hi), (left, right, first, last)) in enumerate(blocks, start=1):
            box = np.s_[lo:hi, first:last]
            if known[box].all():
                out = start[:, lo:hi, first:last].double()
            else:
                sampled = sample_whole_image(
                    observed[box],
                    known[box],
                    score=score,
                    encoding=encoding,
                    sde=sde,
                    step_list=step_list,
                    cfg=fine,
                    seed=seed + k,
                    device=device,
                    progress=part(k),
                    start=start[:, lo:hi, first:last],
                )
                out = torch.from_numpy(sampled).permute(2, 0, 1)
            w = band_weight(top, bottom, lo, hi)[:, None] * band_weight(left, right, first, last)[None, :]
            total_image[:, lo:hi, first:last] += w * out
            weights[lo:hi, first:last] += w
            done[0] += work[k]
            progress(cfg.steps * done[0] / total, cfg.steps)
        result = (total_image / weights).permute(1, 2, 0).numpy()
    if textured:
        result += mirror_detail(observed, known, start=NEAR_REACH + 1)  # beyond pnp-near's estimate
    np.copyto(result, observed, where=known[..., None])
    return result
