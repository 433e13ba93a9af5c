"""Fine-tuning a trained model on new photos (`esdiff train --init`): what is kept from the model, what
may change, and the budget a fine-tune starts with.

The model decides the network, the encoding (MPT and its virtual mask), the SDE, the parametrisation and
the recipe (noise levels and where the noise is drawn); a fine-tune changes only the optimisation:
steps, step size, warm-up, cool-down, seed and the data options. The weights themselves are loaded by
``esdiff.training.train(init=...)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from esdiff.config import DEFAULT_RECIPE, RECIPES, ModelConfig, TrainConfig

FINETUNE_STEPS = 1000
"""Default step budget of a fine-tune: sized from measured seconds per step of the ``base`` network with
a batch of ten photos on one thread of the 2-core CPU, to finish within 20 minutes (CHANGELOG)."""
FINETUNE_LR = 1e-4
"""Default Adam step size of a fine-tune: half of training's from scratch, which in short measured runs
raised the validation PSNR as fast as the full one (CHANGELOG)."""
FINETUNE_WARMUP = 50
"""Default warm-up steps of a fine-tune (the Adam moments start from zero)."""
FINETUNE_DECAY = 300
"""Default cool-down of a fine-tune: the step size falls linearly to zero over its last 300 steps, as the
built-in model's training ended."""
FINETUNE_VAL_EVERY = 100
"""Default steps between validations of a fine-tune (a short run still draws a curve)."""

OPTIMISATION_FIELDS = frozenset(
    {
        "steps",
        "seed",
        "lr",
        "warmup",
        "decay",
        "checkpoint_every",
        "val_every",
        "crops_per_image",
        "rotations",
    }
)
"""TrainConfig fields a fine-tune may set; the rest (the recipe, ``flips`` included, and the EMA rate and
clipping) come from the model. ``rotations`` and ``crops_per_image`` only change what data is drawn."""


def finetune_config(
    model_train: TrainConfig | None, model: ModelConfig, given: dict[str, Any]
) -> TrainConfig:
    """The TrainConfig of a fine-tune of a model trained with ``model_train`` (None: a file without one,
    taken as its parametrisation's recipe): its recipe, the fine-tune's budget, then the ``given``
    optimisation fields (``OPTIMISATION_FIELDS``; others raise ValueError)."""
    unknown = set(given) - OPTIMISATION_FIELDS
    if unknown:
        raise ValueError(f"a fine-tune cannot set {', '.join(sorted(unknown))}")
    if model_train is None:
        recipe = "score-sde" if model.precond.kind == "score-sde" else DEFAULT_RECIPE
        model_train = TrainConfig(**RECIPES[recipe][1])
    budget = {
        "steps": FINETUNE_STEPS,
        "lr": FINETUNE_LR,
        "warmup": FINETUNE_WARMUP,
        "decay": FINETUNE_DECAY,
        "seed": 0,
        "checkpoint_every": TrainConfig.checkpoint_every,
        "val_every": FINETUNE_VAL_EVERY,
    }
    return dataclasses.replace(model_train, **{**budget, **given})


def recipe_conflict(recipe: str, model: ModelConfig, model_train: TrainConfig | None) -> str | None:
    """Why the named recipe is not the one the model was trained with (None: it is, or the file does not
    say which it was and the parametrisation agrees)."""
    precond, fields = RECIPES[recipe]
    if precond.kind != model.precond.kind:
        return f"its parametrisation is {model.precond.kind}, --recipe {recipe} trains {precond.kind}"
    if precond != model.precond:
        return f"its sigma_data is {model.precond.sigma_data}, --recipe {recipe} sets {precond.sigma_data}"
    if model_train is None:
        return None
    asked = dataclasses.replace(TrainConfig(), **fields)
    for name in ("noise", "sigma_lo", "sigma_hi", "p_mean", "p_std", "noise_space"):
        if getattr(asked, name) != getattr(model_train, name):
            return (
                f"its {name} is {getattr(model_train, name)}, --recipe {recipe} sets {getattr(asked, name)}"
            )
    return None
