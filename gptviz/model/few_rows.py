"""Products of a few rows with a large weight matrix, arranged the way this machine's MKL reads fastest.

A decoding step multiplies one row by every weight matrix, so its time is the time to read the weights.
Measured here (2 cores, MKL 2024.2, all of 124M's matrices read cold; docs/benchmarks.md, "Where decoding's
time goes"):

* `F.linear(x, W)` with one row runs as a matrix-vector product on one core: 35 ms, 14 GB/s;
* `W @ X.T` with X of two rows runs as a matrix-matrix product split over both cores: 15-16 ms, 30-32 GB/s,
  the rate of a plain streaming sum over memory;
* through 124M's output head, 2 rows take 4.1 ms, 4 rows 7.0 ms, 14 rows 27.4 ms either way.

So `few_rows_linear` computes one row as two (the row twice; the second result is dropped) and up to
MAX_ROWS rows as `W @ X.T`. The weight keeps nn.Linear's (out, in)
layout, so nothing else changes: training, saving and loading see an ordinary nn.Linear. The values agree
with F.linear to float32 rounding (the products add in another order), not bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MAX_ROWS = 4  # beyond this MKL packs the matrix first, and the plain product is as fast per row


def few_rows_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x (..., in) -> (..., out), as F.linear(x, weight, bias), fast when x holds a few rows on the CPU."""
    rows = x.reshape(-1, x.shape[-1])  # (R, in)
    n = rows.shape[0]
    if (
        n > MAX_ROWS
        or n == 0
        or torch.is_grad_enabled()
        or x.device.type != "cpu"
        or not weight.is_contiguous()
        or x.dtype != weight.dtype
    ):
        return F.linear(x, weight, bias)  # (..., out)
    if n == 1:
        rows = rows.expand(2, -1).contiguous()  # (2, in): one row would run on one core
    out = (weight @ rows.t())[:, :n].t()  # (R, out)
    if bias is not None:
        out = out + bias  # (R, out)
    return out.reshape(*x.shape[:-1], weight.shape[0])  # (..., out)


class Linear(nn.Linear):
    """nn.Linear (same parameters, same state-dict entries) whose few-row products use few_rows_linear."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return few_rows_linear(x, self.weight, self.bias)  # (..., out)
