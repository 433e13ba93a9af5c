import errno
import os
import stat
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from esdiff.errors import EsdiffError
from esdiff.io import (
    atomic_write,
    center_crop_resize,
    decode_image,
    encode_png,
    read_image,
    write_image,
)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp"])
def test_8bit_round_trip_is_exact(tmp_path: Path, suffix: str) -> None:
    raw = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / f"a{suffix}", raw)
    image = read_image(tmp_path / f"a{suffix}")
    assert image.bit_depth == 8 and image.pixels.dtype == np.float32
    write_image(tmp_path / f"b{suffix}", image.pixels, image.bit_depth)
    assert np.array_equal(iio.imread(tmp_path / f"b{suffix}"), raw)


def test_16bit_is_kept(tmp_path: Path) -> None:
    import png

    raw = np.random.default_rng(1).integers(0, 65536, (10, 12, 3), dtype=np.uint16)
    with open(tmp_path / "a.png", "wb") as handle:
        png.Writer(12, 10, bitdepth=16, greyscale=False).write(handle, raw.reshape(10, -1))
    image = read_image(tmp_path / "a.png")
    assert image.bit_depth == 16
    write_image(tmp_path / "b.png", image.pixels, image.bit_depth)
    assert np.array_equal(read_image(tmp_path / "b.png").pixels, image.pixels)
    write_image(tmp_path / "b.tif", image.pixels, image.bit_depth)
    assert np.array_equal(iio.imread(tmp_path / "b.tif"), raw)


def test_jpeg_reads(tmp_path: Path) -> None:
    iio.imwrite(tmp_path / "a.jpg", np.full((16, 16, 3), 128, np.uint8))
    assert read_image(tmp_path / "a.jpg").pixels.shape == (16, 16, 3)


def test_grey_becomes_three_equal_channels(tmp_path: Path) -> None:
    iio.imwrite(tmp_path / "g.png", np.arange(64, dtype=np.uint8).reshape(8, 8))
    pixels = read_image(tmp_path / "g.png").pixels
    assert pixels.shape == (8, 8, 3) and np.array_equal(pixels[..., 0], pixels[..., 2])


def test_alpha_is_dropped_with_a_warning(tmp_path: Path) -> None:
    iio.imwrite(tmp_path / "a.png", np.zeros((8, 8, 4), np.uint8))
    with pytest.warns(UserWarning, match="alpha"):
        assert read_image(tmp_path / "a.png").pixels.shape == (8, 8, 3)


def test_bad_files_give_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "text.png").write_text("not an image")
    for path in (tmp_path / "missing.png", tmp_path / "text.png", tmp_path):
        with pytest.raises(EsdiffError):
            read_image(path)
    with pytest.raises(EsdiffError):
        decode_image(b"")


def test_stdin_png_round_trip() -> None:
    pixels = np.random.default_rng(2).random((9, 7, 3)).astype(np.float32)
    decoded = decode_image(encode_png(pixels)).pixels
    assert np.abs(decoded - pixels).max() <= 0.5 / 255 + 1e-6


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(EsdiffError):
        write_image(tmp_path / "x.gif", np.zeros((4, 4, 3)))
    with pytest.raises(EsdiffError):
        write_image(tmp_path / "nofolder" / "x.png", np.zeros((4, 4, 3)))
    assert list(tmp_path.iterdir()) == []


def test_center_crop_resize() -> None:
    out = center_crop_resize(np.random.default_rng(3).random((256, 463, 3)).astype(np.float32))
    assert out.shape == (256, 256, 3)
    out = center_crop_resize(np.random.default_rng(3).random((300, 200, 3)).astype(np.float32))
    assert out.shape == (256, 256, 3)


