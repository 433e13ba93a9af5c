"""Checkpoints as safetensors: weights, optimizer state, virtual mask and RNG state as tensors, configs as
JSON in the metadata. Never pickle: nothing here calls ``torch.load``.

Tensors: ``ema.*`` (EMA weights, used for sampling), ``model.*`` (raw weights), ``optim.<i>.<key>`` (Adam
state per parameter), ``virtual_mask`` (bool ``[64, 64]``), ``rng`` (uint8 ``[world_size, L]``, one
generator state per training process). Metadata (str -> str): ``format``, ``format_version``, ``config``
(ModelConfig JSON), ``train_config`` (TrainConfig JSON), ``step``, ``contents`` (``training`` or
``weights``), ``validation`` (JSON ``[[step, {sigma: psnr}], ...]``: the run's validations so far; absent
in files written before it existed). A weights-only file (``export_model``; a run's final
``model.safetensors``) holds ``ema.*``, the mask and the metadata.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from esdiff.config import ModelConfig, TrainConfig, from_json, to_json
from esdiff.config_checks import model_config_problems
from esdiff.errors import EsdiffError
from esdiff.io import atomic_write
from esdiff.nn import ScoreModel, build_score_model

FORMAT = "esdiff-checkpoint"
FORMAT_VERSION = "1"
CHECKPOINT_NAME = "checkpoint.safetensors"
"""File name of the (latest) checkpoint inside a run folder."""
MODEL_NAME = "model.safetensors"
"""File name of a run's final model (its EMA weights, weights only), written when the run reaches its
planned steps."""
EARLY_STOP_SHARE = 0.5
"""A model whose training stopped before this share of its planned steps draws a warning when used."""
RISING_DB = 0.1
"""A model whose last validation (mean PSNR over its noise levels) beat the one before by more than this
many dB was still improving: it draws a warning when used."""

Validation = tuple[tuple[int, dict[int, float]], ...]
"""A run's validations: ``(step, {sigma: PSNR})`` in step order."""


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint's metadata says, read without loading any tensor."""

    path: Path
    model_config: ModelConfig
    train_config: TrainConfig | None
    step: int
    has_training_state: bool
    validation: Validation = ()


@dataclass
class TrainingState:
    """Everything ``--resume`` needs, as CPU tensors."""

    info: CheckpointInfo
    model: dict[str, Tensor]
    ema: dict[str, Tensor]
    optim: dict[str, Tensor]
    keep: Tensor
    rng: Tensor


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    ema: Mapping[str, Tensor],
    keep: Tensor,
    model_config: ModelConfig,
    step: int = 0,
    train_config: TrainConfig | None = None,
    model: Mapping[str, Tensor] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    rng: Tensor | None = None,
    dtype: torch.dtype | None = None,
    validation: Validation = (),
) -> Path:
    """Write a checkpoint atomically (temp file in the same folder, fsync, rename).

    ``model``, ``optimizer`` and ``rng`` together make a training checkpoint; without them the file holds
    weights only. ``dtype`` casts the EMA weights (not buffers such as the Fourier frequencies).
    ``validation`` is the run's validation history so far.
    """
    training = model is not None and optimizer is not None and rng is not None
    keep_buffers = _buffer_names(model_config) if dtype is not None else set()
    tensors: dict[str, Tensor] = {}
    for name, value in ema.items():
        cast = dtype is not None and value.is_floating_point() and name not in keep_buffers
        tensors[f"ema.{name}"] = value.to(dtype) if cast else value
    if training:
        assert model is not None and optimizer is not None and rng is not None
        tensors.update({f"model.{k}": v for k, v in model.items()})
        tensors.update(flatten_optimizer(optimizer))
        tensors["rng"] = rng.to(torch.uint8).reshape(-1, rng.shape[-1])
    tensors["virtual_mask"] = keep.to(torch.bool)
    tensors = _unshared({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()})
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": to_json(model_config),
        "step": str(int(step)),
        "contents": "training" if training else "weights",
    }
    if train_config is not None:
        metadata["train_config"] = to_json(train_config)
    if validation:
        metadata["validation"] = json.dumps(
            [[step, {str(k): v for k, v in val.items()}] for step, val in validation]
        )
    path = Path(path)
    atomic_write(path, _fill_with(tensors, metadata))
    return path


def read_info(path: str | os.PathLike[str]) -> CheckpointInfo:
    """Check a checkpoint's format and read its metadata (configs, step)."""
    path = Path(path)
    with _open(path) as f:
        return _info(path, f.metadata(), set(f.keys()))


