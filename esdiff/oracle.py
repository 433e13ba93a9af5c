"""Oracle selection of sampler iterates by PSNR against the ground truth, for `esdiff evaluate` only.

The lab's code behind the paper's figures keeps, for every 64x64 patch, the iterate with the highest PSNR
against the true patch and stops a patch after 100 steps without improvement (SPEC step 5); a user has no
ground truth, so `esdiff inpaint` never does this. Here the same sampler run yields three images: the
honest final iterate (bit for bit what ``inpaint_image`` returns), the best iterate per image (one step
for the whole image) and the best iterate per patch (each patch's own step, then stitched). Their gap to
the final iterate is how much of a published figure selection can explain.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from esdiff.config import DEFAULT_SAMPLER, SamplerConfig
from esdiff.errors import EsdiffError
from esdiff.metrics import psnr
from esdiff.patches import PatchBatch, PatchGrid, Stitch, make_grid

LAB_PATIENCE = 100
"""Steps without improvement after which the lab's code stops a patch."""
PATIENCE_SIGMA = 1.0
"""The patience counts from the first step at or below this noise level: from t = 1 (sigma 378) the
first hundred iterates are noise, so one of them "wins" by chance and stops the patch there, far too
early. The default start is below it."""


@dataclass
class OracleRun:
    """The three images of one run and what the selection chose."""

    final: np.ndarray
    best_image: np.ndarray
    best_patch: np.ndarray
    best_step: int
    """The step (1-based) whose stitched image scores best."""
    patch_steps: list[int] = field(default_factory=list)
    """Each sampled patch's chosen step, in the order the patches ran."""


class Tracker:
    """Watches every patch iterate of a patch-sampler run (``inpaint_image(observe=...)``): the running
    stitch sums of each step's iterates and each patch's best iterate so far."""

    def __init__(
        self,
        truth: np.ndarray,
        observed: np.ndarray,
        grid: PatchGrid,
        steps: int,
        patience: int | None,
        counts_from: int = 1,
    ) -> None:
        """``patience``: steps without improvement that stop a patch's selection, counted from step
        ``counts_from`` (1-based) on; None: the best of all steps."""
        self.grid = grid
        self.truth = torch.from_numpy(np.ascontiguousarray(truth, dtype=np.float32)).permute(2, 0, 1)
        self.observed = torch.from_numpy(np.ascontiguousarray(observed, dtype=np.float32)).permute(2, 0, 1)
        self.patience = patience
        self.counts_from = counts_from
        # float32 sums per step, [steps, 3, H, W]: 0.8 GB for 1000 steps of a 256x256 image
        self.sums = torch.zeros(steps, *self.truth.shape)
        self.cover = torch.zeros(self.truth.shape[-2:], dtype=torch.int32)
        self.best: dict[int, tuple[float, int, Tensor]] = {}
        self.order: list[int] = []
        self.cuts: dict[tuple[int, ...], tuple[Tensor, Tensor]] = {}

    def __call__(self, batch: PatchBatch, step: int, x: Tensor) -> None:
        # stitched as the sampler's output is, then clipped: the last step's image is the final one
        x = torch.where(batch.known.cpu(), batch.y.cpu().float(), x.detach().float().cpu())
        truth, inside = self._cut(batch.indices)
        squared = (x.clamp(0.0, 1.0) - truth) ** 2 * inside
        errors = squared.flatten(1).sum(1) / (3 * inside.flatten(1).sum(1))
        for patch, k, error in zip(x, batch.indices, errors.tolist(), strict=True):
            rows, cols, prow, pcol = self.grid.inner_box(k)
            self.sums[step - 1, :, rows, cols] += patch[:, prow, pcol]
            if step == 1:
                self.cover[rows, cols] += 1
                self.order.append(k)
            best = self.best.get(k)
            stopped = (
                best is not None
                and self.patience is not None
                and step - max(best[1], self.counts_from) > self.patience
            )
            if not stopped and (best is None or error < best[0]):
                self.best[k] = (error, step, patch.clone())

    def _cut(self, indices: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        """The true patches of a batch and where they lie in the image, cut once per batch, not per step."""
        if indices not in self.cuts:
            ones = torch.ones(1, *self.truth.shape[-2:])
            self.cuts[indices] = (self.grid.cut(self.truth, indices), self.grid.cut(ones, indices))
        return self.cuts[indices]

    def result(self, final: np.ndarray) -> OracleRun:
        """The best stitched step and the stitch of each patch's best iterate, beside ``final``."""
        covered = self.cover > 0
        truth = self.truth.permute(1, 2, 0).numpy()
        scores = [psnr(self._image(sums, covered), truth) for sums in self.sums]
        best_step = int(np.argmax(scores))
        stitch = Stitch(self.grid, (3,))
        ordered = sorted(self.order)
        stitch.add(torch.stack([self.best[k][2] for k in ordered]), ordered)
        patches = stitch.result(torch.float32, uncovered=self.observed)
        return OracleRun(
            final=final,
            best_image=self._image(self.sums[best_step], covered),
            best_patch=_finish(patches),
            best_step=best_step + 1,
            patch_steps=[self.best[k][1] for k in self.order],
        )

    def _image(self, sums: Tensor, covered: Tensor) -> np.ndarray:
        return _finish(torch.where(covered, sums / self.cover.clamp_min(1), self.observed))


def _finish(image: Tensor) -> np.ndarray:
    """``[3, H, W]`` -> HxWx3 float64 in [0, 1] (known pixels: the caller copies them in)."""
    return np.clip(image.permute(1, 2, 0).numpy().astype(np.float64), 0.0, 1.0)


def oracle_inpaint(
    image: np.ndarray,
    known: np.ndarray,
    *,
    seed: int = 0,
    device: str = "cpu",
    model: str | Path | None = None,
    config: SamplerConfig | None = None,
    steps: int | None = None,
    step_list: str | None = None,
    patience: int | None = LAB_PATIENCE,
    **settings: object,
) -> OracleRun:
    """``inpaint_image`` on ``image`` with its missing pixels hidden, watched by a ``Tracker`` that scores
    every iterate against ``image`` itself. ``patience``: stop a patch's selection after that many steps
    without improvement (the lab's 100; None: the best of all steps), counted from the first step at
    or below ``PATIENCE_SIGMA``. Known pixels of all three images are ``image``'s."""
    from esdiff.inpaint import inpaint_image
    from esdiff.prior import load
    from esdiff.schedule import for_mask, noise_schedule

    cfg = config or DEFAULT_SAMPLER
    if steps is not None:
        cfg = replace(cfg, steps=steps)
    if cfg.shifts != 1:
        raise EsdiffError("the oracle watches the iterates of one grid: use shifts 1")
    observed = np.where(known[..., None], image, 0.0)
    height, width = known.shape
    sde = load(str(model) if model else None, device)[2]
    sigmas, _ = noise_schedule(sde, cfg.steps, cfg.t_start, for_mask(cfg, known, sde.eps).t_end)
    counts_from = 1 + int((sigmas > PATIENCE_SIGMA).sum())
    tracker = Tracker(image, observed, make_grid(height, width, cfg.tiling), cfg.steps, patience, counts_from)
    final = inpaint_image(
        observed,
        known,
        seed=seed,
        device=device,
        model=model,
        config=cfg,
        step_list=step_list,
        observe=tracker,
        **settings,  # type: ignore[arg-type]
    )
    run = tracker.result(final)
    for picture in (run.best_image, run.best_patch):
        np.copyto(picture, image, where=known[..., None])
    return run