def no_space(*args: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_names_the_file_and_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.png"
    write_image(out, np.zeros((4, 4, 3)))
    before = out.read_bytes()

    def half_then_full(tmp: Path) -> None:
        tmp.write_bytes(b"half a file")
        no_space()

    with pytest.raises(EsdiffError, match=r"out.png: cannot write \(No space left on device\)"):
        atomic_write(out, half_then_full)
    monkeypatch.setattr(os, "fsync", no_space)  # the data only fails to reach the disk
    with pytest.raises(EsdiffError, match=r"out.png: cannot write \(No space left on device\)"):
        write_image(out, np.ones((4, 4, 3)))
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_written_files_follow_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    """Images and checkpoints alike (safetensors writes its file 0o600, which the writer puts right)."""
    from esdiff.checkpoints import export_model

    def no_umask(mask: int) -> int:
        raise AssertionError("a writer must not change the process-wide umask")

    for umask, mode in [(0o022, 0o644), (0o077, 0o600)]:
        old = os.umask(umask)
        try:
            with monkeypatch.context() as patch:
                patch.setattr(os, "umask", no_umask)
                write_image(tmp_path / f"{umask:o}.png", np.zeros((4, 4, 3)))
                export_model(tiny_model, tmp_path / f"{umask:o}.safetensors")
        finally:
            os.umask(old)
        for suffix in (".png", ".safetensors"):
            assert stat.S_IMODE((tmp_path / f"{umask:o}{suffix}").stat().st_mode) == mode, suffix


def png_header(width: int, height: int, bit_depth: int = 16, colour_type: int = 2) -> bytes:
    """The signature and IHDR chunk of a PNG claiming ``width x height`` (no pixel data follows)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


@pytest.mark.parametrize("bit_depth", [16, 8])
def test_a_huge_header_is_refused_before_decoding(tmp_path: Path, bit_depth: int) -> None:
    """A 20000x20000 16-bit PNG used to decode for 75 s into ~6 GB (the pypng path has no bomb check)."""
    path = tmp_path / "huge.png"
    path.write_bytes(png_header(20000, 20000, bit_depth) + b"\0" * 1000)
    with pytest.raises(EsdiffError, match=r"too large: 20000x20000 = 400,000,000 pixels.*40,000,000"):
        read_image(path)
    with pytest.raises(EsdiffError, match="too large"):
        decode_image(path.read_bytes())


def test_a_real_image_over_a_lowered_limit_is_refused(tmp_path: Path) -> None:
    for suffix in (".png", ".jpg", ".tif", ".bmp"):
        iio.imwrite(tmp_path / f"a{suffix}", np.zeros((30, 40, 3), np.uint8))
        with pytest.raises(EsdiffError, match=r"too large: 40x30 = 1,200 pixels, over the limit of 1,199"):
            read_image(tmp_path / f"a{suffix}", max_pixels=1199)
        assert read_image(tmp_path / f"a{suffix}", max_pixels=1200).pixels.shape == (30, 40, 3)
    raw = np.zeros((30, 40, 3), np.uint16)
    write_image(tmp_path / "b.png", raw, 16)
    with pytest.raises(EsdiffError, match="too large"):
        read_image(tmp_path / "b.png", max_pixels=1199)


def test_a_bomb_past_pillows_own_limit_says_too_large_not_decompressionbomberror(tmp_path: Path) -> None:
    """A BMP header claiming 20000 x 20000 (Pillow itself raises DecompressionBombError past 179 M)."""
    import struct

    header = b"BM" + struct.pack("<IHHI", 0, 0, 0, 54)
    header += struct.pack("<IiiHHIIiiII", 40, 20000, 20000, 1, 24, 0, 0, 2835, 2835, 0, 0)
    (tmp_path / "bomb.bmp").write_bytes(header + b"\0" * 64)
    with pytest.raises(EsdiffError, match=r"bomb.bmp: too large: 20000x20000") as caught:
        read_image(tmp_path / "bomb.bmp")
    assert "Decompression" not in str(caught.value)


def test_unreadable_files_say_what_is_wrong(tmp_path: Path) -> None:
    data = encode_png(np.random.default_rng(0).random((32, 32, 3)).astype(np.float32))
    data16 = encode_png(np.random.default_rng(0).random((32, 32, 3)).astype(np.float32), 16)
    cases = {
        "empty.png": (b"", "empty file"),
        "text.png": (b"this is text, not an image", "not an image"),
        "cut.png": (data[: len(data) // 2], "truncated"),
        "cut16.png": (data16[: len(data16) // 2], "truncated"),
        "header.png": (data[:20], "truncated"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(EsdiffError, match=message) as caught:
            read_image(tmp_path / name)
        assert "OSError" not in str(caught.value), name


def test_a_huge_mask_file_is_refused_before_decoding(tmp_path: Path) -> None:
    from esdiff.masks import load_mask

    (tmp_path / "mask.png").write_bytes(png_header(20000, 20000, 8, 0) + b"\0" * 1000)
    with pytest.raises(EsdiffError, match=r"cannot read mask .*mask.png: too large"):
        load_mask(tmp_path / "mask.png")
    with pytest.raises(EsdiffError, match="too large"):
        load_mask(tmp_path / "mask.png", shape=(64, 64))
