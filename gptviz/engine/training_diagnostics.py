"""Per-layer training diagnostics: gradient norms and update ratios per part, attention entropy per head.

What TensorBoard and Weights & Biases users look at when a loss curve misbehaves, measured where it is cheap:

- `grad_norms` {part: L2 norm of that part's gradient, before clipping}. The parts are `embeddings`
  (token and position tables; a tied output head is the token table), `block.0` ... `block.{L-1}`,
  `final_norm` and `out_head` (when untied). Their root-sum-square is the run's `grad_norm`, because both
  come from the same per-tensor norms (one `torch._foreach_norm` over every gradient, the very call
  `clip_grad_norm_` makes): the clipping reuses the total, so measuring costs a few hundred scalar additions.
- `update_ratios` {part: ‖w_after − w_before‖ / ‖w_before‖ of this step}: how far AdamW moved each part
  relative to its size. A common rule of thumb is around 1e-3; a ratio rising towards 1e-2 and above means
  the learning rate is too high for that part, one falling towards 1e-5 means it has stopped learning.
  It needs the weights from before the step: one copy (as large as the model) made just before
  `optimizer.step()` and subtracted after it, each a single `torch._foreach_*` pass. Those passes cost a
  few percent of a step when the batch is small (at 124M with the book's 2 × 256 tokens, about a second
  on a loaded 2-core CPU against a 15 s step), so the ratios are measured on as many steps as keep their
  cost under UPDATE_RATIO_BUDGET of the training time: every step for small models or large batches, every
  few steps otherwise (the steps without them simply have no `update_ratios` key).
- `attention_entropy` [[layer][head]]: at each evaluation, the mean over the probe prompt's positions of
  −Σ p log p of each head's attention (nats). Heads start near uniform (log of the positions seen) and
  fall as they learn to look at few tokens; a head whose entropy collapses to 0 attends only to one token.
- `weight_histograms` {part: [count per bin]}: at each evaluation, each part's weights counted into the
  fixed log-spaced bins of `gptviz.engine.weight_histograms` (why fixed and log-spaced: there). Counted
  from the float32 bits, one shift and one bincount per tensor, so it stays well under a second at 124M.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from gptviz.engine.weight_histograms import FINE_CODES, FINE_SHIFT, FINE_TO_BIN, N_BINS

UPDATE_RATIO_BUDGET = 0.0125  # the share of training time the update ratios may take, on average (their
# passes also slow the optimizer step beside them: at 0.025 the whole measured overhead came to 5.7% at 124M)


def part_of(name: str) -> str:
    """The diagnostics part a parameter belongs to, from its name in `named_parameters()`."""
    if name.startswith(("tok_emb.", "pos_emb.")):
        return "embeddings"
    if name.startswith("blocks."):
        return "block." + name.split(".")[1]
    if name.startswith("final_norm."):
        return "final_norm"
    if name.startswith("out_head."):
        return "out_head"
    return name.split(".")[0]


class PartNorms:
    """The parts of a model and, per step, their gradient norms (with the clipping) and update ratios.

    Parameters are taken in `model.parameters()` order (a tied head once, under `embeddings`), the order
    `clip_grad_norm_` sees them, so the total norm and the clipped gradients are bit for bit the ones it
    gives (the book recipe's losses are unchanged).
    """

    def __init__(self, model: nn.Module) -> None:
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.params = [p for _, p in named]
        self.parts: list[str] = []
        index = []
        for name, _ in named:
            part = part_of(name)
            if part not in self.parts:
                self.parts.append(part)
            index.append(self.parts.index(part))
        device = self.params[0].device if self.params else torch.device("cpu")
        self._index = torch.tensor(index, dtype=torch.long, device=device)  # (P,) part of each tensor
        self._before: list[torch.Tensor] | None = None  # weights before the step, for the update ratios
        self._before_sq: torch.Tensor | None = None  # (M,) squared norm of each part before the step
        self.cost_s = 0.0  # what measuring the update ratios took, the last time
        self._spent = 0.0  # seconds spent before_step() -> update_ratios() in the current measurement
        self._since = 0  # steps since the ratios were last measured
        self.every_step = False  # measure on every step regardless of cost (the bench prices one such step)

    def due(self, step_s: float) -> bool:
        """Whether to measure this step's update ratios: as often as keeps their cost under
        UPDATE_RATIO_BUDGET of a step taking `step_s` (every step until a cost has been measured)."""
        self._since += 1
        if self.every_step or self._since >= self.period(step_s):
            self._since = 0
            return True
        return False

    def period(self, step_s: float) -> int:
        """Measure every this many steps of `step_s` seconds, given what measuring cost the last time."""
        return 1 if step_s <= 0 else max(1, math.ceil(self.cost_s / (UPDATE_RATIO_BUDGET * step_s)))

    def _per_part(self, norms: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Per-tensor norms -> per-part norms (M,): the root of the summed squares."""
        squares = torch.stack(list(norms)).float() ** 2  # (P,)
        return self._part_sums(squares).sqrt()  # (M,)

    def _part_sums(self, values: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(self.parts), dtype=values.dtype, device=values.device)  # (M,)
        return out.index_add_(0, self._index, values)  # (M,)

    def clip_and_measure(self, max_norm: float) -> tuple[float, dict[str, float]]:
        """Clip the gradients to `max_norm` (math.inf: measure only) as `clip_grad_norm_` does; return the
        total norm before clipping and each part's."""
        with_grad = [(i, p.grad) for i, p in enumerate(self.params) if p.grad is not None]
        if not with_grad:
            return 0.0, {}
        grads = [g for _, g in with_grad]
        norms = torch._foreach_norm(grads, 2.0)  # P x () each tensor's L2 norm
        total = torch.linalg.vector_norm(torch.stack(list(norms)), 2.0)  # () as clip_grad_norm_
        # clip_grad_norm_'s factor, computed as it computes it; below 1 the gradients are scaled as it
        # scales them. At 1 (no clipping needed, or clipping off) it would multiply every gradient by 1.0:
        # a pass over all of them that changes no bit, skipped here (it paid for part of the diagnostics).
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)  # ()
        if float(coef) < 1.0:
            torch._foreach_mul_(grads, coef)
        squares = torch.stack(list(norms)).float() ** 2  # (P',) parameters with a gradient
        index = self._index
        if len(grads) < len(self.params):  # a parameter the loss did not reach has no gradient: norm 0
            index = index[torch.tensor([i for i, _ in with_grad], device=index.device)]  # (P',)
        parts = (
            torch.zeros(len(self.parts), device=squares.device).index_add_(0, index, squares).sqrt()
        )  # (M,)
        values = torch.cat([total.reshape(1).float(), parts]).tolist()  # one device sync for all
        return values[0], dict(zip(self.parts, values[1:], strict=True))

    @torch.no_grad()
    def before_step(self) -> None:
        """Keep the weights as they are before `optimizer.step()` (a copy, reused every step)."""
        started = time.perf_counter()
        if self._before is None:
            self._before = [torch.empty_like(p) for p in self.params]
        torch._foreach_copy_(self._before, [p.detach() for p in self.params])
        self._before_sq = self._per_part(torch._foreach_norm(self._before, 2.0)) ** 2  # (M,)
        self._spent = time.perf_counter() - started

    @torch.no_grad()
    def update_ratios(self) -> dict[str, float]:
        """‖w_after − w_before‖ / ‖w_before‖ per part for the step since `before_step()`."""
        if self._before is None or self._before_sq is None:
            return {}
        started = time.perf_counter()
        torch._foreach_sub_(self._before, [p.detach() for p in self.params])  # before − after, in place
        moved = self._per_part(torch._foreach_norm(self._before, 2.0))  # (M,)
        ratios = (moved / self._before_sq.sqrt().clamp_min(1e-30)).tolist()
        self._before_sq = None
        self.cost_s = self._spent + time.perf_counter() - started
        return dict(zip(self.parts, ratios, strict=True))


