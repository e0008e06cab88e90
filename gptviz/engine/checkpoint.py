"""gptviz's own checkpoint: a directory holding model.safetensors + config.json (+ trainer_state.pt).

Writes are atomic at the directory level (gptviz.engine.atomic.staged_directory): everything goes to a
hidden sibling first, then two renames swap it in. A process killed between the renames leaves
`.NAME.old`, which `resolve_checkpoint_dir` falls back to, so a reader always finds one complete checkpoint.

Weights from elsewhere (Hugging Face, the book, nanoGPT) are read by gptviz.engine.importers, which builds
on the state-dict checks here (`check_state_dict`, `load_state_into`, `empty_model`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gptviz.config import GPTConfig, count_params
from gptviz.engine.atomic import backup_name, fsync_file, staged_directory
from gptviz.engine.memory import check_fits
from gptviz.engine.path_kind import CHECKPOINT_FORMAT as FORMAT_NAME
from gptviz.engine.path_kind import CONFIG_FILE, WEIGHTS_FILE
from gptviz.errors import ConfigError, WeightsError
from gptviz.model.gpt import GPTModel

FORMAT_VERSION = 1
TRAINER_STATE_FILE = "trainer_state.pt"

log = logging.getLogger(__name__)


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
    with staged_directory(target) as staging:
        save_file(
            model_state_for_saving(model, dtype), str(staging / WEIGHTS_FILE), metadata={"format": "pt"}
        )
        fsync_file(staging / WEIGHTS_FILE)
        if trainer_state is not None:
            torch.save(trainer_state, staging / TRAINER_STATE_FILE)
            fsync_file(staging / TRAINER_STATE_FILE)
        config = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "config": model.cfg.to_dict(),
            "dtype": str(dtype or model.tok_emb.weight.dtype).replace("torch.", ""),
            "meta": meta or {},
        }
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        fsync_file(staging / CONFIG_FILE)
    return target


def resolve_checkpoint_dir(directory: str | os.PathLike) -> Path:
    """The directory to read: the checkpoint itself, or its backup if a save was killed mid-swap."""
    target = Path(directory)
    if (target / CONFIG_FILE).is_file():
        return target
    backup = backup_name(target)
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
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: a huge int
        raise WeightsError(f"{directory / CONFIG_FILE} is unreadable: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise WeightsError(f"{directory / CONFIG_FILE} is not a gptviz checkpoint config")
    return data


def read_checkpoint_config(directory: str | os.PathLike) -> GPTConfig:
    data = _read_config_json(resolve_checkpoint_dir(directory))
    try:
        return GPTConfig.from_dict(data["config"])
    except (KeyError, TypeError, ConfigError) as exc:
        raise WeightsError(f"checkpoint config is invalid: {exc}") from None  # one line: see GptvizError


def read_checkpoint_meta(directory: str | os.PathLike) -> dict[str, Any]:
    path = resolve_checkpoint_dir(directory)
    meta = _read_config_json(path).get("meta", {})
    if not isinstance(meta, dict):
        raise WeightsError(f"{path / CONFIG_FILE} is damaged: its meta is not a JSON object")
    return dict(meta)


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


JUSTIFIED_SLACK = 2**20  # parameters a model may have beyond twice the file's numbers before it is refused


def check_tensors_cover(cfg: GPTConfig, state: dict[str, torch.Tensor], source: object) -> None:
    """Refuse, before the model is allocated, a config (config.json, model_args) that describes far more
    parameters than the file's tensors hold (the load would refuse it anyway, after allocating the model).
    A small shortfall is left to `check_state_dict`, whose error names each missing tensor."""
    held = sum(t.numel() for t in state.values())
    needed = count_params(cfg)
    if needed > 2 * held + JUSTIFIED_SLACK:
        raise WeightsError(
            f"{source} does not fit the model: its config describes {needed:,} parameters but the file "
            f"holds {held:,} numbers"
        )


def load_state_into(model: GPTModel, state: dict[str, torch.Tensor], source: str) -> GPTModel:
    check_state_dict(model, state, source)
    with torch.no_grad():
        params = dict(model.named_parameters(remove_duplicate=False))
        buffers = dict(model.named_buffers())
        for key, tensor in state.items():
            slot = params[key] if key in params else buffers[key]  # check_state_dict found every key
            slot.copy_(tensor.to(slot.dtype))
    return model


META_INIT_MIN_PARAMS = 50_000_000


def empty_model(cfg: GPTConfig) -> GPTModel:
    """A GPTModel with uninitialised storage, for weights that will be loaded over it anyway.

    Random initialisation of a model that is overwritten costs seconds (124M) to a minute (1558M). Every
    parameter is filled by `load_state_into`, which refuses a state dict that misses one. A model with
    buffers (not in a state dict if non-persistent) gets the normal initialisation instead.
    """
    if count_params(cfg) < META_INIT_MIN_PARAMS:
        # Small models initialise in milliseconds; the meta device's first use imports hundreds of torch
        # modules (2.3 s of the demo model's 3.1 s load at start-up), so build them plainly.
        return GPTModel(cfg)
    with torch.device("meta"):
        model = GPTModel(cfg)
    if any(True for _ in model.buffers()):
        return GPTModel(cfg)
    model.to_empty(device="cpu")
    if cfg.tie_weights:
        model.out_head.weight = model.tok_emb.weight  # to_empty made two tensors of the shared one
    return model


def load_checkpoint(
    directory: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[GPTModel, dict[str, Any]]:
    """Load a checkpoint directory as an fp32 model in eval mode, plus its meta dict."""
    path = resolve_checkpoint_dir(directory)
    cfg = read_checkpoint_config(path)
    check_fits(cfg, training=False, batch_size=1, context=cfg.context_length, device=device)
    try:
        state = load_file(str(path / WEIGHTS_FILE))
    except FileNotFoundError:
        raise WeightsError(f"{path} has no {WEIGHTS_FILE}") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path / WEIGHTS_FILE} is damaged or not safetensors: {exc}") from None
    check_tensors_cover(cfg, state, path / WEIGHTS_FILE)
    model = empty_model(cfg)
    load_state_into(model, state, str(path / WEIGHTS_FILE))
    model.to(device).eval()
    meta = read_checkpoint_meta(path)
    notes: list[str] = []
    # Check the fp32 model, not the (maybe fp16) file tensors: isfinite on fp16 is slow on CPUs.
    loaded = {k: v for k, v in model.state_dict().items() if k in state}
    check_finite(loaded, path / WEIGHTS_FILE, notes)
    for note in notes:  # loaded, but the user should know: NaN weights give NaN logits
        log.warning(note)
    if notes:
        meta["warnings"] = notes
    return model, meta


def load_trainer_state(directory: str | os.PathLike) -> dict[str, Any] | None:
    """Optimizer, schedule, step, RNG saved beside the weights; read with weights_only=True (no code runs)."""
    path = resolve_checkpoint_dir(directory) / TRAINER_STATE_FILE
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a damaged or unsafe file
        raise WeightsError(f"{path} cannot be read safely: {exc}") from None


def check_finite(state: dict[str, torch.Tensor], source: Path, notes: list[str]) -> None:
    """Note (not refuse) NaN or infinite weights: they load, but every logit they touch is NaN."""
    bad = sorted(k for k, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all()))
    if bad:
        notes.append(f"{source} has NaN or infinite values in: {', '.join(bad)}")
