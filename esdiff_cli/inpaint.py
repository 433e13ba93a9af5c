"""`esdiff inpaint`: fill the missing pixels of one image, a folder of images, or a PNG on stdin."""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from esdiff.errors import EsdiffError
from esdiff.methods import BASELINES, METHODS, SAMPLERS
from esdiff_cli.common import (
    MAX_PIXELS,
    MAX_SEED,
    Device,
    check_writable,
    cli_errors,
    console,
    fail,
    info,
    make_progress,
    print_error,
    progress_callback,
    runtime_of,
    warn_if_undertrained,
)
from esdiff_cli.sampler_options import (
    FILL,
    SET,
    env_flag,
    env_int,
    parse_settings,
    sampler_config,
    with_fill,
)
from esdiff_cli.threads import THREADS_HELP, set_threads

STDIO = "-"


@dataclass(frozen=True)
class Job:
    name: str
    source: Path | None
    """None: the image comes on stdin."""
    dest: Path | None
    """None: the result goes to stdout."""


def plan_jobs(source: str, out: str | None, overwrite: bool) -> tuple[list[Job], bool]:
    """Where each input comes from and where its result goes; True when the input is a folder."""
    from esdiff.io import IMAGE_SUFFIXES, list_images

    if source == STDIO:
        dest = None if out in (None, STDIO) else Path(out)
        return [Job("stdin", None, dest)], False
    path = Path(source)
    if not path.exists():
        raise EsdiffError(f"{path}: no such file or folder")
    if path.is_dir():
        if out == STDIO:
            raise EsdiffError("-o - writes one image to stdout; a folder of inputs needs an output folder")
        folder = Path(out) if out else path.with_name(f"{path.name}_inpainted")
        if folder.exists() and not folder.is_dir():
            raise EsdiffError(f"{folder}: exists and is not a folder")
        images = list_images(path)
        if not images:
            raise EsdiffError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)})")
        return [Job(p.stem, p, folder / f"{p.stem}_inpainted.png") for p in images], True
    if out == STDIO:
        return [Job(path.stem, path, None)], False
    if out is None:
        dest = path.with_name(f"{path.stem}_inpainted.png")
    elif Path(out).is_dir():
        dest = Path(out) / f"{path.stem}_inpainted.png"
    else:
        dest = Path(out)
    if dest.suffix.lower() not in IMAGE_SUFFIXES:
        raise EsdiffError(f"{dest}: unknown image type (use .png, .tif, .jpg or .bmp)")
    if dest.exists() and not overwrite:
        raise EsdiffError(f"{dest}: exists (use --overwrite to replace it)")
    return [Job(path.stem, path, dest)], False


def check_outputs(jobs: list[Job]) -> None:
    """Before any compute: a PNG is never dumped on a terminal, and every output folder is writable."""
    if any(job.dest is None for job in jobs) and sys.stdout.isatty():
        raise EsdiffError(
            "-o - writes PNG bytes to stdout, which is a terminal: redirect it (> out.png) or pipe it"
        )
    for folder in sorted({job.dest.parent for job in jobs if job.dest is not None}):
        check_writable(folder)


def check_mask_option(mask: str) -> None:
    """A --mask that is neither a generator spec nor an existing file or folder fails at once, listing
    the specs (a mistyped spec such as ``text3`` would otherwise fail as a missing file, after the model
    has loaded)."""
    from esdiff.masks import SPEC_HELP, is_mask_spec

    if not is_mask_spec(mask) and not Path(mask).exists():
        raise EsdiffError(
            f"--mask {mask!r} is neither a mask spec nor an existing file or folder; {SPEC_HELP}"
        )


def run_job(job: Job, args: dict[str, Any], progress_for: Any) -> dict[str, Any]:
    """Read, inpaint, write one image; returns its summary."""
    from esdiff.io import decode_image, encode_png, read_image, write_image
    from esdiff.masks import missing_fraction, resolve_mask
    from esdiff.methods import MethodOptions, check_mask, run_method

    if job.dest is not None and job.dest.exists() and not args["overwrite"]:
        raise EsdiffError(f"{job.dest}: exists (use --overwrite to replace it)")
    limit = args["max_pixels"]
    image = (
        read_image(job.source, limit)
        if job.source
        else decode_image(sys.stdin.buffer.read(), max_pixels=limit)
    )
    shape = image.pixels.shape[:2]
    known = resolve_mask(
        args["mask"], *shape, seed=args["mask_seed"], invert=args["invert_mask"], stem=job.name
    )
    check_mask(known, shape)
    truth = None
    if args["gt"] is not None:
        truth = read_image(args["gt"], limit).pixels
        if truth.shape != image.pixels.shape:
            raise EsdiffError(f"{args['gt']}: ground truth size differs from the input's")
    summary: dict[str, Any] = {
        "input": str(job.source or STDIO),
        "output": str(job.dest or STDIO),
        "size": [shape[1], shape[0]],
        "missing_fraction": missing_fraction(known),
        "method": args["method"],
        "seed": args["seed"],
        "threads": args["threads"],
    }
    info(f"{job.name}: {shape[1]}x{shape[0]}, {summary['missing_fraction']:.2%} missing")
    options = MethodOptions(seed=args["seed"], device=args["device"], settings=args["settings"])
    start = time.perf_counter()
    result = run_method(args["method"], image.pixels, known, options, progress_for(job.name))
    summary["seconds"] = round(time.perf_counter() - start, 3)
    if truth is not None:
        from esdiff.metrics import evaluate

        metrics = evaluate(result, truth, known).items()
        summary["metrics"] = {k: None if math.isnan(v) else round(float(v), 4) for k, v in metrics}  # JSON
    if job.dest is None:
        sys.stdout.buffer.write(encode_png(result, image.bit_depth))
        sys.stdout.buffer.flush()
    else:
        job.dest.parent.mkdir(parents=True, exist_ok=True)
        write_image(job.dest, result, image.bit_depth)
    return summary


