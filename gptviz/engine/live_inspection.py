"""The panes' inspection kept in step with a generation at the cost of the one new token.

`inspect_tokens` runs the whole context with every tap: at 124M and 1,000 tokens that is seconds, while
the KV-cached generation step costs tens of milliseconds. But a step adds one token, and attention is
causal: nothing already computed for earlier positions changes. So the generator's own forward pass for the
new token (`Generator.feed`) carries the taps, and this module appends what they saw:

* one new attention row per head. The fused attention kernel keeps running (so generation computes the
  same numbers whether anyone watches or not); the row is rebuilt from the tapped query and the keys in the
  KV cache, softmax(q k^T / sqrt(d_head)) with the causal mask, as the explicit path would compute it;
* one new column of residual norms and LayerNorm statistics, one new row of MLP activations;
* the thumbnails by a max over one row of cells (see `thumbnail_block`);
* the logit lens at the new position when it follows the last token (a chosen earlier position never
  changes: causality again), and the next-token candidates.

Play makes snapshots only for the tokens the window will draw; the tokens between are followed
(`update(fed, defer=True)`): their statistics and MLP rows are appended at once, but their attention rows
and logit lens wait for the next snapshot. The attention rows of those few tokens are then computed together,
one product a layer that reads the cached keys once instead of once a token (their queries are kept, 37 KB
a token at 124M; the keys stay in the generator's cache, where nothing before the newest token is
rewritten until an undo, and an undo past a waiting row drops it here first).

The snapshot it hands out is built from views into buffers that only grow: writes go after what any
snapshot shows, so a snapshot stays valid while the next token is appended. Undo (truncate) copies the
buffers first when a snapshot is out, for the same reason. A new prompt, new weights or a moved window
(a crop) make the generator feed the whole window once, and this state starts over.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator

import numpy as np
import torch

from gptviz.engine.future_keys import future_keys
from gptviz.engine.generator import FedTokens
from gptviz.engine.inspection import (
    AttentionMaps,
    InspectionSnapshot,
    append_packed,
    block_max,
    packed_attention_nbytes,
    skip_first_rows,
    stream_stats,
    thumbnail_block,
    thumbnail_side,
    top_tokens,
    unpack_range,
)
from gptviz.model.gpt import GPTModel, causal_bias
from gptviz.tokenizer import Tokenizer

ONE_THREAD_MAX_KEYS = 256  # a step's appends run on one thread below this many keys (see `one_thread`)
_LINEAGES = itertools.count()  # unique across instances: a new model's rows are never mistaken for old ones


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run small tensor ops on one thread. Each parallel op ends at an OpenMP barrier; on a busy machine
    the partner thread is often descheduled and a 20-microsecond softmax over one attention row waited
    2 ms for it (measured here at load 2). The rows, columns and cells a step appends are all that small."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _causal_softmax(q: torch.Tensor, k: torch.Tensor, first: int) -> torch.Tensor:
    """(H, m, S) float32: softmax(q k^T / sqrt(d_head)) of queries q (H, m, hd) at positions first..first+m-1
    against keys k (H, S, hd), each query's future keys masked."""
    H, m, hd = q.shape
    S = k.shape[1]
    if m == 1 and first + 1 == S:  # the last query sees every key: nothing to mask
        scores = torch.bmm(q, k.transpose(1, 2)).mul_(1.0 / math.sqrt(hd))  # (H, 1, S)
    else:
        bias = causal_bias(m, S, first, q.device, q.dtype)  # (m, S)
        scores = torch.baddbmm(bias.expand(H, m, S), q, k.transpose(1, 2), alpha=1.0 / math.sqrt(hd))
    return torch.softmax(scores, dim=-1).cpu()  # (H, m, S)


def _triangle(n: int) -> int:
    """Values in the first n rows of a causal map: n (n + 1) / 2."""
    return n * (n + 1) // 2


