"""What a training run is asked to do: `TrainSettings` (sizes, schedule, choices) and named `Recipe`s.

Data only, and free of torch at import: the window lists RECIPES in its menu and fills its settings form
before torch is loaded (the trainer, gptviz.engine.trainer, is what turns these settings into steps). The
torch types the names stand for (`save_dtype` "float16", `amp` "bf16") are looked up where they are used.

The book's chapter 5 run (`RECIPES["book-ch5"]`, `gptviz train --recipe book-ch5`) is a sum of settings
that each work with any model: `split` "chars" (cut the text, then tokenize each part), `init` "book"
(PyTorch's default initialisation in the book's module order, gptviz.model.book_init), `decay` "all"
(weight decay on every parameter, as `AdamW(model.parameters(), weight_decay=0.1)`), `grad_clip` 0 and
`eval_protocol` "book" (the book's loaders and `evaluate_model`, see `TrainBatches.book_batches`). Together,
and with the book's sizes, they reproduce the book's own loop (gptviz.model.book_reference.book_ch5_run):
the same weights, batches, dropout masks and evaluation batches.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from gptviz.config import GPTConfig, preset
from gptviz.engine.views import DEFAULT_PROMPT
from gptviz.errors import ConfigError
from gptviz.resources import VERDICT

# Checkpoint weight types (gptviz.engine.train_rundir maps them to torch dtypes).
SAVE_DTYPE_NAMES = ("float32", "float16")
# Mixed precision for the forward pass and the loss (torch.autocast); the weights, gradients and AdamW state
# stay float32. "off" runs plain float32, exactly as before the option existed.
AMP_MODES = ("off", "bf16")
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
        "keep_checkpoints",
    }
)


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
    probe_prompt: str = DEFAULT_PROMPT
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
    # Keep each evaluation's weights under RUN_DIR/checkpoints/step-NNNNNN/ as well: the newest N, -1 every
    # one (--keep-checkpoints all), 0 none (gptviz.engine.kept_checkpoints).
    keep_checkpoints: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse settings that cannot train, naming the setting and the value."""
        self._check_lengths()
        self._check_optimizer()
        self._check_choices()
        self._check_probe()

    def _check_lengths(self) -> None:
        """Batch, window, run and evaluation lengths: positive integers; steps and epochs exclusive."""
        names = ["batch_size", "eval_freq", "eval_iter"]
        names += [n for n in ("context", "stride", "steps", "epochs") if getattr(self, n) is not None]
        for name in names:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.steps is not None and self.epochs is not None:
            raise ConfigError("give steps or epochs, not both")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be 0 or more, got {self.warmup_steps!r}")

    def _check_optimizer(self) -> None:
        """The learning rates, weight decay and clipping: finite and in range."""
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        if self.min_lr is not None and not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"min_lr must be between 0 and lr ({self.lr}), got {self.min_lr!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"weight_decay must be 0 or more, got {self.weight_decay!r}")
        if not (math.isfinite(self.grad_clip) and self.grad_clip >= 0):
            raise ConfigError(f"grad_clip must be 0 (off) or more, got {self.grad_clip!r}")

    def _check_choices(self) -> None:
        """The validation share, and every setting that names one of a few choices."""
        # gptviz.data imports torch: read here, not at module level (the window reads RECIPES before torch).
        from gptviz.data import SPLITS

        if not 0.0 < self.val_ratio < 1.0:
            raise ConfigError(f"val_ratio must be between 0 and 1, got {self.val_ratio!r}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        for name, allowed in (
            ("save_dtype", SAVE_DTYPE_NAMES),
            ("amp", AMP_MODES),
            ("split", SPLITS),
            ("init", INITS),
            ("decay", DECAYS),
            ("eval_protocol", EVAL_PROTOCOLS),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")

    def _check_probe(self) -> None:
        from gptviz.engine.kept_checkpoints import parse_keep  # torch-free

        parse_keep(self.keep_checkpoints)
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
