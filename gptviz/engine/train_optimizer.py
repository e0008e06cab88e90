"""The optimizer side of a training step: AdamW and its parameter groups, the learning rate and weight decay
written into it before each step, and the precision the forward pass and loss run in.

Apart from the Trainer (engine/trainer.py), which holds a run together, because these are the knobs a recipe
turns (the book's ch. 5 decays every parameter; gptviz's default spares biases and norms) and a test or a
benchmark builds the same optimizer without a run around it.
"""

from __future__ import annotations

import torch
from torch import nn

from gptviz.engine.train_settings import DECAYS, TrainSettings
from gptviz.errors import ConfigError

# The torch types of TrainSettings.amp (AMP_MODES): the forward pass and the loss run under torch.autocast
# in this type; the weights, gradients and AdamW state stay float32. "off" runs plain float32.
AMP_DTYPES: dict[str, torch.dtype | None] = {"off": None, "bf16": torch.bfloat16}


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, decay: str = "matrices"
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


def set_schedule(
    optimizer: torch.optim.Optimizer, settings: TrainSettings, step_index: int, total_steps: int
) -> float:
    """The step's learning rate (and the weight decay, which a resume may change) into the optimizer; the
    learning rate."""
    lr = settings.lr_at(step_index, total_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.param_groups[0]["weight_decay"] = settings.weight_decay  # the matrices' group
    return lr


def autocast(device: torch.device, amp: str) -> torch.autocast:
    """torch.autocast for the forward pass and loss as `amp` says; disabled (a no-op) when "off"."""
    dtype = AMP_DTYPES[amp]
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)
