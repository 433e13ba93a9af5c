"""`esdiff inpaint` end to end with a tiny seeded checkpoint and cheap sampler settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from esdiff.io import encode_png, read_image, write_image
from esdiff.masks import load_mask, save_mask

CHEAP = ["--steps", "2", "--rank", "8", "--lmafit-max-iter", "20", "--device", "cpu", "-q"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from esdiff.checkpoints import save_checkpoint
    from esdiff.config import NETWORK_PRESETS, ModelConfig
    from esdiff.nn import build_score_model
    from esdiff.transforms import virtual_mask

    torch.manual_seed(0)
    cfg = ModelConfig(network=NETWORK_PRESETS["tiny"])
    net = build_score_model(cfg.network)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    return save_checkpoint(path, ema=net.state_dict(), keep=virtual_mask(2.81), model_config=cfg)


def esdiff(
    *args: str, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    code = "from esdiff_cli.app import main; main()"
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", code, *args], input=stdin, capture_output=True, timeout=600, cwd=cwd, env=env
    )


def photo(path: Path, height: int, width: int) -> Path:
    from skimage import data
    from skimage.transform import resize

    write_image(path, resize(data.astronaut(), (height, width), anti_aliasing=True).astype(np.float32))
    return path


def test_file_in_file_out_keeps_known_pixels_and_is_reproducible(tmp_path: Path, tiny_model: Path) -> None:
    src = photo(tmp_path / "img.png", 64, 64)
    runs = []
    for name in ("a.png", "b.png"):
        result = esdiff(
            "inpaint",
            str(src),
            "--mask",
            "random:0.6",
            "--model",
            str(tiny_model),
            "-o",
            str(tmp_path / name),
            "--gt",
            str(src),
            *CHEAP,
        )
        assert result.returncode == 0, result.stderr.decode()
        assert b"PSNR" in result.stderr
        runs.append((tmp_path / name).read_bytes())
    assert runs[0] == runs[1]
    from esdiff.masks import generate_mask

    known = generate_mask("random:0.6", 64, 64, seed=0)
    assert np.array_equal(read_image(tmp_path / "a.png").pixels[known], read_image(src).pixels[known])


def test_large_odd_image(tmp_path: Path, tiny_model: Path) -> None:
    src = photo(tmp_path / "big.jpg", 500, 700)
    result = esdiff("inpaint", str(src), "--mask", "text1", "--model", str(tiny_model), *CHEAP)
    assert result.returncode == 0, result.stderr.decode()
    assert read_image(tmp_path / "big_inpainted.png").pixels.shape == (500, 700, 3)


def test_folder_with_mask_folder_reports_failures_per_image(tmp_path: Path, tiny_model: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for stem in ("one", "two", "three"):
        photo(images / f"{stem}.png", 64, 64)
    for stem in ("one", "three"):
        save_mask(masks / f"{stem}.png", np.random.default_rng(1).random((64, 64)) > 0.5)
    result = esdiff(
        "inpaint",
        str(images),
        "--mask",
        str(masks),
        "--model",
        str(tiny_model),
        "-o",
        str(tmp_path / "out"),
        *CHEAP,
    )
    assert result.returncode == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "one_inpainted.png",
        "three_inpainted.png",
    ]
    assert b"two" in result.stderr and b"1 of 3 images failed" in result.stderr
    known = load_mask(masks / "one.png")
    out = read_image(tmp_path / "out" / "one_inpainted.png").pixels
    assert np.array_equal(out[known], read_image(images / "one.png").pixels[known])


def test_stdin_to_stdout(tmp_path: Path, tiny_model: Path) -> None:
    src = photo(tmp_path / "img.png", 64, 64)
    result = esdiff(
        "inpaint",
        "-",
        "--mask",
        "random:0.5",
        "--model",
        str(tiny_model),
        "-o",
        "-",
        *CHEAP,
        stdin=(src).read_bytes(),
    )
    assert result.returncode == 0, result.stderr.decode()
    from esdiff.io import decode_image

    assert decode_image(result.stdout).pixels.shape == (64, 64, 3)
    assert list(tmp_path.iterdir()) == [src]


@pytest.mark.parametrize("kind", ["pickle", "plain-safetensors", "garbage"])
def test_foreign_checkpoints_are_refused(tmp_path: Path, kind: str) -> None:
    bad = tmp_path / "model.safetensors"
    if kind == "pickle":
        torch.save({"w": torch.zeros(2)}, bad)
    elif kind == "plain-safetensors":
        from safetensors.torch import save_file

        save_file({"w": torch.zeros(2)}, bad)
    else:
        bad.write_bytes(encode_png(np.zeros((4, 4, 3))))
    src = photo(tmp_path / "img.png", 64, 64)
    result = esdiff("inpaint", str(src), "--mask", "random:0.5", "--model", str(bad), *CHEAP)
    lines = [line for line in result.stderr.decode().splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1 and lines[0].startswith("error:"), (
        result.stderr.decode()
    )
    assert not (tmp_path / "img_inpainted.png").exists()


def test_sampler_options_reach_the_sampler(tmp_path: Path, tiny_model: Path) -> None:
    src = photo(tmp_path / "img.png", 64, 64)
    model = ["--model", str(tiny_model), *CHEAP]
    kept = esdiff(
        "inpaint", str(src), "--mask", "random:0.5", "--state", "mpt", "-o", "kept.png", *model, cwd=tmp_path
    )
    assert kept.returncode == 0, kept.stderr.decode()
    plain = esdiff("inpaint", str(src), "--mask", "random:0.5", "-o", "plain.png", *model, cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr.decode()
    assert not np.array_equal(
        read_image(tmp_path / "kept.png").pixels, read_image(tmp_path / "plain.png").pixels
    )
    bad = esdiff(
        "inpaint", str(src), "--mask", "random:0.5", "--state", "hex", "-o", "bad.png", *model, cwd=tmp_path
    )
    lines = [line for line in bad.stderr.decode().splitlines() if line.strip()]
    assert bad.returncode != 0 and len(lines) == 1 and "--state" in lines[0], bad.stderr.decode()
    assert not (tmp_path / "bad.png").exists()
    many = esdiff(
        "inpaint", str(src), "--mask", "random:0.5", "--shifts", "2", "-o", "two.png", *model, cwd=tmp_path
    )
    assert many.returncode == 0, many.stderr.decode()
    two = read_image(tmp_path / "two.png").pixels
    assert not np.array_equal(two, read_image(tmp_path / "plain.png").pixels)
    wrong = esdiff(
        "inpaint", str(src), "--mask", "random:0.5", "--shifts", "5", "-o", "wrong.png", *model, cwd=tmp_path
    )
    lines = [line for line in wrong.stderr.decode().splitlines() if line.strip()]
    assert wrong.returncode != 0 and len(lines) == 1 and "--shifts" in lines[0], wrong.stderr.decode()
    assert not (tmp_path / "wrong.png").exists()
