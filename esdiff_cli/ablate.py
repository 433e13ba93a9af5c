"""`esdiff ablate`: variants of the ESDiff sampler side by side (``esdiff/ablations.json``)."""

from __future__ import annotations

import importlib.util
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from esdiff_cli.common import (
    MAX_SEED,
    Device,
    cli_errors,
    fail,
    info,
    resolve_device,
    warn_if_undertrained,
)
from esdiff_cli.sampler_options import SET, parse_settings, sampler_config
from esdiff_cli.threads import THREADS_HELP, set_threads

MIN_SIZE = 32
"""The smallest --size: every mask generator draws on it."""


def command(
    variant: Annotated[str, typer.Option(help="Comma-separated (--list), or all.")] = "esdiff,no-prior",
    benchmark: Annotated[str, typer.Option(help="lsun100, standard6, cbsd68, or folder:PATH.")] = "lsun100",
    masks: Annotated[str, typer.Option(help="Mask specs or a protocol name.")] = "random:0.8",
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N images.")] = 5,
    model: Annotated[Path | None, typer.Option(help="ESDiff checkpoint (default: built-in).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Results folder.")] = Path("runs/ablate"),
    data: Annotated[Path | None, typer.Option(help="Data root.")] = None,
    size: Annotated[
        int,
        typer.Option(
            min=MIN_SIZE,
            max=256,
            help="The centre SIZE x SIZE of each 256 x 256 benchmark image, not resized (57: one 64 x 64 "
            "window of the patch grid).",
        ),
    ] = 256,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Sampler seed.")] = 0,
    device: Annotated[Device, typer.Option(help="Where to compute.")] = Device.auto,
    threads: Annotated[int | None, typer.Option(min=1, help=THREADS_HELP, show_default=False)] = None,
    oracle: Annotated[
        bool,
        typer.Option(
            "--oracle",
            help="Also report each variant's best iterate per image and per patch by PSNR against the "
            "ground truth (an oracle, as in esdiff evaluate).",
        ),
    ] = False,
    save: Annotated[
        bool,
        typer.Option(
            "--save",
            help="Also save the table as docs/results/ablate.json (ablate_SIZE.json below 256) for "
            "docs/results.md.",
        ),
    ] = False,
    load: Annotated[str, typer.Option(help="What else the machine was doing, for the saved table.")] = "idle",
    list_variants: Annotated[bool, typer.Option("--list", help="List the variants and exit.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    sampler_settings: SET = None,
) -> None:
    """Compare sampler variants of ESDiff on a benchmark (mean PSNR/SSIM per mask and variant); --set
    changes every variant."""
    with cli_errors():
        from esdiff.methods import ablations, default_model

        table_of = ablations()
        if list_variants:  # data, not a message: stdout, one variant a line
            width = max(map(len, table_of))
            print("\n".join(f"{name:<{width}}  {v.description}" for name, v in table_of.items()))
            return
        chosen = chosen_variants(variant, list(table_of))
        unknown = [v for v in chosen if v not in table_of]
        if unknown or not chosen:
            raise fail(
                f"unknown variant {', '.join(unknown) or '(none)'} (choose from {', '.join(table_of)})"
            )
        changes = parse_settings(sampler_settings)
        settings: dict[str, dict[str, Any]] = {}
        for name in chosen:
            ablation = table_of[name]
            config = sampler_config(ablation.config, changes, f"--set ({name})")
            own = model if ablation.model == "esdiff" else None  # --model replaces esdiff's model only
            settings[name] = {"config": config, "model": own or default_model(ablation.model)}
        saver = results_table() if save else None
        from esdiff.benchmarks import load_benchmark, parse_masks
        from esdiff.evaluation import EvalOptions, Job, summarize, write_reports
        from esdiff_cli.evaluate import run_jobs, show_table, with_oracles

        warn_if_undertrained(model)
        specs = parse_masks(masks)
        images = load_benchmark(benchmark, data, limit, crop=size if size != 256 else None)
        set_threads(threads)
        options = EvalOptions(seed=seed, device=str(resolve_device(device)), settings=settings, oracle=oracle)
        jobs = [Job(im, spec, "esdiff", label=v) for im in images for spec in specs for v in chosen]
        if oracle:
            jobs = with_oracles(jobs)
        columns = list(dict.fromkeys(job.column for job in jobs))
        out.mkdir(parents=True, exist_ok=True)
        records = run_jobs(jobs, out, options, quiet, description="ablate")
        table = summarize(records, specs, columns)
        write_reports(out, records, table, columns)
        show_table(table, columns, f"ablation on {benchmark}", "variants")
        info(f"wrote {out}/table.md, per_image.csv, per_image.json")
        if saver is not None:
            rows = [
                [column, table_of[column].description if column in table_of else "oracle"]
                + [
                    table[spec][column][key] if column in table[spec] else None
                    for spec in specs
                    for key in ("psnr", "ssim")
                ]
                for column in columns
            ]
            heads = [f"{spec} {key}" for spec in specs for key in ("PSNR", "SSIM")]
            where = f"{benchmark} in {data}" if data is not None else benchmark
            path = saver.save_table(
                "ablate" if size == 256 else f"ablate_{size}",
                f"Sampler variants on {where} ({len(images)} images, {size} x {size}): PSNR (dB) / SSIM, "
                "mean over images",
                ["variant", "what it changes", *heads],
                rows,
                model=model,
                load=load,
                digits=4,
                command=saved_command(data),
            )
            info(f"wrote {path}")


def chosen_variants(text: str, names: list[str]) -> list[str]:
    """The variants ``--variant`` names: comma-separated, or ``all`` for every one in ``names``' order."""
    return list(names) if text.strip() == "all" else [v.strip() for v in text.split(",") if v.strip()]


def saved_command(data: Path | None) -> str:
    """This process's ``esdiff`` command line, with the data root that ``$ESDIFF_DATA`` gave when
    ``--data`` did not (a saved table names the photos it ran on)."""
    command = " ".join(shlex.quote(a) for a in ["esdiff", *sys.argv[1:]])
    if data is None and os.environ.get("ESDIFF_DATA"):
        return f"ESDIFF_DATA={shlex.quote(os.environ['ESDIFF_DATA'])} {command}"
    return command


def results_table() -> Any:
    """``benchmarks/results_table.py`` of the source checkout this runs from (--save needs one)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results_table.py"
    if not path.is_file():
        raise fail("--save writes docs/results/ablate.json of a source checkout; none found beside esdiff")
    spec = importlib.util.spec_from_file_location("results_table", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
