"""`esdiff ablate`: variants of the ESDiff sampler side by side (Table IV and the SPEC options)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from esdiff_cli.common import MAX_SEED, Device, cli_errors, fail, info, resolve_device
from esdiff_cli.threads import THREADS_HELP, set_threads


def variants(base: Any) -> dict[str, dict[str, Any]]:
    """Named sampler variants: settings handed to the esdiff method. ``esdiff`` is ``base`` (the
    defaults) and the first group changes one thing of it; ``paper`` is SPEC's faithful sampler (1000
    steps from t = 1, the LMaFit start, float64 low-rank steps)."""
    from esdiff.config import SamplerConfig

    def cfg(**changes: Any) -> Any:
        return dataclasses.replace(base, **changes)

    def low_rank(**changes: Any) -> Any:
        return cfg(low_rank=dataclasses.replace(base.low_rank, **changes))

    return {
        "esdiff": {"config": base},
        "patches": {"config": cfg(sampling="patches")},
        "t-end-eps": {"config": cfg(t_end=None)},
        "t-end-fixed": {"config": cfg(deep_holes=None, pnp_noise=0.0)},
        "pnp-noise-0": {"config": cfg(pnp_noise=0.0)},
        "no-trend": {"config": low_rank(trend=None)},
        "mu-2": {"config": low_rank(mu=2.0)},
        "no-prior": {"config": cfg(step_list="no-prior")},
        "no-lowrank": {"config": cfg(step_list="no-lowrank")},
        "shifts-2": {"config": cfg(shifts=2)},
        "paper": {"config": SamplerConfig()},
    }


def command(
    variant: Annotated[
        str, typer.Option(help="Comma-separated variants (see --list).")
    ] = "esdiff,no-lowrank",
    benchmark: Annotated[str, typer.Option(help="lsun100, standard6, cbsd68, or folder:PATH.")] = "lsun100",
    masks: Annotated[str, typer.Option(help="Mask specs or a protocol name.")] = "random:0.8",
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N images.")] = 5,
    model: Annotated[Path | None, typer.Option(help="ESDiff checkpoint (default: built-in).")] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Sampler steps.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Results folder.")] = Path("runs/ablate"),
    data: Annotated[Path | None, typer.Option(help="Data root.")] = None,
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
    list_variants: Annotated[bool, typer.Option("--list", help="List the variants and exit.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Compare sampler variants of ESDiff on a benchmark (mean PSNR/SSIM per mask and variant)."""
    with cli_errors():
        from esdiff.config import DEFAULT_SAMPLER

        table_of = variants(DEFAULT_SAMPLER)
        if list_variants:  # data, not a message: stdout, one name a line
            print("\n".join(table_of))
            return
        chosen = [v.strip() for v in variant.split(",") if v.strip()]
        unknown = [v for v in chosen if v not in table_of]
        if unknown or not chosen:
            raise fail(
                f"unknown variant {', '.join(unknown) or '(none)'} (choose from {', '.join(table_of)})"
            )
        from esdiff.benchmarks import load_benchmark, parse_masks
        from esdiff.evaluation import EvalOptions, Job, summarize, write_reports
        from esdiff_cli.evaluate import run_jobs, show_table, with_oracles

        specs = parse_masks(masks)
        images = load_benchmark(benchmark, data, limit)
        settings = {v: {**table_of[v], "model": model, "steps": steps} for v in chosen}
        set_threads(threads)
        options = EvalOptions(seed=seed, device=str(resolve_device(device)), settings=settings, oracle=oracle)
        jobs = [Job(im, spec, "esdiff", label=v) for im in images for spec in specs for v in chosen]
        if oracle:
            jobs = with_oracles(jobs)
        columns = list(dict.fromkeys(job.column for job in jobs))
        out.mkdir(parents=True, exist_ok=True)
        records = run_jobs(jobs, out, options, quiet)
        table = summarize(records, specs, columns)
        write_reports(out, records, table, columns)
        show_table(table, columns, f"ablation on {benchmark}")
        info(f"wrote {out}/table.md, per_image.csv, per_image.json")