def attention_entropy(attention: np.ndarray) -> np.ndarray:
    """(L, H, T, T) attention weights (rows sum to 1, the causal zeros included) -> (L, H): the mean over
    query positions of each row's entropy −Σ p log p in nats (0 log 0 = 0)."""
    p = np.asarray(attention, dtype=np.float64)  # (L, H, T, T)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)  # (L, H, T, T)
    return terms.sum(axis=-1).mean(axis=-1)  # (L, H)


def uniform_entropy(tokens: int) -> float:
    """The mean entropy of a head that spreads its attention evenly over the positions it may see."""
    return float(np.mean([math.log(t) for t in range(1, tokens + 1)])) if tokens else 0.0


HISTOGRAM_CHUNK = 1 << 22  # weights counted at a time: bounds the int32 codes' memory (16 MB)


@torch.no_grad()
def weight_histograms(model: nn.Module) -> dict[str, list[int]]:
    """Each part's weights counted into the fixed bins of gptviz.engine.weight_histograms: {part: counts}
    (N_BINS ints summing to the part's number of weights; a tied head counted once, under embeddings).

    A float32's top 11 bits (sign, exponent, two mantissa bits) are its fine code; the codes are counted
    with bincount on the weights' own device and mapped to the display bins on the CPU (2,048 numbers).
    """
    fine: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        part = part_of(name)
        flat = p.detach().reshape(-1)  # (N,)
        if flat.dtype != torch.float32:
            flat = flat.float()  # (N,) a half-precision model's weights, widened exactly
        counts = fine.get(part)
        if counts is None:
            counts = fine[part] = torch.zeros(FINE_CODES, dtype=torch.long, device=flat.device)  # (2048,)
        for chunk in flat.split(HISTOGRAM_CHUNK):
            codes = (chunk.view(torch.int32) >> FINE_SHIFT) + FINE_CODES // 2  # (n,) 0..2047
            counts += torch.bincount(codes, minlength=FINE_CODES)  # (2048,)
    if not fine:
        return {}
    stacked = torch.stack(list(fine.values())).cpu().numpy()  # (M, 2048) one device sync for all
    out = {}
    for part, row in zip(fine, stacked, strict=True):
        binned = np.zeros(N_BINS, dtype=np.int64)  # (N_BINS,)
        np.add.at(binned, FINE_TO_BIN, row)  # each fine code into its bin, in integers
        out[part] = binned.tolist()
    return out
