"""`gptviz train --tensorboard DIR`: the run's scalars for those who watch runs in TensorBoard.

Optional (`pip install 'gptviz[tensorboard]'`): torch.utils.tensorboard needs the `tensorboard` package,
which gptviz itself does not. What is written is what metrics.jsonl holds, under TensorBoard's usual tags:
loss/train (each batch), loss/train_eval and loss/val (at evaluations), lr, grad_norm, tokens_per_s, and
the per-layer diagnostics as grad_norm/<part> and update_ratio/<part>, each against the optimizer step.
"""

from __future__ import annotations

import math
import os
from typing import Any

from gptviz.errors import ConfigError


def scalars_of(result: Any) -> dict[str, float]:
    """A StepResult's scalars under their TensorBoard tags (NaN and missing values left out)."""
    out: dict[str, float] = {}
    for tag, value in (
        ("loss/train", result.train_loss),
        ("loss/train_eval", result.train_eval_loss),
        ("loss/val", result.val_loss),
        ("perplexity", result.perplexity),
        ("lr", result.lr),
        ("grad_norm", result.grad_norm),
        ("tokens_per_s", result.tokens_per_s if result.step else None),
    ):
        if value is not None and math.isfinite(value):
            out[tag] = float(value)
    for prefix, values in (("grad_norm", result.grad_norms), ("update_ratio", result.update_ratios)):
        for part, value in (values or {}).items():
            if value is not None and math.isfinite(value):
                out[f"{prefix}/{part}"] = float(value)
    return out


class TensorBoardLog:
    """Writes each step's scalars to an event file in `log_dir` (rank 0 only: the caller decides)."""

    def __init__(self, log_dir: str | os.PathLike) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch's module imports the tensorboard package
            raise ConfigError(
                "--tensorboard needs the tensorboard package: pip install 'gptviz[tensorboard]' "
                f"(or pip install tensorboard); {exc}"
            ) from None
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def write(self, result: Any) -> None:
        for tag, value in scalars_of(result).items():
            self.writer.add_scalar(tag, value, global_step=result.step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
