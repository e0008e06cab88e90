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
"""

from __future__ import annotations

from typing import Any

import torch


class _HeadCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
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
        return loss

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        x, weight, grad, total = ctx.saved_tensors  # (N, D), (V, D), (V, N), (N,)
        grad = grad.mul_(grad_out / (ctx.rows * total))  # (V, N) d loss / d logits; the buffer is used once
        grad_x = grad.t() @ weight if ctx.needs_input_grad[0] else None  # (N, D)
        grad_w = grad @ x if ctx.needs_input_grad[1] else None  # (V, D)
        return grad_x, grad_w, None


def head_cross_entropy(x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of `targets` (N,) under logits x @ weight.T: x (N, D), weight (V, D) -> ()."""
    return _HeadCrossEntropy.apply(x, weight, targets)  # ()
