"""Training one optimizer step at a time (book ch. 5), so a GUI or CLI can pause, resume or stop between steps.

The book's `train_model_simple` is a loop; here the loop belongs to the caller and `Trainer.step()` is its
body: one batch, cross-entropy, backward, clipping, AdamW, and every `eval_freq` steps an evaluation (train
and validation loss over `eval_iter` batches), a probe, a metrics line and an atomic checkpoint.

Determinism: the batch order of an epoch is a pure function of (seed, epoch), the position in the data is a
pure function of the step, and dropout draws from the trainer's own copy of the RNG state (swapped in around
each training forward). Under the book's protocol the order of an epoch is drawn from that same RNG state
when the epoch starts, as the book's DataLoader draws it, and is kept in the checkpoint. So a run resumed from its checkpoint continues with exactly the losses it would have
had, and a GUI sampling text between two steps does not change what training sees.

A NaN or infinite loss or gradient norm raises `TrainingDiverged` after putting the model (and optimizer)
back to the last good checkpoint; the checkpoint on disk is never overwritten by a diverged state.

The book's chapter 5 run (`RECIPES["book-ch5"]`, `gptviz train --recipe book-ch5`) is a sum of settings
that each work with any model: `split` "chars" (cut the text, then tokenize each part), `init` "book"
(PyTorch's default initialisation in the book's module order, gptviz.model.book_init), `decay` "all"
(weight decay on every parameter, as `AdamW(model.parameters(), weight_decay=0.1)`), `grad_clip` 0 and
`eval_protocol` "book" (the book's loaders and `evaluate_model`, see `Trainer._book_batches`). Together,
and with the book's sizes, they reproduce the book's own loop (gptviz.model.book_reference.book_ch5_run):
the same weights, batches, dropout masks and evaluation batches.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from gptviz.config import GPTConfig, preset
from gptviz.data import SPLITS, VERDICT, SlidingWindows, read_split_ids
from gptviz.engine.checkpoint import (
    load_checkpoint,
    load_state_into,
    load_trainer_state,
    model_state_for_saving,
    save_checkpoint,
)
from gptviz.engine.distributed import SINGLE, DistInfo, all_reduce_mean, all_reduce_sum, barrier, shard
from gptviz.engine.memory import check_fits
from gptviz.engine.probe import ProbeRecord, make_probe, probe_prompt_ids, truncate_probes, write_probe
from gptviz.engine.rundir import (
    JsonlWriter,
    checkpoint_path,
    metrics_path,
    read_settings,
    truncate_jsonl,
    write_settings,
)
from gptviz.engine.training_diagnostics import PartNorms, attention_entropy
from gptviz.errors import ConfigError, DataError, GptvizError, WeightsError
from gptviz.model.book_init import book_init_rng_state
from gptviz.model.gpt import GPTModel
from gptviz.tokenizer import Tokenizer, default_tokenizer

SAVE_DTYPES = {"float32": torch.float32, "float16": torch.float16}
# Mixed precision for the forward pass and the loss (torch.autocast); the weights, gradients and AdamW state
# stay float32. "off" runs plain float32, exactly as before the option existed.
AMP_DTYPES: dict[str, torch.dtype | None] = {"off": None, "bf16": torch.bfloat16}
DEVICES = ("auto", "cpu", "cuda")
INITS = ("gpt2", "book")
DECAYS = ("matrices", "all")
EVAL_PROTOCOLS = ("fixed", "book")
# Settings a resumed run may change; the others decide which batches it sees and stay fixed.
RESUME_OVERRIDES = frozenset(
    {
        "steps",
        "epochs",
        "lr",
        "min_lr",
        "warmup_steps",
        "cosine",
        "grad_clip",
        "weight_decay",
        "eval_freq",
        "eval_iter",
        "device",
        "save_dtype",
        "amp",
        "probe_prompt",
        "probe_tokens",
        "diagnostics",
    }
)
TRAINER_STATE_VERSION = 1


class TrainingDiverged(GptvizError, RuntimeError):
    """The loss or the gradient became NaN or infinite; the last good weights were kept."""


@dataclass(frozen=True)
class TrainSettings:
    """How to train. Sizes are in tokens and windows; `context` None means the model's context length."""

    lr: float = 4e-4
    weight_decay: float = 0.1
    batch_size: int = 8
    context: int | None = None  # max_length of a window
    stride: int | None = None  # None: the context (windows do not overlap)
    steps: int | None = None  # exactly one of steps / epochs; neither means one epoch
    epochs: int | None = None
    eval_freq: int = 50
    eval_iter: int = 5
    val_ratio: float = 0.1
    seed: int = 123
    warmup_steps: int = 0
    cosine: bool = False
    min_lr: float | None = None  # cosine floor; None: lr / 10
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    device: str = "auto"
    probe_prompt: str = "Every effort moves you"
    probe_tokens: int = 20
    save_dtype: str = "float32"
    shuffle: bool = True
    amp: str = "off"  # "bf16": forward and loss under torch.autocast in bfloat16 (fast on GPUs, slow on CPUs)
    # How the text is split (gptviz.data.read_split_ids): "tokens" cuts the id stream (streams any size),
    # "chars" cuts the characters and tokenizes each part (the book's ch. 5).
    split: str = "tokens"
    # "gpt2": train the weights the model was built with (GPTModel draws GPT-2's N(0, 0.02)). "book": a
    # fresh run first re-draws every weight from `seed` with PyTorch's default init in the book's module
    # order (gptviz.model.book_init), and dropout continues from the generator state that leaves.
    init: str = "gpt2"
    # AdamW weight decay on "matrices" (embeddings and linear weights; not biases or norms, as GPT-2 and
    # nanoGPT) or on "all" parameters (the book's `AdamW(model.parameters(), weight_decay=0.1)`).
    decay: str = "matrices"
    # "fixed": evaluate at step 1, every eval_freq steps and at the end, over eval_iter batches of windows
    # spread evenly over each split (the same windows every time: a smooth curve). "book": the book's
    # loop: training windows in the order its shuffled DataLoader draws them, evaluation after steps 1,
    # 1 + eval_freq, ... over the first eval_iter batches of each loader (a fresh shuffle of the training
    # windows each time, drawn from the same generator as dropout) and the written-out attention, whose
    # dropout draws come in the book's order. One process only.
    eval_protocol: str = "fixed"
    # Per-part gradient norms are measured whenever the gradients are (free); True adds each part's update
    # ratio ‖Δw‖/‖w‖, which keeps a copy of the weights from before each step (gptviz.engine.training_diagnostics).
    diagnostics: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse settings that cannot train, naming the setting and the value."""
        positive_ints = ["batch_size", "eval_freq", "eval_iter"]
        positive_ints += [n for n in ("context", "stride", "steps", "epochs") if getattr(self, n) is not None]
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.steps is not None and self.epochs is not None:
            raise ConfigError("give steps or epochs, not both")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be 0 or more, got {self.warmup_steps!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        if self.min_lr is not None and not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"min_lr must be between 0 and lr ({self.lr}), got {self.min_lr!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"weight_decay must be 0 or more, got {self.weight_decay!r}")
        if not (math.isfinite(self.grad_clip) and self.grad_clip >= 0):
            raise ConfigError(f"grad_clip must be 0 (off) or more, got {self.grad_clip!r}")
        if not 0.0 < self.val_ratio < 1.0:
            raise ConfigError(f"val_ratio must be between 0 and 1, got {self.val_ratio!r}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.save_dtype not in SAVE_DTYPES:
            raise ConfigError(f"save_dtype must be one of {', '.join(SAVE_DTYPES)}, got {self.save_dtype!r}")
        if self.amp not in AMP_DTYPES:
            raise ConfigError(f"amp must be one of {', '.join(AMP_DTYPES)}, got {self.amp!r}")
        for name, allowed in (
            ("split", SPLITS),
            ("init", INITS),
            ("decay", DECAYS),
            ("eval_protocol", EVAL_PROTOCOLS),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if not self.probe_prompt:
            raise ConfigError("the probe prompt is empty")
        if not isinstance(self.probe_tokens, int) or self.probe_tokens < 0:
            raise ConfigError(f"probe_tokens must be 0 or more, got {self.probe_tokens!r}")

    def check_model(self, cfg: GPTConfig) -> None:
        if self.context is not None and self.context > cfg.context_length:
            raise ConfigError(
                f"context {self.context} is longer than the model's context length {cfg.context_length}; "
                "use a shorter context (or build the model with a longer one)"
            )

    def context_for(self, cfg: GPTConfig) -> int:
        return self.context if self.context is not None else cfg.context_length

    def stride_for(self, cfg: GPTConfig) -> int:
        return self.stride if self.stride is not None else self.context_for(cfg)

    @property
    def floor_lr(self) -> float:
        return self.min_lr if self.min_lr is not None else self.lr / 10

    def lr_at(self, step: int, total_steps: int) -> float:
        """Learning rate for the optimizer step with 0-based index `step`: linear warm-up, then flat or cosine."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if not self.cosine:
            return self.lr
        span = max(1, total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.floor_lr + (self.lr - self.floor_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def replace(self, **changes: Any) -> TrainSettings:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training settings: {', '.join(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class Recipe:
    """A named run: a corpus, a model (a preset with changes) and training settings, each overridable."""

    name: str
    title: str  # what a menu shows
    description: str
    corpus: str
    preset: str
    model: dict[str, Any]  # GPTConfig fields changed from the preset
    train: dict[str, Any]  # TrainSettings fields

    def config(self, **changes: Any) -> GPTConfig:
        return preset(self.preset).replace(**{**self.model, **changes})

    def settings(self, **changes: Any) -> TrainSettings:
        train = dict(self.train)
        if "steps" in changes:
            train.pop("epochs", None)
        return TrainSettings(**{**train, **changes})


# The book's chapter 5 run (its ch05 notebook and gpt_train.py): GPT_CONFIG_124M with context_length 256,
# an untied head and no q/k/v bias (162,419,712 parameters at context 256; the book's 163,009,536 counts
# its ch. 4 model at context 1024), The Verdict split 90/10 by characters, batch 2 of 256-token windows
# every 256 tokens, AdamW(lr 4e-4, weight_decay 0.1) on every parameter, no clipping or warm-up, 10 epochs,
# train_model_simple(eval_freq=5, eval_iter=5), torch.manual_seed(123) before building the model.
BOOK_CH5 = Recipe(
    name="book-ch5",
    title="Book ch. 5 (The Verdict, 124M)",
    description="the book's chapter 5 run: 124M, untied head, The Verdict, 10 epochs of 9 steps",
    corpus=VERDICT,
    preset="124M",
    model={"context_length": 256, "tie_weights": False, "qkv_bias": False, "drop_rate": 0.1},
    train={
        "lr": 4e-4,
        "weight_decay": 0.1,
        "batch_size": 2,
        "context": 256,
        "stride": 256,
        "epochs": 10,
        "eval_freq": 5,
        "eval_iter": 5,
        "val_ratio": 0.1,
        "seed": 123,
        "warmup_steps": 0,
        "cosine": False,
        "grad_clip": 0.0,
        "shuffle": True,
        "split": "chars",
        "init": "book",
        "decay": "all",
        "eval_protocol": "book",
    },
)
RECIPES: dict[str, Recipe] = {BOOK_CH5.name: BOOK_CH5}


def recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ConfigError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}") from None


@dataclass(frozen=True)
class StepResult:
    """What one step did, in plain Python numbers (safe to send to another thread)."""

    step: int  # optimizer steps done so far
    epoch: int  # 0-based epoch this step's batch came from
    tokens_seen: int  # over all ranks
    train_loss: float  # this step's batch (averaged over ranks)
    val_loss: float | None  # only at an evaluation
    train_eval_loss: float | None  # train loss over eval_iter fixed batches, only at an evaluation
    perplexity: float | None  # exp(val_loss) at an evaluation
    lr: float
    grad_norm: float  # before clipping
    tokens_per_s: float
    elapsed_s: float  # time spent inside step() over the whole run, across resumes
    total_steps: int
    eta_s: float
    done: bool
    probe: ProbeRecord | None = None
    checkpoint_saved: bool = False
    grad_norms: dict[str, float] | None = None  # {part: norm before clipping}; root-sum-square = grad_norm
    update_ratios: dict[str, float] | None = None  # {part: ‖w_after − w_before‖ / ‖w_before‖}
    attention_entropy: list[list[float]] | None = None  # [layer][head] on the probe prompt, at evaluations


def _entropy(probe: ProbeRecord | None) -> list[list[float]] | None:
    """Each head's attention entropy on the probe prompt (gptviz.engine.training_diagnostics)."""
    if probe is None or probe.attention is None or probe.attention.ndim != 4 or not probe.attention.size:
        return None
    return attention_entropy(probe.attention).tolist()  # (L, H)


def resolve_device(device: str, dist_info: DistInfo = SINGLE) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for, but PyTorch sees no CUDA device")
        if device == "cuda":
            return torch.device(
                "cuda", dist_info.local_rank if dist_info.enabled else torch.cuda.current_device()
            )
    return torch.device(device)


def ids_digest(train_ids: torch.Tensor, val_ids: torch.Tensor | None) -> str:
    """sha256 of the token ids, so a resumed run can tell the corpus changed under it."""
    digest = hashlib.sha256(train_ids.to(torch.int64).numpy().tobytes())
    if val_ids is not None:
        digest.update(b"|val|")
        digest.update(val_ids.to(torch.int64).numpy().tobytes())
    return digest.hexdigest()


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, device: torch.device, decay: str = "matrices"
) -> torch.optim.AdamW:
    """AdamW (betas 0.9, 0.999, eps 1e-8: PyTorch's defaults, as the book uses them).

    decay "matrices": weight decay on embeddings and linear weights only, the first group; biases and norms
    in a second group without decay. decay "all": one group, every parameter decayed (the book's ch. 5).
    """
    if decay not in DECAYS:
        raise ConfigError(f"decay must be one of {', '.join(DECAYS)}, got {decay!r}")
    params = [p for p in model.parameters() if p.requires_grad]  # a tied head appears once
    if decay == "all":
        groups = [{"params": params, "weight_decay": weight_decay}]
    else:
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999))  # no fused kernel for this device


