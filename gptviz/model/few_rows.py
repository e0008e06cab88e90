"""Products of a few rows with a large weight matrix, arranged the way this machine's MKL reads fastest.

A decoding step multiplies one row by every weight matrix, so its time is the time to read the weights.
Measured here (2 cores, MKL 2024.2, all of 124M's matrices read cold; docs/benchmarks.md, "Where decoding's
time goes"):

* `F.linear(x, W)` with one row runs as a matrix-vector product on one core: 35 ms, 14 GB/s;
* `W @ X.T` with X of two rows runs as a matrix-matrix product split over both cores: 15-16 ms, 30-32 GB/s,
  the rate of a plain streaming sum over memory;
* through 124M's output head, 2 rows take 4.1 ms, 4 rows 7.0 ms, 14 rows 27.4 ms either way;
* the same 14 rows against the head cut into blocks of CHUNK_OUT output rows, as one batched product
  (`torch.bmm`, each block of W small enough to stay in cache while every row meets it), take 12-15 ms.

* a weight wider than tall (the feed-forward's second layer at 124M: 768 x 3072) is read slowest that way:
  15-21 GB/s, against 24-28 GB/s for the same weight viewed as (2 * out, in / 2), each output row's two
  halves in turn, times the row's two halves as two columns (then the two partial sums of each output are
  added). Measured in one process, interleaved, reading 12 such weights; a sum over them read 24-57 GB/s as
  this VM's memory phases moved.

So `few_rows_linear` computes one row through a weight at least as wide as tall by folding it in two (above),
through other weights as two rows (the row twice; the second result is dropped), up to
MAX_ROWS rows as `W @ X.T`, and up to CHUNKED_MAX_ROWS rows through a tall weight (an output head: at least
CHUNKED_MIN_OUT outputs) block by block. The logit lens is such a product: 13 residual-stream rows and the
last position's row through the output head at every generation step. The weight keeps nn.Linear's (out, in)
layout, so nothing else changes: training, saving and loading see an ordinary nn.Linear. The values agree
with F.linear to float32 rounding (the products add in another order), not bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MAX_ROWS = 4  # beyond this MKL packs the matrix first, and the plain product is as fast per row
CHUNKED_MAX_ROWS = 64  # up to here a tall weight is read block by block (64 rows: 33 ms against 51 ms)
CHUNKED_MIN_OUT = 16384  # outputs of a weight worth cutting into blocks (a vocabulary, not a block's MLP)
CHUNK_OUT = 512  # output rows per block: 1.5 MB of W at width 768 (256-1024 measured alike)


def few_rows_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x (..., in) -> (..., out), as F.linear(x, weight, bias), fast when x holds a few rows on the CPU."""
    rows = x.reshape(-1, x.shape[-1])  # (R, in)
    n = rows.shape[0]
    if (
        n > CHUNKED_MAX_ROWS
        or n == 0
        or torch.is_grad_enabled()
        or x.device.type != "cpu"
        or not weight.is_contiguous()
        or x.dtype != weight.dtype
    ):
        return F.linear(x, weight, bias)  # (..., out)
    if n > MAX_ROWS:
        if weight.shape[0] < CHUNKED_MIN_OUT:
            return F.linear(x, weight, bias)  # (..., out)
        return _chunked_linear(rows, weight, bias).reshape(*x.shape[:-1], weight.shape[0])  # (..., out)
    if n == 1 and weight.shape[1] >= weight.shape[0] and weight.shape[1] % 2 == 0:
        out = _folded_row(rows[0], weight)  # (out,)
        if bias is not None:
            out = out + bias  # (out,)
        return out.reshape(*x.shape[:-1], weight.shape[0])  # (..., out)
    if n == 1:
        rows = rows.expand(2, -1).contiguous()  # (2, in): one row would run on one core
    # Contiguous: the attention's queries are views of this result, and scaled_dot_product_attention over a
    # query row of stride 2 took twice as long (at 400 keys: 83 against 40 us; in a decoding step at 400
    # tokens of context 236 against 127 us a layer).
    out = (weight @ rows.t())[:, :n].t().contiguous()  # (R, out)
    if bias is not None:
        out = out + bias  # (R, out)
    return out.reshape(*x.shape[:-1], weight.shape[0])  # (..., out)


def _folded_row(row: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """row (in,) through weight (out, in) -> (out,), with W read as (2 * out, in / 2): row 2r of that view is
    the first half of W's row r, row 2r + 1 its second half; the product with the row's halves as two
    columns gives each half against each half, and the two that belong together sit on the diagonal of
    each (2, 2) block."""
    out_features, in_features = weight.shape
    half = in_features // 2
    halves = weight.view(2 * out_features, half) @ row.reshape(2, half).t()  # (2 * out, 2)
    return halves.view(out_features, 2, 2).diagonal(dim1=1, dim2=2).sum(-1)  # (out,)


def _chunked_linear(rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """rows (R, in) -> (R, out) through `weight` (out, in) cut into blocks of CHUNK_OUT output rows: one
    batched product over the blocks (views, no copy of W), then the few rows left over."""
    n, width = rows.shape
    blocks = weight.shape[0] // CHUNK_OUT
    body = weight[: blocks * CHUNK_OUT].view(blocks, CHUNK_OUT, width)  # (N, C, in): a view
    per_block = torch.bmm(rows.expand(blocks, n, width), body.transpose(1, 2))  # (N, R, C)
    out = torch.cat(
        [
            per_block.permute(1, 0, 2).reshape(n, blocks * CHUNK_OUT),  # (R, N * C)
            F.linear(rows, weight[blocks * CHUNK_OUT :]),  # (R, out - N * C)
        ],
        dim=1,
    )  # (R, out)
    if bias is not None:
        out = out + bias  # (R, out)
    return out


class Linear(nn.Linear):
    """nn.Linear (same parameters, same state-dict entries) whose few-row products use few_rows_linear."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return few_rows_linear(x, self.weight, self.bias)  # (..., out)
