"""The command line through Typer's CliRunner, and one-line errors through the real entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from esdiff.io import read_image, write_image
from esdiff.masks import load_mask, save_mask
from esdiff_cli.app import app

runner = CliRunner()


def esdiff(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the real entry point (the way a shell would), capturing both streams."""
    code = "from esdiff_cli.app import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], input=stdin, capture_output=True, timeout=300)


def one_line_error(result: subprocess.CompletedProcess[bytes]) -> str:
    lines = [line for line in result.stderr.decode().splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr.decode()
    assert b"Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def photo(tmp_path: Path, astronaut: np.ndarray) -> Path:
    path = tmp_path / "photo.png"
    write_image(path, astronaut[:64, :64])
    return path


def test_help_lists_every_subcommand() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("mpt", "mask", "train", "inpaint", "evaluate", "ablate"):
        assert name in result.output


def test_mpt_writes_object_and_picture_and_checks(tmp_path: Path, photo: Path) -> None:
    from safetensors.torch import load_file

    result = runner.invoke(app, ["mpt", str(photo), "-o", str(tmp_path / "out"), "--ratio", "1.0", "--check"])
    assert result.exit_code == 0, result.output
    assert "round trip exact" in result.output and "swap fraction" in result.output
    tensors = load_file(tmp_path / "out" / "photo_mpt.safetensors")
    assert tensors["object"].shape == (12, 64, 64) and tensors["keep"].shape == (64, 64)
    picture = read_image(tmp_path / "out" / "photo_mpt.png").pixels
    assert picture.shape == (64, 5 * 64 + 4 * 4, 3)


def test_mask_command_writes_a_loadable_mask(tmp_path: Path) -> None:
    out = tmp_path / "m.png"
    result = runner.invoke(app, ["mask", "random:0.25", "--size", "40x30", "-o", str(out)])
    assert result.exit_code == 0, result.output
    known = load_mask(out)
    assert known.shape == (30, 40) and (~known).sum() == 300


@pytest.mark.parametrize(
    "args",
    [
        ["mpt", "missing.png", "-o", "out"],
        ["mpt", "{text}", "-o", "out"],
        ["mpt", "{photo}", "-o", "out", "--ratio", "-1"],
        ["mask", "nonsense:3", "-o", "m.png"],
        ["mask", "random:0.5", "--size", "axb", "-o", "m.png"],
        ["mask", "random:1.5", "-o", "m.png"],
        ["inpaint", "missing.png", "--mask", "random:0.5", "--method", "aloha"],
        ["inpaint", "{text}", "--mask", "random:0.5", "--method", "aloha"],
        ["inpaint", "{photo}", "--mask", "{small_mask}", "--method", "aloha"],
        ["inpaint", "{photo}", "--mask", "{all_missing}", "--method", "aloha"],
        ["inpaint", "{photo}", "--mask", "unknown:1", "--method", "aloha"],
        ["inpaint", "{photo}", "--mask", "random:0.5", "--method", "nope"],
        ["inpaint", "{photo}", "--mask", "random:0.5", "--method", "aloha", "--steps", "5"],
        ["inpaint", "{photo}", "--mask", "random:0.5", "--method", "esdiff", "--model", "{text}"],
        ["inpaint", "{photo}", "--mask", "random:0.5", "--shifts", "5"],
        ["inpaint", "{photo}", "--mask", "random:0.5", "--invert-mask", "--method", "biharmonic"],
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, photo: Path, args: list[str]) -> None:
    text = tmp_path / "notes.png"
    text.write_text("this is text, not an image")
    save_mask(tmp_path / "small.png", np.ones((10, 10), bool))
    save_mask(tmp_path / "all_missing.png", np.zeros((64, 64), bool))
    names = {"text": text, "photo": photo, "small_mask": tmp_path / "small.png"}
    names["all_missing"] = tmp_path / "all_missing.png"
    before = sorted(tmp_path.rglob("*"))
    filled = [a.format(**names) for a in args]
    result = subprocess.run(
        [sys.executable, "-c", "from esdiff_cli.app import main; main()", *filled],
        capture_output=True,
        timeout=300,
        cwd=tmp_path,
    )
    one_line_error(result)
    assert sorted(tmp_path.rglob("*")) == before


def test_existing_output_needs_overwrite(tmp_path: Path, photo: Path) -> None:
    (tmp_path / "photo_inpainted.png").write_bytes(b"keep me")
    line = one_line_error(esdiff("inpaint", str(photo), "--mask", "random:0.5", "--method", "aloha"))
    assert "--overwrite" in line
    assert (tmp_path / "photo_inpainted.png").read_bytes() == b"keep me"


def test_nothing_missing_returns_input_with_warning(tmp_path: Path, photo: Path) -> None:
    save_mask(tmp_path / "none.png", np.ones((64, 64), bool))
    out = tmp_path / "out.png"
    result = esdiff(
        "inpaint", str(photo), "--mask", str(tmp_path / "none.png"), "--method", "aloha", "-o", str(out)
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"warning" in result.stderr
    assert np.array_equal(read_image(out).pixels, read_image(photo).pixels)
