"""Runs side by side: several run directories' curves and the settings in which they differ (no torch).

The Training pane's Compare tab overlays runs (gptviz train --out DIR, or the window's runs/ folders) the
way TensorBoard and W&B do: each run's own losses from its metrics.jsonl, and a table of only the settings
that differ ("lr 4e-4 vs 1e-3"), read from each settings.json. A difference the table hides is a
difference the reader has to hunt for, and a row for every equal setting buries the one that matters, so
the table holds exactly the keys whose values are not all equal (a key missing from a run counts as a
value of its own: an older run's file lacks the newer switches).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gptviz.engine.rundir import read_metrics, read_settings

# Keys that say nothing about how a run was trained: the file's own format and version.
IGNORED_KEYS = frozenset({"format", "version"})
MISSING = "–"  # how the table shows a key one run's settings do not have
_ABSENT = object()  # such a key's value while comparing


@dataclass(frozen=True)
class RunCurves:
    """One run's curves as its files hold them: steps and values, per curve, in file order."""

    run_dir: Path
    label: str
    settings: dict[str, Any]  # flattened: "train.lr", "model.emb_dim", "corpus.name", ...
    train_steps: np.ndarray  # (N,) steps with a finite per-batch training loss
    train_loss: np.ndarray  # (N,)
    val_steps: np.ndarray  # (E,) evaluations with a validation loss
    val_loss: np.ndarray  # (E,)
    eval_steps: np.ndarray  # (E',) evaluations with a training loss over the fixed batches
    train_eval_loss: np.ndarray  # (E',)
    steps: np.ndarray  # (S,) every step line
    tokens_seen: np.ndarray  # (S,) tokens seen at each of `steps`
    elapsed_s: np.ndarray  # (S,) seconds of training at each of `steps` (NaN where not recorded)

    def x_of(self, steps: np.ndarray, axis: str) -> np.ndarray:
        """Steps on another axis: 'step', 'tokens' (tokens seen) or 'time' (seconds), exact at recorded
        steps and linear between them."""
        if axis == "step" or self.steps.size == 0:
            return np.asarray(steps, dtype=np.float64)
        ys = self.tokens_seen if axis == "tokens" else self.elapsed_s
        return np.interp(steps, self.steps, ys)


def flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 4e-4}} -> {"train.lr": 4e-4}; lists are kept whole."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if not prefix and key in IGNORED_KEYS:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def read_run(run_dir: str | os.PathLike, label: str | None = None) -> RunCurves:
    """A run directory's settings and curves; DataError when it is not a gptviz run."""
    path = Path(run_dir)
    settings = flatten(read_settings(path))
    train_steps: list[int] = []
    val_steps: list[int] = []
    eval_steps: list[int] = []
    train_loss: list[float] = []
    val_loss: list[float] = []
    eval_loss: list[float] = []
    steps: list[int] = []
    tokens: list[float] = []
    elapsed: list[float] = []
    for record in read_metrics(path):
        step = record.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or "event" in record:
            continue
        steps.append(step)
        tokens.append(_number(record.get("tokens_seen")) or 0.0)
        seconds = _number(record.get("elapsed_s"))
        elapsed.append(math.nan if seconds is None else seconds)
        for key, xs, ys in (
            ("train_loss", train_steps, train_loss),
            ("val_loss", val_steps, val_loss),
            ("train_eval_loss", eval_steps, eval_loss),
        ):
            value = _number(record.get(key))
            if value is not None:
                xs.append(step)
                ys.append(value)

    def array(values: list) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)

    return RunCurves(
        run_dir=path,
        label=label or path.name,
        settings=settings,
        train_steps=array(train_steps),
        train_loss=array(train_loss),
        val_steps=array(val_steps),
        val_loss=array(val_loss),
        eval_steps=array(eval_steps),
        train_eval_loss=array(eval_loss),
        steps=array(steps),
        tokens_seen=array(tokens),
        elapsed_s=array(elapsed),
    )


def format_value(value: Any) -> str:
    """A setting as the table shows it: 0.0004 -> '4e-4', 1e-3 -> '1e-3', 0.1 -> '0.1', True -> 'on'."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e6):
            mantissa, exponent = f"{value:.3e}".split("e")
            return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


@dataclass(frozen=True)
class Difference:
    """One setting that is not the same in every run: its key and each run's value (as text)."""

    key: str  # flattened, e.g. "train.lr"
    values: tuple[str, ...]  # one per run, MISSING where a run lacks the key

    @property
    def name(self) -> str:
        """The key as the table labels it: the training settings without their 'train.' prefix."""
        return self.key.removeprefix("train.")

    def describe(self) -> str:
        """'lr 4e-4 vs 1e-3' (three runs: '… vs … vs …')."""
        return f"{self.name} {' vs '.join(self.values)}"


def settings_diff(runs: list[RunCurves]) -> list[Difference]:
    """The settings whose values are not all equal across `runs`, in the order they first appear."""
    keys: list[str] = []
    for run in runs:
        keys.extend(k for k in run.settings if k not in keys)
    out = []
    for key in keys:
        raw = [run.settings.get(key, _ABSENT) for run in runs]
        if len(runs) > 1 and any(_differs(raw[0], other) for other in raw[1:]):
            values = tuple(MISSING if v is _ABSENT else format_value(v) for v in raw)
            out.append(Difference(key, values))
    return out


def _differs(a: Any, b: Any) -> bool:
    if a is _ABSENT or b is _ABSENT:
        return a is not b
    if isinstance(a, bool) or isinstance(b, bool):
        return a is not b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) != float(b)  # 8 and 8.0 are the same setting
    return a != b
