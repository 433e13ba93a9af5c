"""`esdiff evaluate` and `esdiff ablate` on tiny folders: reports, determinism, resume, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from esdiff.benchmarks import MASK_PROTOCOLS, load_benchmark, mask_seed, parse_masks
from esdiff.errors import EsdiffError
from esdiff.io import write_image
from esdiff_cli.app import app

runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path, astronaut: np.ndarray) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    write_image(images / "a.png", astronaut[:64, :64])
    write_image(images / "b.png", astronaut[32:96, 64:128])
    return images


def evaluate(folder: Path, out: Path, *extra: str):
    args = ["evaluate", "--benchmark", f"folder:{folder}", "--masks", "random:0.5,text2", "--out", str(out)]
    return runner.invoke(app, [*args, "--methods", "biharmonic,kernel-regression", "-q", *extra])


def test_evaluate_writes_reports_and_is_deterministic(tmp_path: Path, folder: Path) -> None:
    first = evaluate(folder, tmp_path / "one", "--full-size")
    assert first.exit_code == 0, first.output
    assert "| random:0.5 |" in first.output  # outside a terminal the table is Markdown, never cut short
    for name in ("table.md", "per_image.csv", "per_image.json", "summary.json"):
        assert (tmp_path / "one" / name).exists()
    assert len(list((tmp_path / "one" / "figures").glob("*.png"))) == 4
    records = json.loads((tmp_path / "one" / "per_image.json").read_text())
    assert len(records) == 2 * 2 * 2
    summary = json.loads((tmp_path / "one" / "summary.json").read_text())
    for spec in ("random:0.5", "text2"):
        for method in ("biharmonic", "kernel-regression"):
            assert summary[spec][method]["psnr"] > summary[spec]["observation"]["psnr"]
            assert summary[spec][method]["psnr_missing"] > summary[spec]["observation"]["psnr_missing"]
    assert "texture ratio" in first.output and "texture ratio" in (tmp_path / "one" / "table.md").read_text()
    assert all("texture_missing" in r for r in records)  # None where no pixel lies deep in a hole
    second = evaluate(folder, tmp_path / "two", "--full-size")
    assert second.exit_code == 0
    again = json.loads((tmp_path / "two" / "per_image.json").read_text())
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in records]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in again]
    for mask in (tmp_path / "one" / "masks").iterdir():
        assert mask.read_bytes() == (tmp_path / "two" / "masks" / mask.name).read_bytes()


def test_evaluate_resumes_without_redoing_jobs(tmp_path: Path, folder: Path) -> None:
    assert evaluate(folder, tmp_path / "run", "--full-size").exit_code == 0
    done = tmp_path / "run" / "results" / "biharmonic" / "a__random-0.5.json"
    stamp = done.stat().st_mtime_ns
    (tmp_path / "run" / "results" / "kernel-regression" / "b__text2.json").unlink()  # an interrupted job
    assert evaluate(folder, tmp_path / "run", "--full-size").exit_code == 0
    assert done.stat().st_mtime_ns == stamp
    assert (tmp_path / "run" / "results" / "kernel-regression" / "b__text2.json").exists()


def test_shards_share_one_job_folder_and_a_last_call_merges(tmp_path: Path, folder: Path) -> None:
    """``--shard K/N`` runs every N-th job and writes no report; the call without it finds all jobs done
    (none redone) and writes the same table as one unsharded run."""
    run = tmp_path / "run"
    for k in (0, 1):
        result = evaluate(folder, run, "--full-size", "--shard", f"{k}/2")
        assert result.exit_code == 0, result.output
        assert not (run / "table.md").exists()
    stamps = {p: p.stat().st_mtime_ns for p in (run / "results").rglob("*.json")}
    assert len(stamps) == 2 * 2 * 2
    assert evaluate(folder, run, "--full-size").exit_code == 0
    assert stamps == {p: p.stat().st_mtime_ns for p in (run / "results").rglob("*.json")}
    assert evaluate(folder, tmp_path / "one", "--full-size").exit_code == 0
    merged = json.loads((run / "summary.json").read_text())
    single = json.loads((tmp_path / "one" / "summary.json").read_text())
    strip = lambda t: {s: {m: v["psnr"] for m, v in row.items()} for s, row in t.items()}  # noqa: E731
    assert strip(merged) == strip(single)


def test_changed_settings_or_model_redo_the_job(tmp_path: Path, folder: Path) -> None:
    from esdiff.evaluation import fingerprint

    assert evaluate(folder, tmp_path / "run", "--full-size").exit_code == 0
    done = tmp_path / "run" / "results" / "biharmonic" / "a__random-0.5.json"
    stamp = done.stat().st_mtime_ns
    assert evaluate(folder, tmp_path / "run", "--full-size", "--seed", "1").exit_code == 0
    assert done.stat().st_mtime_ns != stamp
    assert json.loads(done.read_text())["seed"] == 1
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"one")
    first = fingerprint("esdiff", {"model": model, "steps": 5}, 0)
    assert first == fingerprint("esdiff", {"model": model, "steps": 5}, 0)
    assert first != fingerprint("esdiff", {"model": model, "steps": 6}, 0)
    model.write_bytes(b"second")
    assert first != fingerprint("esdiff", {"model": model, "steps": 5}, 0)
    from esdiff.prior import Runtime

    second = fingerprint("esdiff", {"model": model, "steps": 5}, 0)
    assert second == fingerprint("esdiff", {"model": model, "steps": 5, "runtime": None}, 0)
    assert second != fingerprint("esdiff", {"model": model, "steps": 5, "runtime": Runtime(bf16=True)}, 0)


def test_protocols_and_seeds() -> None:
    assert parse_masks("table2") == MASK_PROTOCOLS["table2"] == ("random:0.8", "random:0.5")
    assert len(parse_masks("table1")) == 6
    assert parse_masks("box:1,2,3,4;random:0.5") == ("box:1,2,3,4", "random:0.5")
    assert parse_masks("random:0.5,box:100,100,50,50,text1") == ("random:0.5", "box:100,100,50,50", "text1")
    # specs are checked for syntax, not for their fit on some small image: these fit a 256 x 256 one
    assert parse_masks("block:16:0.8") == ("block:16:0.8",)
    assert parse_masks("box:100,100,50,50") == ("box:100,100,50,50",)
    for bad in ("block:16", "box:1,2,3", "random:1.5", "block:0:0.5"):
        with pytest.raises(EsdiffError, match="bad mask spec|missing fraction"):
            parse_masks(bad)
    assert mask_seed("a", "text1") == mask_seed("a", "text1") != mask_seed("b", "text1")
    with pytest.raises(EsdiffError):
        parse_masks("zigzag:3")


def test_standard6_is_the_papers_six(shared_data: Path) -> None:
    images = load_benchmark("standard6", shared_data)
    assert sorted(im.name for im in images) == sorted(
        ["baboon", "barbara", "boat_gray", "cameraman_gray", "house", "peppers"]
    )
    assert all(im.pixels.shape == (256, 256, 3) for im in images)


@pytest.mark.parametrize(
    "args",
    [
        ["evaluate", "--benchmark", "lsun100", "--data", "{tmp}/nowhere"],
        ["evaluate", "--benchmark", "imagenet"],
        ["evaluate", "--benchmark", "folder:{tmp}/empty"],
        ["evaluate", "--benchmark", "folder:{tmp}/empty", "--methods", "magic"],
        ["evaluate", "--benchmark", "folder:{tmp}/empty", "--masks", "zigzag"],
        ["ablate", "--variant", "nope"],
        ["ablate", "--size", "8"],
        ["ablate", "--size", "512"],
        ["evaluate", "--benchmark", "folder:{tmp}/empty", "--shard", "2/2"],
        ["evaluate", "--benchmark", "folder:{tmp}/empty", "--shard", "half"],
    ],
)
def test_bad_arguments_are_one_line(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "empty").mkdir()
    filled = [a.format(tmp=tmp_path) for a in args]
    code = "from esdiff_cli.app import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code, *filled], capture_output=True, timeout=120, cwd=tmp_path
    )
    lines = [line for line in result.stderr.decode().splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1 and lines[0].startswith("error:"), (
        result.stderr.decode()
    )


def test_records_carry_lmafit_iterations_and_ranks(tmp_path: Path, folder: Path) -> None:
    """Issue 14: a low-rank method's record reports LMaFit's iterations and ranks per patch (the summary
    averages them); a method without LMaFit has none."""
    result = runner.invoke(
        app,
        ["evaluate", "--benchmark", f"folder:{folder}", "--masks", "random:0.5", "--out", str(tmp_path / "o")]
        + ["--methods", "aloha,biharmonic", "--limit", "1", "-q"],
    )
    assert result.exit_code == 0, result.output
    records = {r["method"]: r for r in json.loads((tmp_path / "o" / "per_image.json").read_text())}
    fit = records["aloha"]["lmafit"]
    assert fit["patches"] >= 1 and 1 <= fit["iterations_mean"] <= fit["iterations_max"]
    assert 1 <= fit["rank_mean"] <= fit["rank_max"]
    assert "lmafit" not in records["biharmonic"]
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["random:0.5"]["aloha"]["lmafit"]["iterations_max"] == fit["iterations_max"]


def test_oracle_picks_each_patch_and_the_image_by_their_own_best_step() -> None:
    """The tracker keeps, per patch, the step whose iterate is nearest the truth (until ``patience``
    steps pass without improvement) and, per image, the step whose stitch is best."""
    import torch

    from esdiff.oracle import Tracker
    from esdiff.patches import PatchBatch, make_grid

    rng = np.random.default_rng(0)
    truth = rng.random((70, 70, 3))
    grid = make_grid(70, 70)
    indices = tuple(range(grid.count))
    assert len(indices) == 4
    cut = grid.cut(torch.from_numpy(truth).float().permute(2, 0, 1), indices)
    batch = PatchBatch(indices, cut * 0, torch.zeros(4, 1, 64, 64, dtype=torch.bool), 0, 4)
    # patch k is nearest the truth at step best[k]; the image as a whole at step 2 (three of four)
    best = [2, 2, 2, 5]
    errors = np.array([[abs(s - b) + 1 for s in range(1, 7)] for b in best], float) * 0.02

    def run(patience: int | None, counts_from: int = 1) -> Tracker:
        tracker = Tracker(truth, truth * 0, grid, 6, patience, counts_from)
        for step in range(1, 7):
            offset = torch.tensor(errors[:, step - 1], dtype=torch.float32).view(4, 1, 1, 1)
            tracker(batch, step, cut + offset)
        return tracker

    run_all = run(None).result(truth)
    assert run_all.patch_steps == best
    assert run_all.best_step == 2
    for corner in (slice(0, 5), slice(65, 70)):  # each corner is one patch's, at its own best step
        want = np.clip(truth[corner, corner] + 0.02, 0, 1)
        assert np.allclose(run_all.best_patch[corner, corner], want, atol=1e-6)
    assert run(1).result(truth).patch_steps == best  # the last patch improves every step up to 5
    errors[3] = [0.10, 0.12, 0.14, 0.01, 0.01, 0.01]
    assert run(None).result(truth).patch_steps == [2, 2, 2, 4]
    assert run(2).result(truth).patch_steps == [2, 2, 2, 1]  # two steps without improvement: stopped
    assert run(2, counts_from=2).result(truth).patch_steps == [2, 2, 2, 4]  # steps 1-2 are the warm-up


def test_evaluate_oracle_columns_come_from_the_honest_run(
    tmp_path: Path, folder: Path, tiny_model: Path
) -> None:
    """``--oracle`` adds the best iterate per image and per patch beside the final iterate, labelled as
    using the ground truth, no worse than the final one; the honest column is what a run without it gives
    (same fingerprint, so that run reads it back)."""
    args = ["evaluate", "--benchmark", f"folder:{folder}", "--masks", "random:0.5", "--full-size", "-q"]
    args += ["--methods", "esdiff,biharmonic", "--model", str(tiny_model), "--steps", "3"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "o"), "--oracle"])
    assert result.exit_code == 0, result.output
    assert "esdiff-oracle-image" in result.output and "against the ground truth" in result.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())["random:0.5"]
    assert summary["esdiff-oracle-image"]["psnr"] >= summary["esdiff"]["psnr"] - 1e-3
    assert summary["esdiff-oracle-patch"]["count"] == 2
    assert "biharmonic-oracle-image" not in summary
    record = json.loads(
        (tmp_path / "o" / "results" / "esdiff-oracle-patch" / "a__random-0.5.json").read_text()
    )
    assert "ground truth" in record["oracle"] and 1 <= record["patch_step_min"] <= 3
    assert "against the ground truth" in (tmp_path / "o" / "table.md").read_text()
    honest = tmp_path / "o" / "results" / "esdiff" / "a__random-0.5.json"
    stamp = honest.stat().st_mtime_ns
    plain = runner.invoke(app, [*args, "--out", str(tmp_path / "o")])
    assert plain.exit_code == 0 and honest.stat().st_mtime_ns == stamp
    alone = runner.invoke(app, [*args, "--out", str(tmp_path / "p")])
    assert alone.exit_code == 0
    again = tmp_path / "p" / "results" / "esdiff" / "a__random-0.5.png"
    assert again.read_bytes() == honest.with_suffix(".png").read_bytes()


def test_image_batch_runs_a_samplers_jobs_together(tmp_path: Path, folder: Path, tiny_model: Path) -> None:
    """``--image-batch 2`` runs both photos' esdiff jobs in one call (records say so, and share its
    seconds) with the results of one job at a time; a second call reads them back; ``--patch-batch``
    is part of the settings, so another value redoes the jobs."""
    args = ["evaluate", "--benchmark", f"folder:{folder}", "--masks", "random:0.6", "--full-size", "-q"]
    args += [
        "--methods",
        "esdiff,biharmonic",
        "--model",
        str(tiny_model),
        "--steps",
        "2",
        "--patch-batch",
        "3",
    ]
    for name, batch in (("one", "1"), ("two", "2")):
        result = runner.invoke(app, [*args, "--out", str(tmp_path / name), "--image-batch", batch])
        assert result.exit_code == 0, result.output
    one, two = (json.loads((tmp_path / n / "per_image.json").read_text()) for n in ("one", "two"))
    assert [r["method"] for r in two] == ["esdiff", "biharmonic"] * 2
    together = [r for r in two if r["method"] == "esdiff"]
    assert [r["batched_images"] for r in together] == [2, 2] and together[0]["seconds"] == together[1][
        "seconds"
    ]
    for a, b in zip(one, two, strict=True):
        assert a["image"] == b["image"] and a["psnr"] == pytest.approx(b["psnr"], abs=1e-3)
    assert together[0]["settings"]["patch_batch"] == "3"
    done = tmp_path / "two" / "results" / "esdiff" / "a__random-0.6.json"
    stamp = done.stat().st_mtime_ns
    assert runner.invoke(app, [*args, "--out", str(tmp_path / "two"), "--image-batch", "2"]).exit_code == 0
    assert done.stat().st_mtime_ns == stamp


def test_ablate_lists_each_variant_with_what_it_changes() -> None:
    result = runner.invoke(app, ["ablate", "--list"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert 10 <= len(lines) <= 20
    names = [line.split()[0] for line in lines]
    assert names[0] == "esdiff" and {"no-prior", "no-trend", "patches", "paper", "paper-ncsnpp"} <= set(names)
    assert all(len(line.split(None, 1)) == 2 for line in lines)  # a description on each


def test_ablations_are_changes_of_the_defaults_or_the_paper() -> None:
    import dataclasses

    from esdiff.config import DEFAULT_SAMPLER, SamplerConfig
    from esdiff.methods import ablations

    variants = ablations()
    assert variants["esdiff"].config == DEFAULT_SAMPLER and variants["paper"].config == SamplerConfig()
    assert variants["no-trend"].config == dataclasses.replace(
        DEFAULT_SAMPLER, low_rank=dataclasses.replace(DEFAULT_SAMPLER.low_rank, trend=None)
    )
    assert variants["paper-lowrank"].model == "ncsnpp" and variants["paper-lowrank"].config == SamplerConfig()


def test_ablate_and_evaluate_take_set_and_save_the_table(
    tmp_path: Path, folder: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--set changes every variant (checked once: a bad value is one line); --save hands the table to
    ``results_table.save_table``."""
    import esdiff_cli.ablate

    saved: list[tuple] = []

    class Saver:
        @staticmethod
        def save_table(name: str, title: str, columns: list, rows: list, **kwargs: object) -> Path:
            saved.append((name, columns, rows))
            return tmp_path / f"{name}.json"

    monkeypatch.setattr(esdiff_cli.ablate, "results_table", lambda: Saver)
    args = ["ablate", "--benchmark", f"folder:{folder}", "--limit", "1", "--masks", "random:0.5", "-q"]
    args += ["--model", str(tiny_model), "--variant", "esdiff,no-prior", "--out", str(tmp_path / "a")]
    cheap = ["--set", "steps=2", "--set", "low_rank.rank=8", "--set", "low_rank.lmafit_max_iter=20"]
    result = runner.invoke(app, [*args, *cheap, "--save"])
    assert result.exit_code == 0, result.output
    (name, columns, rows), *_ = saved
    assert name == "ablate" and columns[:2] == ["variant", "what it changes"]
    assert [row[0] for row in rows] == ["esdiff", "no-prior"] and all(row[2] > 0 for row in rows)
    records = json.loads((tmp_path / "a" / "per_image.json").read_text())
    assert all("steps=2" in r["settings"]["config"] for r in records)
    bad = runner.invoke(app, [*args, "--set", "steps=0"])
    assert bad.exit_code == 2 and "--set (esdiff): steps must be a positive integer (got 0)" in bad.output
    evaluate_args = ["evaluate", "--benchmark", f"folder:{folder}", "--limit", "1", "--masks", "random:0.5"]
    evaluate_args += ["--methods", "esdiff", "--model", str(tiny_model), "-q", "--out", str(tmp_path / "e")]
    result = runner.invoke(app, [*evaluate_args, *cheap, "--full-size"])
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "e" / "per_image.json").read_text())
    assert "steps=2" in records[0]["settings"]["config"]
    bad = runner.invoke(app, [*evaluate_args, "--set", "shifts=9"])
    assert bad.exit_code == 2 and "--set (esdiff): shifts must be 1 to 4 (got 9)" in bad.output
    only_baselines = [a if a != "esdiff" else "biharmonic" for a in evaluate_args]
    bad = runner.invoke(app, [*only_baselines, "--set", "steps=3"])
    assert bad.exit_code == 2 and "--set applies to --methods esdiff or ncsnpp" in bad.output