def command(
    source: Annotated[
        str, typer.Argument(metavar="INPUT", help="Image file, folder of images, or - (stdin).")
    ],
    mask: Annotated[
        str,
        typer.Option(
            help="Mask file, folder (matched by stem), or spec such as random:0.8, text1 or "
            "strokes:medium (every spec: esdiff mask --help)."
        ),
    ],
    out: Annotated[str | None, typer.Option("-o", "--out", help="File, folder, or - (stdout, PNG).")] = None,
    method: Annotated[str, typer.Option(help=f"Inpainting method: {', '.join(METHODS)}.")] = "esdiff",
    model: Annotated[
        Path | None, typer.Option(help="Checkpoint from esdiff train (default: the method's shipped one).")
    ] = None,
    seed: Annotated[
        int,
        typer.Option(min=0, max=MAX_SEED, help="Seed for every image (results do not depend on batching)."),
    ] = 0,
    mask_seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed of generated masks.")] = 0,
    invert_mask: Annotated[
        bool, typer.Option("--invert-mask", help="Mask files mark KNOWN pixels white.")
    ] = False,
    device: Annotated[Device, typer.Option(help="Where to compute.")] = Device.auto,
    threads: Annotated[int | None, typer.Option(min=1, help=THREADS_HELP, show_default=False)] = None,
    gt: Annotated[Path | None, typer.Option(help="Ground truth: print PSNR/SSIM.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    fill: FILL = None,
    settings: SET = None,
) -> None:
    """Inpaint INPUT where MASK marks pixels missing (white = missing unless --invert-mask).

    Environment: ESDIFF_BF16=1 runs the samplers' network in bfloat16, ESDIFF_COMPILE=1 compiles it
    (torch.compile), ESDIFF_MAX_PIXELS=N refuses larger images (default 40,000,000).
    """
    with cli_errors():
        if method not in METHODS:
            raise fail(f"--method must be one of {', '.join(METHODS)} (got {method!r})")
        jobs, is_folder = plan_jobs(source, out, overwrite)
        check_outputs(jobs)
        check_mask_option(mask)
        if json_out and any(job.dest is None for job in jobs):
            raise fail("--json prints on stdout, which -o - already uses")
        if gt is not None and is_folder:
            raise fail("--gt takes one ground-truth image; use esdiff evaluate for folders")
        changes = parse_settings(settings)
        changes = with_fill(changes, fill, [method])
        method_settings: dict[str, Any] = {}
        runtime = runtime_of(env_flag("ESDIFF_BF16"), env_flag("ESDIFF_COMPILE"))
        if method in SAMPLERS:
            config = sampler_config(SAMPLERS[method].config, changes)
            method_settings.update(model=model, config=config)
            if runtime is not None:
                method_settings["runtime"] = runtime
        elif changes or model is not None:
            given = "--set" if changes else "--model"
            raise fail(f"{given} applies to --method {' or '.join(SAMPLERS)}, not {method}")
        assert method in SAMPLERS or method in BASELINES
        from esdiff_cli.common import resolve_device

        set_threads(threads)
        import torch

        args = {
            "mask": mask,
            "mask_seed": mask_seed,
            "invert_mask": invert_mask,
            "method": method,
            "seed": seed,
            "device": str(resolve_device(device)),
            "settings": method_settings,
            "gt": gt,
            "overwrite": overwrite,
            "threads": torch.get_num_threads(),
            "max_pixels": env_int("ESDIFF_MAX_PIXELS", MAX_PIXELS),
        }
        if method in SAMPLERS:  # a bad checkpoint fails before any image is touched
            from esdiff.methods import default_model
            from esdiff.prior import load

            load(str(model or default_model(method)), args["device"])
            warn_if_undertrained(model)
        summaries, failures = [], 0
        with make_progress(quiet) as progress:
            images = progress.add_task("inpaint", total=len(jobs), unit="images") if is_folder else None

            def progress_for(name: str) -> Any:
                return progress_callback(progress, name, None)

            for job in jobs:
                try:
                    summary = run_job(job, args, progress_for)
                except EsdiffError as exc:
                    if not is_folder:
                        raise
                    failures += 1
                    print_error(f"{job.name}: {exc}")
                    summary = {"input": str(job.source), "error": str(exc)}
                else:
                    report(summary)
                summaries.append(summary)
                if images is not None:
                    progress.advance(images)
        if json_out:
            print(json.dumps(summaries if is_folder else summaries[0], indent=2))
        if failures:
            raise fail(f"{failures} of {len(jobs)} images failed", 1)


def report(summary: dict[str, Any]) -> None:
    line = f"wrote {summary['output']} in {summary['seconds']:.1f} s"
    metrics = summary.get("metrics")
    if metrics:
        line += f"  PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f}"
        if metrics["psnr_missing"] is not None:
            line += (
                f" (missing region: PSNR {metrics['psnr_missing']:.2f} dB, SSIM {metrics['ssim_missing']:.4f}"
            )
            texture = metrics.get("texture_missing")
            line += ")" if texture is None else f", texture {texture:.2f} of the truth's)"
    console.print(line, soft_wrap=True, markup=False)
