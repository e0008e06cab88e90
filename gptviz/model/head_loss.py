"""The output head and the training loss as one autograd step: `head_cross_entropy(x, W, targets)` equals
`F.cross_entropy(x @ W.T, targets)` (the mean over rows), forward and backward, to float32 rounding.

Why: in a training step at 124M with 2 x 256 tokens the head's (N, V) logits are the largest tensors of the
step (103 MB each at N = 512, V = 50,257), and the plain path makes four of them: the logits,
`log_softmax`'s output, the zeroed gradient `nll_loss` scatters into, and `log_softmax`'s backward. Here the
logits buffer is made once and becomes its own gradient in place: the maximum per row, exp(logit - max) in
place, its sum per row (the log-sum-exp is log(sum) + max), the sum subtracted at each target, and in the
backward one scaling by grad / (N * sum). Same products, five passes over one buffer instead of about ten
over four.

The logits are computed as W @ x.T, (V, N), not x @ W.T: with W stored (V, D) as nn.Linear keeps it, MKL
reads it faster that way here (about 290 against 330 ms at 124M, N = 512), and the backward's two products
take the (V, N) gradient in the layouts they want (grad_W = G @ x, grad_x = G.T @ W).

Cutting the rows into chunks (so the full (N, V) never exists) was measured and is slower on this CPU: a
128-row product through the head ran at two thirds of the rate of the 512-row one.

A tied head (GPT-2's: the output head is the token table) gets two gradients for one (V, D) tensor: the
head's, dense, and the lookup's, a few rows. Left to autograd they cost a fresh (V, D) buffer or two: a dense
lookup gradient is a zeroed table (33 ms at 124M, page faults included), and a sparse one is added out of
place, as dense + sparse into a new table (75 ms; torch 2.13). `tied_lookup` instead hands the head's
gradient, through a `TiedGradient` both steps share, to the lookup's backward, which adds its rows into it in
place (under 1 ms) before autograd passes it on to `.grad`. The order is certain: the head's input comes from
the lookup, so the head's backward always runs first.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


class TiedGradient:
    """The head's weight gradient on its way from the head's backward to the token lookup's (one backward)."""

    def __init__(self) -> None:
        self.head_grad: torch.Tensor | None = None  # (V, D) once the head's backward has run


class _HeadCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, tied: TiedGradient | None
    ) -> torch.Tensor:
        n = x.shape[0]
        logits = weight @ x.t()  # (V, N)
        picked = logits.gather(0, targets.unsqueeze(0)).squeeze(0)  # (N,) the targets' logits
        top = logits.amax(dim=0)  # (N,)
        shifted = logits.sub_(top).exp_()  # (V, N) exp(logit - max), in the logits' buffer
        total = shifted.sum(dim=0)  # (N,) the softmax's denominators
        loss = (total.log() + top - picked).mean()  # () log-sum-exp minus the target's logit, averaged
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            # softmax - one-hot = (shifted - total * one-hot) / total; the division waits for the backward,
            # which scales each column once by grad / (N * total).
            shifted.scatter_add_(0, targets.unsqueeze(0), -total.unsqueeze(0))  # (V, N)
            ctx.save_for_backward(x, weight, shifted, total)
            ctx.rows = n
            ctx.tied = tied
        return loss

    @staticmethod
    def backward(
        ctx: Any, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        x, weight, grad, total = ctx.saved_tensors  # (N, D), (V, D), (V, N), (N,)
        grad = grad.mul_(grad_out / (ctx.rows * total))  # (V, N) d loss / d logits; the buffer is used once
        grad_x = grad.t() @ weight if ctx.needs_input_grad[0] else None  # (N, D)
        grad_w = grad @ x if ctx.needs_input_grad[1] else None  # (V, D)
        if ctx.tied is not None:
            ctx.tied.head_grad = grad_w  # the lookup's backward adds its rows to this very tensor
        return grad_x, grad_w, None, None


class _TiedLookup(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, ids: torch.Tensor, weight: torch.Tensor, tied: TiedGradient) -> torch.Tensor:
        ctx.save_for_backward(ids)
        ctx.tied = tied
        ctx.table_shape = weight.shape
        return F.embedding(ids, weight)  # (..., D)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[None, torch.Tensor | None, None]:
        (ids,) = ctx.saved_tensors  # (...)
        rows = grad_out.reshape(-1, grad_out.shape[-1])  # (N, D) one gradient row per lookup
        head_grad, ctx.tied.head_grad = ctx.tied.head_grad, None  # drop the extra reference: .grad takes it
        if head_grad is None:  # the head took no gradient: the lookup's own, as a dense table
            table = torch.zeros(ctx.table_shape, dtype=rows.dtype, device=rows.device)  # (V, D)
            return None, table.index_add_(0, ids.reshape(-1), rows), None
        head_grad.index_add_(0, ids.reshape(-1), rows)  # (V, D) in place: autograd holds it for .grad
        return None, None, None


def head_cross_entropy(
    x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, tied: TiedGradient | None = None
) -> torch.Tensor:
    """Mean cross-entropy of `targets` (N,) under logits x @ weight.T: x (N, D), weight (V, D) -> ().
    `tied`: the one given to `tied_lookup` when the same weight was the token table of this forward."""
    return _HeadCrossEntropy.apply(x, weight, targets, tied)  # ()


def tied_lookup(ids: torch.Tensor, weight: torch.Tensor, tied: TiedGradient) -> torch.Tensor:
    """F.embedding(ids, weight), ids (...) -> (..., D), whose gradient is added in place to the gradient that
    `head_cross_entropy(..., weight, ..., tied)` makes for the same weight later in the forward."""
    return _TiedLookup.apply(ids, weight, tied)  # (..., D)
