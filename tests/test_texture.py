"""``esdiff.texture.mirror_detail``: the surroundings' fine detail carried into a hole, mirrored across
its rim; exact on a pattern that is symmetric about the rim, nothing on known or shallow pixels."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from esdiff.metrics import texture
from esdiff.texture import SIGMA, mirror_detail


def stripes(height: int = 96, width: int = 80) -> np.ndarray:
    """``[H, W, 3]``: vertical stripes (a function of the column only), a different phase per channel."""
    cols = np.arange(width)
    rows = [0.5 + 0.2 * np.sin(2 * np.pi * cols / 7 + phase) for phase in (0.0, 1.0, 2.0)]
    return np.broadcast_to(np.stack(rows, -1)[None], (height, width, 3)).copy()


def test_detail_of_a_pattern_constant_along_the_hole_is_the_truths_detail() -> None:
    """A full-width band of missing rows over stripes that do not change down the rows: the mirrored
    detail of every deep missing pixel is the truth's own detail (truth minus its blur) at that pixel,
    so a blurred fill plus it gives back the truth and a texture ratio of 1."""
    truth = stripes()
    known = np.ones(truth.shape[:2], dtype=bool)
    known[30:66] = False
    observed = truth * known[..., None]
    added = mirror_detail(observed, known, start=3)
    blur = np.stack([ndimage.gaussian_filter(truth[..., c], SIGMA, mode="nearest") for c in range(3)], -1)
    deep = np.zeros_like(known)
    deep[34:62] = True  # 4 px or more inside the band: full weight
    np.testing.assert_allclose(added[deep], (truth - blur)[deep], atol=1e-9)
    fill = np.where(known[..., None], truth, blur + added)
    assert abs(texture(fill, truth, known) - 1.0) < 0.02
    assert texture(np.where(known[..., None], truth, blur), truth, known) < 0.3


def test_no_detail_on_known_pixels_or_nearer_than_start() -> None:
    """Zero on known pixels and within ``start - 1`` px (Chebyshev) of one; half at ``start``; and zero
    everywhere when the mask leaves nothing reliable to copy from."""
    truth = np.random.default_rng(0).random((64, 64, 3))
    known = np.ones((64, 64), dtype=bool)
    known[10:50, 12:52] = False
    added = mirror_detail(truth * known[..., None], known, start=8)
    assert not added[known].any()
    assert added[18:42, 20:44].all(axis=-1).mean() > 0.9  # pixels 9 or more inside get detail
    shallow = np.zeros_like(known)
    shallow[10:50, 12:52] = True
    shallow[17:43, 19:45] = False  # depth 1..7
    assert not added[shallow].any()
    ring = np.zeros_like(known)
    ring[17:43, 19:45] = True
    ring[18:42, 20:44] = False  # depth 8: the ramp's first half
    deeper = mirror_detail(truth * known[..., None], known, start=1)
    np.testing.assert_allclose(added[ring], 0.5 * deeper[ring])
    sparse = np.zeros((64, 64), dtype=bool)
    sparse[::4, ::4] = True
    assert not mirror_detail(truth * sparse[..., None], sparse, start=3).any()


def test_texture_fill_gives_a_wide_hole_its_surroundings_detail() -> None:
    """The default sampler (two levels, built-in model, one thread) on a 64x64 crop of a real photo with a
    solid 28 px box: with the texture fill the box's deep pixels carry about the photo's detail (texture
    ratio between 0.6 and 1.3) and over twice the smooth fill's, the same seed gives the same bytes and
    the known pixels come back exactly."""
    from dataclasses import replace

    import torch
    from skimage import data

    from esdiff.config import DEFAULT_SAMPLER
    from esdiff.inpaint import inpaint_image
    from esdiff.masks import resolve_mask

    truth = data.astronaut()[100:164, 150:214] / 255.0
    known = resolve_mask("box:18,20,28,28", 64, 64)
    observed = np.where(known[..., None], truth, 0.0)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = {
            name: inpaint_image(observed, known, seed=3, config=replace(DEFAULT_SAMPLER, steps=2, fill=fill))
            for name, fill in (("smooth", "smooth"), ("texture", "texture"), ("again", "texture"))
        }
    finally:
        torch.set_num_threads(before)
    assert runs["texture"].tobytes() == runs["again"].tobytes()
    assert np.array_equal(runs["texture"][known], observed[known])
    smooth, textured = texture(runs["smooth"], truth, known), texture(runs["texture"], truth, known)
    assert textured > 2 * smooth and 0.6 < textured < 1.3, (smooth, textured)
