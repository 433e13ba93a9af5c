"""Sampler configs: the one check of what a config cannot run or never reads, and their JSON round trip."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import numpy as np
import pytest
import torch

from esdiff.config import (
    DEFAULT_SAMPLER,
    NCSNPP_SAMPLER,
    LowRankConfig,
    SamplerConfig,
    StepListName,
    from_json,
    to_json,
)
from esdiff.config_checks import MAX_SHIFTS, sampler_config_problems


def test_the_shipped_configs_have_no_problems() -> None:
    for cfg in (DEFAULT_SAMPLER, NCSNPP_SAMPLER, SamplerConfig()):
        assert sampler_config_problems(cfg) == []


def test_config_names_match_the_sampler() -> None:
    from esdiff.patches import GRID_SHIFTS
    from esdiff.sampler import STEP_LISTS

    assert tuple(STEP_LISTS) == typing.get_args(StepListName)
    assert len(GRID_SHIFTS) == MAX_SHIFTS


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": "many"}, "steps"),
        ({"step_list": "pc"}, "step_list"),
        ({"start": "zero"}, "start"),
        ({"shifts": 5}, "shifts"),
        ({"t_start": 0.0}, "t_start"),
        ({"t_end": 0.5}, "t_end"),  # after t_start 0.25
        ({"deep_holes": (0.3, 0.2)}, "deep_holes"),
        ({"pnp_noise": 1.5}, "pnp_noise"),
        ({"patch_batch": 0}, "patch_batch"),
        ({"low_rank": LowRankConfig(trend=0.0)}, "low_rank.trend"),
        ({"low_rank": LowRankConfig(rank=500)}, "low_rank.rank"),
        ({"low_rank": LowRankConfig(mu=-1.0)}, "low_rank.mu"),
        ({"sampling": "image", "state": "mpt", "step_list": "esdiff"}, "state"),
        ({"step_list": "no-prior", "start": "noise"}, "start"),
    ],
)
def test_a_bad_setting_is_one_problem_naming_its_field(changes: dict, field: str) -> None:
    problems = sampler_config_problems(dataclasses.replace(DEFAULT_SAMPLER, **changes))
    assert len(problems) == 1 and field in problems[0], problems


def test_settings_the_step_list_never_reads_are_problems() -> None:
    """Defect: --snr and --corrector-cap were accepted where the corrector does not run."""
    on_defaults = sampler_config_problems(dataclasses.replace(DEFAULT_SAMPLER, snr=0.1, predictor="ddim"))
    assert on_defaults == [
        "predictor, snr act only on a predictor-corrector step list (esdiff or no-lowrank), not pnp-near"
    ]
    off = dataclasses.replace(SamplerConfig(), corrector_samples=0, corrector_cap=0.2)
    assert sampler_config_problems(off) == [
        "corrector_cap acts only on the corrector, which corrector_samples 0 turns off"
    ]
    assert sampler_config_problems(dataclasses.replace(off, corrector_samples=1)) == []


def test_inpaint_refuses_an_unread_setting_before_loading_a_model(tmp_path: Path) -> None:
    from esdiff.errors import EsdiffError
    from esdiff.inpaint import inpaint_image

    known = np.ones((8, 8), dtype=bool)
    known[2:4, 2:4] = False
    with pytest.raises(EsdiffError, match="corrector_cap acts only on a predictor-corrector"):
        cfg = dataclasses.replace(DEFAULT_SAMPLER, corrector_cap=0.2)
        inpaint_image(np.zeros((8, 8, 3)), known, model=tmp_path / "none.safetensors", config=cfg)


@pytest.mark.parametrize("cfg", [DEFAULT_SAMPLER, NCSNPP_SAMPLER, SamplerConfig()])
def test_json_round_trip_gives_the_same_hashable_config(cfg: SamplerConfig) -> None:
    """Defect: optional tuple fields (``deep_holes``) came back as lists, so the config was neither equal
    nor hashable."""
    again = from_json(SamplerConfig, to_json(cfg))
    assert again == cfg and hash(again) == hash(cfg)
    assert isinstance(from_json(SamplerConfig, to_json(DEFAULT_SAMPLER)).deep_holes, tuple)


def test_a_model_without_mpt_runs_the_list_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, astronaut: np.ndarray
) -> None:
    """Defect: with a 3-channel model the ``esdiff`` list silently became ``no-lowrank``; it runs as given
    (the paper's "NCSN++ + low rank"), its low-rank start included."""
    import esdiff.sampler
    from esdiff.checkpoints import save_checkpoint
    from esdiff.config import NETWORK_PRESETS, ModelConfig, MPTConfig
    from esdiff.inpaint import inpaint_image
    from esdiff.nn import build_score_model
    from esdiff.transforms import virtual_mask

    starts: list[int] = []
    real = esdiff.sampler.init_low_rank

    def spy(*args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        starts.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(esdiff.sampler, "init_low_rank", spy)
    torch.manual_seed(0)
    model_cfg = ModelConfig(
        network=dataclasses.replace(NETWORK_PRESETS["tiny"], channels=3), mpt=MPTConfig(enabled=False)
    )
    path = save_checkpoint(
        tmp_path / "m.safetensors",
        ema=build_score_model(model_cfg.network).state_dict(),
        keep=virtual_mask(2.81),
        model_config=model_cfg,
    )
    known = np.random.default_rng(0).random((64, 64)) > 0.5
    observed = np.where(known[..., None], astronaut[:64, :64], 0.0)
    cheap = LowRankConfig(rank=8, lmafit_max_iter=20, dtype="float32")
    cfg = SamplerConfig(steps=2, step_list="esdiff", start="noise", sampling="patches", low_rank=cheap)
    out = inpaint_image(observed, known, model=path, config=cfg)
    assert starts and np.isfinite(out).all()