def load_model(
    path: str | os.PathLike[str], device: torch.device | str = "cpu"
) -> tuple[ScoreModel, Tensor, ModelConfig]:
    """The EMA-weighted network (eval mode, no grad), keep mask and config, rebuilt from the file alone."""
    path = Path(path)
    with _open(path) as f:
        info = _info(path, f.metadata(), set(f.keys()))
        cfg = info.model_config
        with torch.random.fork_rng(devices=[]):
            try:
                model = build_score_model(cfg.network)
            except (RuntimeError, ValueError, TypeError) as exc:  # past model_config_problems' checks
                raise EsdiffError(f"{path}: the network of its config cannot be built ({exc})") from None
        weights = {k[4:]: f.get_tensor(k) for k in f.keys() if k.startswith("ema.")}
        keep = _read_mask(f, path, cfg)
    load_weights(model, weights, path, "EMA")
    model.eval().requires_grad_(False)
    return model.to(device), keep.to(device), cfg


def load_training_state(path: str | os.PathLike[str]) -> TrainingState:
    """All tensors of a training checkpoint, for ``--resume``; a weights-only file is an EsdiffError."""
    path = Path(path)
    with _open(path) as f:
        info = _info(path, f.metadata(), set(f.keys()))
        if not info.has_training_state:
            raise EsdiffError(f"{path}: holds weights only (no optimizer state): it cannot be resumed")
        keys = list(f.keys())
        ema = {k[4:]: f.get_tensor(k) for k in keys if k.startswith("ema.")}
        model = {k[6:]: f.get_tensor(k) for k in keys if k.startswith("model.")}
        optim = {k: f.get_tensor(k) for k in keys if k.startswith("optim.")}
        keep = _read_mask(f, path, info.model_config)
        rng = f.get_tensor("rng")
    return TrainingState(info, model, ema, optim, keep, rng)


def export_model(
    checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], dtype: torch.dtype = torch.float32
) -> Path:
    """Write the slim, weights-only file (EMA weights, mask, configs) that ``load_model`` reads."""
    checkpoint = Path(checkpoint)
    with _open(checkpoint) as f:
        info = _info(checkpoint, f.metadata(), set(f.keys()))
        ema = {k[4:]: f.get_tensor(k) for k in f.keys() if k.startswith("ema.")}
        keep = _read_mask(f, checkpoint, info.model_config)
    return save_checkpoint(
        out,
        ema=ema,
        keep=keep,
        model_config=info.model_config,
        step=info.step,
        train_config=info.train_config,
        dtype=dtype,
        validation=info.validation,
    )


def flatten_optimizer(optimizer: torch.optim.Optimizer) -> dict[str, Tensor]:
    """Per-parameter optimizer state as ``optim.<index>.<key>`` tensors (hyper-parameters are not kept)."""
    flat: dict[str, Tensor] = {}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            flat[f"optim.{index}.{key}"] = value if isinstance(value, Tensor) else torch.tensor(value)
    return flat


def restore_optimizer(optimizer: torch.optim.Optimizer, flat: Mapping[str, Tensor], source: str = "") -> None:
    """Load state written by :func:`flatten_optimizer` into an optimizer over the same parameters."""
    current = optimizer.state_dict()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict[str, Tensor]] = {}
    for key, value in flat.items():
        number, name = key.removeprefix("optim.").split(".", 1)
        state.setdefault(int(number), {})[name] = value
    for index, entry in state.items():
        if index >= len(params):
            raise EsdiffError(f"{source}: optimizer state does not fit the model ({len(params)} parameters)")
        for name, value in entry.items():
            if value.dim() > 0 and value.shape != params[index].shape:
                raise EsdiffError(f"{source}: optimizer state {name} of parameter {index} has a wrong shape")
    optimizer.load_state_dict({"state": state, "param_groups": current["param_groups"]})


@contextlib.contextmanager
def _open(path: Path) -> Iterator[Any]:
    """``safe_open`` with one clear EsdiffError for anything that is not a safetensors file."""
    if not path.exists():
        raise EsdiffError(f"{path}: no such checkpoint")
    if path.is_dir():
        raise EsdiffError(f"{path}: is a folder, not a checkpoint file")
    with open(path, "rb") as fh:
        head = fh.read(9)
    safetensors_like = head[8:9] == b"{"  # an 8-byte header length, then the JSON header
    if not safetensors_like and (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):
        raise EsdiffError(
            f"{path}: a PyTorch/pickle file, not a safetensors checkpoint "
            "(pickles are never loaded: they can run code)"
        )
    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
    except Exception as exc:
        raise EsdiffError(f"{path}: not a safetensors checkpoint ({exc})") from None
    with handle as f:
        yield f


