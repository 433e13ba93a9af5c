"""Image files in and out (imageio): PNG, JPEG, TIFF, BMP; 8 or 16 bit; grey becomes RGB.

Pixels are float32 ``H x W x 3`` in [0, 1]. Output keeps the input's bit depth. Writes are atomic: a
file appears complete or not at all.
"""

from __future__ import annotations

import contextlib
import io as _io
import os
import secrets
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from esdiff.errors import EsdiffError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class Image:
    pixels: np.ndarray
    """float32 ``H x W x 3`` in [0, 1]."""
    bit_depth: int
    """8 or 16: the depth the image came with and will be written back in."""


def _to_rgb(raw: np.ndarray, name: str) -> Image:
    if raw.dtype == np.uint8:
        depth, scale = 8, 255.0
    elif raw.dtype == np.uint16:
        depth, scale = 16, 65535.0
    elif raw.dtype == bool:
        depth, scale, raw = 8, 1.0, raw.astype(np.uint8)
    elif np.issubdtype(raw.dtype, np.floating):
        depth, scale = 16, 1.0
    else:
        raise EsdiffError(f"{name}: unsupported pixel type {raw.dtype}")
    if raw.ndim == 2:
        raw = raw[..., None]
    if raw.ndim != 3 or raw.shape[2] not in (1, 2, 3, 4):
        raise EsdiffError(f"{name}: not a single 2-D image (array shape {raw.shape})")
    if raw.shape[2] in (2, 4):
        warnings.warn(f"{name}: alpha channel dropped", stacklevel=3)
        raw = raw[..., :-1]
    if raw.shape[2] == 1:
        raw = np.repeat(raw, 3, axis=2)
    pixels = np.clip(raw.astype(np.float32) / np.float32(scale), 0.0, 1.0)
    return Image(np.ascontiguousarray(pixels), depth)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

MAX_PIXELS = 40_000_000
"""Images with more pixels than this (width x height, read from the header) are refused before decoding:
a 40-megapixel image already takes hours to inpaint on a CPU, and a crafted header would otherwise make
the decoder allocate gigabytes. Callers pass a larger ``max_pixels`` to raise it."""


def _is_16bit_png(data: bytes) -> bool:
    """Pillow reads 16-bit colour PNGs as 8 bit, so those go through pypng."""
    return data[:8] == PNG_SIGNATURE and len(data) > 25 and data[24] == 16 and data[25] in (2, 6)


def _header_size(data: bytes, name: str) -> tuple[int, int]:
    """(width, height) from the file's header alone, without decoding any pixels."""
    if data[:8] == PNG_SIGNATURE:
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise EsdiffError(f"{name}: truncated PNG file (no complete header)")
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with _no_pillow_limit(), PILImage.open(_io.BytesIO(data)) as im:
            return im.size
    except UnidentifiedImageError:
        raise EsdiffError(f"{name}: not an image (no known image format)") from None
    except Exception as exc:
        raise EsdiffError(f"{name}: truncated or damaged image header ({_detail(exc)})") from None


class _no_pillow_limit:
    """Pillow's own decompression-bomb limit off while we decode: our header check has already run."""

    def __enter__(self) -> None:
        from PIL import Image as PILImage

        self._saved = PILImage.MAX_IMAGE_PIXELS
        PILImage.MAX_IMAGE_PIXELS = None

    def __exit__(self, *exc: object) -> None:
        from PIL import Image as PILImage

        PILImage.MAX_IMAGE_PIXELS = self._saved


