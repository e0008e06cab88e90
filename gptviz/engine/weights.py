"""The project's own checkpoint: a directory holding model.safetensors + config.json (+ trainer_state.pt).

Writes are atomic at the directory level: everything goes to a hidden sibling first, then two renames swap
it in. A process killed between the renames leaves `.NAME.old`, which `resolve_checkpoint_dir` falls back to,
so a reader always finds one complete checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gptviz.config import GPTConfig
from gptviz.errors import ConfigError, WeightsError
from gptviz.model.gpt import GPTModel

FORMAT_NAME = "gptviz-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TRAINER_STATE_FILE = "trainer_state.pt"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def model_state_for_saving(model: GPTModel, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The model's tensors, a tied output head stored once (safetensors refuses shared storage)."""
    state = model.state_dict()
    if model.cfg.tie_weights:
        state.pop("out_head.weight", None)
    out = {}
    for key, tensor in state.items():
        tensor = tensor.detach().cpu()
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        out[key] = tensor.contiguous()
    return out


def save_checkpoint(
    model: GPTModel,
    directory: str | os.PathLike,
    *,
    trainer_state: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write the checkpoint directory atomically; the previous one stays loadable until the swap."""
    target = Path(directory)
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".{target.name}.tmp-{os.getpid()}"
    backup = parent / f".{target.name}.old"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        save_file(model_state_for_saving(model, dtype), str(staging / WEIGHTS_FILE), metadata={"format": "pt"})
        _fsync_file(staging / WEIGHTS_FILE)
        if trainer_state is not None:
            torch.save(trainer_state, staging / TRAINER_STATE_FILE)
            _fsync_file(staging / TRAINER_STATE_FILE)
        config = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "config": model.cfg.to_dict(),
            "dtype": str(dtype or model.tok_emb.weight.dtype).replace("torch.", ""),
            "meta": meta or {},
        }
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        _fsync_file(staging / CONFIG_FILE)
        _fsync_dir(staging)
        if target.exists():
            if backup.exists():
                shutil.rmtree(backup)
            os.replace(target, backup)
        os.replace(staging, target)
        _fsync_dir(parent)
        if backup.exists():
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not target.exists() and backup.exists():
            os.replace(backup, target)
        raise
    return target


def resolve_checkpoint_dir(directory: str | os.PathLike) -> Path:
    """The directory to read: the checkpoint itself, or its backup if a save was killed mid-swap."""
    target = Path(directory)
    if (target / CONFIG_FILE).is_file():
        return target
    backup = target.parent / f".{target.name}.old"
    if not target.exists() and (backup / CONFIG_FILE).is_file():
        return backup
    if not target.exists():
        raise WeightsError(f"checkpoint not found: {target}")
    if not target.is_dir():
        raise WeightsError(f"{target} is not a gptviz checkpoint directory")
    raise WeightsError(f"{target} is not a gptviz checkpoint (no {CONFIG_FILE})")


def _read_config_json(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / CONFIG_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{directory / CONFIG_FILE} is unreadable: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise WeightsError(f"{directory / CONFIG_FILE} is not a gptviz checkpoint config")
    return data


def read_checkpoint_config(directory: str | os.PathLike) -> GPTConfig:
    data = _read_config_json(resolve_checkpoint_dir(directory))
    try:
        return GPTConfig.from_dict(data["config"])
    except (KeyError, TypeError, ConfigError) as exc:
        raise WeightsError(f"checkpoint config is invalid: {exc}") from None


def read_checkpoint_meta(directory: str | os.PathLike) -> dict[str, Any]:
    return dict(_read_config_json(resolve_checkpoint_dir(directory)).get("meta", {}))


def check_state_dict(model: GPTModel, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise a WeightsError that names every missing, unexpected or wrongly shaped tensor."""
    expected = model_state_for_saving(model)
    expected_shapes = {k: tuple(v.shape) for k, v in expected.items()}
    missing = sorted(set(expected_shapes) - set(state))
    unexpected = sorted(set(state) - set(expected_shapes))
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} (expected {expected_shapes[k]})"
        for k in set(state) & set(expected_shapes)
        if tuple(state[k].shape) != expected_shapes[k]
    )
    problems = []
    if missing:
        problems.append("missing: " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected: " + ", ".join(unexpected))
    if wrong:
        problems.append("wrong shape: " + ", ".join(wrong))
    if problems:
        raise WeightsError(f"{source} does not fit the model: " + "; ".join(problems))


def load_state_into(model: GPTModel, state: dict[str, torch.Tensor], source: str) -> GPTModel:
    check_state_dict(model, state, source)
    with torch.no_grad():
        params = dict(model.named_parameters(remove_duplicate=False))
        buffers = dict(model.named_buffers())
        for key, tensor in state.items():
            slot = params.get(key, buffers.get(key))
            slot.copy_(tensor.to(slot.dtype))
    return model


def load_checkpoint(
    directory: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[GPTModel, dict[str, Any]]:
    """Load a checkpoint directory as an fp32 model in eval mode, plus its meta dict."""
    path = resolve_checkpoint_dir(directory)
    cfg = read_checkpoint_config(path)
    try:
        state = load_file(str(path / WEIGHTS_FILE))
    except FileNotFoundError:
        raise WeightsError(f"{path} has no {WEIGHTS_FILE}") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path / WEIGHTS_FILE} is damaged or not safetensors: {exc}") from None
    model = GPTModel(cfg)
    load_state_into(model, state, str(path / WEIGHTS_FILE))
    model.to(device).eval()
    return model, read_checkpoint_meta(path)


def load_trainer_state(directory: str | os.PathLike) -> dict[str, Any] | None:
    """Optimizer, schedule, step, RNG... saved beside the weights; read with weights_only=True (no code runs)."""
    path = resolve_checkpoint_dir(directory) / TRAINER_STATE_FILE
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a damaged or unsafe file
        raise WeightsError(f"{path} cannot be read safely: {exc}") from None