def _info(path: Path, meta: dict[str, str] | None, keys: set[str]) -> CheckpointInfo:
    meta = meta or {}
    if meta.get("format") != FORMAT:
        raise EsdiffError(f"{path}: a safetensors file but not an esdiff checkpoint (no '{FORMAT}' tag)")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise EsdiffError(
            f"{path}: checkpoint format version {version!r} is not supported "
            f"(this esdiff reads version {FORMAT_VERSION})"
        )
    try:
        model_config = from_json(ModelConfig, meta["config"])
        train_config = from_json(TrainConfig, meta["train_config"]) if "train_config" in meta else None
        step = int(meta.get("step", "0"))
        validation = tuple(
            (int(at), {int(k): float(v) for k, v in val.items()})
            for at, val in json.loads(meta.get("validation", "[]"))
        )
    except (KeyError, ValueError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise EsdiffError(f"{path}: damaged checkpoint metadata ({exc})") from None
    problems = model_config_problems(model_config)
    if problems:
        raise EsdiffError(f"{path}: impossible model config: {'; '.join(problems)}")
    if model_config.network.channels != model_config.mpt.channels:
        raise EsdiffError(
            f"{path}: network has {model_config.network.channels} channels but the encoding needs "
            f"{model_config.mpt.channels}"
        )
    if not any(k.startswith("ema.") for k in keys) or "virtual_mask" not in keys:
        raise EsdiffError(f"{path}: checkpoint lacks its EMA weights or virtual mask")
    training = "rng" in keys and any(k.startswith("model.") for k in keys) and train_config is not None
    return CheckpointInfo(path, model_config, train_config, step, training, validation)


def training_concern(info: CheckpointInfo) -> str | None:
    """Why a model may be worth less than its run could make it, in one sentence, or None: its training
    stopped before ``EARLY_STOP_SHARE`` of the planned steps, or its validation was still rising at its
    last step (by more than ``RISING_DB``). Files that record neither plan nor validation are silent."""
    concerns = []
    planned = info.train_config.steps if info.train_config is not None else 0
    if planned and info.step < EARLY_STOP_SHARE * planned:
        share = info.step / planned
        concerns.append(
            f"its training stopped at step {info.step:,} of the {planned:,} planned ({share:.0%})"
        )
    if len(info.validation) >= 2:
        (_, before), (at, last) = info.validation[-2:]
        old, new = sum(before.values()) / len(before), sum(last.values()) / len(last)
        if new > old + RISING_DB:
            concerns.append(
                f"its validation PSNR was still rising at step {at:,} ({old:.2f} -> {new:.2f} dB, "
                "mean over the noise levels)"
            )
    if not concerns:
        return None
    return f"{info.path}: {' and '.join(concerns)}: it may inpaint worse than a finished model"


def _read_mask(f: Any, path: Path, cfg: ModelConfig) -> Tensor:
    keep = f.get_tensor("virtual_mask")
    size = cfg.mpt.size
    if tuple(keep.shape) != (size, size):
        raise EsdiffError(f"{path}: virtual mask is {tuple(keep.shape)}, expected ({size}, {size})")
    return keep.to(torch.bool)


def load_weights(model: torch.nn.Module, weights: Mapping[str, Tensor], path: Path, what: str) -> None:
    """``load_state_dict`` with missing, extra or mis-shaped tensors reported as one EsdiffError."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    wrong = [k for k in expected if k in weights and weights[k].shape != expected[k].shape]
    if missing or extra or wrong:
        if wrong:
            k = wrong[0]
            detail = f"{k} is {tuple(weights[k].shape)} in the file, {tuple(expected[k].shape)} expected"
        else:
            detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise EsdiffError(f"{path}: {what} weights do not match the network of its config ({detail})")
    for name, value in weights.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise EsdiffError(
                f"{path}: {what} weight {name} holds NaN or Inf values (a diverged training run?): "
                "refusing to use this checkpoint"
            )
    model.load_state_dict(dict(weights))


def _unshared(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """Copy tensors whose storage another entry already uses (safetensors refuses shared memory)."""
    seen: set[int] = set()
    out = {}
    for key, value in tensors.items():
        ptr = value.untyped_storage().data_ptr()
        out[key] = value.clone() if ptr in seen and value.numel() else value
        seen.add(ptr)
    return out


def _buffer_names(cfg: ModelConfig) -> set[str]:
    with torch.device("meta"):
        model = build_score_model(cfg.network)
    return {name for name, _ in model.named_buffers() if name in model.state_dict()}


def _fill_with(tensors: dict[str, Tensor], metadata: dict[str, str]) -> Callable[[Path], None]:
    """Write a safetensors file; an I/O error of its writer becomes an OSError that says why."""

    def fill(tmp: Path) -> None:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as exc:  # the Rust writer reports e.g. a full disk as its own error type
            reason = re.search(r'message: "([^"]*)"', str(exc))
            raise OSError(errno.EIO, reason[1] if reason else str(exc)) from None

    return fill