def test_load_benchmark_crops_the_centre_of_the_256_image(folder: Path) -> None:
    whole = load_benchmark(f"folder:{folder}")
    small = load_benchmark(f"folder:{folder}", crop=40)
    assert [im.name for im in small] == [im.name for im in whole]
    for big, cut in zip(whole, small, strict=True):
        assert cut.pixels.shape == (40, 40, 3) and cut.pixels.flags.c_contiguous
        np.testing.assert_array_equal(cut.pixels, big.pixels[108:148, 108:148])
    with pytest.raises(EsdiffError, match="crop must be a positive number"):
        load_benchmark(f"folder:{folder}", crop=0)


def test_ablate_size_names_the_table_records_the_load_and_never_reuses_another_size(
    tmp_path: Path, folder: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--size crops every image and names the saved table ``ablate_SIZE``; --load lands in the JSON's
    machine note; a result stored at one size is not read back at another (its mask is drawn again)."""
    import importlib.util

    import esdiff_cli.ablate

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results_table.py"
    spec = importlib.util.spec_from_file_location("results_table_under_test", path)
    assert spec is not None and spec.loader is not None
    real = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(real)

    class Saver:
        @staticmethod
        def save_table(*args: object, **kwargs: object) -> Path:
            return real.save_table(*args, **kwargs, directory=tmp_path / "results")  # type: ignore[arg-type]

    monkeypatch.setattr(esdiff_cli.ablate, "results_table", lambda: Saver)
    out = tmp_path / "a"
    args = ["ablate", "--benchmark", f"folder:{folder}", "--limit", "1", "--masks", "random:0.5", "-q"]
    args += ["--model", str(tiny_model), "--variant", "esdiff", "--out", str(out)]
    args += ["--set", "steps=2", "--set", "low_rank.rank=8", "--set", "low_rank.lmafit_max_iter=20"]
    result = runner.invoke(app, [*args, "--size", "32", "--save", "--load", "busy: two other jobs"])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "results" / "ablate_32.json").read_text())
    assert saved["machine"].endswith("; busy: two other jobs")
    assert "32 x 32" in saved["title"] and saved["command"].split()[0] == "esdiff"  # argv: pytest's here
    (record,) = json.loads((out / "per_image.json").read_text())
    assert record["size"] == [32, 32]
    result = runner.invoke(app, [*args, "--size", "48"])
    assert result.exit_code == 0, result.output
    (record,) = json.loads((out / "per_image.json").read_text())
    assert record["size"] == [48, 48]
    from esdiff.io import read_image

    (png,) = (out / "results" / "esdiff").glob("*.png")
    assert read_image(png).pixels.shape == (48, 48, 3)


def test_ablate_saved_command_names_the_data_root(monkeypatch: pytest.MonkeyPatch) -> None:
    from esdiff_cli.ablate import saved_command

    monkeypatch.setattr(sys, "argv", ["/x/bin/esdiff", "ablate", "--masks", "random:0.8;caption"])
    monkeypatch.setenv("ESDIFF_DATA", "my data")
    assert saved_command(None) == "ESDIFF_DATA='my data' esdiff ablate --masks 'random:0.8;caption'"
    assert saved_command(Path("my data")) == "esdiff ablate --masks 'random:0.8;caption'"  # --data is in argv
    monkeypatch.delenv("ESDIFF_DATA")
    assert saved_command(None) == "esdiff ablate --masks 'random:0.8;caption'"


def test_ablate_variant_all_is_every_variant_in_list_order() -> None:
    from esdiff.methods import ablations
    from esdiff_cli.ablate import chosen_variants

    names = list(ablations())
    assert chosen_variants("all", names) == names and len(names) == 16
    assert chosen_variants(" no-prior, esdiff ,", names) == ["no-prior", "esdiff"]
