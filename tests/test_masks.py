"""Mask generators (seeded, exact fractions) and mask files (LaMa convention: white = missing)."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from esdiff.errors import EsdiffError
from esdiff.masks import (
    generate_mask,
    is_mask_spec,
    load_mask,
    missing_fraction,
    resolve_mask,
    save_mask,
)

SEEDED = [
    "random:0.8",
    "block:16:0.3",
    "text1",
    "text2",
    "caption",
    "caption:20",
    "strokes:thin",
    "strokes:medium",
    "strokes:thick",
    "scratches:thin",
    "scratches:thick",
]


@pytest.mark.parametrize("spec", [*SEEDED, "box:10,20,30,40"])
def test_generators_are_deterministic(spec: str) -> None:
    a, b = generate_mask(spec, 96, 80, seed=3), generate_mask(spec, 96, 80, seed=3)
    assert a.dtype == bool and a.shape == (96, 80)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("spec", SEEDED)
def test_seed_changes_mask(spec: str) -> None:
    assert not np.array_equal(generate_mask(spec, 96, 80, seed=0), generate_mask(spec, 96, 80, seed=1))


@pytest.mark.parametrize("p", [0.0, 0.5, 0.7, 0.8, 0.9, 0.999])
def test_random_fraction_is_exact(p: float) -> None:
    known = generate_mask(f"random:{p}", 256, 256, seed=1)
    assert (~known).sum() == round(p * 256 * 256)


def test_block_fraction_and_block_size() -> None:
    size, p = 12, 0.4
    known = generate_mask(f"block:{size}:{p}", 100, 90, seed=2)
    assert missing_fraction(known) >= p
    assert missing_fraction(known) < p + size * size / (100 * 90) + 1e-12  # stops at the first block past P
    # Every missing pixel lies in some all-missing size x size square (holes are unions of blocks).
    windows = np.lib.stride_tricks.sliding_window_view(~known, (size, size)).all(axis=(2, 3))
    covered = np.zeros_like(known)
    for dr in range(size):
        for dc in range(size):
            covered[dr : dr + windows.shape[0], dc : dc + windows.shape[1]] |= windows
    np.testing.assert_array_equal(covered, ~known)


def test_box_is_exact_and_clipped() -> None:
    known = generate_mask("box:10,20,30,40", 64, 128)
    expected = np.ones((64, 128), dtype=bool)
    expected[20:60, 10:40] = False
    np.testing.assert_array_equal(known, expected)
    clipped = generate_mask("box:-5,50,20,100", 64, 128)
    assert (~clipped).sum() == 15 * 14 and not clipped[50:, :15].any()


def test_text_masks_fractions() -> None:
    fractions = {
        name: np.mean([missing_fraction(generate_mask(name, 256, 256, seed=s)) for s in range(4)])
        for name in ("text1", "text2")
    }
    assert 0.10 <= fractions["text1"] <= 0.15
    assert 0.03 <= fractions["text2"] <= 0.06
    assert fractions["text1"] > fractions["text2"]


@pytest.mark.parametrize("name", ["text1", "text2"])
def test_text_masks_keep_fraction_on_small_images(name: str) -> None:
    big = missing_fraction(generate_mask(name, 256, 256, seed=0))
    small = missing_fraction(generate_mask(name, 64, 64, seed=0))
    assert small == pytest.approx(big, abs=0.01)


def test_text_mask_bitmap_font_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import ImageFont

    original = ImageFont.load_default

    def no_freetype(size: float | None = None) -> ImageFont.ImageFont:
        if size is not None:
            raise ImportError("The _imagingft C module is not installed")
        return original()

    monkeypatch.setattr(ImageFont, "load_default", no_freetype)
    frac = missing_fraction(generate_mask("text1", 256, 256))
    assert 0.05 < frac < 0.25


@pytest.mark.parametrize(
    "spec",
    [
        "random:1.0",
        "random:-0.1",
        "random:abc",
        "random:",
        "block:0:0.5",
        "block:-4:0.5",
        "block:8",
        "block:8:1.5",
        "block:500:0.5",
        "box:1,2,3",
        "box:1,2,0,4",
        "box:a,b,c,d",
        "box:300,0,10,10",
        "text3",
        "circle:5",
    ],
)
def test_bad_specs_raise(spec: str) -> None:
    with pytest.raises(EsdiffError, match="mask spec"):
        generate_mask(spec, 64, 64)


def test_bad_size_or_seed_raise() -> None:
    with pytest.raises(EsdiffError, match="positive"):
        generate_mask("random:0.5", 0, 64)
    with pytest.raises(EsdiffError, match="seed"):
        generate_mask("text1", 64, 64, seed=-1)


def test_is_mask_spec() -> None:
    for spec in ["random:0.5", "block:8:0.2", "box:0,0,4,4", "text1", "text2", "random:bad"]:
        assert is_mask_spec(spec)
    for path in ["mask.png", "text1.png", "C:\\masks\\m.png", "random", "masks/random:0.5.png"]:
        assert not is_mask_spec(path)


def test_save_load_round_trip(tmp_path: Path) -> None:
    known = generate_mask("random:0.5", 33, 47, seed=5)
    save_mask(tmp_path / "m.png", known)
    raw = iio.imread(tmp_path / "m.png")
    assert raw.dtype == np.uint8 and set(np.unique(raw)) == {0, 255}
    assert raw[~known].min() == 255  # white = missing
    np.testing.assert_array_equal(load_mask(tmp_path / "m.png"), known)
    np.testing.assert_array_equal(load_mask(tmp_path / "m.png", invert=True), ~known)


def test_16bit_rgb_rgba_and_npy_masks(tmp_path: Path) -> None:
    known = generate_mask("box:2,3,5,4", 16, 20)
    missing = ~known
    iio.imwrite(tmp_path / "m16.png", np.where(missing, 40000, 30000).astype(np.uint16))
    rgb = np.zeros((16, 20, 3), dtype=np.uint8)
    rgb[..., 1] = np.where(missing, 200, 0)  # only one colour channel marks the hole
    iio.imwrite(tmp_path / "rgb.png", rgb)
    rgba = np.concatenate([rgb, np.full((16, 20, 1), 255, np.uint8)], axis=-1)
    iio.imwrite(tmp_path / "rgba.png", rgba)
    iio.imwrite(tmp_path / "m.bmp", np.where(missing, 255, 0).astype(np.uint8))
    np.save(tmp_path / "b.npy", missing)
    np.save(tmp_path / "f.npy", missing.astype(np.float32))
    np.save(tmp_path / "i.npy", missing.astype(np.int64))
    for name in ["m16.png", "rgb.png", "rgba.png", "m.bmp", "b.npy", "f.npy", "i.npy"]:
        np.testing.assert_array_equal(load_mask(tmp_path / name), known, err_msg=name)


def test_zero_one_png_counts_ones_as_missing(tmp_path: Path) -> None:
    known = generate_mask("box:2,3,5,4", 16, 20)
    iio.imwrite(tmp_path / "m01.png", (~known).astype(np.uint8))
    np.testing.assert_array_equal(load_mask(tmp_path / "m01.png"), known)


def test_unreadable_files_raise(tmp_path: Path) -> None:
    (tmp_path / "fake.png").write_text("not an image")
    with pytest.raises(EsdiffError, match="cannot read mask"):
        load_mask(tmp_path / "fake.png")
    with pytest.raises(EsdiffError, match="cannot read mask"):
        load_mask(tmp_path / "absent.png")
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4, 5)))
    with pytest.raises(EsdiffError, match="cannot read mask"):
        load_mask(tmp_path / "cube.npy")


def test_size_mismatch_raises(tmp_path: Path) -> None:
    save_mask(tmp_path / "m.png", np.ones((30, 40), dtype=bool))
    with pytest.raises(EsdiffError, match="30x40.*32x40"):
        load_mask(tmp_path / "m.png", shape=(32, 40))
    with pytest.raises(EsdiffError, match="30x40"):
        resolve_mask(str(tmp_path / "m.png"), 32, 40)


def test_resolve_mask(tmp_path: Path) -> None:
    np.testing.assert_array_equal(
        resolve_mask("random:0.3", 20, 30, seed=4), generate_mask("random:0.3", 20, 30, seed=4)
    )
    with pytest.raises(EsdiffError, match="invert-mask applies to mask files"):
        resolve_mask("text2", 64, 64, invert=True)
    known = generate_mask("block:4:0.2", 20, 30)
    save_mask(tmp_path / "m.png", known)
    np.testing.assert_array_equal(resolve_mask(str(tmp_path / "m.png"), 20, 30), known)
    np.testing.assert_array_equal(resolve_mask(str(tmp_path / "m.png"), 20, 30, invert=True), ~known)
    with pytest.raises(EsdiffError, match="neither a mask spec nor an existing file.*random:P"):
        resolve_mask("nosuch.png", 20, 30)


def test_resolve_mask_from_a_folder_by_stem(tmp_path: Path) -> None:
    other = generate_mask("random:0.5", 20, 30, seed=1)
    known = generate_mask("random:0.5", 20, 30, seed=2)
    save_mask(tmp_path / "a.png", other)
    np.save(tmp_path / "b.npy", ~known)  # white (True) = missing
    np.testing.assert_array_equal(resolve_mask(str(tmp_path), 20, 30, stem="b"), known)
    np.testing.assert_array_equal(resolve_mask(str(tmp_path), 20, 30, stem="a", invert=True), ~other)
    with pytest.raises(EsdiffError, match="no mask named c"):
        resolve_mask(str(tmp_path), 20, 30, stem="c")
    with pytest.raises(EsdiffError, match="is a folder"):
        resolve_mask(str(tmp_path), 20, 30)


def stroke_width(missing: np.ndarray) -> float:
    """Median thickness of the missing shapes: twice the distance to the edge along their skeleton."""
    from scipy.ndimage import distance_transform_edt
    from skimage.morphology import skeletonize

    return 2 * float(np.median(distance_transform_edt(missing)[skeletonize(missing)]))


@pytest.mark.parametrize(
    ("spec", "each", "mean", "width"),
    [
        ("caption", (0.12, 0.19), (0.14, 0.17), (6, 10)),  # the default: ~15 %, ~8 px letters
        ("caption:24", (0.07, 0.12), (0.08, 0.11), (3, 6)),
        ("caption:64", (0.17, 0.32), (0.21, 0.27), (10, 15)),
    ],
)
def test_caption_fraction_and_letter_thickness(
    spec: str, each: tuple[float, float], mean: tuple[float, float], width: tuple[float, float]
) -> None:
    masks = [generate_mask(spec, 256, 256, seed=s) for s in range(20)]
    fractions = [missing_fraction(k) for k in masks]
    assert all(each[0] <= f <= each[1] for f in fractions), fractions
    assert mean[0] <= np.mean(fractions) <= mean[1]
    assert width[0] <= np.median([stroke_width(~k) for k in masks]) <= width[1]


def test_caption_default_size_scales_with_the_image() -> None:
    for height, width in ((128, 128), (512, 512), (256, 512)):
        fractions = [missing_fraction(generate_mask("caption", height, width, seed=s)) for s in range(5)]
        assert 0.12 <= np.mean(fractions) <= 0.19, (height, width, fractions)
    np.testing.assert_array_equal(generate_mask("caption", 256, 256), generate_mask("caption:36", 256, 256))


@pytest.mark.parametrize(
    ("kind", "mean", "width"),
    [("thin", (0.20, 0.32), (7, 13)), ("medium", (0.20, 0.30), (22, 38)), ("thick", (0.24, 0.36), (35, 60))],
)
def test_strokes_follow_lamas_width_classes(
    kind: str, mean: tuple[float, float], width: tuple[float, float]
) -> None:
    """LaMa's brush widths are 5 + U[0, 10), 5 + U[0, 50), 5 + U[0, 100) px at 256; masks over half the
    image are redrawn."""
    masks = [generate_mask(f"strokes:{kind}", 256, 256, seed=s) for s in range(40)]
    fractions = [missing_fraction(k) for k in masks]
    assert all(0 < f <= 0.5 for f in fractions), fractions
    assert mean[0] <= np.mean(fractions) <= mean[1]
    assert width[0] <= np.median([stroke_width(~k) for k in masks]) <= width[1]


def test_strokes_scale_with_the_image() -> None:
    small = [missing_fraction(generate_mask("strokes:medium", 128, 128, seed=s)) for s in range(40)]
    assert 0.20 <= np.mean(small) <= 0.30


@pytest.mark.parametrize(("kind", "width"), [("thin", (2, 4)), ("thick", (5, 10))])
def test_scratches_are_polylines_of_their_width_class(kind: str, width: tuple[int, int]) -> None:
    """Scratch widths lie in their class (2-4 px, 5-10 px at 256), the polylines cover a few per cent of
    the image, and another seed draws other scratches."""
    masks = [generate_mask(f"scratches:{kind}", 256, 256, seed=s) for s in range(12)]
    assert width[0] - 1 <= np.median([stroke_width(~k) for k in masks]) <= width[1] + 1
    fractions = [missing_fraction(k) for k in masks]
    assert all(0 < f < 0.15 for f in fractions) and 0.005 < np.mean(fractions) < 0.1, fractions
    assert not np.array_equal(masks[0], masks[1])


def test_stroke_and_caption_masks_are_the_same_on_every_machine() -> None:
    """Golden digests (numpy's seeded stream, Pillow's drawing and its built-in font); regenerate only
    on purpose, and say so in the changelog: every stored benchmark mask changes with them."""
    import hashlib

    from PIL import features

    def digest(spec: str) -> str:
        return hashlib.sha256(np.packbits(generate_mask(spec, 64, 96, seed=7)).tobytes()).hexdigest()[:16]

    assert digest("strokes:thin") == "9db6611166f4f936"
    assert digest("strokes:medium") == "7b8495bb1af1a590"
    assert digest("strokes:thick") == "8a0a74e729be7189"
    assert digest("scratches:thin") == "5cefa5c5970098c3"
    assert digest("scratches:thick") == "0e9ba0342d7f8a9a"
    if features.version("freetype2") != "2.14.3":
        pytest.skip("text rendering is pinned for FreeType 2.14.3 (the one Pillow's wheels bundle)")
    assert digest("caption") == "9b428a550f365ced"


@pytest.mark.parametrize(
    "spec", ["caption:0", "caption:x", "caption:", "strokes:fat", "strokes", "scratches:fat", "scratches"]
)
def test_bad_caption_and_stroke_specs_list_the_valid_ones(spec: str) -> None:
    with pytest.raises(EsdiffError, match="strokes:thin"):
        generate_mask(spec, 64, 64)
