"""``SamplerConfig.fill = "texture"`` (`--fill texture`): the deep parts of holes take OpenCV FSR's fill and
keep it through the sampler; the result is seeded, keeps the known pixels exact, and carries more of the
photo's texture into a hole than the smooth fill."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from esdiff.config import DEFAULT_SAMPLER, NCSNPP_SAMPLER, SamplerConfig
from esdiff.config_checks import sampler_config_problems


@pytest.fixture(scope="module")
def results() -> dict[str, np.ndarray]:
    """A 64x64 crop of a real photo (the astronaut's shoulder and the backdrop) with a solid 22x26 hole
    and scattered missing pixels around it, inpainted by the default sampler with the built-in model
    (three levels, one thread): ``truth``, ``known``, ``observed``, ``smooth``, ``texture`` and
    ``texture_again`` (the same seed)."""
    import torch
    from skimage import data

    from esdiff.inpaint import inpaint_image

    truth = data.astronaut()[120:184, 190:254] / 255.0
    known = np.random.default_rng(0).random(truth.shape[:2]) > 0.2
    known[20:42, 18:44] = False
    observed = np.where(known[..., None], truth, 0.0)
    out = {"truth": truth, "known": known, "observed": observed}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, fill in (("smooth", "smooth"), ("texture", "texture"), ("texture_again", "texture")):
            cfg = replace(DEFAULT_SAMPLER, steps=3, fill=fill)  # type: ignore[arg-type]
            out[name] = inpaint_image(observed, known, seed=5, config=cfg)
    finally:
        torch.set_num_threads(before)
    return out


def test_texture_fill_is_seeded_keeps_known_pixels_and_puts_fsrs_fill_in_the_deep_pixels(
    results: dict[str, np.ndarray],
) -> None:
    """The same seed gives the same bytes; known pixels come back exactly; the deep pixels (three or more
    from every known one) within a Hankel window of one are FSR's fill; the smooth fill differs there."""
    from esdiff.lowrank import deep_pixels
    from esdiff.methods import baseline
    from esdiff.metrics import deep_hole

    known, observed, textured = results["known"], results["observed"], results["texture"]
    assert textured.tobytes() == results["texture_again"].tobytes()
    assert np.array_equal(textured[known], observed[known])
    deep = deep_hole(known, 3) & ~deep_pixels(known, DEFAULT_SAMPLER.low_rank.window)
    assert 250 < deep.sum() and deep_pixels(known, DEFAULT_SAMPLER.low_rank.window).sum() > 20
    np.testing.assert_allclose(textured[deep], baseline("fsr")(observed, known)[deep], atol=1e-6)
    assert not np.allclose(results["smooth"][deep], textured[deep], atol=1e-3)


def test_texture_fill_carries_more_of_the_photos_detail_into_the_hole(results: dict[str, np.ndarray]) -> None:
    """On a real photo the texture fill's hole has a texture ratio (``metrics.texture``) well above the
    smooth fill's (on this solid hole its PSNR is lower: FSR extrapolates detail, not the photo's)."""
    from esdiff.metrics import psnr, texture

    truth, known, smooth, textured = (results[k] for k in ("truth", "known", "smooth", "texture"))
    assert texture(textured, truth, known) > 1.4 * texture(smooth, truth, known)
    assert psnr(textured, truth, ~known) > 18.0


def test_texture_fill_needs_whole_image_sampling() -> None:
    assert sampler_config_problems(replace(DEFAULT_SAMPLER, fill="texture")) == []  # type: ignore[arg-type]
    problems = sampler_config_problems(SamplerConfig(fill="texture"))  # type: ignore[arg-type]
    assert 'fill texture needs sampling "image" (with sampling "patches" set fill smooth)' in problems
    assert DEFAULT_SAMPLER.fill == "texture"
    problems = sampler_config_problems(replace(DEFAULT_SAMPLER, fill="grain"))  # type: ignore[arg-type]
    assert "fill must be one of smooth, texture (got 'grain')" in problems


def cli(*args: str) -> Any:
    from typer.testing import CliRunner

    from esdiff_cli.app import app

    return CliRunner().invoke(app, list(args))


def test_fill_option_reaches_the_esdiff_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`inpaint --fill` and `evaluate --fill` set esdiff's ``fill`` (and no other method's); `--fill`
    without esdiff is one error line before any method runs."""
    from esdiff.io import write_image

    calls: list[tuple[str, Any]] = []

    def run_method(name: str, image: np.ndarray, known: np.ndarray, options: Any, progress: Any) -> Any:
        calls.append((name, options))
        return image

    monkeypatch.setattr("esdiff.methods.run_method", run_method)
    src = tmp_path / "img.png"
    write_image(src, np.full((64, 64, 3), 0.5))
    base = ["inpaint", str(src), "--mask", "random:0.5", "-o", str(tmp_path / "o.png"), "--overwrite", "-q"]
    assert cli(*base, "--fill", "texture").exit_code == 0
    assert calls[-1][1].settings["config"] == replace(DEFAULT_SAMPLER, fill="texture")
    assert cli(*base, "--fill", "smooth", "--set", "steps=4").exit_code == 0
    assert calls[-1][1].settings["config"] == replace(DEFAULT_SAMPLER, fill="smooth", steps=4)
    assert len(calls) == 2
    for args in (["--method", "fsr", "--fill", "texture"], ["--fill", "grain"]):
        result = cli(*base, *args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "--fill applies to the esdiff method" in cli(*base, "--method", "fsr", "--fill", "texture").stderr
    assert len(calls) == 2


def test_evaluate_fill_sets_esdiff_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`evaluate --fill` changes esdiff's config and leaves ncsnpp's default; without esdiff it is refused."""
    from esdiff.io import write_image

    seen: dict[str, Any] = {}

    def run_jobs(jobs: Any, folder: Path, options: Any, *rest: Any) -> Any:
        seen.update(options.settings)
        raise KeyboardInterrupt  # stop before any report

    monkeypatch.setattr("esdiff_cli.evaluate.run_jobs", run_jobs)
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.png", np.full((64, 64, 3), 0.5))
    args = ["evaluate", "--benchmark", f"folder:{folder}", "--masks", "random:0.5", "-o", str(tmp_path / "r")]
    cli(*args, "--methods", "esdiff,ncsnpp", "--fill", "texture", "-q")
    assert seen["esdiff"]["config"] == replace(DEFAULT_SAMPLER, fill="texture")
    assert seen["ncsnpp"].get("config", NCSNPP_SAMPLER) == NCSNPP_SAMPLER
    result = cli(*args, "--methods", "fsr", "--fill", "texture", "-q")
    assert result.exit_code == 2 and "--fill applies to the esdiff method" in result.stderr


def test_texture_fill_only_where_holes_count_as_deep() -> None:
    """Scattered pixels have a few missing pixels 3 px from every known one, not holes: the resolved
    config keeps the smooth fill there (no FSR run); a box keeps the texture fill."""
    from esdiff.schedule import for_mask

    rng = np.random.default_rng(0)
    scattered = rng.random((128, 128)) > 0.8
    assert (~within_np(scattered, 2)).any()  # some pixels do lie 3 px from every known one
    assert for_mask(DEFAULT_SAMPLER, scattered, 1e-5).fill == "smooth"
    box = np.ones((128, 128), dtype=bool)
    box[40:80, 40:80] = False
    assert for_mask(DEFAULT_SAMPLER, box, 1e-5).fill == "texture"


def within_np(known: np.ndarray, reach: int) -> np.ndarray:
    """Pixels within Chebyshev ``reach`` of a known pixel."""
    from scipy import ndimage

    return ndimage.maximum_filter(known, size=2 * reach + 1)
