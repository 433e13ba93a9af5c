"""`esdiff ablate`: variants of the ESDiff sampler side by side (Table IV and the SPEC options)."""

from __future__ import annotations

import dataclasses
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
from esdiff_cli.threads import THREADS_HELP, set_threads


def variants(base: Any) -> dict[str, dict[str, Any]]:
    """Named sampler variants: settings handed to the esdiff method. ``esdiff`` is ``base`` (the
    defaults) and the first group changes one thing of it; ``paper`` is SPEC's faithful sampler (1000
    steps from t = 1, the LMaFit start, float64 low-rank steps); ``pc`` is the previous defaults
    (``PC_SAMPLER``, Algorithm 1's list) and the rest change one thing of that, as they were measured."""
    from esdiff.config import PC_SAMPLER, LowRankConfig, SamplerConfig

    def cfg(**changes: Any) -> Any:
        return dataclasses.replace(base, **changes)

    def low_rank(**changes: Any) -> Any:
        return cfg(low_rank=dataclasses.replace(base.low_rank, **changes))

    def pc(**changes: Any) -> Any:
        return dataclasses.replace(PC_SAMPLER, **changes)

    def pc_low_rank(**changes: Any) -> Any:
        return pc(low_rank=dataclasses.replace(PC_SAMPLER.low_rank, **changes))

    return {
        "esdiff": {"config": base},
        "patches": {"config": cfg(sampling="patches")},
        "t-end-eps": {"config": cfg(t_end=None)},
        "t-end-fixed": {"config": cfg(deep_holes=None, pnp_noise=0.0)},
        "pnp-noise-0": {"config": cfg(pnp_noise=0.0)},
        "no-trend": {"config": low_rank(trend=None)},
        "mu-2": {"config": low_rank(mu=2.0)},
        "paper": {"config": SamplerConfig()},
        "pc": {"config": PC_SAMPLER},
        "no-lowrank": {"config": pc(step_list="no-lowrank")},
        "no-prior": {"config": pc(start="lmafit", step_list="no-prior")},
        "pnp": {"config": pc(start="lmafit", step_list="pnp")},
        "pnp-steps-50": {"config": pc(start="lmafit", steps=50, step_list="pnp")},
        "pnp-near": {"config": pc(start="lmafit", step_list="pnp-near")},
        "x0": {"config": pc(step_list="x0")},
        "x0-fresh-0.5": {"config": pc(fresh_noise=0.5, step_list="x0")},
        "x0-no-lowrank": {"config": pc(fresh_noise=0.5, step_list="x0-no-lowrank")},
        "x0-lr-0.25": {"config": pc(fresh_noise=0.5, low_rank_weight=0.25, step_list="x0")},
        "lr-0.5": {"config": pc(low_rank_weight=0.5)},
        "previous": {"config": pc(known_noise=False, corrector_samples=1)},
        "no-known-noise": {"config": pc(known_noise=False)},
        "fusion-mean": {"config": pc(fusion="mean")},
        "fusion-softmax0": {"config": pc(fusion="softmax0")},
        "start-noise": {"config": pc(start="noise", t_start=1.0)},
        "start-lmafit": {"config": pc(start="lmafit")},
        "predictor-noise": {"config": pc(predictor_noise=True)},
        "corrector-1": {"config": pc(corrector_samples=1)},
        "corrector-3": {"config": pc(corrector_samples=3)},
        "predictor-reverse": {"config": pc(predictor="reverse-diffusion")},
        "corrector-cap-0.1": {"config": pc(corrector_samples=1, corrector_cap=0.1)},
        "steps-50": {"config": pc(steps=50)},
        "mu-10": {"config": pc_low_rank(mu=10.0)},
        "rank-32": {
            "config": pc(low_rank=LowRankConfig(**{**dataclasses.asdict(PC_SAMPLER.low_rank), "rank": 32}))
        },
        "tile": {"config": pc(tiling="tile")},
        "whole-image": {"config": pc(sampling="image")},
        "state-mpt": {"config": pc(state="mpt", known_noise=False)},
        "shifts-2": {"config": pc(shifts=2)},
        "init-residual": {"config": pc_low_rank(init="residual")},
        "init-lab": {"config": pc_low_rank(init="lab")},
        "fill-none": {"config": pc_low_rank(fill="none")},
        "cap-rank": {"config": pc_low_rank(cap_rank=True)},
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

        warn_if_undertrained(model)
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
        records = run_jobs(jobs, out, options, quiet, description="ablate")
        table = summarize(records, specs, columns)
        write_reports(out, records, table, columns)
        show_table(table, columns, f"ablation on {benchmark}", "variants")
        info(f"wrote {out}/table.md, per_image.csv, per_image.json")
