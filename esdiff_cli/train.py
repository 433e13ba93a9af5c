"""`esdiff train`: learn the score prior on a folder of a few images (SPEC 2)."""

from __future__ import annotations

import enum
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from esdiff.errors import EsdiffError
from esdiff_cli.common import (
    MAX_SEED,
    Device,
    cli_errors,
    info,
    make_progress,
    progress_callback,
    resolve_device,
)
from esdiff_cli.threads import THREADS_HELP, set_threads

DEFAULT_RECIPE_NAME = "edm-rgb"
"""esdiff.config.DEFAULT_RECIPE, repeated for --help without importing torch (a test checks they agree)."""

if TYPE_CHECKING:
    from esdiff.checkpoints import CheckpointInfo
    from esdiff.config import ModelConfig, TrainConfig


class Recipe(str, enum.Enum):
    """The names of ``esdiff.config.RECIPES`` (a test checks they agree; kept here so --help stays fast)."""

    score_sde = "score-sde"
    edm = "edm"
    edm_rgb = "edm-rgb"
    edm_band = "edm-band"


class Preset(str, enum.Enum):
    tiny = "tiny"
    base = "base"
    mid = "mid"
    paper = "paper"


def command(
    data: Annotated[Path, typer.Argument(help="Folder of training images (any number from 1 up, >= 64 px).")],
    out: Annotated[
        Path,
        typer.Option(
            "-o",
            "--out",
            help="Run folder: model.safetensors (the final model, for --model), checkpoint.safetensors "
            "(for --resume), config.json, metrics.jsonl, curves.png.",
        ),
    ],
    preset: Annotated[
        Preset | None,
        typer.Option(
            help="Network size: tiny (tests), base (CPU, 1.9 M), mid (4.3 M), paper (65.7 M).",
            show_default="base",
        ),
    ] = None,
    steps: Annotated[
        int | None, typer.Option(min=1, help="Train up to step N.", show_default="3000; --init 1000")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(min=0, max=MAX_SEED, help="Seed of weights, crops, noise and mask.", show_default="0"),
    ] = None,
    device: Annotated[Device, typer.Option(help="Where to train.")] = Device.auto,
    threads: Annotated[int | None, typer.Option(min=1, help=THREADS_HELP, show_default=False)] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in OUT from its checkpoint.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the resolved settings as JSON; train nothing.")
    ] = False,
    ratio: Annotated[
        float | None,
        typer.Option(min=0.0, help="MPT perturbation ratio: swap where z >= ratio.", show_default="2.81"),
    ] = None,
    redraw_mask: Annotated[
        bool, typer.Option("--redraw-mask", help="Draw a new virtual mask every step.")
    ] = False,
    no_mpt: Annotated[bool, typer.Option("--no-mpt", help="3-channel NCSN++ baseline without MPT.")] = False,
    crops_per_image: Annotated[
        int | None, typer.Option(min=1, help="Random 64x64 crops per image per step.", show_default="1")
    ] = None,
    flips: Annotated[bool, typer.Option("--flips", help="Random horizontal flips of the crops.")] = False,
    rotations: Annotated[
        bool, typer.Option("--rotations", help="Random 90-degree rotations of the crops.")
    ] = False,
    recipe: Annotated[
        Recipe | None,
        typer.Option(
            help="Training recipe: parametrisation and noise levels (score-sde: SPEC 2's; docs/method.md).",
            show_default=DEFAULT_RECIPE_NAME,
        ),
    ] = None,
    init: Annotated[
        str | None,
        typer.Option(
            help="Fine-tune a model: builtin or a .safetensors file (its network, recipe and virtual mask "
            "are kept; shorter run, lower --lr).",
            show_default=False,
        ),
    ] = None,
    val: Annotated[
        Path | None,
        typer.Option(
            help="Folder of held-out images: log the denoising PSNR at sigma 10/25/50 on fixed crops "
            "(default: hold out 1 photo of 3-8, 2 of more).",
        ),
    ] = None,
    val_every: Annotated[
        int | None, typer.Option(min=1, help="Steps between validations.", show_default="250")
    ] = None,
    checkpoint_every: Annotated[
        int | None, typer.Option(min=1, help="Write a checkpoint every K steps.", show_default="100")
    ] = None,
    lr: Annotated[
        float | None, typer.Option(min=0.0, help="Adam step size.", show_default="2e-4; --init 1e-4")
    ] = None,
    warmup: Annotated[
        int | None, typer.Option(min=0, help="Warm-up steps.", show_default="min(5000, steps/10)")
    ] = None,
    decay: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Cool-down: step size falls linearly to 0 over the last N steps (allowed on --resume).",
            show_default="0",
        ),
    ] = None,
    bf16: Annotated[bool, typer.Option("--bf16", help="bfloat16 autocast (for GPUs).")] = False,
    channels_last: Annotated[
        bool, typer.Option("--channels-last", help="Channels-last memory layout.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train the score network on DATA: one random 64x64 crop per image per step, MPT-encoded.

    Without --val, one or two photos of DATA are held out for validation and never trained on.
    `--init builtin` fine-tunes the built-in model instead of training from scratch.
    Under `torchrun --nproc_per_node=K` it trains with DDP, each process drawing its own crops.
    Ctrl-C (exit status 130) or SIGTERM (143) writes a checkpoint and stops; `--resume` continues with
    the same random stream. At its last step the run writes OUT/model.safetensors, the model to pass to
    `esdiff inpaint --model`.
    """
    options = {
        "preset": preset.value if preset else None,
        "steps": steps,
        "seed": seed,
        "ratio": ratio,
        "redraw_mask": redraw_mask or None,
        "no_mpt": no_mpt or None,
        "crops_per_image": crops_per_image,
        "flips": flips or None,
        "rotations": rotations or None,
        "recipe": recipe.value if recipe else None,
        "val_every": val_every,
        "checkpoint_every": checkpoint_every,
        "lr": lr,
        "warmup": warmup,
        "decay": decay,
    }
    given = {k: v for k, v in options.items() if v is not None}
    rank = int(os.environ.get("RANK", "0"))
    with cli_errors():
        from esdiff.checkpoints import CHECKPOINT_NAME, read_info
        from esdiff.data import load_named_images, load_training_images
        from esdiff.runs import check_resume_data

        named = load_named_images(data)
        val_images = load_training_images(val) if val is not None else None
        saved = None
        init_file = resolve_init(init) if init is not None else None
        if resume:
            if init_file is not None:
                raise EsdiffError("--resume continues a run from its own checkpoint: drop --init")
            if not (out / CHECKPOINT_NAME).is_file():
                raise EsdiffError(f"--resume: {out} holds no {CHECKPOINT_NAME} to continue from")
            saved = read_info(out / CHECKPOINT_NAME)
            check_resume_data(out, data)
        if init_file is not None:
            model_cfg, train_cfg = resolve_init_configs(given, read_info(init_file))
        else:
            model_cfg, train_cfg = resolve_configs(given, saved)
        held = held_out(named, out if resume else None) if val is None or resume else []
        images = [pixels for i, (_, pixels) in enumerate(named) if i not in held]
        if held and val_images is None:
            val_images = [named[i][1] for i in held]
        held_names = [named[i][0].name for i in held]
        torch_device = resolve_device(device)
        if dry_run:
            report = dry_run_report(data, out, len(images), torch_device, model_cfg, train_cfg, saved)
            report.update(init=str(init_file) if init_file else None, held_out=held_names)
            sys.stdout.write(json.dumps(report, indent=2) + "\n")
            return
        from esdiff.training import train

        set_threads(threads)
        note = holdout_message(len(named), held_names) if val is None else None
        progress = make_progress(quiet or rank != 0)
        bar = progress_callback(progress, "train", train_cfg.steps, saved.step if saved else 0)
        noted: list[bool] = []

        def callback(
            step: int, total: int, loss: float, patches_per_s: float, val: dict[int, float] | None = None
        ) -> None:
            if note and not noted:  # once, when training runs, not before a setup error
                info(note)
                noted.append(True)
            progress.start()  # the bar appears once training runs, not before a setup error
            shown = {f"val{k}": f"{v:.2f}" for k, v in (val or {}).items()}
            bar(step, total, unit="steps", loss=loss, **{"patches/s": patches_per_s}, **shown)

        try:
            result = train(
                images,
                model_cfg,
                train_cfg,
                out,
                torch_device,
                callback=callback,
                resume=resume,
                bf16=bf16,
                channels_last=channels_last,
                val_images=val_images,
                run_info={
                    "data": str(data.resolve()),
                    "held_out": held_names,
                    "init": str(init_file) if init_file else None,
                },
                init=init_file,
            )
        finally:
            progress.stop()
        if rank != 0:
            return
        if result.interrupted:  # a clean stop, not an error; the exit status names the signal (130, 143)
            info(f"stopped at step {result.step}: saved {result.checkpoint} (continue with --resume)")
            raise typer.Exit(128 + (result.signal or signal.SIGINT))
        loss = f", last loss {result.loss:.4g}" if result.loss is not None else ""
        info(f"step {result.step}/{train_cfg.steps}{loss}: the model is {result.model}")
        info(f"use it: esdiff inpaint IMG --mask M --model {result.model}")
        summary = validation_summary(out)
        if summary:
            info(summary)


def resolve_init(init: str) -> Path:
    """The model file ``--init`` names (``builtin``: the shipped model); a missing file is an error."""
    from esdiff.prior import BUILTIN_MODEL

    path = BUILTIN_MODEL if init == "builtin" else Path(init)
    if not path.is_file():
        why = "the built-in model is not installed" if init == "builtin" else "no such model file"
        raise EsdiffError(f"--init {init}: {why}")
    return path


def resolve_init_configs(given: dict[str, Any], model: CheckpointInfo) -> tuple[ModelConfig, TrainConfig]:
    """A fine-tune's configs: the model's network, encoding, SDE, parametrisation and recipe, the
    fine-tune's budget (``esdiff.finetune``), and the ``given`` optimisation options; an option that
    contradicts the model is an EsdiffError."""
    import dataclasses

    from esdiff.config import NETWORK_PRESETS
    from esdiff.finetune import (
        FINETUNE_DECAY,
        FINETUNE_STEPS,
        FINETUNE_WARMUP,
        OPTIMISATION_FIELDS,
        finetune_config,
        recipe_conflict,
    )

    cfg, name = model.model_config, model.path.name
    problems = []
    if "preset" in given:
        asked = dataclasses.replace(NETWORK_PRESETS[given["preset"]], channels=cfg.network.channels)
        if asked != cfg.network:
            problems.append(f"--preset {given['preset']} (the model's network is {preset_name(cfg.network)})")
    if given.get("no_mpt") and cfg.mpt.enabled:
        problems.append("--no-mpt (the model has MPT)")
    if "ratio" in given and given["ratio"] != cfg.mpt.ratio:
        problems.append(f"--ratio {given['ratio']} (the model's virtual mask has ratio {cfg.mpt.ratio})")
    if given.get("redraw_mask"):
        problems.append("--redraw-mask (the model's virtual mask is kept)")
    if "recipe" in given:
        why = recipe_conflict(given["recipe"], cfg, model.train_config)
        if why:
            problems.append(f"--recipe {given['recipe']} ({why})")
    if given.get("flips") and model.train_config is not None and not model.train_config.flips:
        problems.append("--flips (the model was trained without)")
    if problems:
        raise EsdiffError(f"--init {name}: {problems[0]}; drop it to fine-tune with the model's settings")
    options = {k: v for k, v in given.items() if k in OPTIMISATION_FIELDS}
    steps = options.get("steps", FINETUNE_STEPS)  # a shorter run gets a shorter warm-up and cool-down
    options.setdefault("warmup", min(default_warmup(steps), FINETUNE_WARMUP))
    options.setdefault("decay", min(steps * 3 // 10, FINETUNE_DECAY))
    return cfg, finetune_config(model.train_config, cfg, options)


def held_out(named: list[tuple[Path, Any]], resumed_run: Path | None) -> list[int]:
    """Indices of the photos to hold out for validation: those the resumed run recorded, or for a new
    run ``esdiff.data.holdout_indices``."""
    from esdiff.data import holdout_indices
    from esdiff.runs import read_run_config

    if resumed_run is None:
        return holdout_indices(len(named))
    recorded = read_run_config(resumed_run).get("held_out") or []
    names = [path.name for path, _ in named]
    missing = [n for n in recorded if n not in names]
    if missing:
        raise EsdiffError(f"--resume: the held-out photo {missing[0]} is no longer in the training folder")
    return [names.index(n) for n in recorded]


def holdout_message(count: int, held: list[str]) -> str:
    if not held:
        return (
            f"{count} photo{'s' * (count != 1)}: none held out for validation, so no validation curve "
            "(give --val DIR, or 3 or more photos)"
        )
    return (
        f"held out for validation (never trained on): {', '.join(held)}; "
        f"training on the other {count - len(held)} (--val DIR to choose)"
    )


def validation_summary(run: Path) -> str | None:
    """The run's last validation PSNR per level, and its first when that was earlier (None: none)."""
    from esdiff.plots import read_metrics
    from esdiff.runs import METRICS_NAME

    try:
        records = [r for r in read_metrics(run / METRICS_NAME) if "val_psnr" in r]
    except OSError:
        return None
    if not records:
        return None

    def figure(record: dict[str, Any]) -> str:
        levels = record["val_psnr"]
        return f"{' / '.join(f'{levels[k]:.2f}' for k in levels)} dB at step {record['step']}"

    first, last = records[0], records[-1]
    levels = "/".join(last["val_psnr"])
    text = f"validation PSNR at sigma {levels}: {figure(last)}"
    return text + (f" (from {figure(first)})" if first is not last else "")


def default_warmup(steps: int) -> int:
    """SPEC 2's 5000 warm-up steps, but never more than a tenth of the run: a warm-up longer than the
    run leaves the learning rate near zero (a 300-step run would learn almost nothing)."""
    from esdiff.config import TrainConfig

    return min(TrainConfig.warmup, max(1, steps // 10))


def resolve_configs(given: dict[str, Any], saved: CheckpointInfo | None) -> tuple[ModelConfig, TrainConfig]:
    """The run's configs: defaults overridden by ``given``, or on resume the saved ones, which ``given``
    options may not contradict (except ``RESUMABLE_FIELDS``)."""
    import dataclasses

    from esdiff.config import DEFAULT_RECIPE, NETWORK_PRESETS, RECIPES, ModelConfig, MPTConfig, TrainConfig
    from esdiff.runs import RESUMABLE_FIELDS, resume_conflicts

    train_fields = {
        "steps",
        "seed",
        "redraw_mask",
        "crops_per_image",
        "flips",
        "rotations",
        "checkpoint_every",
        "val_every",
        "lr",
        "warmup",
        "decay",
    }
    train_kw = {k: v for k, v in given.items() if k in train_fields}
    precond, recipe_kw = RECIPES[given.get("recipe", DEFAULT_RECIPE)]
    if saved is None and "warmup" not in train_kw:
        train_kw["warmup"] = default_warmup(train_kw.get("steps", 3000))
    if saved is None:
        channels = 3 if given.get("no_mpt") else 12
        network = dataclasses.replace(NETWORK_PRESETS[given.get("preset", "base")], channels=channels)
        mpt = MPTConfig(ratio=given.get("ratio", 2.81), seed=given.get("seed", 0), enabled=channels == 12)
        model = ModelConfig(network=network, mpt=mpt, precond=precond)
        return model, TrainConfig(**{**recipe_kw, **train_kw})
    if "recipe" in given:
        train_kw = {**recipe_kw, **train_kw}
        if precond != saved.model_config.precond:
            raise EsdiffError(
                f"--resume: --recipe {given['recipe']} conflicts with the saved run's parametrisation "
                f"({saved.model_config.precond.kind}); drop --recipe or train into a new folder"
            )

    old_model, old_train = saved.model_config, saved.train_config or TrainConfig()
    if "preset" in given:
        asked = dataclasses.replace(NETWORK_PRESETS[given["preset"]], channels=old_model.network.channels)
        if asked != old_model.network:
            raise EsdiffError(
                f"--resume: --preset {given['preset']} conflicts with the saved run's network "
                f"({preset_name(old_model.network)}); drop --preset or train into a new folder"
            )
    mpt_kw = {"ratio": given["ratio"]} if "ratio" in given else {}
    if given.get("no_mpt"):
        mpt_kw["enabled"] = False
    model_cfg = dataclasses.replace(old_model, mpt=dataclasses.replace(old_model.mpt, **mpt_kw))
    train_cfg = dataclasses.replace(old_train, **train_kw)
    conflicts = resume_conflicts(old_model, model_cfg, old_train, train_cfg)
    if conflicts:
        allowed = ", ".join(f"--{f.replace('_', '-')}" for f in RESUMABLE_FIELDS)
        raise EsdiffError(
            f"--resume: {'; '.join(conflicts)} (only {allowed} may change; drop the rest or use a new folder)"
        )
    return model_cfg, train_cfg


def preset_name(network: Any) -> str:
    """The preset a network config came from (ignoring its channel count), or ``custom``."""
    import dataclasses

    from esdiff.config import NETWORK_PRESETS

    for name, cfg in NETWORK_PRESETS.items():
        if dataclasses.replace(cfg, channels=network.channels) == network:
            return name
    return "custom"


def dry_run_report(
    data: Path,
    out: Path,
    n_images: int,
    device: Any,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    saved: CheckpointInfo | None,
) -> dict[str, Any]:
    """What a run would do, as JSON-ready data (the network is sized on the meta device: no weights)."""
    import torch

    from esdiff.config import to_dict
    from esdiff.nn import build_score_model, count_parameters

    with torch.device("meta"):
        parameters = count_parameters(build_score_model(model_cfg.network))
    return {
        "data": str(data),
        "images": n_images,
        "patches_per_step": n_images * train_cfg.crops_per_image * int(os.environ.get("WORLD_SIZE", "1")),
        "out": str(out),
        "resume_from_step": saved.step if saved else None,
        "device": str(device),
        "preset": preset_name(model_cfg.network),
        "parameters": parameters,
        "model": to_dict(model_cfg),
        "train": to_dict(train_cfg),
    }
