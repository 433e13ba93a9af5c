"""Why a better denoiser need not inpaint better: measurements behind ``benchmarks/domain.py``.

Four parts, on the test photos of ``domain.py`` (the photos after the first ``--train`` of the set,
``--size`` centre crops, 256 x 256 by default), for the built-in prior and a second one (``--finetuned``):

- ``levels``: one-step denoising PSNR of Gaussian noise at the levels the default sampler visits
  (``LEVELS``, on the [0, 1] scale), not only at sigma 10 / 25 of 255.
- ``near``: per mask, the share of missing pixels that take the prior's estimate in the default list
  (``pnp-near``: weight 1 within one pixel of a known one, 0.5 at two, 0 farther) and the mask's hole
  depth (0: the denoiser sees the state without added noise).
- ``trace``: the default sampler run with the built-in prior and with ``no-prior`` on the same photo; after
  every level the error of the state on the missing pixels (RMSE on [0, 1], next to the level's sigma),
  and one extra step of each prior on the built-in run's state (``denoise`` at the level's sigma, the
  ``pnp-near`` weight, known pixels put back): how much that step moves the holes towards the truth.
- ``variants``: final PSNR with samplers where the prior has more say (``VARIANTS``), each prior.

Results go to a resumable ``records.jsonl`` in ``--work`` and tables to stdout (and, with ``--save``,
``docs/results/domain_why_<set>.json``).

    python benchmarks/domain_why.py --finetuned runs/domain_cbsd68/finetuned/checkpoint.safetensors \\
        --parts levels,near --test 20
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from esdiff.benchmarks import benchmark_files, mask_seed
from esdiff.config import DEFAULT_SAMPLER, SamplerConfig
from esdiff.io import center_crop_resize, read_image
from esdiff.masks import generate_mask
from esdiff.metrics import psnr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from domain import Records, masks  # noqa: E402
from results_table import save_table  # noqa: E402

LEVELS = (0.139, 0.07, 0.035, 0.023, 0.01)
"""Noise levels on the [0, 1] scale: the default schedule starts at sigma(0.25), about 0.139, and ends
at sigma(0.08), about 0.023, on random masks, at the SDE's 0.01 on deep holes."""
TOLD = (0.005, 0.01, 0.023, 0.04, 0.07, 0.1)
"""The levels one last denoising step on the final state is told (``trace``)."""
VARIANTS: dict[str, SamplerConfig] = {
    "default": DEFAULT_SAMPLER,
    "pnp-noise": replace(DEFAULT_SAMPLER, deep_holes=None),
    "esdiff-list": replace(DEFAULT_SAMPLER, step_list="esdiff"),
}
"""``pnp-noise``: the denoiser always sees the state plus the level's noise (as deep holes do), so its
input looks like what it was trained on; ``esdiff-list``: the paper's predictor-corrector list on the
default levels, the network's score on every missing pixel."""


def hole_rmse(x: np.ndarray, truth: np.ndarray, missing: np.ndarray) -> float:
    return float(np.sqrt(np.mean((x[missing] - truth[missing]) ** 2)))


def run_sampler(
    image: np.ndarray, known: np.ndarray, model: Path | None, cfg: SamplerConfig, states: list[np.ndarray]
) -> np.ndarray:
    """The whole-image sampler on one photo, ``states`` filled with the iterate after each level."""
    from esdiff.inpaint import inpaint_image

    observed = np.where(known[..., None], image, 0.0)

    import esdiff.inpaint as inpaint_module

    original = inpaint_module.sample_whole_image

    def watched(*args: Any, **kwargs: Any) -> np.ndarray:
        kwargs["observe"] = lambda step, x: states.append(x.permute(1, 2, 0).double().numpy().copy())
        return original(*args, **kwargs)

    inpaint_module.sample_whole_image = watched
    try:
        return inpaint_image(observed, known, model=model, config=cfg)
    finally:
        inpaint_module.sample_whole_image = original


def part_levels(records: Records, test: list[tuple[str, np.ndarray]], models: dict[str, Path | None]) -> None:
    from esdiff.prior import denoise

    for sigma in LEVELS:
        what = f"level:{sigma}"
        for name, image in test:
            rng = np.random.default_rng(mask_seed(name, what))
            noisy = image + sigma * rng.standard_normal(image.shape)
            if not records.get(what, "noisy", name):
                records.add(what, "noisy", name, psnr(np.clip(noisy, 0, 1), image), 0.0)
            for prior, model in models.items():
                if records.get(what, prior, name):
                    continue
                tick = time.perf_counter()
                out = np.clip(denoise(noisy, sigma, model=model), 0, 1)
                records.add(what, prior, name, psnr(out, image), time.perf_counter() - tick)


