"""The command line through Typer's CliRunner, and one-line errors through the real entry point (in this
process, and once as a separate process the way a shell runs it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from esdiff.io import read_image, write_image
from esdiff.masks import load_mask, save_mask
from esdiff_cli.app import app

runner = CliRunner()
COMMANDS = ("mpt", "mask", "train", "inpaint", "evaluate", "ablate")
REPO = Path(__file__).resolve().parents[1]


def esdiff(
    *args: str, stdin: bytes | None = None, cwd: Path | None = None, stdout: int | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run the real entry point (the way a shell would), capturing stderr and, unless given, stdout."""
    code = "from esdiff_cli.app import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        input=stdin,
        stdout=subprocess.PIPE if stdout is None else stdout,
        stderr=subprocess.PIPE,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def one_line_error(result: subprocess.CompletedProcess[bytes]) -> str:
    lines = [line for line in result.stderr.decode().splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr.decode()
    assert b"Traceback" not in result.stderr and b"internal error" not in result.stderr
    return lines[0]


@pytest.fixture
def photo(tmp_path: Path, astronaut: np.ndarray) -> Path:
    path = tmp_path / "photo.png"
    write_image(path, astronaut[:64, :64])
    return path


def test_help_lists_every_subcommand() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
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
        ["inpaint", "{photo}", "--mask", "random:0.5", "--method", "aloha", "--set", "steps=5"],
        ["inpaint", "{photo}", "--mask", "random:0.5", "--method", "esdiff", "--model", "{text}"],
        ["inpaint", "{photo}", "--mask", "random:0.5", "--set", "shifts=5"],
        ["inpaint", "{photo}", "--mask", "random:0.5", "--invert-mask", "--method", "biharmonic"],
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, photo: Path, args: list[str], main_here: Any
) -> None:
    text = tmp_path / "notes.png"
    text.write_text("this is text, not an image")
    save_mask(tmp_path / "small.png", np.ones((10, 10), bool))
    save_mask(tmp_path / "all_missing.png", np.zeros((64, 64), bool))
    names = {"text": text, "photo": photo, "small_mask": tmp_path / "small.png"}
    names["all_missing"] = tmp_path / "all_missing.png"
    before = sorted(tmp_path.rglob("*"))
    filled = [a.format(**names) for a in args]
    one_line_error(main_here(*filled, cwd=tmp_path))
    assert sorted(tmp_path.rglob("*")) == before


def test_existing_output_needs_overwrite(tmp_path: Path, photo: Path) -> None:
    (tmp_path / "photo_inpainted.png").write_bytes(b"keep me")
    line = one_line_error(esdiff("inpaint", str(photo), "--mask", "random:0.5", "--method", "aloha"))
    assert "--overwrite" in line
    assert (tmp_path / "photo_inpainted.png").read_bytes() == b"keep me"


