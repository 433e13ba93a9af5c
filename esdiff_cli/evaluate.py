"""`esdiff evaluate`: the paper's benchmarks, masks and baselines side by side."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from esdiff_cli.common import (
    BF16,
    COMPILE,
    MAX_SEED,
    Device,
    cli_errors,
    console,
    fail,
    info,
    make_progress,
    resolve_device,
    runtime_of,
    warn_if_undertrained,
)
from esdiff_cli.sampler_options import FILL, SET, parse_settings, sampler_config, with_fill
from esdiff_cli.threads import THREADS_HELP, set_threads


def parse_methods(text: str) -> list[str]:
    from esdiff.methods import METHODS

    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise fail(f"unknown method {', '.join(unknown) or '(none)'} (choose from {', '.join(METHODS)})")
    return methods


def command(
    benchmark: Annotated[str, typer.Option(help="lsun100, standard6, cbsd68, or folder:PATH.")] = "lsun100",
    masks: Annotated[
        str, typer.Option(help="table1, table2, users, or mask specs separated by , (; if a box).")
    ] = "table1",
    methods: Annotated[str, typer.Option(help="Comma-separated methods.")] = "esdiff,aloha,biharmonic",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Results folder.")] = None,
    data: Annotated[
        Path | None, typer.Option(help="Data root (default: $ESDIFF_DATA or ../shared/data).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N images.")] = None,
    full_size: Annotated[
        bool, typer.Option("--full-size", help="Keep images at full size (no 256 crop).")
    ] = False,
    model: Annotated[Path | None, typer.Option(help="ESDiff checkpoint (default: built-in).")] = None,
    ncsnpp_model: Annotated[Path | None, typer.Option(help="3-channel checkpoint for ncsnpp.")] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Sampler steps for esdiff/ncsnpp.")] = None,
    dip_iterations: Annotated[int | None, typer.Option(min=1, help="DIP iterations (default 1000).")] = None,
    dip_channels: Annotated[
        int | None, typer.Option(min=1, help="DIP network width (default 128; narrower is cheaper).")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed of the stochastic methods.")] = 0,
    device: Annotated[Device, typer.Option(help="Where to compute.")] = Device.auto,
    threads: Annotated[int | None, typer.Option(min=1, help=THREADS_HELP, show_default=False)] = None,
    bf16: BF16 = False,
    compile_net: COMPILE = False,
    shard: Annotated[
        str | None,
        typer.Option(
            metavar="K/N",
            help="Run only jobs K, K+N, ... into --out (parallel workers or machines); a last call "
            "without --shard finds them done and writes the merged reports.",
            show_default=False,
        ),
    ] = None,
    oracle: Annotated[
        bool,
        typer.Option(
            "--oracle",
            help="Also report, for esdiff and ncsnpp, the best iterate per image and per patch by PSNR "
            "against the ground truth (columns *-oracle-image, *-oracle-patch; the lab's selection, "
            "which no user can make), from the same run as the honest final iterate.",
        ),
    ] = False,
    patch_batch: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Patches per network call for esdiff, ncsnpp and ALOHA (default 25).",
            show_default=False,
        ),
    ] = None,
    image_batch: Annotated[
        int,
        typer.Option(
            min=1,
            help="esdiff/ncsnpp jobs of one column whose patches share batches (a GPU's batch of "
            "--patch-batch stays full; results match one job at a time to the last bits).",
        ),
    ] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    fill: FILL = None,
    sampler_settings: SET = None,
) -> None:
    """Run every (image, mask, method) job of a benchmark; re-running skips finished jobs."""
    with cli_errors():
        from esdiff.benchmarks import load_benchmark, parse_masks
        from esdiff.evaluation import (
            EvalOptions,
            Job,
            comparison_figure,
            run_job,
            summarize,
            write_reports,
            zero_fill_record,
        )

        method_list = parse_methods(methods)
        warn_if_undertrained(model if "esdiff" in method_list else None)
        warn_if_undertrained(ncsnpp_model if "ncsnpp" in method_list else None)
        part = parse_shard(shard)
        specs = parse_masks(masks)
        images = load_benchmark(benchmark, data, limit, full_size)
        folder = out or Path("runs") / f"evaluate_{benchmark.replace('folder:', '').replace('/', '_')}"
        runtime = runtime_of(bf16, compile_net)
        settings: dict[str, dict[str, Any]] = {
            "esdiff": {"model": model, "steps": steps, "runtime": runtime, "patch_batch": patch_batch},
            "ncsnpp": {"model": ncsnpp_model, "steps": steps, "runtime": runtime, "patch_batch": patch_batch},
        }
        changes = parse_settings(sampler_settings)
        filled = with_fill({}, fill, method_list)
        if changes or filled:
            from esdiff.methods import SAMPLERS

            if changes and not any(m in SAMPLERS for m in method_list):
                raise fail(f"--set applies to --methods {' or '.join(SAMPLERS)}, and none is chosen")
            for name in (m for m in method_list if m in SAMPLERS):
                ours = {**changes, **filled} if name == "esdiff" else changes
                settings[name]["config"] = sampler_config(SAMPLERS[name].config, ours, f"--set ({name})")
        if patch_batch is not None:
            settings["aloha"] = {"patch_batch": patch_batch}
        dip = {"iterations": dip_iterations, "channels": dip_channels}
        settings["dip"] = {k: v for k, v in dip.items() if v is not None}
        set_threads(threads)
        options = EvalOptions(seed=seed, device=str(resolve_device(device)), settings=settings, oracle=oracle)
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        jobs = [Job(im, spec, m) for im in images for spec in specs for m in method_list]
        mine = jobs[rank::world]
        if part is not None:
            mine = mine[part[0] :: part[1]]
        if oracle:  # a sampler's oracle columns come out of its own job's run, so they follow it
            jobs, mine = with_oracles(jobs), with_oracles(mine)
        columns = list(dict.fromkeys(job.column for job in jobs))
        folder.mkdir(parents=True, exist_ok=True)
        info(f"{len(images)} images x {len(specs)} masks x {len(method_list)} methods -> {folder}")
        records = run_jobs(mine, folder, options, quiet, image_batch)
        if part is not None:
            info(f"shard {part[0]}/{part[1]}: {len(mine)} of {len(jobs)} jobs done in {folder}")
            return
        if world > 1:
            import torch.distributed as dist

            dist.init_process_group("gloo")
            dist.barrier()
            if rank != 0:
                return
            records = [run_job(job, folder, options, None) for job in jobs]  # all finished: reads them back
        floor = [zero_fill_record(im, spec, folder) for im in images for spec in specs]
        table = summarize(records + floor, specs, [*columns, "observation"])
        write_reports(folder, records, table, [*columns, "observation"])
        for im in images:
            for spec in specs:
                comparison_figure(folder, im, spec, method_list)
        show_table(table, [*columns, "observation"], benchmark)
        info(f"wrote {folder}/table.md, per_image.csv, per_image.json, figures/")


def with_oracles(jobs: list[Any]) -> list[Any]:
    """Each job followed by its oracle columns' jobs when its method is a sampler."""
    from dataclasses import replace

    from esdiff.evaluation import ORACLE_KINDS
    from esdiff.methods import SAMPLERS

    return [
        j
        for job in jobs
        for j in (job, *(replace(job, oracle=k) for k in ORACLE_KINDS if job.method in SAMPLERS))
    ]


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``K/N`` with ``0 <= K < N``, or None; a bad value is one clear line."""
    if text is None:
        return None
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise fail(f"--shard must be K/N, for example 0/4 (got {text!r})") from None
    if not 0 <= k < n:
        raise fail(f"--shard K/N needs 0 <= K < N (got {text!r})")
    return k, n


def run_jobs(
    jobs: list[Any],
    folder: Path,
    options: Any,
    quiet: bool,
    image_batch: int = 1,
    description: str = "evaluate",
) -> list[dict[str, Any]]:
    """Every job in turn under one progress bar with ETA, a sampler's ``image_batch`` at a time
    (``evaluation.run_together``); finished jobs are read back, not redone."""
    from esdiff.evaluation import job_groups, run_job, run_together

    records: list[dict[str, Any]] = [{} for _ in jobs]
    with make_progress(quiet) as progress:
        task = progress.add_task(description, total=len(jobs), unit="jobs")
        for group in job_groups(jobs, options, image_batch):
            first = jobs[group[0]]
            more = f" (+{len(group) - 1} images)" if len(group) > 1 else ""
            progress.update(task, info=f"{first.column} {first.image.name} {first.mask}{more}")
            if len(group) == 1:
                records[group[0]] = run_job(first, folder, options, None)
            else:
                together = run_together([jobs[i] for i in group], folder, options, None)
                for i, record in zip(group, together, strict=True):
                    records[i] = record
            progress.advance(task, len(group))
    return records


def show_table(table: dict, methods: list[str], title: str, columns: str = "methods") -> None:
    """The table on stderr, a legend of its columns under it: a rich table in a terminal, the Markdown one
    (never cut short) otherwise."""
    from rich.table import Table

    from esdiff.evaluation import HOLE_TITLE, hole_cells, markdown_table, table_cells

    for heading, cells in (
        (f"{title}: PSNR (dB) / SSIM, mean over images", table_cells),
        (HOLE_TITLE, hole_cells),
    ):
        if not console.is_terminal:
            console.print(heading, soft_wrap=True)
            console.print(markdown_table(table, methods, cells), soft_wrap=True, markup=False)
            continue
        view = Table(title=heading)
        view.add_column("mask")
        for method in methods:
            view.add_column(method, justify="right")
        for spec, row in table.items():
            view.add_row(spec, *cells(row, methods))
        console.print(view)
    for line in legend(methods, columns):
        info(line)


def legend(methods: list[str], columns: str = "methods") -> list[str]:
    """What the tables' cells, columns and rows are, one short line each."""
    from esdiff.evaluation import ORACLE_NOTE

    what = {
        "methods": "the inpainting methods (esdiff inpaint --method)",
        "variants": "the sampler variants (esdiff ablate --list)",
    }[columns]
    lines = [
        "cells: PSNR (dB) / SSIM of the whole image against the ground truth, mean over the images "
        "(per_image.csv also scores the missing pixels alone)",
        "second table: PSNR (dB) of the missing pixels alone / texture ratio (fine detail in the holes "
        "3 px or more from a known pixel, relative to the truth's: 1 is the photo's detail, below 1 a blur)",
        f"columns: {what}; rows: the masks",
    ]
    if "observation" in methods:
        lines.append(
            "observation: the masked input itself, missing pixels black: the floor every method must beat"
        )
    for kind in sorted({m.split("-oracle-")[1] for m in methods if "-oracle-" in m}):
        lines.append(f"*-oracle-{kind}: the best iterate per {kind}, {ORACLE_NOTE}")
    return lines