def part_near(test: list[tuple[str, np.ndarray]], specs: list[str]) -> list[list[Any]]:
    import torch

    from esdiff.sampler import near_known_weight
    from esdiff.schedule import hole_depth

    rows = []
    for spec in specs:
        shares = []
        for name, image in test:
            known = generate_mask(spec, image.shape[0], image.shape[1], seed=mask_seed(name, spec))
            weight = near_known_weight(torch.from_numpy(known)[None, None])[0, 0].numpy()[~known]
            depth = hole_depth(DEFAULT_SAMPLER, known)
            shares.append([np.mean(weight == 1), np.mean(weight == 0.5), np.mean(weight == 0), depth])
        rows.append([spec, *(float(v) for v in np.mean(shares, axis=0))])
    return rows


def part_trace(
    test: list[tuple[str, np.ndarray]],
    models: dict[str, Path | None],
    spec: str,
    work: Path,
) -> None:
    """Per photo a JSON file of per-level figures (``trace_<spec>_<photo>.json`` in ``work``)."""
    import torch

    from esdiff.prior import denoise
    from esdiff.schedule import for_mask, noise_schedule
    from esdiff.sde import VESDE

    sde = VESDE()
    for name, image in test:
        out_file = work / f"trace_{spec.replace(':', '_')}_{name}.json"
        if out_file.exists():
            continue
        known = generate_mask(spec, image.shape[0], image.shape[1], seed=mask_seed(name, spec))
        missing = np.broadcast_to(~known[..., None], image.shape)
        cfg = for_mask(DEFAULT_SAMPLER, known, sde.eps)
        sigmas = noise_schedule(sde, cfg.steps, cfg.t_start, cfg.t_end)[0].tolist()
        runs: dict[str, list[float]] = {}
        finals: dict[str, float] = {}
        builtin_states: list[np.ndarray] = []
        for prior, model in [("builtin", None), ("no-prior", None)]:
            states: list[np.ndarray] = []
            cfg_run = (
                replace(DEFAULT_SAMPLER, step_list="no-prior") if prior == "no-prior" else DEFAULT_SAMPLER
            )
            final = run_sampler(image, known, model, cfg_run, states)
            runs[prior] = [hole_rmse(s, image, missing) for s in states]
            finals[prior] = psnr(final, image)
            if prior == "builtin":
                builtin_states = states
        from esdiff.sampler import near_known_weight

        weight = near_known_weight(torch.from_numpy(known)[None, None])[0, 0].numpy()[..., None]
        steps: dict[str, list[float]] = {}
        for prior, model in models.items():
            steps[prior] = []
            for i, state in enumerate(builtin_states[:-1]):
                sigma = sigmas[i + 1]  # the level the next step runs at
                clean = denoise(state, sigma, model=model)
                moved = np.where(known[..., None], image, state + weight * (clean - state))
                steps[prior].append(hole_rmse(moved, image, missing))
        told: dict[str, list[float]] = {}  # one step on the final state, told each of TOLD
        for prior, model in models.items():
            told[prior] = []
            for sigma in TOLD:
                clean = denoise(builtin_states[-1], sigma, model=model)
                moved = np.where(
                    known[..., None], image, builtin_states[-1] + weight * (clean - builtin_states[-1])
                )
                told[prior].append(hole_rmse(moved, image, missing))
        record = {"sigmas": sigmas, "rmse": runs, "final_psnr": finals, "one_step_rmse": steps}
        out_file.write_text(json.dumps({**record, "told": list(TOLD), "told_rmse": told}))


