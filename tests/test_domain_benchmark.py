"""`benchmarks/domain.py`'s table: each row's means over the photos every prior has done on it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from domain import DEFAULT_MASKS, Records, masks, table  # noqa: E402


def records_with(tmp_path: Path, values: dict[tuple[str, str, str], float]) -> Records:
    records = Records(tmp_path / "records.jsonl")
    for (what, method, image), value in values.items():
        records.add(what, method, image, value, 1.0)
    return records


def test_a_mask_run_on_fewer_photos_keeps_its_row(tmp_path: Path) -> None:
    values = {}
    for image, base in [("a", 20.0), ("b", 22.0), ("c", 24.0)]:
        values[("random:0.8", "builtin", image)] = base
        values[("random:0.8", "finetuned", image)] = base + (0.3 if image != "c" else -0.1)
        values[("random:0.8", "no-prior", image)] = base - 0.5
        values[("random:0.8", "biharmonic", image)] = base - 1.0
    for image in ("a", "b"):  # captions on two photos only, and no-prior on one of them
        values[("caption", "builtin", image)] = 30.0
        values[("caption", "finetuned", image)] = 29.0
    values[("caption", "finetuned", "c")] = 31.0  # not the built-in: left out
    values[("caption", "no-prior", "a")] = 28.0
    records = records_with(tmp_path, values)
    methods = ["builtin", "finetuned", "no-prior", "biharmonic"]
    columns, rows = table(records, ["random:0.8", "caption"], methods, ["a", "b", "c"])
    random, caption = ({c: v for c, v in zip(columns, row, strict=True)} for row in rows[:2])

    assert random["builtin"] == pytest.approx(22.0)
    assert random["finetuned"] == pytest.approx(22.0 + 0.5 / 3)
    assert random["fine-tuned - built-in"] == pytest.approx(0.5 / 3)
    assert random["photos ahead"] == "2 / 3" and random["photos"] == 3
    assert random["best classical"] == "21.00 (biharmonic)"
    assert random["scratch"] is None
    # photo b lacks no-prior: the row stands on both photos the priors have done, no-prior blank
    assert caption["photos"] == 2
    assert caption["no-prior"] is None
    assert caption["fine-tuned - built-in"] == pytest.approx(-1.0)
    assert caption["photos ahead"] == "0 / 2"
    assert caption["best classical"] == ""
    assert rows[2][0] == "denoise:10" and rows[2][-1] == 0 and rows[2][1] is None


def test_default_masks_are_known_specs() -> None:
    assert masks(DEFAULT_MASKS) == ["random:0.8", "caption", "scratches:thick"]
    with pytest.raises(Exception, match="unknown mask spec"):
        masks("random:0.8,scratches")


def test_why_summary_means_over_the_photos_both_priors_did(tmp_path: Path) -> None:
    from domain_why import done_mean, summary

    values = {
        ("level:0.07", "builtin", "a"): 30.0,
        ("level:0.07", "finetuned", "a"): 30.5,
        ("level:0.07", "builtin", "b"): 32.0,  # no fine-tuned figure: left out
        ("variant:pnp-noise:random:0.8:128", "builtin", "a"): 24.0,
        ("variant:pnp-noise:random:0.8:128", "finetuned", "a"): 23.5,
    }
    records = records_with(tmp_path, values)
    assert done_mean(records, "level:0.07", ["builtin", "finetuned"]) == ([30.0, 30.5], 1)
    rows = {row[0]: row[1:] for row in summary(records, [], "random:0.8")}
    assert rows["denoising PSNR, Gaussian noise sigma 17.9"] == [30.0, 30.5, 0.5, 1]
    assert rows["denoising PSNR, Gaussian noise sigma 35.4"] == [None, None, None, 0]
    assert rows["random:0.8, pnp-noise sampler, 128 x 128 crops, PSNR"] == [24.0, 23.5, -0.5, 1]
