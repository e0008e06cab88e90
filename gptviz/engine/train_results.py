"""What a training step reports: `StepResult`, plain Python numbers safe to hand to another thread, and
`TrainingDiverged`, raised when the loss or the gradient stops being finite.

Torch-free and apart from the Trainer (engine/trainer.py), because their readers are elsewhere: the run
directory's metrics writer, TensorBoard's log, the CLI's progress line, the window's Training pane.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gptviz.errors import GptvizError

if TYPE_CHECKING:
    from gptviz.engine.probe import ProbeRecord


class TrainingDiverged(GptvizError, RuntimeError):
    """The loss or the gradient became NaN or infinite; the last good weights were kept."""


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
    weight_histograms: dict[str, list[int]] | None = None  # {part: counts} at evaluations (fixed bins)
