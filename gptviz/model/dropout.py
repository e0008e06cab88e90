"""Dropout whose random draws cost a quarter of torch's on the CPU, for training runs that need not repeat
the book's draws.

Why: torch's CPU dropout draws one random number per element (`bernoulli_`, about 6 ns each here). A 124M
training step at 2 x 256 tokens drops out 28.7 million elements (the attention weights of 12 layers, two
shortcuts a layer, the embeddings): about 200 ms of a 2.7 s step, measured with torch's profiler. Here each
64-bit draw of the generator gives four 16-bit numbers, and an element is kept where its number is at least
round(p * 65536): the same generator (so `torch.manual_seed` and a saved RNG state still decide every draw),
a quarter of its calls, then one compare. The mask and the scaling are torch's own kernel,
`native_dropout_backward(x, keep, scale)`, which is x * keep * scale, forward and backward.

The drop probability becomes round(p * 65536) / 65536 (0.1 -> 0.1000061) and the kept elements are scaled by
1 / (1 - that), so the expected output still equals the input. The draws differ from torch's, so a run with
quick draws does not repeat the book's numbers: the trainer turns them on only outside the book's protocol
(`quick_draws`), and a model on its own draws as nn.Dropout does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

LEVELS = 1 << 16  # a draw is a 16-bit number


class Dropout(nn.Dropout):
    """nn.Dropout, with quick draws on the CPU while `quick` is set (no state: checkpoints are unchanged)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p)
        self.quick = False

    def draws_quickly(self, x: torch.Tensor) -> bool:
        """Whether a forward of `x` now uses quick draws (training, a rate above 0, on the CPU)."""
        return self.quick and self.training and self.p > 0 and x.device.type == "cpu"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.draws_quickly(x):
            return quick_dropout(x, self.p)  # same shape as x
        return super().forward(x)


def quick_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """x with each element zeroed with probability round(p * 65536) / 65536 and the rest scaled to keep the
    expected value; differentiable (the gradient is zeroed and scaled the same way)."""
    threshold = round(p * LEVELS)
    if threshold >= LEVELS:
        return x * 0.0  # p = 1: nothing kept
    if threshold == 0:
        return x.clone()  # below 1 in 131,072: nothing dropped
    return _QuickDropout.apply(x, threshold)  # same shape as x


class _QuickDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, threshold: int) -> torch.Tensor:
        n = x.numel()
        words = torch.randint(-(1 << 63), (1 << 63) - 1, (-(-n // 4),), dtype=torch.int64)  # (ceil(n/4),)
        draws = words.view(torch.int16)[:n].view(x.shape)  # 4 uniform 16-bit draws a word, as -32768..32767
        keep = draws >= threshold - LEVELS // 2  # (x.shape) bool, P(keep) = 1 - threshold / 65536
        scale = LEVELS / (LEVELS - threshold)
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.ops.aten.native_dropout_backward(x, keep, scale)  # x * keep * scale

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (keep,) = ctx.saved_tensors
        return torch.ops.aten.native_dropout_backward(grad, keep, ctx.scale), None


@contextmanager
def quick_draws(model: nn.Module, enabled: bool) -> Iterator[None]:
    """While inside, every `Dropout` of `model` draws quickly if `enabled`; each one's setting is put back."""
    layers = [m for m in model.modules() if isinstance(m, Dropout)]
    saved = [m.quick for m in layers]
    for m in layers:
        m.quick = enabled
    try:
        yield
    finally:
        for m, quick in zip(layers, saved, strict=True):
            m.quick = quick
