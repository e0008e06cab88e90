"""Checkpoints over time: each evaluation's weights kept under RUN_DIR/checkpoints/step-NNNNNN/.

`gptviz train --keep-checkpoints N|all` keeps, beside the one resumable RUN_DIR/checkpoint/, the weights of
each evaluation as their own checkpoint (the project's format, written atomically, in --save-dtype: float16
halves them), and the newest N of them (all: every one). The window's Checkpoints tab then loads any kept
step into every pane (the model as it was then), and compares two steps' attention on one prompt.

Why a folder per step and not one file of many steps: each kept step is an ordinary checkpoint, so
`gptviz info`, `gptviz generate --checkpoint` and File › Open checkpoint take it as they take any other,
a damaged one costs only itself, and pruning is deleting a folder.

The listing and pruning here need no torch (the window lists kept steps before torch is imported); saving
and the attention comparison import it when called.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gptviz.engine.path_kind import CONFIG_FILE, WEIGHTS_FILE
from gptviz.errors import ConfigError

KEPT_DIR = "checkpoints"
KEEP_ALL = -1  # --keep-checkpoints all
KEEP_NONE = 0  # the default: only RUN_DIR/checkpoint/, the newest weights
_STEP_NAME = re.compile(r"^step-(\d{6,})$")


def kept_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / KEPT_DIR


def step_path(run_dir: str | os.PathLike, step: int) -> Path:
    """RUN_DIR/checkpoints/step-000120 (six digits at least, so names sort as steps do)."""
    return kept_dir(run_dir) / f"step-{step:06d}"


def parse_keep(value: str | int | None) -> int:
    """--keep-checkpoints: a count N >= 0 (0 = keep none) or 'all' -> KEEP_ALL."""
    if value is None:
        return KEEP_NONE
    if isinstance(value, str) and value.strip().lower() == "all":
        return KEEP_ALL
    try:
        count = int(value)  # KEEP_ALL itself comes back from a settings.json
    except (TypeError, ValueError):
        count = -2
    if isinstance(value, bool) or (count < 0 and count != KEEP_ALL):
        raise ConfigError(f"--keep-checkpoints takes a number of checkpoints or 'all', got {value!r}")
    return count


def describe_keep(keep: int) -> str:
    return "all" if keep == KEEP_ALL else str(keep)


@dataclass(frozen=True)
class KeptCheckpoint:
    step: int
    path: Path


def list_kept(run_dir: str | os.PathLike) -> list[KeptCheckpoint]:
    """The complete kept checkpoints of a run, oldest first (a folder being written, whose name starts
    with a dot while it is staged, or one without its weights is not listed)."""
    folder = kept_dir(run_dir)
    try:
        entries = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for entry in entries:
        match = _STEP_NAME.match(entry.name)
        if match and (entry / CONFIG_FILE).is_file() and (entry / WEIGHTS_FILE).is_file():
            found.append(KeptCheckpoint(int(match.group(1)), entry))
    return sorted(found, key=lambda k: k.step)


def prune(run_dir: str | os.PathLike, keep: int) -> list[int]:
    """Delete all but the newest `keep` kept checkpoints (KEEP_ALL: none); returns the steps deleted."""
    if keep == KEEP_ALL:
        return []
    kept = list_kept(run_dir)
    doomed = kept[: max(0, len(kept) - keep)]
    for old in doomed:
        shutil.rmtree(old.path, ignore_errors=True)
    return [old.step for old in doomed]


def drop_after(run_dir: str | os.PathLike, step: int) -> list[int]:
    """On resume: kept steps after the checkpoint the run continues from describe weights the resumed run
    will train again (maybe differently); they go, as the metrics lines after that step do."""
    later = [k for k in list_kept(run_dir) if k.step > step]
    for k in later:
        shutil.rmtree(k.path, ignore_errors=True)
    return [k.step for k in later]


def keep_checkpoint(
    model: Any, run_dir: str | os.PathLike, step: int, keep: int, *, meta: dict[str, Any] | None = None,
    dtype: Any = None,
) -> Path | None:  # fmt: skip
    """Save the model's weights as step `step`'s kept checkpoint (atomically, through save_checkpoint),
    then prune to the newest `keep`. Nothing when `keep` is 0."""
    if keep == KEEP_NONE:
        return None
    from gptviz.engine.checkpoint import save_checkpoint

    path = save_checkpoint(model, step_path(run_dir, step), meta={**(meta or {}), "step": step}, dtype=dtype)
    prune(run_dir, keep)
    return path


# ------------------------------------------------------------------------------------------ attention


@dataclass(frozen=True)
class AttentionComparison:
    """One head's attention on one prompt at two kept steps, and their difference."""

    steps: tuple[int, int]
    layer: int
    head: int
    tokens: tuple[str, ...]  # the prompt's tokens as text, one per row and column
    a: np.ndarray  # (T, T) attention weights at steps[0] (rows: queries, sum to 1)
    b: np.ndarray  # (T, T) at steps[1]
    diff: np.ndarray  # (T, T) a − b


def attention_of(checkpoint: str | os.PathLike, ids: list[int], layer: int, head: int) -> np.ndarray:
    """(T, T) attention weights of one head of a checkpoint's model on `ids` (CPU, eval mode)."""
    import torch

    from gptviz.engine.checkpoint import load_checkpoint
    from gptviz.model.hooks import capture

    model, _meta = load_checkpoint(checkpoint, "cpu")
    cfg = model.cfg
    if not 0 <= layer < cfg.n_layers or not 0 <= head < cfg.n_heads:
        raise ConfigError(f"this model has {cfg.n_layers} layers of {cfg.n_heads} heads; no L{layer} H{head}")
    ids = ids[-cfg.context_length :]
    name = f"blocks.{layer}.attn.hook_weights"
    with torch.no_grad(), capture(model, [name]) as store:
        model(torch.tensor([ids], dtype=torch.long))  # (1, T, V)
    return store[name][0, head].float().numpy().copy()  # (T, T)


def compare_attention(
    a: str | os.PathLike, b: str | os.PathLike, ids: list[int], layer: int, head: int,
    steps: tuple[int, int] = (0, 0), tokens: tuple[str, ...] = (),
) -> AttentionComparison:  # fmt: skip
    """Attention of head `head` in layer `layer` on `ids` under checkpoints a and b, and a − b."""
    if not ids:
        raise ConfigError("the prompt is empty: type a prompt to compare the attention on")
    first = attention_of(a, ids, layer, head)  # (T, T)
    second = attention_of(b, ids, layer, head)  # (T, T)
    return AttentionComparison(steps, layer, head, tuple(tokens), first, second, first - second)


def compare_on_prompt(
    a: KeptCheckpoint, b: KeptCheckpoint, prompt: str, layer: int, head: int
) -> AttentionComparison:
    """`compare_attention` on a prompt's GPT-2 tokens (the window's current prompt)."""
    from gptviz.tokenizer import default_tokenizer

    tokenizer = default_tokenizer()
    ids = tokenizer.encode(prompt)
    return compare_attention(
        a.path, b.path, ids, layer, head, (a.step, b.step), tuple(tokenizer.piece(i) for i in ids)
    )