def print_trace(files: list[Path]) -> None:
    """Per level, averaged over the traced photos: the hole RMSE (x 255) of the built-in and no-prior
    runs, and how far one more step of each prior moves the built-in run's holes (RMSE change x 255,
    negative: closer to the truth)."""
    if not files:
        return
    traces = [json.loads(f.read_text()) for f in files]
    sigmas = traces[0]["sigmas"]
    print(f"trace over {len(traces)} photos: " + ", ".join(f.stem for f in files))
    finals = {k: np.mean([t["final_psnr"][k] for t in traces]) for k in traces[0]["final_psnr"]}
    print("final PSNR: " + ", ".join(f"{k} {v:.2f}" for k, v in finals.items()))
    print("| level | sigma x 255 | builtin RMSE | no-prior RMSE | builtin step | finetuned step |")
    print("|---|---|---|---|---|---|")
    for i, sigma in enumerate(sigmas):
        rmse = {k: 255 * np.mean([t["rmse"][k][i] for t in traces]) for k in traces[0]["rmse"]}
        step = {}
        for k in traces[0]["one_step_rmse"]:
            if i + 1 < len(sigmas):
                step[k] = 255 * np.mean([t["one_step_rmse"][k][i] - t["rmse"]["builtin"][i] for t in traces])
        cells = [f"{rmse['builtin']:.3f}", f"{rmse['no-prior']:.3f}"]
        cells += [f"{step[k]:+.4f}" if k in step else "" for k in ("builtin", "finetuned")]
        print(f"| {i + 1} | {sigma * 255:.2f} | " + " | ".join(cells) + " |")
    print("one step on the final state, told sigma: hole RMSE x 255 (final state's first)")
    final = 255 * np.mean([t["rmse"]["builtin"][-1] for t in traces])
    for k in traces[0]["told_rmse"]:
        told = [255 * np.mean([t["told_rmse"][k][j] for t in traces]) for j in range(len(traces[0]["told"]))]
        pairs = ", ".join(f"{s * 255:.1f}: {v:.3f}" for s, v in zip(traces[0]["told"], told, strict=True))
        print(f"{k}: {final:.3f}; {pairs}")


def part_variants(
    records: Records,
    test: list[tuple[str, np.ndarray]],
    models: dict[str, Path | None],
    spec: str,
    size: int,
) -> None:
    from esdiff.inpaint import inpaint_image

    for variant, cfg in VARIANTS.items():
        for prior, model in models.items():
            for name, image in test:
                what = f"variant:{variant}:{spec}:{size}"
                if records.get(what, prior, name):
                    continue
                known = generate_mask(spec, image.shape[0], image.shape[1], seed=mask_seed(name, spec))
                observed = np.where(known[..., None], image, 0.0)
                tick = time.perf_counter()
                out = inpaint_image(observed, known, model=model, config=cfg)
                records.add(what, prior, name, psnr(out, image), time.perf_counter() - tick)
                print(f"{what} {prior} {name}: {psnr(out, image):.2f} dB", flush=True)


def done_mean(records: Records, what: str, methods: list[str]) -> tuple[list[float | None], int]:
    """The mean PSNR of each method over the photos that all of them have a record of on ``what``."""
    photos = {image for (w, _, image) in records.values if w == what}
    done = sorted(p for p in photos if all(records.get(what, m, p) for m in methods))
    means = [
        float(np.mean([records.values[(what, m, p)]["psnr"] for p in done])) if done else None
        for m in methods
    ]
    return means, len(done)


def summary(records: Records, traces: list[dict[str, Any]], spec: str) -> list[list[Any]]:
    """The rows of the saved table: built-in, fine-tuned, their difference and the photos behind each."""
    rows: list[list[Any]] = []
    priors = ["builtin", "finetuned"]

    def row(label: str, values: list[float | None], count: int) -> None:
        a, b = values
        rows.append([label, a, b, b - a if a is not None and b is not None else None, count])

    for sigma in LEVELS:
        values, count = done_mean(records, f"level:{sigma}", priors)
        row(f"denoising PSNR, Gaussian noise sigma {sigma * 255:.1f}", values, count)
    if traces:
        no_prior, builtin = (
            float(np.mean([t["final_psnr"][k] for t in traces])) for k in ("no-prior", "builtin")
        )
        label = f"{spec}, default sampler on the traced photos, PSNR (no-prior: {no_prior:.2f})"
        rows.append([label, builtin, None, None, len(traces)])
        sigmas = traces[0]["sigmas"]
        for i in (0, 4, 9, 14, 19, len(sigmas) - 2):
            change = [
                255 * float(np.mean([t["one_step_rmse"][k][i] - t["rmse"]["builtin"][i] for t in traces]))
                for k in priors
            ]
            row(
                f"{spec}, one more denoising step after level {i + 1} of {len(sigmas)} (sigma "
                f"{sigmas[i + 1] * 255:.1f}): hole RMSE change x 255",
                [*change],
                len(traces),
            )
    variants = sorted({w for (w, _, _) in records.values if w.startswith("variant:")})
    for what in variants:
        _, variant, *mask, size = what.split(":")
        values, count = done_mean(records, what, priors)
        row(f"{':'.join(mask)}, {variant} sampler, {size} x {size} crops, PSNR", values, count)
    return rows