def test_nothing_missing_returns_input_with_warning(tmp_path: Path, photo: Path, main_here: Any) -> None:
    save_mask(tmp_path / "none.png", np.ones((64, 64), bool))
    out = tmp_path / "out.png"
    result = main_here(
        "inpaint", str(photo), "--mask", str(tmp_path / "none.png"), "--method", "aloha", "-o", str(out)
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"warning" in result.stderr
    assert np.array_equal(read_image(out).pixels, read_image(photo).pixels)


# What a new user meets first: help, version, listings, refusals before any compute, clear messages.


def test_bare_esdiff_prints_the_help_once() -> None:
    result = esdiff()
    assert result.returncode == 0
    assert result.stdout.decode().count("Usage:") == 1, result.stdout.decode()


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_flags_without_a_type_and_arguments_without_braces(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "<bool>" not in result.output
    usage = next(line for line in result.output.splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage, usage
    assert re.search(rf"esdiff {command} \[OPTIONS\]", usage), usage


def test_top_level_help_and_version() -> None:
    assert "<bool>" not in runner.invoke(app, ["--help"]).output
    from esdiff import __version__

    result = esdiff("--version")
    assert result.returncode == 0 and result.stdout.decode().strip() == f"esdiff {__version__}"


def test_every_mask_generator_is_in_the_help_texts() -> None:
    from esdiff.masks import _KINDS, SCRATCHES, SPEC_HELP, STROKES
    from esdiff_cli.common import MASK_SPECS

    names = [*_KINDS, "text1", "text2", *(f"strokes:{k}" for k in STROKES)]
    listed = MASK_SPECS.replace("|", " strokes:")  # "strokes:thin|medium" -> also "strokes:medium"
    assert all(name in listed for name in names), (names, MASK_SPECS)
    assert all(f"scratches:{k}" in MASK_SPECS.replace("|", " scratches:") for k in SCRATCHES)
    assert all(name.split(":")[0] in SPEC_HELP for name in names)
    commands = get_command(app).commands  # type: ignore[attr-defined]
    mask_help = next(p.help for p in commands["inpaint"].params if p.name == "mask")
    assert "esdiff mask --help" in mask_help
    listed_lines = [line.split()[0] for line in commands["mask"].help.splitlines() if re.match(r"  \S", line)]
    assert all(spec in listed_lines for spec in MASK_SPECS.split(", ")), listed_lines  # one spec a line
    assert "scratches:thin|thick" in commands["mask"].help


def test_cli_constants_match_the_library() -> None:
    from esdiff.io import MAX_PIXELS
    from esdiff_cli import common

    assert common.MAX_PIXELS == MAX_PIXELS


def test_ablate_list_goes_to_stdout() -> None:
    result = esdiff("ablate", "--list")
    assert result.returncode == 0 and result.stderr == b""
    assert {"esdiff", "no-lowrank"} <= set(result.stdout.decode().split())


def test_png_on_stdout_is_refused_when_stdout_is_a_terminal(photo: Path) -> None:
    import pty

    leader, follower = pty.openpty()  # stdout is a terminal, as in an interactive shell
    args = ["inpaint", str(photo), "--mask", "random:0.5", "--method", "biharmonic", "-o", "-"]
    try:
        result = esdiff(*args, stdout=follower)
        os.set_blocking(leader, False)
        try:
            dumped = os.read(leader, 1 << 16)
        except (BlockingIOError, OSError):
            dumped = b""
    finally:
        os.close(leader)
        os.close(follower)
    assert "terminal" in one_line_error(result)
    assert b"PNG" not in dumped


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Path:
    """A folder nobody can create files in: chmod 555, or for root (who writes through it) /sys."""
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        return locked
    if Path("/sys").is_dir() and _cannot_write(Path("/sys")):
        return Path("/sys")
    pytest.skip("no read-only folder for root here")


def _cannot_write(folder: Path) -> bool:
    try:
        (folder / ".esdiff-probe").write_bytes(b"")
    except OSError:
        return True
    (folder / ".esdiff-probe").unlink()
    return False


@pytest.mark.parametrize("nested", [False, True])
def test_a_read_only_output_folder_is_found_before_the_compute(
    photo: Path, read_only_folder: Path, nested: bool
) -> None:
    out = read_only_folder / ("new" if nested else "") / "out.png"
    result = esdiff("inpaint", str(photo), "--mask", "random:0.5", "--method", "biharmonic", "-o", str(out))
    assert "cannot write there" in one_line_error(result)  # one line: the image was never read


def test_warnings_come_before_wrote(tmp_path: Path) -> None:
    rgba = np.random.default_rng(0).integers(0, 256, (32, 32, 4), dtype=np.uint8)
    iio.imwrite(tmp_path / "a.png", rgba)
    result = esdiff("inpaint", "a.png", "--mask", "random:0.5", "--method", "biharmonic", cwd=tmp_path)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert err.index("alpha channel dropped") < err.index("wrote"), err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"plain text, not an image", "not an image"),
        ("half", "truncated"),
        ("bomb", "too large: 20000x20000"),
    ],
)
def test_unreadable_inputs_say_what_is_wrong(
    tmp_path: Path, photo: Path, content: bytes | str, message: str
) -> None:
    data = photo.read_bytes()
    if content == "half":
        content = data[: len(data) // 2]
    elif content == "bomb":
        content = data[:16] + (20000).to_bytes(4, "big") * 2 + data[24:]  # the header claims 20000x20000
    (tmp_path / "bad.png").write_bytes(content)  # type: ignore[arg-type]
    line = one_line_error(esdiff("inpaint", "bad.png", "--mask", "random:0.5", cwd=tmp_path))
    assert message in line and "OSError" not in line and "DecompressionBomb" not in line, line


def test_max_pixels_lowers_and_raises_the_limit(
    tmp_path: Path, photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["inpaint", str(photo), "--mask", "random:0.5", "--method", "biharmonic", "-o", "o.png"]
    monkeypatch.setenv("ESDIFF_MAX_PIXELS", "4095")
    line = one_line_error(esdiff(*args, cwd=tmp_path))
    want = "64x64 = 4,096 pixels, over the limit of 4,095 (--max-pixels or ESDIFF_MAX_PIXELS raises it)"
    assert want in line, line
    monkeypatch.setenv("ESDIFF_MAX_PIXELS", "4096")
    assert esdiff(*args, cwd=tmp_path).returncode == 0
    monkeypatch.setenv("ESDIFF_MAX_PIXELS", "lots")
    assert "ESDIFF_MAX_PIXELS must be a positive integer" in one_line_error(
        esdiff(*args, "--overwrite", cwd=tmp_path)
    )


def test_mask_size_guard(tmp_path: Path) -> None:
    line = one_line_error(esdiff("mask", "random:0.5", "--size", "20000x20000", "-o", "m.png", cwd=tmp_path))
    assert "too large" in line and "400,000,000" in line
    line = one_line_error(
        esdiff("mask", "random:0.5", "--size", "100x100", "--max-pixels", "9999", "-o", "m.png", cwd=tmp_path)
    )
    assert "too large" in line
    ok = esdiff(
        "mask", "random:0.5", "--size", "100x100", "--max-pixels", "10000", "-o", "m.png", cwd=tmp_path
    )
    assert ok.returncode == 0 and (tmp_path / "m.png").is_file()
    assert not (tmp_path / ".m.png.tmp").exists()


def test_a_mistyped_spec_lists_the_valid_ones(tmp_path: Path, photo: Path) -> None:
    line = one_line_error(esdiff("inpaint", str(photo), "--mask", "text3", cwd=tmp_path))
    assert "'text3'" in line and "valid mask specs" in line and "strokes:thick" in line, line


@pytest.mark.parametrize(
    "args",
    [
        ["inpaint", "{photo}", "--mask", "random:0.5", "--seed", "99999999999999999999"],
        ["inpaint", "{photo}", "--mask", "random:0.5", "--mask-seed", "-1"],
        ["mask", "random:0.5", "-o", "m.png", "--seed", "99999999999999999999"],
        ["mpt", "{photo}", "-o", "out", "--seed", "4294967296"],
        ["train", "{photo}", "-o", "run", "--seed", "99999999999999999999"],
    ],
)
def test_seeds_out_of_range_are_usage_errors(tmp_path: Path, photo: Path, args: list[str]) -> None:
    line = one_line_error(esdiff(*(a.format(photo=photo) for a in args), cwd=tmp_path))
    assert re.search(r"Invalid value for '--(mask-)?seed': Input should be (less|greater)", line), line


def test_mpt_needs_overwrite_to_replace_its_outputs(tmp_path: Path, photo: Path) -> None:
    out = tmp_path / "out"
    assert esdiff("mpt", str(photo), "-o", str(out)).returncode == 0
    picture = out / "photo_mpt.png"
    picture.write_bytes(b"keep me")
    assert "--overwrite" in one_line_error(esdiff("mpt", str(photo), "-o", str(out)))
    assert picture.read_bytes() == b"keep me"
    assert esdiff("mpt", str(photo), "-o", str(out), "--overwrite").returncode == 0
    assert picture.read_bytes() != b"keep me"


def test_readme_first_job_leaves_nothing_untracked_and_names_the_cpu_wheel() -> None:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    names = ["astronaut.png", "astronaut_inpainted.png"]
    ignored = subprocess.run(["git", "check-ignore", *names], cwd=REPO, capture_output=True, text=True)
    assert ignored.stdout.split() == names
    readme = (REPO / "README.md").read_text()
    assert "examples/sample.py astronaut.png" in readme and "-o astronaut_inpainted.png" in readme
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in readme


def test_progress_bar_counts_patches_on_one_line() -> None:
    """A sampler's or ALOHA's bar: the patch count with its unit, per-patch lists as ranges, no seconds."""
    from rich.console import Console
    from rich.progress import Progress, TextColumn

    from esdiff_cli.common import progress_callback

    progress = Progress(TextColumn("{task.fields[info]}"), console=Console(width=100, record=True))
    update = progress_callback(progress, "photo", None)
    update(25.5, 630, unit="patches", ranks=[80, 86, 78], lmafit_iterations=[30, 30], lmafit_seconds=1.2)
    task = progress.tasks[0]
    assert (task.completed, task.total) == (25.5, 630)
    assert task.fields["unit"] == "patches"
    assert task.fields["info"] == "ranks 78-86  lmafit_iterations 30"
