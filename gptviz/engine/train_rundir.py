"""The trainer's side of a run directory (gptviz.engine.rundir has the layout): what rank 0 writes as training
goes, where the last good state is kept, and what a resume reads back.

- `RunWriter` writes settings.json once, a metrics line a step, a probe an evaluation, and the "diverged"
  event; on resume it cuts the lines written after the checkpoint (and a half line from a killed writer).
- `save_training_checkpoint` / `restore_training_checkpoint`: the checkpoint with the trainer's state beside
  the weights. A float16 checkpoint also keeps the fp32 weights, so a resume continues from the exact
  weights, not their rounded copy. `MemorySnapshot` is the same last good state for a run without a
  directory (a GUI experiment).
- `read_resume` rebuilds what a resumed trainer starts from: settings with the allowed overrides, the
  weights, the trainer state and the corpus, which must hash to the tokens the run started with.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from gptviz.config import GPTConfig
from gptviz.data import read_split_ids
from gptviz.engine.checkpoint import (
    load_checkpoint,
    load_state_into,
    load_trainer_state,
    model_state_for_saving,
    save_checkpoint,
)
from gptviz.engine.kept_checkpoints import drop_after
from gptviz.engine.probe import truncate_probes, write_probe
from gptviz.engine.rundir import (
    JsonlWriter,
    checkpoint_path,
    metrics_path,
    read_settings,
    truncate_jsonl,
    write_settings,
)
from gptviz.engine.train_settings import RESUME_OVERRIDES, TrainSettings
from gptviz.errors import ConfigError, DataError, WeightsError
from gptviz.model.gpt import GPTModel
from gptviz.tokenizer import Tokenizer

if TYPE_CHECKING:
    from gptviz.engine.train_results import StepResult

# The torch types of TrainSettings.save_dtype (SAVE_DTYPE_NAMES, kept torch-free for the window).
SAVE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def ids_digest(train_ids: torch.Tensor, val_ids: torch.Tensor | None) -> str:
    """sha256 of the token ids, so a resumed run can tell the corpus changed under it."""
    digest = hashlib.sha256(train_ids.to(torch.int64).numpy().tobytes())
    if val_ids is not None:
        digest.update(b"|val|")
        digest.update(val_ids.to(torch.int64).numpy().tobytes())
    return digest.hexdigest()


def metrics_record(result: StepResult, world_size: int) -> dict[str, Any]:
    """One metrics.jsonl line: the step's numbers, and at an evaluation its losses. Step 0 (the untrained
    model's evaluation) has no batch, gradient or speed, so those keys are left out rather than NaN."""
    record: dict[str, Any] = {
        "step": result.step,
        "epoch": result.epoch,
        "tokens_seen": result.tokens_seen,
        "train_loss": result.train_loss,
        "lr": result.lr,
        "grad_norm": result.grad_norm,
        "tokens_per_s": result.tokens_per_s,
        "elapsed_s": result.elapsed_s,
        "world_size": world_size,
    }
    if result.step == 0:
        for key in ("train_loss", "grad_norm", "tokens_per_s"):
            del record[key]
    for key in ("grad_norms", "update_ratios", "attention_entropy", "weight_histograms"):
        if getattr(result, key) is not None:
            record[key] = getattr(result, key)
    if result.train_eval_loss is not None:
        record["train_eval_loss"] = result.train_eval_loss
        record["val_loss"] = result.val_loss
        record["perplexity"] = result.perplexity
    return record