class LiveInspection:
    """An InspectionSnapshot that grows with the generation: `update(fed)` after each `Generator.feed`."""

    def __init__(
        self,
        model: GPTModel,
        tokenizer: Tokenizer,
        *,
        mlp_layer: int = 0,
        lens_position: int = -1,
        top_k: int = 8,
    ) -> None:
        cfg = model.cfg
        self.model = model
        self.tokenizer = tokenizer
        self.n_layers, self.n_heads, self.emb_dim = cfg.n_layers, cfg.n_heads, cfg.emb_dim
        self.mlp_layer = mlp_layer
        self.lens_position = lens_position  # -1 follows the last token
        self.top_k = top_k
        self.lineage = 0  # changes whenever held rows change (clear, truncate): panes may extend otherwise
        self.clear()

    # ------------------------------------------------------------------------------------------- state

    def clear(self) -> None:
        """Forget everything (new prompt, new weights, a moved window)."""
        L, H, D = self.n_layers, self.n_heads, self.emb_dim
        self.n = 0
        self.start = 0  # tokens cropped from the front of the sequence
        self.ids: list[int] = []
        self.pieces: list[str] = []
        self._ids = np.zeros(0, dtype=np.int64)  # (cap,)
        self._packed = np.zeros((L, H, 0), dtype=np.uint8)  # (L, H, cap bytes)
        self._nbytes = 0
        self._norms = np.zeros((L + 1, 0), dtype=np.float32)  # (L+1, cap)
        self._ln = np.zeros((L, 2, 2, 2, 0), dtype=np.float32)  # (L, 2, 2, 2, cap)
        self._mlp = np.zeros((0, 4 * D), dtype=np.float32)  # (cap, 4D)
        self._block = 1
        self._thumbs = np.zeros((L, H, 64, 64), dtype=np.float16)
        self._thumbs_skip = np.zeros((L, H, 64, 64), dtype=np.float16)
        self._lens: tuple[int, np.ndarray, np.ndarray] | None = None  # (position, ids, probs) (L+1, k)
        # (position, (L+1, D)): a lens not yet computed
        self._lens_rows: tuple[int, torch.Tensor] | None = None
        self._next: tuple[np.ndarray, np.ndarray] | None = None
        self._handed_out = False
        # Play's followed tokens: each (L, H, 1, hd), the queries of the rows _packed_rows..n-1 still to compute
        self._waiting_q: list[torch.Tensor] = []
        self._waiting_keys: tuple[torch.Tensor, ...] | None = None  # the latest feed's cached keys (views)
        self.lineage = next(_LINEAGES)

    def tap_names(self, with_keys: bool = False) -> frozenset[str]:
        """What a feed must tap for `update`: queries (the keys come from the KV cache, or the k tap when
        there is none), the residual stream around each norm, one MLP layer, and the logits."""
        names = {"hook_embed", f"blocks.{self.mlp_layer}.ff.hook_post"}
        for i in range(self.n_layers):
            names |= {
                f"blocks.{i}.attn.hook_q",
                f"blocks.{i}.hook_ln1",
                f"blocks.{i}.hook_resid_mid",
                f"blocks.{i}.hook_ln2",
                f"blocks.{i}.hook_resid_post",
            }
            if with_keys:
                names.add(f"blocks.{i}.attn.hook_k")
        return frozenset(names)

    def truncate(self, n_tokens: int) -> None:
        """Keep the first n_tokens rows (an undo)."""
        if n_tokens >= self.n:
            return
        self._settle_waiting(limit=n_tokens)  # rows before the cut were waiting: computed from keys before it
        if self._handed_out:  # a snapshot reads these buffers: the rows about to be rewritten are its rows
            self._packed = self._packed.copy()
            self._ids, self._norms = self._ids.copy(), self._norms.copy()
            self._ln, self._mlp = self._ln.copy(), self._mlp.copy()
            self._handed_out = False
        self.lineage = next(_LINEAGES)
        self.n = n_tokens
        self.ids = self.ids[:n_tokens]
        self.pieces = self.pieces[:n_tokens]
        self._nbytes = packed_attention_nbytes(n_tokens)
        if self._lens is not None and self._lens[0] >= n_tokens:
            self._lens = None
        if self._lens_rows is not None and self._lens_rows[0] >= n_tokens:
            self._lens_rows = None
        self._next = None
        self._rebuild_thumbnails_from(n_tokens)

    def update(self, fed: FedTokens, defer: bool = False) -> bool:
        """Take in what one feed saw. False when it does not continue the rows held here (the caller then
        feeds the whole window again, which always succeeds). `defer`: a token the window will not draw
        (Play makes snapshots only for the tokens the window will draw): keep the logit lens's residual rows
        and the attention's queries, and compute the lens and the attention rows only when a snapshot is made
        (the head product is most of what a token adds, the rows over every cached key most of the rest)."""
        first = fed.first
        if first == 0:  # the whole window: start over in fresh buffers (no copy for old snapshots needed)
            self.clear()
            self.start = fed.start
        elif fed.start != self.start or first > self.n or list(fed.window_ids[:first]) != self.ids[:first]:
            return False
        elif first < self.n:
            self.truncate(first)
        new_ids = list(fed.window_ids[first:])
        self._append(new_ids, fed, defer)
        return True

    # ------------------------------------------------------------------------------------- appending

    def _grow(self, n_total: int) -> None:
        """Make room for n_total tokens, doubling so a long generation copies O(log n) times."""
        cap = self._ids.shape[0]
        if n_total <= cap:
            return
        ctx = self.model.cfg.context_length
        new_cap = min(max(2 * n_total, 16), max(ctx, n_total))  # room for as many again, up to the context
        L, H = self.n_layers, self.n_heads

        def grown(array: np.ndarray, axis: int, size: int) -> np.ndarray:
            shape = list(array.shape)
            shape[axis] = size
            out = np.zeros(shape, dtype=array.dtype)
            index = [slice(None)] * array.ndim
            index[axis] = slice(0, array.shape[axis])
            out[tuple(index)] = array
            return out

        self._ids = grown(self._ids, 0, new_cap)
        self._norms = grown(self._norms, 1, new_cap)
        self._ln = grown(self._ln, 4, new_cap)
        self._mlp = grown(self._mlp, 0, new_cap)
        packed = np.zeros((L, H, packed_attention_nbytes(new_cap)), dtype=np.uint8)
        packed[:, :, : self._nbytes] = self._packed[:, :, : self._nbytes]
        self._packed = packed

    def _append(self, new_ids: list[int], fed: FedTokens, defer: bool = False) -> None:
        taps = fed.taps
        first, m = self.n, len(new_ids)
        total = first + m
        self._grow(total)
        self._set_block(thumbnail_block(total))
        # One token's rows are small until its attention rows read many keys: from a few hundred on, the
        # product over the cached keys is memory-bound and two threads read faster (a follow at 600 tokens
        # 27.5 -> 26.7 ms, at 900 tokens 29.2 -> 28.1 ms; alike at 100). A whole window's rows are not small.
        small = one_thread() if m == 1 and total < ONE_THREAD_MAX_KEYS else contextlib.nullcontext()
        wait = defer and m == 1 and fed.keys is not None  # Play's followed token: its rows can wait
        with torch.no_grad(), small:
            if wait:
                self._waiting_q.append(self._queries(fed).clone())  # (L, H, 1, hd): the taps are the feed's
                self._waiting_keys = fed.keys
            elif self._waiting_q and m == 1 and fed.keys is not None:
                self._settle_waiting(fed)  # the rows that waited and this token's, one product a layer
            else:
                self._settle_waiting()
                self._attention_of_feed(fed, first, m)
            _, norms, ln = stream_stats(taps, self.n_layers)  # (L+1, m), (L, 2, 2, 2, m)
            self._norms[:, first:total] = norms.cpu().numpy()
            self._ln[..., first:total] = ln.cpu().numpy()
            self._mlp[first:total] = taps[f"blocks.{self.mlp_layer}.ff.hook_post"][0].float().cpu().numpy()
        with torch.no_grad():
            self._next = top_tokens(fed.logits, self.top_k)
            lens_at = self.lens_position % total if self.lens_position < 0 else self.lens_position
            if lens_at == total - 1 and fed.head_logits is not None:  # computed with the step's own head pass
                self._lens = (lens_at, *top_tokens(fed.head_logits, self.top_k))
                self._lens_rows = None
            elif first <= lens_at < total and (self._lens is None or self._lens[0] != lens_at):
                rows = self._stream_rows(taps, lens_at - first, self.n_layers + 1)  # (L+1, D)
                if defer:
                    self._lens_rows = (lens_at, rows.clone())  # 37 KB at 124M; the taps are the feed's
                else:
                    self._lens = (lens_at, *top_tokens(self.model.head(rows), self.top_k))
                    self._lens_rows = None
        self._ids[first:total] = new_ids
        self.ids.extend(new_ids)
        self.pieces.extend(self.tokenizer.piece_or_id(i) for i in new_ids)
        self.n = total
        self._nbytes = packed_attention_nbytes(self._packed_rows)

    def _attention_of_feed(self, fed: FedTokens, first: int, m: int) -> None:
        """The fed tokens' attention rows (m a layer), packed after the rows held and maxed into the
        thumbnails. One new row: every layer's rows at once (12 x 12 x 1,000 values), so the packing and
        thumbnails run once a Step instead of once a layer. A whole window: layer by layer, to bound the
        memory."""
        group = self.n_layers if m == 1 else 1
        for lo in range(0, self.n_layers, group):
            layers = range(lo, min(lo + group, self.n_layers))
            weights = torch.stack([self._attention_rows(i, fed, first) for i in layers])  # (G, H, m, S)
            self._append_attention(slice(layers.start, layers.stop), weights, first)

    def _settle_waiting(self, fed: FedTokens | None = None, limit: int | None = None) -> None:
        """Compute the attention rows that wait (Play's followed tokens), with `fed`'s new row after them
        when given, from the cached keys: per layer one product of those few queries with every key up to
        the last of them, the causal mask hiding each query's future. `limit`: rows from there on are
        dropped instead (an undo)."""
        first = self._packed_rows
        queries = self._waiting_q
        if limit is not None:
            queries = queries[: max(0, limit - first)]
        keys = self._waiting_keys
        if fed is not None:
            queries = [*queries, self._queries(fed)]
            keys = fed.keys
        self._waiting_q, self._waiting_keys = [], None
        if not queries:
            return
        assert keys is not None  # rows wait only for a feed that had the cache's keys
        q = torch.cat(queries, dim=2)  # (L, H, m, hd): rows first..first+m-1
        S = first + q.shape[2]
        weights = torch.stack(
            [_causal_softmax(q[i], keys[i][0, :, :S].float(), first) for i in range(self.n_layers)]
        )  # (L, H, m, S)
        self._append_attention(slice(0, self.n_layers), weights, first)
        self._nbytes = packed_attention_nbytes(S)

    @property
    def _packed_rows(self) -> int:
        """Rows in the packed store and thumbnails; the rest wait (one a followed token)."""
        return self.n - len(self._waiting_q)

    def _queries(self, fed: FedTokens) -> torch.Tensor:
        """(L, H, 1, hd) float32: the one fed token's attention queries in every layer."""
        return torch.stack([fed.taps[f"blocks.{i}.attn.hook_q"][0].float() for i in range(self.n_layers)])

    def _stream_rows(self, taps: dict[str, torch.Tensor], row: int, count: int) -> torch.Tensor:
        """(count, D): the residual stream at one fed position after the embeddings, then after each block."""
        resid = [taps["hook_embed"][0, row]]
        resid += [taps[f"blocks.{i}.hook_resid_post"][0, row] for i in range(count - 1)]
        return torch.stack(resid)  # (count, D)

    def lens_rows(self, taps: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """For `Generator.feed(extra_rows=...)`: when the logit lens follows the last token, its rows after
        the embeddings and blocks 0..L-2 (L, D), so the step's one pass over the output head serves both the
        next-token logits and the lens. None when the lens looks elsewhere."""
        if self.lens_position != -1:
            return None
        return self._stream_rows(taps, taps["hook_embed"].shape[1] - 1, self.n_layers)  # (L, D)

    def _attention_rows(self, layer: int, fed: FedTokens, first: int) -> torch.Tensor:
        """(H, m, S) float32: softmax(q k^T / sqrt(d_head)) of the new queries against every key up to them."""
        q = fed.taps[f"blocks.{layer}.attn.hook_q"][0].float()  # (H, m, hd)
        if fed.keys is not None:
            k = fed.keys[layer][0].float()  # (H, S, hd)
        else:
            k = fed.taps[f"blocks.{layer}.attn.hook_k"][0].float()  # (H, S, hd)
        return _causal_softmax(q, k, first)  # (H, m, S)

    def _append_attention(self, layers: slice, weights: torch.Tensor, first: int) -> None:
        """Pack the new rows' causal part (G, H, m, S) of `layers` after the rows held, and max them into
        the thumbnails."""
        _, _, m, S = weights.shape
        allowed = ~future_keys(m, S, first)  # (m, S) True where query first+r may see the key
        half = weights.half().clamp_(0.0, 1.0).numpy()  # (G, H, m, S)
        append_packed(self._packed[layers], _triangle(first), half[..., allowed])  # (G, H, count)
        w = weights if m == 1 else weights.masked_fill(~torch.from_numpy(allowed), 0.0)  # (G, H, m, S)
        self._max_rows_into(self._thumbs[layers], w, first)
        self._max_rows_into(self._thumbs_skip[layers], skip_first_rows(w), first)

    def _max_rows_into(self, thumbs: np.ndarray, rows: torch.Tensor, first: int) -> None:
        """Max rows first..first+m-1 (..., H, m, S) into the thumbnail cells (..., H, 64, 64) they fall in."""
        block = self._block
        *lead, m, S = rows.shape
        if m == 1:  # the common case, a generation step: one row maxed over each block of keys
            c = -(-S // block)
            padded = torch.nn.functional.pad(rows[..., 0, :], (0, c * block - S))  # (..., c * block)
            cells = padded.view(*lead, c, block).amax(dim=-1).half().numpy()  # (..., c)
            row = thumbs[..., first // block, :c]
            np.maximum(row, cells, out=row)
            return
        rows = rows.reshape(-1, m, S)  # (H', m, S): the layers of a group side by side
        thumbs = thumbs.view()
        thumbs.shape = (-1, *thumbs.shape[-2:])  # (H', 64, 64): still the same cells (raises if it cannot be)
        lead_rows = first % block  # rows of the first cell row that came before
        if lead_rows:
            rows = torch.cat([torch.zeros(rows.shape[0], lead_rows, S), rows], dim=1)  # (H', lead + m, S)
        cells = block_max(rows, block).half().numpy()  # (H', r, c)
        top = first // block
        r, c = cells.shape[1:]
        np.maximum(thumbs[:, top : top + r, :c], cells, out=thumbs[:, top : top + r, :c])

    def _set_block(self, block: int) -> None:
        """Merge 2 x 2 cells by max until the thumbnails' block is `block` (the map outgrew 64 cells)."""
        while self._block < block:
            for thumbs in (self._thumbs, self._thumbs_skip):
                merged = thumbs.reshape(*thumbs.shape[:2], 32, 2, 32, 2).max(axis=(3, 5))  # (L, H, 32, 32)
                thumbs[:] = 0
                thumbs[:, :, :32, :32] = merged
            self._block *= 2

    def _rebuild_thumbnails_from(self, n_tokens: int) -> None:
        """After a truncate: cells past n_tokens go, the last partial cell row is rebuilt from the packed rows,
        and a map that shrank below its block's range is pooled again from scratch."""
        block = thumbnail_block(n_tokens)
        if block != self._block:
            self._block = block
            self._thumbs[:] = 0
            self._thumbs_skip[:] = 0
            first_row = 0
        else:
            first_row = (n_tokens // block) * block
            self._thumbs[:, :, first_row // block :] = 0
            self._thumbs_skip[:, :, first_row // block :] = 0
        if first_row >= n_tokens:
            return
        for layer in range(self.n_layers):
            rows = self._dense_rows(layer, first_row, n_tokens)  # (H, R, n_tokens)
            self._max_rows_into(self._thumbs[layer], rows, first_row)
            self._max_rows_into(self._thumbs_skip[layer], skip_first_rows(rows.clone()), first_row)

    def _dense_rows(self, layer: int, row0: int, row1: int) -> torch.Tensor:
        """Rows row0..row1-1 of every head of one layer from the packed store: (H, R, row1) float32."""
        values = unpack_range(self._packed[layer], _triangle(row0), _triangle(row1))  # (H, count)
        allowed = ~future_keys(row1 - row0, row1, row0)  # (R, row1)
        out = np.zeros((self.n_heads, row1 - row0, row1), dtype=np.float32)
        out[:, allowed] = values
        return torch.from_numpy(out)

    # ------------------------------------------------------------------------------------- choices

    def set_mlp_layer(self, layer: int, mlp_post: np.ndarray) -> None:
        """Show another block's MLP: `mlp_post` (n, 4D) over the rows held, computed by the caller."""
        self.mlp_layer = layer
        fresh = np.zeros_like(self._mlp)  # a new buffer: a snapshot out there keeps showing the old layer
        fresh[: self.n] = mlp_post
        self._mlp = fresh

    def set_lens(self, position: int, lens: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Follow the last token (-1) or look at a fixed position; `lens` (ids, probs) when the caller computed
        it for that position."""
        self.lens_position = position
        if lens is not None:
            self._lens = (self._lens_at(), *lens)

    def _lens_at(self) -> int:
        return self.lens_position % self.n if self.lens_position < 0 else self.lens_position

    def lens_ready(self) -> bool:
        """The lens at the position looked at is known, or its rows are kept to compute it (`snapshot`)."""
        if self.n == 0:
            return False
        at = self._lens_at()
        return (self._lens is not None and self._lens[0] == at) or (
            self._lens_rows is not None and self._lens_rows[0] == at
        )

    def _lens_from_rows(self) -> None:
        """A deferred lens (`update(fed, defer=True)`) computed now: its rows through the output head."""
        kept = self._lens_rows
        if kept is None or kept[0] != self._lens_at():
            return
        if self._lens is None or self._lens[0] != kept[0]:
            with torch.no_grad():
                self._lens = (kept[0], *top_tokens(self.model.head(kept[1]), self.top_k))
        self._lens_rows = None

    # ------------------------------------------------------------------------------------- snapshot

    def snapshot(self) -> InspectionSnapshot:
        """The rows held, as a snapshot of views (attention, activations) and small copies (thumbnails)."""
        if self.n == 0 or self._next is None or not self.lens_ready():
            raise RuntimeError("the live inspection has nothing to show yet")
        self._settle_waiting()
        self._lens_from_rows()
        assert self._lens is not None
        n, side = self.n, thumbnail_side(self.n)
        position, lens_ids, lens_probs = self._lens
        next_ids, next_probs = self._next
        self._handed_out = True
        maps = AttentionMaps(
            self.n_layers,
            self.n_heads,
            n,
            self._packed[:, :, : self._nbytes],
            self._thumbs[:, :, :side, :side].copy(),
            self._thumbs_skip[:, :, :side, :side].copy(),
        )
        return InspectionSnapshot(
            token_ids=self._ids[:n],
            pieces=tuple(self.pieces),
            attention=maps,
            residual_norms=self._norms[:, :n],
            mlp_layer=self.mlp_layer,
            mlp_post=self._mlp[:n],
            ln_stats=self._ln[..., :n],
            lens_position=position,
            lens_ids=lens_ids,
            lens_probs=lens_probs,
            lens_pieces=tuple(tuple(self.tokenizer.piece_or_id(int(i)) for i in row) for row in lens_ids),
            next_ids=next_ids,
            next_probs=next_probs,
            next_pieces=tuple(self.tokenizer.piece_or_id(int(i)) for i in next_ids),
            cropped=self.start,
            lineage=self.lineage,
        )


__all__ = ["LiveInspection"]