class Trainer:
    """Owns a model, its optimizer and the data position; `step()` advances training by one optimizer step.

    `run_dir` None keeps everything in memory (a GUI experiment); with a run directory, settings, metrics,
    probes and checkpoints are written there (by rank 0 only under torchrun) and `Trainer.resume` continues.
    """

    def __init__(
        self,
        model: GPTModel,
        tokenizer: Tokenizer | None,
        train_ids: torch.Tensor,
        val_ids: torch.Tensor | None,
        settings: TrainSettings,
        run_dir: str | os.PathLike | None = None,
        *,
        corpus: dict[str, Any] | None = None,
        dist_info: DistInfo = SINGLE,
        _resume_state: dict[str, Any] | None = None,
    ) -> None:
        settings.check_model(model.cfg)
        if settings.eval_protocol == "book" and dist_info.enabled:
            raise ConfigError(
                "the book's evaluation protocol runs in one process (its loaders are not sharded); "
                "use --eval-protocol fixed under torchrun"
            )
        check_fits(
            model.cfg,
            training=True,
            batch_size=settings.batch_size,
            context=settings.context_for(model.cfg),
            device=resolve_device(settings.device, dist_info),
            weights_allocated=True,
        )
        self.settings = settings
        self.tokenizer = tokenizer or default_tokenizer()
        self.dist = dist_info
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.device = resolve_device(settings.device, dist_info)
        self.cfg = model.cfg
        self.context = settings.context_for(model.cfg)
        self.stride = settings.stride_for(model.cfg)
        probe_ids = probe_prompt_ids(self.tokenizer, settings.probe_prompt, self.cfg.context_length)
        if max(probe_ids) >= self.cfg.vocab_size:
            raise ConfigError(
                f"the probe prompt {settings.probe_prompt!r} has tokens outside this model's vocabulary "
                f"of {self.cfg.vocab_size}"
            )
        for name, ids in (("training", train_ids), ("validation", val_ids)):
            if ids is not None and ids.numel() and int(ids.max()) >= self.cfg.vocab_size:
                raise DataError(
                    f"the {name} text has token id {int(ids.max())}, outside this model's vocabulary of "
                    f"{self.cfg.vocab_size}"
                )

        self.train_ids = train_ids.to(torch.long).cpu()  # (N_train,)
        self.val_ids = val_ids.to(torch.long).cpu() if val_ids is not None and val_ids.numel() else None
        self.train_windows = SlidingWindows(self.train_ids, self.context, self.stride)
        self.train_eval_windows = SlidingWindows(self.train_ids, self.context, self.context)
        self.val_windows = None
        if self.val_ids is not None:
            if self.val_ids.numel() < self.context + 1:
                raise DataError(
                    f"the validation split has {self.val_ids.numel()} tokens, fewer than one window of "
                    f"{self.context} + 1; raise the validation ratio, shorten the context or use more text"
                )
            self.val_windows = SlidingWindows(self.val_ids, self.context, self.context)
        per_rank = len(self.train_windows) // dist_info.world_size
        self.batches_per_epoch = per_rank // settings.batch_size
        if self.batches_per_epoch == 0:
            raise DataError(
                f"the training split has {len(self.train_windows)} windows of {self.context} tokens "
                f"(stride {self.stride}), fewer than one batch of {settings.batch_size}"
                + (f" per process ({dist_info.world_size} processes)" if dist_info.enabled else "")
                + "; lower the batch size, the context or the stride, or use more text"
            )
        if settings.steps is not None:
            self.total_steps = settings.steps
        else:
            self.total_steps = (settings.epochs or 1) * self.batches_per_epoch
        self.corpus = dict(corpus or {})
        self.corpus["sha256"] = ids_digest(self.train_ids, self.val_ids)
        self.corpus["train_tokens"] = int(self.train_ids.numel())
        self.corpus["val_tokens"] = int(self.val_ids.numel()) if self.val_ids is not None else 0

        book_rng = None
        if settings.init == "book" and _resume_state is None:
            book_rng = book_init_rng_state(model, settings.seed)  # the book's weights, drawn on the CPU
        self.model = model.to(self.device).float()
        self.model.train()
        self.train_model: nn.Module = self.model
        if dist_info.enabled:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=device_ids)
        self.optimizer = build_optimizer(
            self.model, settings.lr, settings.weight_decay, self.device, settings.decay
        )
        self.fused_optimizer = bool(self.optimizer.defaults.get("fused"))
        self.parts = PartNorms(self.model)

        self.step_count = 0
        self.tokens_seen = 0
        self.elapsed_s = 0.0
        self.last_train_loss: float | None = None
        self.last_val_loss: float | None = None
        self.diverged: str | None = None
        self.probes: list[ProbeRecord] = []
        self._session_steps = 0
        self._session_time = 0.0
        self._good_step = 0
        self._snapshot: dict[str, Any] | None = None  # last good state in memory, when there is no run_dir
        self._metrics: JsonlWriter | None = None
        self._order_epoch: int | None = None
        self._order = torch.arange(0)
        self._started = False
        self._last_train_s = 0.0  # the last step's training time (the update ratios' budget is a share)
        self.on_phase: Callable[[str], None] | None = None  # told what start() is doing (a GUI's notice)
        self._cpu_rng, self._cuda_rng = self._seeded_rng(settings.seed + dist_info.rank)
        if book_rng is not None and dist_info.rank == 0:
            self._cpu_rng = book_rng  # where the book's global generator stands after building its model
        if _resume_state is not None:
            self._load_state(_resume_state)
            self._started = True
            if self.run_dir is not None and self.is_writer:
                # Lines written after the checkpoint (and a half line from a killed writer) are cut off.
                truncate_jsonl(metrics_path(self.run_dir), self.step_count)
                truncate_probes(self.run_dir, self.step_count)
            self._good_step = self.step_count
        elif self.run_dir is not None and self.is_writer:
            if (self.run_dir / "settings.json").exists():
                raise ConfigError(f"{self.run_dir} already holds a run; resume it instead of starting over")
            self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.run_dir is not None and self.is_writer:
            self._write_settings()
        barrier(dist_info)

    # ------------------------------------------------------------------ construction helpers

    @classmethod
    def resume(
        cls,
        run_dir: str | os.PathLike,
        *,
        tokenizer: Tokenizer | None = None,
        train_ids: torch.Tensor | None = None,
        val_ids: torch.Tensor | None = None,
        dist_info: DistInfo = SINGLE,
        **overrides: Any,
    ) -> Trainer:
        """Rebuild a trainer from RUN_DIR: weights, optimizer, schedule, step, tokens seen, RNG, data position.

        The corpus is read again from the source recorded in settings.json (or given as ids) and must hash
        to the same tokens. `overrides` may change the settings in RESUME_OVERRIDES (e.g. steps to go on).
        """
        run_dir = Path(run_dir)
        data = read_settings(run_dir)
        bad = sorted(set(overrides) - RESUME_OVERRIDES)
        if bad:
            raise ConfigError(
                f"a resumed run cannot change {', '.join(bad)} (they decide which data it sees)"
            )
        train_data = dict(data["train"])
        if "steps" in overrides or "epochs" in overrides:
            train_data.pop("steps", None)
            train_data.pop("epochs", None)
        train_data.update({k: v for k, v in overrides.items() if v is not None})
        settings = TrainSettings.from_dict(train_data)
        ckpt = checkpoint_path(run_dir)
        model, _meta = load_checkpoint(ckpt)
        state = load_trainer_state(ckpt)
        if state is None:
            raise WeightsError(f"{ckpt} has no trainer state, so the run cannot be resumed")
        if "model_fp32" in state:
            load_state_into(model, state["model_fp32"], f"{ckpt} (fp32 weights)")
        tokenizer = tokenizer or default_tokenizer()
        corpus = dict(data.get("corpus") or {})
        if train_ids is None:
            source = corpus.get("source")
            if not source:
                raise DataError(f"{run_dir} does not record its corpus; pass the token ids to resume it")
            parts = read_split_ids(
                source,
                tokenizer,
                settings.val_ratio,
                settings.split,
                lenient=bool(corpus.get("lenient", False)),
            )
            train_ids, val_ids = parts.train, parts.val  # (N_train,), (N_val,)
        expected = corpus.get("sha256")
        if (
            expected
            and ids_digest(train_ids, val_ids if val_ids is not None and val_ids.numel() else None)
            != expected
        ):
            raise DataError(
                f"the corpus of {run_dir} ({corpus.get('source', 'token ids')}) has changed since the run "
                "started; a resumed run must see the same text"
            )
        corpus.pop("sha256", None)
        return cls(
            model,
            tokenizer,
            train_ids,
            val_ids,
            settings,
            run_dir,
            corpus=corpus,
            dist_info=dist_info,
            _resume_state=state,
        )

    def _seeded_rng(self, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A private RNG state for dropout, seeded without disturbing the process-wide generator."""
        with torch.random.fork_rng(devices=self._cuda_devices()):
            torch.manual_seed(seed)
            cpu = torch.get_rng_state()
            cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return cpu, cuda

    def _cuda_devices(self) -> list[torch.device]:
        return [self.device] if self.device.type == "cuda" else []

    @contextmanager
    def _own_rng(self) -> Iterator[None]:
        saved_cpu = torch.get_rng_state()
        saved_cuda = torch.cuda.get_rng_state(self.device) if self._cuda_rng is not None else None
        torch.set_rng_state(self._cpu_rng)
        if self._cuda_rng is not None:
            torch.cuda.set_rng_state(self._cuda_rng, self.device)
        try:
            yield
        finally:
            self._cpu_rng = torch.get_rng_state()
            torch.set_rng_state(saved_cpu)
            if self._cuda_rng is not None:
                self._cuda_rng = torch.cuda.get_rng_state(self.device)
                torch.cuda.set_rng_state(saved_cuda, self.device)

    def _autocast(self) -> torch.autocast:
        """torch.autocast for the forward pass and loss as `settings.amp` says; disabled (a no-op) when off."""
        dtype = AMP_DTYPES[self.settings.amp]
        return torch.autocast(self.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)

    @property
    def is_writer(self) -> bool:
        return self.dist.is_main

    @property
    def done(self) -> bool:
        return self.step_count >= self.total_steps

    @property
    def epoch(self) -> int:
        return self.step_count // self.batches_per_epoch

    def extend(self, total_steps: int) -> None:
        """Train on past the planned end (the GUI's "keep going"); the schedule stretches to the new end."""
        if total_steps < self.step_count:
            raise ConfigError(f"the run is already at step {self.step_count}; cannot end it at {total_steps}")
        self.total_steps = total_steps
        self.settings = self.settings.replace(steps=total_steps, epochs=None)
        if self.run_dir is not None and self.is_writer:
            self._write_settings()

    # ------------------------------------------------------------------ data

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        """This rank's window indices for an epoch: a permutation seeded by (seed, epoch), then sharded."""
        n = len(self.train_windows)
        if self.settings.shuffle:
            generator = torch.Generator().manual_seed((self.settings.seed * 1_000_003 + epoch) % (2**63))
            order = torch.randperm(n, generator=generator)  # (n,)
        else:
            order = torch.arange(n)  # (n,)
        return shard(order, self.dist)  # (n // world_size,)

    def _gather(self, windows: SlidingWindows, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        offsets = indices.unsqueeze(1) * windows.stride + torch.arange(windows.max_length + 1)  # (B, T + 1)
        chunk = windows.token_ids[offsets]  # (B, T + 1)
        inputs = chunk[:, :-1].to(self.device, non_blocking=True)  # (B, T)
        targets = chunk[:, 1:].to(self.device, non_blocking=True)  # (B, T)
        return inputs, targets

    @property
    def book_protocol(self) -> bool:
        return self.settings.eval_protocol == "book"

    def _book_batches(
        self, count: int, shuffle: bool, drop_last: bool, limit: int | None
    ) -> list[torch.Tensor]:
        """Window indices of the first `limit` batches of the book's DataLoader over `count` windows.

        The book's loaders have no generator of their own, so iterating one draws from the global RNG: a
        base seed for workers on every iteration, and for a shuffled loader a seed for its RandomSampler,
        which then permutes with a generator of its own. Iterating a DataLoader over range(count) here, under
        the trainer's generator, makes exactly those draws: the windows are gathered by index afterwards.
        """
        loader = DataLoader(
            range(count), batch_size=self.settings.batch_size, shuffle=shuffle, drop_last=drop_last
        )
        batches = []
        with self._own_rng():
            for i, indices in enumerate(loader):  # (b,) each
                if limit is not None and i >= limit:
                    break
                batches.append(indices)
        return batches

    def _book_epoch_order(self) -> torch.Tensor:
        """The book's training order for the next epoch: one iteration of its shuffled drop_last loader."""
        batches = self._book_batches(len(self.train_windows), shuffle=True, drop_last=True, limit=None)
        return torch.cat(batches)  # (batches_per_epoch * B,)

    def batch_for_step(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The (inputs, targets) of the optimizer step with 0-based index `step`: position follows from step.

        Under the book protocol an epoch's order is drawn (from the generator dropout also uses) when
        training reaches the epoch, so only the current epoch's batches can be asked for.
        """
        epoch, index = divmod(step, self.batches_per_epoch)
        if epoch != self._order_epoch:
            if self.book_protocol:
                raise ConfigError(
                    f"under the book protocol epoch {epoch}'s order is drawn when training reaches it "
                    f"(now in epoch {self._order_epoch})"
                )
            self._order = self._epoch_order(epoch)
            self._order_epoch = epoch
        size = self.settings.batch_size
        return self._gather(self.train_windows, self._order[index * size : (index + 1) * size])

    def _eval_indices(self, windows: SlidingWindows) -> torch.Tensor:
        """eval_iter batches of windows spread evenly over the split, the same at every evaluation."""
        count = min(len(windows), self.settings.eval_iter * self.settings.batch_size)
        return torch.linspace(0, len(windows) - 1, count).round().long().unique()  # (count,)

    # ------------------------------------------------------------------ training

    def step(self) -> StepResult:
        """One optimizer step; at an evaluation step also losses, a probe, a metrics line and a checkpoint."""
        if self.diverged:
            raise TrainingDiverged(self.diverged)
        if self.done:
            raise ConfigError(f"training is finished (step {self.step_count} of {self.total_steps})")
        started = time.perf_counter()
        if not self._started:
            self.start()
        step_index = self.step_count
        lr = self.settings.lr_at(step_index, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.param_groups[0]["weight_decay"] = self.settings.weight_decay  # the matrices' group
        epoch = step_index // self.batches_per_epoch
        if self.book_protocol and epoch != self._order_epoch:
            self._order = self._book_epoch_order()  # (batches_per_epoch * B,)
            self._order_epoch = epoch
        inputs, targets = self.batch_for_step(step_index)  # (B, T), (B, T)
        self.model.train()
        with self._attention_path(), self._own_rng(), self._autocast():
            logits = self.train_model(inputs)  # (B, T, V)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())  # ()
        # Agree on the loss before backward: under DDP every rank must take the same branch.
        train_loss = all_reduce_mean([loss.item()], self.dist, self.device)[0]
        if not math.isfinite(train_loss):
            self._diverge("the training loss", train_loss, step_index + 1, lr)
        self.optimizer.zero_grad(set_to_none=True)
        with self._own_rng():
            loss.backward()
        max_norm = self.settings.grad_clip if self.settings.grad_clip > 0 else math.inf
        grad_norm, grad_norms = self.parts.clip_and_measure(max_norm)  # clip_grad_norm_, per part too
        if not math.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            self._diverge("the gradient norm", grad_norm, step_index + 1, lr)
        # Update ratios on as many steps as keep their cost within budget (training_diagnostics.PartNorms).
        measure = self.settings.diagnostics and self.parts.due(self._last_train_s)
        if measure:
            self.parts.before_step()
        self.optimizer.step()
        update_ratios = self.parts.update_ratios() if measure else None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        train_time = time.perf_counter() - started
        self._last_train_s = train_time
        batch_tokens = inputs.numel() * self.dist.world_size
        self.step_count += 1
        self.tokens_seen += batch_tokens
        self.last_train_loss = train_loss

        val_loss = train_eval = perplexity = None
        probe = None
        # Evaluate at step 1 too (an early point on the curve and in the time-lapse), but save only every
        # eval_freq steps and at the end: the step-0 checkpoint already covers the start.
        save_now = self.step_count % self.settings.eval_freq == 0 or self.done
        if self.book_protocol:
            # The book evaluates when global_step % eval_freq == 0, global_step counting from 0 after the
            # first update: after steps 1, 1 + eval_freq, ... and not at the end unless it falls there.
            evaluate_now = (self.step_count - 1) % self.settings.eval_freq == 0
        else:
            evaluate_now = save_now or self.step_count == 1
        if evaluate_now:
            train_eval, val_loss = self.evaluate()
            for what, value in (("the training loss", train_eval), ("the validation loss", val_loss)):
                if value is not None and not math.isfinite(value):
                    # Do not save (or probe) weights that already diverged: roll back to the last save.
                    self._diverge(f"{what} at the evaluation", value, self.step_count, lr)
            shown = val_loss if val_loss is not None else train_eval
            perplexity = math.exp(min(shown, 700.0))
            self.last_val_loss = val_loss
            if self.is_writer:
                probe = self.probe()
        step_time = time.perf_counter() - started
        self.elapsed_s += step_time
        self._session_steps += 1
        self._session_time += step_time
        remaining = self.total_steps - self.step_count
        result = StepResult(
            step=self.step_count,
            epoch=step_index // self.batches_per_epoch,
            tokens_seen=self.tokens_seen,
            train_loss=train_loss,
            val_loss=val_loss,
            train_eval_loss=train_eval,
            perplexity=perplexity,
            lr=lr,
            grad_norm=grad_norm,
            tokens_per_s=batch_tokens / max(train_time, 1e-9),
            elapsed_s=self.elapsed_s,
            total_steps=self.total_steps,
            eta_s=remaining * self._session_time / self._session_steps,
            done=self.done,
            probe=probe,
            checkpoint_saved=save_now and self.run_dir is not None and self.is_writer,
            grad_norms=grad_norms,
            update_ratios=update_ratios,
            attention_entropy=_entropy(probe),
        )
        if self.is_writer:
            self._write_metrics(result)
            if probe is not None and self.run_dir is not None:
                write_probe(self.run_dir, probe)
        if save_now:
            self.save()
        if self.done:
            self.close()
        return result

    def start(self) -> StepResult | None:
        """Before the first step of a fresh run: evaluate the untrained model (the book prints these losses
        before it trains, and a validation loss shows at once instead of after eval_freq steps), a step-0
        probe and metrics line, and a first checkpoint. None when the run has already started (or resumed).

        The evaluation draws no random numbers (eval mode, windows taken in order), so the losses of every
        later step are what they were without it, under the book's protocol too. Under the book's protocol
        it is the book's `calc_loss_loader` over the whole of each loader (its 10.988 / 10.981 before
        training); its shuffled training loader is read in order instead, which gives the same mean when
        drop_last drops no window (The Verdict's 18 windows make 9 full batches), without the draw that
        would move every later dropout mask.
        """
        if self._started:
            return None
        self._started = True
        started = time.perf_counter()
        self._phase("evaluating the untrained model")
        train_eval, val_loss = self._initial_losses()
        shown = val_loss if val_loss is not None else train_eval
        perplexity = math.exp(min(shown, 700.0)) if shown is not None and math.isfinite(shown) else None
        self.last_val_loss = val_loss
        probe = None
        if self.is_writer:
            probe = self.probe()
        self._phase("saving the first checkpoint")
        self.save()
        self.elapsed_s += time.perf_counter() - started
        result = StepResult(
            step=0,
            epoch=0,
            tokens_seen=0,
            train_loss=math.nan,  # no batch trained yet
            val_loss=val_loss,
            train_eval_loss=train_eval,
            perplexity=perplexity,
            lr=self.settings.lr_at(0, self.total_steps),
            grad_norm=math.nan,
            tokens_per_s=0.0,
            elapsed_s=self.elapsed_s,
            total_steps=self.total_steps,
            eta_s=math.nan,
            done=False,
            probe=probe,
            checkpoint_saved=self.run_dir is not None and self.is_writer,
            attention_entropy=_entropy(probe),
        )
        if self.is_writer:
            self._write_metrics(result)
            if probe is not None and self.run_dir is not None:
                write_probe(self.run_dir, probe)
        self._phase("first step")
        return result

    def _phase(self, text: str) -> None:
        if self.on_phase is not None:
            self.on_phase(text)

    def _initial_losses(self) -> tuple[float | None, float | None]:
        """(train, validation) loss of the untrained model: the usual evaluation (fixed windows, no random
        numbers), or under the book's protocol the mean over every batch of each loader, in order."""
        if not self.book_protocol:
            return self.evaluate()
        size = self.settings.batch_size
        was_training = self.model.training
        self.model.eval()
        try:
            with self._attention_path():
                batches = list(torch.arange(len(self.train_windows)).split(size))  # (B,) each
                if batches and batches[-1].numel() < size:
                    batches.pop()  # the training loader's drop_last
                train = self._batches_loss(self.train_windows, batches)
                val = None
                if self.val_windows is not None:
                    val = self._batches_loss(
                        self.val_windows, list(torch.arange(len(self.val_windows)).split(size))
                    )
            return train, val
        finally:
            self.model.train(was_training)

    @torch.no_grad()
    def _mean_loss(self, windows: SlidingWindows | None) -> float | None:
        """Mean cross-entropy over the fixed evaluation windows, shared out over the ranks."""
        if windows is None:
            return None
        indices = self._eval_indices(windows)
        mine = indices[self.dist.rank :: self.dist.world_size]  # (n_rank,)
        total = 0.0
        count = 0
        for start in range(0, mine.numel(), self.settings.batch_size):
            inputs, targets = self._gather(windows, mine[start : start + self.settings.batch_size])  # (b, T)
            with self._autocast():
                logits = self.model(inputs)  # (b, T, V)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum")  # ()
            total += float(loss)
            count += targets.numel()
        total, count = all_reduce_sum([total, float(count)], self.dist, self.device)
        return total / count if count else None

    @torch.no_grad()
    def _book_loss(self, windows: SlidingWindows, shuffle: bool, drop_last: bool) -> float:
        """The book's calc_loss_loader(loader, num_batches=eval_iter): the mean of the first batches' means."""
        batches = self._book_batches(len(windows), shuffle, drop_last, limit=self.settings.eval_iter)
        return self._batches_loss(windows, batches)

    @torch.no_grad()
    def _batches_loss(self, windows: SlidingWindows, batches: list[torch.Tensor]) -> float:
        """The mean of the batches' mean cross-entropies (the book's calc_loss_loader)."""
        total = 0.0
        for indices in batches:
            inputs, targets = self._gather(windows, indices)  # (b, T), (b, T)
            with self._autocast():
                logits = self.model(inputs)  # (b, T, V)
            total += F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten()).item()
        return total / len(batches)

    def evaluate(self) -> tuple[float, float | None]:
        """(train loss, validation loss) over eval_iter batches each, in eval mode (no dropout).

        Under the book protocol, the book's evaluate_model: the training loader shuffled afresh (drop_last),
        the validation loader in order (keeping its last, shorter batch); both iterations draw from the
        trainer's generator as the book's loaders draw from the global one.
        """
        was_training = self.model.training
        self.model.eval()
        try:
            if self.book_protocol:
                with self._attention_path():
                    train = self._book_loss(self.train_windows, shuffle=True, drop_last=True)
                    val = None
                    if self.val_windows is not None:
                        val = self._book_loss(self.val_windows, shuffle=False, drop_last=False)
                return train, val
            return self._mean_loss(self.train_eval_windows), self._mean_loss(self.val_windows)
        finally:
            self.model.train(was_training)

    @contextmanager
    def _attention_path(self) -> Iterator[None]:
        """Under the book protocol, the written-out attention (dropout on the (B, H, T, T) weights, drawn as
        the book draws it); PyTorch's fused attention otherwise. The model's own setting is put back after."""
        if not self.book_protocol:
            yield
            return
        blocks = list(self.model.blocks)
        saved = [block.attn.use_fused for block in blocks]
        self.model.set_fused_attention(False)
        try:
            yield
        finally:
            for block, fused in zip(blocks, saved, strict=True):
                block.attn.use_fused = fused

    def probe(self) -> ProbeRecord:
        """The probe of the model as it is now (no random numbers used)."""
        record = make_probe(
            self.model,
            self.tokenizer,
            self.settings.probe_prompt,
            step=self.step_count,
            tokens_seen=self.tokens_seen,
            new_tokens=self.settings.probe_tokens,
        )
        self.probes.append(record)
        return record

    # ------------------------------------------------------------------ state, checkpoints, divergence

    def state_dict(self) -> dict[str, Any]:
        """Everything besides the weights that a resume needs; tensors and plain values (weights_only-safe)."""
        state: dict[str, Any] = {
            "version": TRAINER_STATE_VERSION,
            "step": self.step_count,
            "tokens_seen": self.tokens_seen,
            "elapsed_s": self.elapsed_s,
            "total_steps": self.total_steps,
            "world_size": self.dist.world_size,
            "optimizer": self.optimizer.state_dict(),
            "rng_cpu": self._cpu_rng.clone(),
            "last_train_loss": self.last_train_loss,
            "last_val_loss": self.last_val_loss,
        }
        if self.book_protocol and self._order_epoch is not None:
            # The epoch's order was drawn from the generator at its start and cannot be drawn again.
            state["order"] = self._order.clone()
            state["order_epoch"] = self._order_epoch
        if self._cuda_rng is not None:
            state["rng_cuda"] = self._cuda_rng.clone()
        return state

    def _load_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != TRAINER_STATE_VERSION:
            raise WeightsError(f"trainer state version {state.get('version')!r} is not supported")
        self.optimizer.load_state_dict(state["optimizer"])
        self.step_count = int(state["step"])
        self.tokens_seen = int(state["tokens_seen"])
        self.elapsed_s = float(state["elapsed_s"])
        self.last_train_loss = state.get("last_train_loss")
        self.last_val_loss = state.get("last_val_loss")
        if "order" in state:
            self._order = state["order"].clone()
            self._order_epoch = int(state["order_epoch"])
        if self.dist.rank == 0 and int(state.get("world_size", 1)) == self.dist.world_size:
            self._cpu_rng = state["rng_cpu"].clone()
            if self._cuda_rng is not None and "rng_cuda" in state:
                self._cuda_rng = state["rng_cuda"].clone()
        else:
            # Other ranks (or a new world size) reseed from the step: reproducible, not bit-identical.
            self._cpu_rng, self._cuda_rng = self._seeded_rng(
                self.settings.seed + self.dist.rank + self.step_count
            )
        if self.settings.steps is None:
            self.total_steps = max(self.total_steps, self.step_count)

    def save(self) -> Path | None:
        """Write RUN_DIR/checkpoint atomically (rank 0); without a run dir, keep the state in memory."""
        self._good_step = self.step_count
        if self.run_dir is None:
            if self.is_writer:
                self._snapshot = {
                    "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
                    "trainer": copy.deepcopy(self.state_dict()),
                }
            return None
        path = checkpoint_path(self.run_dir)
        if self.is_writer:
            state = self.state_dict()
            dtype = SAVE_DTYPES[self.settings.save_dtype]
            if dtype != torch.float32:
                # Resume must continue from the exact fp32 weights, not their rounded copy.
                state["model_fp32"] = model_state_for_saving(self.model)
            meta = {
                "source": "gptviz train",
                "step": self.step_count,
                "tokens_seen": self.tokens_seen,
                "train_loss": self.last_train_loss,
                "val_loss": self.last_val_loss,
                "corpus": self.corpus.get("name"),
                "world_size": self.dist.world_size,
            }
            save_checkpoint(self.model, path, trainer_state=state, meta=meta, dtype=dtype)
        barrier(self.dist)
        return path

    def _restore_last_good(self) -> None:
        if self._snapshot is not None:
            self.model.load_state_dict(self._snapshot["model"])
            self._load_state(copy.deepcopy(self._snapshot["trainer"]))
            return
        if self.run_dir is None or not (checkpoint_path(self.run_dir) / "config.json").exists():
            return
        ckpt = checkpoint_path(self.run_dir)
        state = load_trainer_state(ckpt)
        weights = state.get("model_fp32") if state else None
        if weights is None:
            weights = model_state_for_saving(load_checkpoint(ckpt)[0])
        load_state_into(self.model, weights, str(ckpt))
        if state is not None:
            self._load_state(state)

    def _diverge(self, what: str, value: float, step: int, lr: float) -> None:
        self._restore_last_good()
        self.diverged = (
            f"{what} became {value} at step {step} (learning rate {lr:.3g}); training stopped and the "
            f"weights of step {self.step_count} were kept. Lower the learning rate, add warm-up or keep "
            "gradient clipping on."
        )
        if self.is_writer and self.run_dir is not None:
            self._metrics_writer().write({"step": step, "event": "diverged", "message": self.diverged})
        raise TrainingDiverged(self.diverged)

    # ------------------------------------------------------------------ run directory

    def _write_settings(self) -> None:
        write_settings(
            self.run_dir,
            {
                "model": self.cfg.to_dict(),
                "train": self.settings.to_dict(),
                "corpus": self.corpus,
                "world_size": self.dist.world_size,
                "total_steps": self.total_steps,
                "batches_per_epoch": self.batches_per_epoch,
                "torch": torch.__version__,
            },
        )

    def _metrics_writer(self) -> JsonlWriter:
        if self._metrics is None:
            self._metrics = JsonlWriter(metrics_path(self.run_dir))
        return self._metrics

    def _write_metrics(self, result: StepResult) -> None:
        if self.run_dir is None:
            return
        record: dict[str, Any] = {
            "step": result.step,
            "epoch": result.epoch,
            "tokens_seen": result.tokens_seen,
            "train_loss": result.train_loss,
            "lr": result.lr,
            "grad_norm": result.grad_norm,
            "tokens_per_s": result.tokens_per_s,
            "elapsed_s": result.elapsed_s,
            "world_size": self.dist.world_size,
        }
        if result.step == 0:  # the untrained model's evaluation: no batch, no gradient yet
            for key in ("train_loss", "grad_norm", "tokens_per_s"):
                del record[key]
        for key in ("grad_norms", "update_ratios", "attention_entropy"):
            if getattr(result, key) is not None:
                record[key] = getattr(result, key)
        if result.train_eval_loss is not None:
            record["train_eval_loss"] = result.train_eval_loss
            record["val_loss"] = result.val_loss
            record["perplexity"] = result.perplexity
        self._metrics_writer().write(record)

    def close(self) -> None:
        """Close the metrics file (the trainer can still step; it reopens on the next line)."""
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None

    def model_summary(self) -> dict[str, Any]:
        """Numbers a CLI or GUI prints when a run starts."""
        return {
            "params": self.model.num_parameters(),
            "train_windows": len(self.train_windows),
            "val_windows": len(self.val_windows) if self.val_windows is not None else 0,
            "train_tokens": int(self.train_ids.numel()),
            "val_tokens": int(self.val_ids.numel()) if self.val_ids is not None else 0,
            "batches_per_epoch": self.batches_per_epoch,
            "total_steps": self.total_steps,
            "device": str(self.device),
            "world_size": self.dist.world_size,
            "fused_optimizer": self.fused_optimizer,
            "context": self.context,
            "stride": self.stride,
        }