def _detail(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text[:120] or type(exc).__name__


def check_pixels(width: int, height: int, max_pixels: int, name: str) -> None:
    """An EsdiffError if ``width x height`` is over ``max_pixels`` (see ``MAX_PIXELS``)."""
    if width * height > max_pixels:
        raise EsdiffError(
            f"{name}: too large: {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (--max-pixels or ESDIFF_MAX_PIXELS raises it)"
        )


def _read_16bit_png(data: bytes) -> np.ndarray:
    import png

    width, height, rows, meta = png.Reader(bytes=data).asDirect()
    flat = np.vstack([np.asarray(row, np.uint16) for row in rows])
    return flat.reshape(height, width, meta["planes"])


def decode_pixels(data: bytes, name: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The file's pixel array as stored; header first (empty, not an image, too large), then the pixels
    (truncated or damaged). ``name`` starts every error message."""
    if not data:
        raise EsdiffError(f"{name}: empty file (0 bytes)")
    check_pixels(*_header_size(data, name), max_pixels, name)
    try:
        if _is_16bit_png(data):
            return _read_16bit_png(data)
        with _no_pillow_limit():
            return np.asarray(iio.imread(_io.BytesIO(data)))
    except Exception as exc:  # the decoders raise many types for a cut-off or corrupt file
        raise EsdiffError(f"{name}: truncated or damaged image file ({_detail(exc)})") from None


def read_image(path: str | os.PathLike[str], max_pixels: int = MAX_PIXELS) -> Image:
    """Read one image file; any failure is one clear EsdiffError."""
    path = Path(path)
    if not path.exists():
        raise EsdiffError(f"{path}: no such file")
    if path.is_dir():
        raise EsdiffError(f"{path}: is a folder, not an image")
    return _to_rgb(decode_pixels(path.read_bytes(), str(path), max_pixels), str(path))


def decode_image(data: bytes, name: str = "<stdin>", max_pixels: int = MAX_PIXELS) -> Image:
    """Decode image bytes (e.g. a PNG piped on stdin)."""
    if not data:
        raise EsdiffError(f"{name}: empty input")
    return _to_rgb(decode_pixels(data, name, max_pixels), name)


def quantize(pixels: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    """Float [0, 1] -> uint8 or uint16 with rounding."""
    top = 255 if bit_depth == 8 else 65535
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.round(np.clip(pixels, 0.0, 1.0) * top).astype(dtype)


def _encode(pixels: np.ndarray, bit_depth: int, suffix: str) -> bytes:
    data = quantize(pixels, bit_depth)
    if suffix == ".png" and bit_depth == 16:
        import png

        buffer = _io.BytesIO()
        height, width, planes = data.shape
        png.Writer(width, height, bitdepth=16, greyscale=False).write(buffer, data.reshape(height, -1))
        return buffer.getvalue()
    return iio.imwrite("<bytes>", data, extension=suffix)


def encode_png(pixels: np.ndarray, bit_depth: int = 8) -> bytes:
    return _encode(pixels, bit_depth, ".png")


def write_image(path: str | os.PathLike[str], pixels: np.ndarray, bit_depth: int = 8) -> None:
    """Write atomically (temp file in the same folder, then rename); JPEG/BMP are always 8 bit."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise EsdiffError(f"{path}: unknown image type (use one of {', '.join(IMAGE_SUFFIXES)})")
    if suffix in (".jpg", ".jpeg", ".bmp"):
        bit_depth = 8
    atomic_write_bytes(path, _encode(pixels, bit_depth, suffix))


def atomic_write(path: str | os.PathLike[str], fill: Callable[[Path], None]) -> None:
    """Write ``path`` so that it appears whole or not at all.

    ``fill`` writes a temporary file in the same folder, which is flushed to disk (fsync) and renamed over
    ``path``. The file gets the permissions of any new file (``0o666`` less the umask, applied by the
    system, never by changing the process-wide umask). An OS error while writing (a full disk, no
    permission) is one EsdiffError naming the file and the reason; the temporary file is removed.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise EsdiffError(f"{path}: folder {folder} does not exist")
    tmp: Path | None = None
    try:
        tmp = _new_temp_file(path)
        mode = os.stat(tmp).st_mode & 0o777  # 0o666 less the umask
        fill(tmp)
        if os.stat(tmp).st_mode & 0o777 != mode:  # a writer that replaced the file (safetensors: 0o600)
            os.chmod(tmp, mode)
        _fsync(tmp, os.O_RDWR)
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise EsdiffError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        _discard(tmp)
        raise
    with contextlib.suppress(OSError):  # best effort: not every system can sync a folder
        _fsync(folder, os.O_RDONLY)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """:func:`atomic_write` of ``data``."""

    def fill(tmp: Path) -> None:
        tmp.write_bytes(data)

    atomic_write(path, fill)


def _new_temp_file(path: Path) -> Path:
    """An empty ``.<name>.<random>.tmp`` beside ``path``, created with mode 0o666 less the umask."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(tmp: Path | None) -> None:
    if tmp is not None:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name (hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EsdiffError(f"{folder}: no such folder")
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def center_crop_resize(pixels: np.ndarray, size: int = 256) -> np.ndarray:
    """Resize the short side to ``size`` (anti-aliased) and centre-crop to ``size x size`` (SPEC 4)."""
    from skimage.transform import resize

    h, w = pixels.shape[:2]
    scale = size / min(h, w)
    if scale != 1.0:
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        pixels = resize(pixels, (nh, nw), anti_aliasing=scale < 1, preserve_range=True).astype(np.float32)
        h, w = nh, nw
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(pixels[top : top + size, left : left + size])