class RunWriter:
    """What rank 0 appends to RUN_DIR as training goes. The metrics file is opened on the first line and may
    be closed at any time: the next line opens it again."""

    def __init__(self, run_dir: Path, world_size: int) -> None:
        self.run_dir = run_dir
        self.world_size = world_size
        self._metrics: JsonlWriter | None = None

    def create(self) -> None:
        """Make the directory of a fresh run; refuse one that already holds a run."""
        if (self.run_dir / "settings.json").exists():
            raise ConfigError(f"{self.run_dir} already holds a run; resume it instead of starting over")
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def cut_back_to(self, step: int) -> None:
        """On resume: drop the metrics lines, probes and kept checkpoints written after the checkpoint's step."""
        truncate_jsonl(metrics_path(self.run_dir), step)
        truncate_probes(self.run_dir, step)
        drop_after(self.run_dir, step)  # kept checkpoints of steps the resumed run trains again

    def write_settings(
        self,
        cfg: GPTConfig,
        settings: TrainSettings,
        corpus: dict[str, Any],
        total_steps: int,
        batches_per_epoch: int,
    ) -> None:
        write_settings(
            self.run_dir,
            {
                "model": cfg.to_dict(),
                "train": settings.to_dict(),
                "corpus": corpus,
                "world_size": self.world_size,
                "total_steps": total_steps,
                "batches_per_epoch": batches_per_epoch,
                "torch": torch.__version__,
            },
        )

    def write_step(self, result: StepResult) -> None:
        """The step's metrics line, and its probe when it made one."""
        self._line(metrics_record(result, self.world_size))
        if result.probe is not None:
            write_probe(self.run_dir, result.probe)

    def write_event(self, step: int, event: str, message: str) -> None:
        self._line({"step": step, "event": event, "message": message})

    def _line(self, record: dict[str, Any]) -> None:
        if self._metrics is None:
            self._metrics = JsonlWriter(metrics_path(self.run_dir))
        self._metrics.write(record)

    def close(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None


def save_training_checkpoint(
    model: GPTModel, run_dir: Path, trainer_state: dict[str, Any], meta: dict[str, Any], save_dtype: str
) -> Path:
    """Write RUN_DIR/checkpoint atomically: the weights in `save_dtype`, the trainer state beside them."""
    dtype = SAVE_DTYPES[save_dtype]
    if dtype != torch.float32:
        # Resume must continue from the exact fp32 weights, not their rounded copy.
        trainer_state = {**trainer_state, "model_fp32": model_state_for_saving(model)}
    path = checkpoint_path(run_dir)
    save_checkpoint(model, path, trainer_state=trainer_state, meta=meta, dtype=dtype)
    return path


def restore_training_checkpoint(model: GPTModel, run_dir: Path) -> dict[str, Any] | None:
    """Put the checkpoint's fp32 weights into `model`; its trainer state (None without one, or without a
    checkpoint, when the model is left as it is)."""
    ckpt = checkpoint_path(run_dir)
    if not (ckpt / "config.json").exists():
        return None
    state = load_trainer_state(ckpt)
    weights = state.get("model_fp32") if state else None
    if weights is None:
        weights = model_state_for_saving(load_checkpoint(ckpt)[0])
    load_state_into(model, weights, str(ckpt))
    return state


@dataclass(frozen=True)
class MemorySnapshot:
    """The last good weights and trainer state of a run without a directory, copied so that training on
    does not change them."""

    model: dict[str, torch.Tensor]
    trainer: dict[str, Any]

    @classmethod
    def take(cls, model: nn.Module, trainer_state: dict[str, Any]) -> MemorySnapshot:
        weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return cls(weights, copy.deepcopy(trainer_state))

    def restore(self, model: nn.Module) -> dict[str, Any]:
        """Put the weights back into `model`; a copy of the trainer state to load (this one stays intact)."""
        model.load_state_dict(self.model)
        return copy.deepcopy(self.trainer)


@dataclass(frozen=True)
class ResumeInputs:
    """What `Trainer.resume` builds a trainer from."""

    model: GPTModel
    settings: TrainSettings
    state: dict[str, Any]  # the trainer state of the checkpoint
    train_ids: torch.Tensor  # (N_train,)
    val_ids: torch.Tensor | None  # (N_val,)
    corpus: dict[str, Any]  # as recorded, less its digest (the trainer computes it again)


def resume_settings(data: dict[str, Any], overrides: dict[str, Any]) -> TrainSettings:
    """The recorded settings with `overrides` applied; only the settings in RESUME_OVERRIDES may change, and a
    new length (steps or epochs) replaces the recorded one."""
    bad = sorted(set(overrides) - RESUME_OVERRIDES)
    if bad:
        raise ConfigError(f"a resumed run cannot change {', '.join(bad)} (they decide which data it sees)")
    train_data = dict(data["train"])
    if "steps" in overrides or "epochs" in overrides:
        train_data.pop("steps", None)
        train_data.pop("epochs", None)
    train_data.update({k: v for k, v in overrides.items() if v is not None})
    return TrainSettings.from_dict(train_data)


def read_resume(
    run_dir: Path,
    tokenizer: Tokenizer,
    train_ids: torch.Tensor | None,
    val_ids: torch.Tensor | None,
    overrides: dict[str, Any],
) -> ResumeInputs:
    """Read RUN_DIR back: settings, weights (the fp32 copy when the checkpoint is float16), trainer state, and
    the corpus (read again from its recorded source unless the ids are given), checked against its digest."""
    data = read_settings(run_dir)
    settings = resume_settings(data, overrides)
    ckpt = checkpoint_path(run_dir)
    model, _meta = load_checkpoint(ckpt)
    state = load_trainer_state(ckpt)
    if state is None:
        raise WeightsError(f"{ckpt} has no trainer state, so the run cannot be resumed")
    if "model_fp32" in state:
        load_state_into(model, state["model_fp32"], f"{ckpt} (fp32 weights)")
    corpus = dict(data.get("corpus") or {})
    if train_ids is None:
        source = corpus.get("source")
        if not source:
            raise DataError(f"{run_dir} does not record its corpus; pass the token ids to resume it")
        lenient = bool(corpus.get("lenient", False))
        parts = read_split_ids(source, tokenizer, settings.val_ratio, settings.split, lenient=lenient)
        train_ids, val_ids = parts.train, parts.val  # (N_train,), (N_val,)
    expected = corpus.pop("sha256", None)
    held_out = val_ids if val_ids is not None and val_ids.numel() else None
    if expected and ids_digest(train_ids, held_out) != expected:
        raise DataError(
            f"the corpus of {run_dir} ({corpus.get('source', 'token ids')}) has changed since the run "
            "started; a resumed run must see the same text"
        )
    return ResumeInputs(model, settings, state, train_ids, val_ids, corpus)