def mean_of(records: Records, what: str, method: str, names: list[str]) -> float | None:
    found = [records.get(what, method, n) for n in names]
    return float(np.mean([r["psnr"] for r in found if r])) if all(found) else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", default="cbsd68")
    parser.add_argument("--train", type=int, default=10, help="the first N photos are training photos")
    parser.add_argument("--test", type=int, default=20, help="test photos: the next N")
    parser.add_argument("--finetuned", type=Path, required=True, help="the second prior")
    parser.add_argument("--parts", default="levels,near", help="levels, near, trace, variants")
    parser.add_argument("--masks", default="random:0.8,caption,scratches:thick", help="for near")
    parser.add_argument("--mask", default="random:0.8", help="for trace and variants")
    parser.add_argument("--size", type=int, default=256, help="centre crops of this side (a new --work)")
    parser.add_argument("--work", type=Path, default=None, help="default runs/domain_why_SET")
    parser.add_argument("--save", action="store_true", help="save docs/results/domain_why_SET.json")
    parser.add_argument("--load", default="idle", help="what else the machine was doing (for the table)")
    parser.add_argument("--notes", default="", help="added to the saved table's notes")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    work = args.work or Path("runs") / f"domain_why_{args.set}"
    work.mkdir(parents=True, exist_ok=True)
    files = benchmark_files(args.set)[args.train : args.train + args.test]
    test = [(f.stem, center_crop_resize(read_image(f).pixels, args.size)) for f in files]
    names = [n for n, _ in test]
    models: dict[str, Path | None] = {"builtin": None, "finetuned": args.finetuned}
    records = Records(work / "records.jsonl")
    parts = args.parts.split(",")

    if "near" in parts:
        print("| mask | weight 1 | weight 0.5 | weight 0 | hole depth |\n|---|---|---|---|---|")
        for row in part_near(test, masks(args.masks)):
            print(f"| {row[0]} | " + " | ".join(f"{v:.3f}" for v in row[1:]) + " |")
    if "levels" in parts:
        part_levels(records, test, models)
        print("| sigma | noisy | builtin | finetuned | finetuned - builtin |\n|---|---|---|---|---|")
        for sigma in LEVELS:
            cells = [mean_of(records, f"level:{sigma}", m, names) for m in ("noisy", *models)]
            gain = cells[2] - cells[1] if cells[1] is not None and cells[2] is not None else None
            print(f"| {sigma} | " + " | ".join(f"{c:.2f}" if c is not None else "" for c in [*cells, gain]))
    if "trace" in parts:
        part_trace(test, models, args.mask, work)
    if "trace" in parts:
        print_trace(sorted(work.glob(f"trace_{args.mask.replace(':', '_')}_*.json")))
    if "variants" in parts:
        part_variants(records, test, models, args.mask, args.size)
        for variant in VARIANTS:
            cells = [mean_of(records, f"variant:{variant}:{args.mask}:{args.size}", m, names) for m in models]
            print(f"| {variant} | " + " | ".join(f"{c:.2f}" if c is not None else "" for c in cells))
    if args.save:
        traces = [json.loads(f.read_text()) for f in sorted(work.glob("trace_*.json"))]
        rows = summary(records, traces, args.mask)
        notes = (
            "Built-in prior against the one fine-tuned from it on ten cbsd68 photos "
            f"({args.finetuned}), on the test photos of benchmarks/domain.py. Denoising rows: one step on "
            "256 x 256 crops plus Gaussian noise at the levels the default sampler visits (sigma on the "
            "0-255 scale). One-more-step rows: the default run with the built-in prior, then one extra "
            "denoising step of each prior at the next level (estimate taken with the pnp-near weight, known "
            "pixels put back); positive: the step moves the holes away from the truth. Variant rows: "
            "pnp-noise adds the level's noise before every denoising step (as deep holes get), esdiff-list "
            "is the paper's predictor-corrector list on the default levels. " + args.notes
        )
        path = save_table(
            f"domain_why_{args.set}",
            f"Why the fine-tuned prior denoises better but inpaints the same ({args.set})",
            ["measurement", "built-in", "fine-tuned", "fine-tuned - built-in", "photos"],
            rows,
            model=f"builtin and {args.finetuned}",
            load=args.load,
            notes=notes,
            digits=3,
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
