"""One forward pass with the taps the Attention and Activations panes need, turned into a plain snapshot.

The snapshot holds numpy copies only (never tensors), is read-only, and is small enough to keep around:
the naive all-heads fp32 attention of the 124M preset at 1024 tokens is 12*12*1024^2*4 B = 576 MiB, which
no pane should hold. Three facts make it small without losing what a view can show:

* attention is causal, so only the lower triangle (T(T+1)/2 of T^2 weights) carries information;
* weights are stored at float16 precision: relative error <= 2^-11 (about 5e-4) for weights >= 6.1e-5 and
  absolute error <= 3e-8 below that, far under what a colour map can show;
* a float16 number in [0, 1] never sets the top two of its 16 bits, so four weights fit in seven bytes.

That is 124M/1024 -> about 126 MiB of attention (plus 12 MiB for one layer's MLP activations), and a
dense (T, T) float32 map is rebuilt for the one head a view opens, in milliseconds.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt
import torch

from gptviz.engine.future_keys import future_keys_square
from gptviz.errors import ConfigError
from gptviz.model.gpt import GPTModel
from gptviz.model.hooks import capture
from gptviz.tokenizer import Tokenizer

THUMBNAIL_SIZE = 64  # the overview shows each head at most this many cells a side
_NAN_CODE = 0x3FFF  # float16 bits of 1.999..., never a softmax weight: stands for NaN in the packed form
_CODE_MASK = 0x3FFF  # 14 bits


@functools.lru_cache(maxsize=4)
def _tril_mask(n_tokens: int) -> np.ndarray:
    """(T, T) bool, True on and below the diagonal: the cells a causal query may attend to."""
    mask = ~future_keys_square(n_tokens)  # (T, T)
    mask.flags.writeable = False
    return mask


def _codes14(half: np.ndarray) -> np.ndarray:
    """(..., n) float16 in [0, 1] (or NaN) -> (..., n) uint16 14-bit codes (NaN -> _NAN_CODE)."""
    bits = half.view(np.uint16)
    nans = np.isnan(half)
    if nans.any():
        bits = np.where(nans, np.uint16(_NAN_CODE), bits)
    return bits


def _pack_codes(codes: np.ndarray) -> np.ndarray:
    """(..., n) uint16 14-bit codes -> (..., 7 * ceil(n / 4)) uint8, four codes per 7 bytes."""
    lead, n = codes.shape[:-1], codes.shape[-1]
    groups = -(-n // 4)
    quads = np.zeros((*lead, groups * 4), dtype=np.uint16)
    quads[..., :n] = codes
    quads = quads.reshape(*lead, groups, 4)
    words = quads[..., 0].astype(np.uint64)  # (..., groups)
    for slot in (1, 2, 3):
        words |= quads[..., slot].astype(np.uint64) << np.uint64(14 * slot)
    octets = words.astype("<u8", copy=False).view(np.uint8).reshape(*lead, groups, 8)
    return np.ascontiguousarray(octets[..., :7]).reshape(*lead, groups * 7)


def _unpack_codes(packed: np.ndarray) -> np.ndarray:
    """(..., 7 * g) uint8 -> (..., 4 * g) uint16 codes (the inverse of _pack_codes, padding included)."""
    lead, groups = packed.shape[:-1], packed.shape[-1] // 7
    octets = np.zeros((*lead, groups, 8), dtype=np.uint8)
    octets[..., :7] = packed.reshape(*lead, groups, 7)
    words = octets.view("<u8")[..., 0]
    codes = np.empty((*lead, groups, 4), dtype=np.uint16)
    for slot, shift in enumerate((0, 14, 28, 42)):
        codes[..., slot] = (words >> np.uint64(shift)) & np.uint64(_CODE_MASK)
    return codes.reshape(*lead, groups * 4)


def _codes_to_values(codes: np.ndarray) -> np.ndarray:
    values = codes.view(np.float16).astype(np.float32)
    values[codes == _NAN_CODE] = np.nan
    return values


def _pack14(half: np.ndarray) -> np.ndarray:
    """(..., n) float16 in [0, 1] (or NaN) -> (..., 7 * ceil(n / 4)) uint8, four 14-bit codes per 7 bytes."""
    return _pack_codes(_codes14(half))


def _unpack14(packed: np.ndarray, n: int) -> np.ndarray:
    """Inverse of _pack14: (..., 7 * g) uint8 -> (..., n) float32."""
    return _codes_to_values(_unpack_codes(packed)[..., :n])


def unpack_range(packed: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Values start..stop-1 of a packed sequence: (..., bytes) uint8 -> (..., stop - start) float32.

    Only the 7-byte groups that hold them are decoded, so a few rows of a long triangle cost a few rows."""
    g0, g1 = start // 4, -(-stop // 4)
    codes = _unpack_codes(packed[..., 7 * g0 : 7 * g1])  # (..., 4 * (g1 - g0))
    return _codes_to_values(codes[..., start - 4 * g0 : stop - 4 * g0])


def append_packed(buffer: np.ndarray, n_old: int, half: np.ndarray) -> int:
    """Write float16 values `half` (..., m) after the first `n_old` values packed in `buffer` (..., bytes).

    The group of four that `n_old` ends inside is re-packed whole with its old codes kept bit for bit, so a
    reader of the first n_old values sees the same numbers before, during and after the write. Returns the
    bytes now in use."""
    g0, rest = n_old // 4, n_old % 4
    codes = _codes14(half)  # (..., m)
    if rest:
        kept = _unpack_codes(buffer[..., 7 * g0 : 7 * g0 + 7])[..., :rest]  # (..., rest)
        codes = np.concatenate([kept, codes], axis=-1)  # (..., rest + m)
    packed = _pack_codes(codes)
    buffer[..., 7 * g0 : 7 * g0 + packed.shape[-1]] = packed
    return 7 * g0 + packed.shape[-1]


def thumbnail_block(n_tokens: int) -> int:
    """Tokens a thumbnail cell spans a side: the smallest power of two that fits the map in THUMBNAIL_SIZE
    cells. Powers of two let a growing map keep its thumbnail exactly: when the block doubles, 2 x 2 cells
    merge by max, so a new token costs one row of cells instead of pooling the whole map again."""
    block = 1
    while -(-n_tokens // block) > THUMBNAIL_SIZE:
        block *= 2
    return block


def thumbnail_side(n_tokens: int) -> int:
    """Cells a side of a thumbnail of n_tokens (between THUMBNAIL_SIZE / 2 and THUMBNAIL_SIZE past 64)."""
    return -(-n_tokens // thumbnail_block(n_tokens))


def block_max(weights: torch.Tensor, block: int) -> torch.Tensor:
    """(H, R, C) -> (H, ceil(R / block), ceil(C / block)): the largest weight in each block (edges partial)."""
    if block == 1:
        return weights.clone()
    return torch.nn.functional.max_pool2d(weights, block, block, ceil_mode=True)


def skip_first_rows(weights: torch.Tensor) -> torch.Tensor:
    """(..., R, C) attention rows -> the same rows renormalised over keys 1.. (key 0 set to 0), in place.

    A row that can only see key 0 has nothing left and becomes all zeros."""
    weights[..., 0] = 0.0
    return weights.div_(weights.sum(dim=-1, keepdim=True).clamp_min_(1e-30))


def packed_attention_nbytes(n_tokens: int) -> int:
    """Bytes one head's causal map takes in the packed form."""
    return 7 * -(-(n_tokens * (n_tokens + 1) // 2) // 4)


@dataclass(frozen=True, eq=False)
class AttentionMaps:
    """Attention weights of every layer and head, shaped (L, H, T, T) to its readers, stored compactly.

    Index it like the array it stands for: `maps[layer, head]` -> (T, T) float32 (zeros above the
    diagonal), `maps[layer]` -> (H, T, T), `np.asarray(maps)` -> (L, H, T, T). Values are float16-exact
    (see the module docstring). `thumbnails` holds each map max-pooled to at most THUMBNAIL_SIZE cells a
    side, so one-token-wide patterns stay visible in an overview; `thumbnails_skip_first` the same after
    renormalising each row over keys 1..t (row 0 then has nothing left and is all zeros). A thumbnail
    cell spans `thumbnail_block(T)` tokens a side (a power of two), so S = ceil(T / block) <= 64.
    """

    n_layers: int
    n_heads: int
    n_tokens: int
    packed: np.ndarray  # (L, H, packed_attention_nbytes(T)) uint8
    thumbnails: np.ndarray  # (L, H, S, S) float16, S = thumbnail_side(T)
    thumbnails_skip_first: np.ndarray  # (L, H, S, S) float16

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.n_layers, self.n_heads, self.n_tokens, self.n_tokens)

    @property
    def ndim(self) -> int:
        return 4

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @property
    def nbytes(self) -> int:
        return self.packed.nbytes + self.thumbnails.nbytes + self.thumbnails_skip_first.nbytes

    def __len__(self) -> int:
        return self.n_layers

    def _dense(self, packed: np.ndarray) -> np.ndarray:
        """(..., packed bytes) -> (..., T, T) float32, zeros above the diagonal."""
        T = self.n_tokens
        values = _unpack14(packed, T * (T + 1) // 2)
        out = np.zeros((*packed.shape[:-1], T, T), dtype=np.float32)
        out[..., _tril_mask(T)] = values
        return out

    def head(self, layer: int, head: int) -> np.ndarray:
        """(T, T) float32: row = query, column = key."""
        layer = range(self.n_layers)[layer]
        head = range(self.n_heads)[head]
        return self._dense(self.packed[layer, head])

    def layer(self, layer: int) -> np.ndarray:
        """(H, T, T) float32."""
        return self._dense(self.packed[range(self.n_layers)[layer]])

    def mean_heads(self, layer: int) -> np.ndarray:
        """(T, T) float32: the average over the heads of one layer (rows still sum to 1).

        Averaged in the packed triangle, so only one dense map is built (not one per head)."""
        T = self.n_tokens
        values = _unpack14(self.packed[range(self.n_layers)[layer]], T * (T + 1) // 2).mean(axis=0)  # (n,)
        out = np.zeros((T, T), dtype=np.float32)
        out[_tril_mask(T)] = values
        return out

    def rows(self, layer: int, head: int | None, start: int, stop: int) -> np.ndarray:
        """Rows start..stop-1 of one head's map (or, head None, of the layer's average over heads):
        (stop - start, stop) float32, zeros above the diagonal. Only those rows are decoded, so a view that
        grows with generation pays for the new token's row, not for the whole map again."""
        layer = range(self.n_layers)[layer]
        if not 0 <= start <= stop <= self.n_tokens:
            raise ValueError(f"rows {start}..{stop} of a {self.n_tokens}-token map")
        packed = self.packed[layer] if head is None else self.packed[layer, range(self.n_heads)[head]]
        values = unpack_range(packed, start * (start + 1) // 2, stop * (stop + 1) // 2)  # ([H,] n)
        if head is None:
            values = values.mean(axis=0)  # (n,)
        queries = np.arange(start, stop)[:, None]  # (m, 1)
        keys = np.arange(stop)[None, :]  # (1, stop)
        out = np.zeros((stop - start, stop), dtype=np.float32)
        out[keys <= queries] = values  # row-major order is the triangle's order
        return out

    def __getitem__(self, key: int | np.integer | slice | tuple[int | np.integer | slice, ...]) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.layer(int(key))
        if isinstance(key, tuple) and len(key) == 2:
            layer, head = key
            if isinstance(layer, (int, np.integer)) and isinstance(head, (int, np.integer)):
                return self.head(int(layer), int(head))
        return np.asarray(self)[key]

    def __array__(self, dtype: npt.DTypeLike | None = None, copy: bool | None = None) -> np.ndarray:
        dense = self._dense(self.packed)  # (L, H, T, T)
        return dense if dtype is None else dense.astype(dtype)


@dataclass(frozen=True, eq=False)
class InspectionSnapshot:
    """What one inspection pass saw, as read-only numpy arrays and plain values (safe to hand across threads).

    Shapes use L layers, H heads, T tokens (after cropping to the context), D width, k = lens_top_k.
    """

    token_ids: np.ndarray  # (T,) int64
    pieces: tuple[str, ...]  # how each token looks on its own
    attention: AttentionMaps  # (L, H, T, T) float16-exact, see AttentionMaps
    residual_norms: np.ndarray  # (L+1, T) float32: L2 norm after the embeddings, then after each block
    mlp_layer: int
    mlp_post: np.ndarray  # (T, 4D) float32: MLP activations after GELU in block `mlp_layer`
    ln_stats: np.ndarray  # (L, 2, 2, 2, T) float32: layer, (norm1, norm2), (input, output), (mean, var)
    lens_position: int  # which token the logit lens looks at (0-based index into token_ids)
    lens_ids: np.ndarray  # (L+1, k) int64: top tokens the residual stream after each layer would predict
    lens_probs: np.ndarray  # (L+1, k) float32; the last row is the model's real next-token distribution
    lens_pieces: tuple[tuple[str, ...], ...]
    next_ids: np.ndarray  # (k,) int64: top next tokens after the last position
    next_probs: np.ndarray  # (k,) float32
    next_pieces: tuple[str, ...]
    cropped: int  # tokens dropped from the front to fit the context
    # Two snapshots of one lineage (>= 0) agree on the rows both have: a live inspection's next token only
    # adds rows, so a view may extend what it drew instead of redrawing it. Negative: stands alone.
    lineage: int = -1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                value.flags.writeable = False
        for array in (self.attention.packed, self.attention.thumbnails, self.attention.thumbnails_skip_first):
            array.flags.writeable = False

    @property
    def n_tokens(self) -> int:
        return int(self.token_ids.shape[0])

    @property
    def n_layers(self) -> int:
        return self.attention.n_layers

    @property
    def n_heads(self) -> int:
        return self.attention.n_heads

    @property
    def nbytes(self) -> int:
        """Bytes held in arrays (the token strings add a few bytes a token)."""
        total = self.attention.nbytes
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                total += value.nbytes
        return total


def snapshot_nbytes(n_layers: int, n_heads: int, n_tokens: int, emb_dim: int, top_k: int = 8) -> int:
    """InspectionSnapshot.nbytes from shapes alone, so the 124M preset at 1024 tokens is sized without running."""
    L, H, T, D, k = n_layers, n_heads, n_tokens, emb_dim, top_k
    thumb = thumbnail_side(T)
    attention = L * H * packed_attention_nbytes(T) + 2 * L * H * thumb * thumb * 2
    arrays = T * 8 + (L + 1) * T * 4 + T * 4 * D * 4 + L * 8 * T * 4 + (L + 1) * k * (8 + 4) + k * (8 + 4)
    return attention + arrays


def _pack_layer(weights: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H, T, T) attention -> packed (H, bytes) uint8, thumbnails and skip-first thumbnails (H, S, S) float16.

    Works in place on a float32 `weights` (the caller hands over a tensor nobody else reads): the
    skip-first renormalisation would otherwise copy (H, T, T) once more (48 MiB a layer at 1024 tokens).
    """
    H, T, _ = weights.shape
    w = weights.float()  # (H, T, T)
    half = w.half().clamp_(0.0, 1.0).numpy()  # (H, T, T); NaN survives the clamp and becomes _NAN_CODE
    packed = _pack14(half[:, _tril_mask(T)])  # (H, T(T+1)/2) row-major triangle -> (H, bytes)
    block = thumbnail_block(T)
    thumbs = block_max(w, block)  # (H, S, S)
    thumbs_skip = block_max(skip_first_rows(w), block)  # (H, S, S) rows over keys 1..t; row 0 stays 0
    return packed, thumbs.half().numpy(), thumbs_skip.half().numpy()


def top_tokens(logits: torch.Tensor, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """(..., V) logits -> the k most probable ids (..., k) int64 and their probabilities (..., k) float32."""
    k = min(top_k, logits.shape[-1])
    top = torch.softmax(logits.float(), dim=-1).topk(k, dim=-1)  # values/indices (..., k)
    return top.indices.cpu().numpy().astype(np.int64), top.values.cpu().numpy().astype(np.float32)


def logit_lens(
    model: GPTModel, rows: torch.Tensor, logits: torch.Tensor, top_k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The logit lens at one position: `rows` (L, D) is the residual stream there after the embeddings and
    after blocks 0..L-2, `logits` (V,) the model's real output there. Returns ids and probabilities (L+1, k);
    the last row is the real prediction."""
    lens_logits = model.out_head(model.final_norm(rows.to(model.out_head.weight.dtype))).float()  # (L, V)
    lens_logits = torch.cat([lens_logits, logits.float().reshape(1, -1)])  # (L+1, V): last row is real
    return top_tokens(lens_logits, top_k)


def _needed_taps(n_layers: int, mlp_layer: int) -> set[str]:
    names = {"hook_embed", f"blocks.{mlp_layer}.ff.hook_post"}
    for i in range(n_layers):
        names |= {
            f"blocks.{i}.attn.hook_weights",
            f"blocks.{i}.hook_ln1",
            f"blocks.{i}.hook_resid_mid",
            f"blocks.{i}.hook_ln2",
            f"blocks.{i}.hook_resid_post",
        }
    return names


def _mean_var(x: torch.Tensor) -> torch.Tensor:
    """(T, D) -> (2, T): mean and biased variance over the features, as LayerNorm computes them."""
    return torch.stack([x.mean(dim=-1), x.var(dim=-1, unbiased=False)])  # (2, T)


def tapped_pass(
    model: GPTModel, idx: torch.Tensor, names: set[str], position: int
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One pass over idx (1, T) with the taps `names`; logits only at `position` and the last token (2, V).

    The panes read the logits at two positions (the lens position and the next-token prediction), so the
    output head, a third of a 124M model's work at 1,024 tokens, runs on two rows instead of T."""
    with torch.no_grad(), capture(model, names) as taps:
        hidden = model.hidden(idx)  # (1, T, D)
    with torch.no_grad():
        logits = model.head(hidden[0, [position, idx.shape[1] - 1]])  # (2, V)
    return taps, logits


def inspect_tokens(
    model: GPTModel,
    tokenizer: Tokenizer,
    ids: Sequence[int],
    *,
    mlp_layer: int = 0,
    lens_position: int = -1,
    lens_top_k: int = 8,
) -> InspectionSnapshot:
    """Run `model` once over `ids` (eval mode, no grad) and keep what the Attention and Activations panes show.

    Ids beyond the context keep the last `context_length` (the count dropped is `cropped`). `lens_position`
    indexes the tokens that were run (negative counts from the end).
    """
    cfg = model.cfg
    L = cfg.n_layers
    ids = [int(i) for i in ids]
    if not ids:
        raise ConfigError("nothing to inspect: there are no tokens")
    if isinstance(mlp_layer, bool) or not 0 <= int(mlp_layer) < L:
        raise ConfigError(f"MLP layer {mlp_layer} is out of range: the model has layers 0..{L - 1}")
    mlp_layer = int(mlp_layer)
    bad = [i for i in ids if not 0 <= i < cfg.vocab_size]
    if bad:
        raise ConfigError(f"token id {bad[0]} is outside the model's vocabulary of {cfg.vocab_size}")
    if not 1 <= lens_top_k <= cfg.vocab_size:
        raise ConfigError(f"lens_top_k must be between 1 and {cfg.vocab_size}, got {lens_top_k}")
    cropped = max(0, len(ids) - cfg.context_length)
    ids = ids[cropped:]
    T = len(ids)
    if not -T <= lens_position < T:
        raise ConfigError(f"lens position {lens_position} is outside the {T} tokens inspected")
    position = lens_position % T

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        idx = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
        taps, logits = tapped_pass(model, idx, _needed_taps(L, mlp_layer), position)
        with torch.no_grad():
            return _build_snapshot(
                model, tokenizer, ids, taps, logits, mlp_layer, position, lens_top_k, cropped
            )
    finally:
        model.train(was_training)


FEW_POSITIONS = 16  # up to here (a generation step's one token) the statistics run as a few stacked ops


def _few_positions_stats(
    taps: dict[str, torch.Tensor], resid: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """stream_stats' norms and LayerNorm statistics for a few positions: the rows stacked, then one norm, one
    mean and one variance, instead of 13 norms and 96 means and variances (about 1 ms a generation step at
    124M, most of it the ops' fixed cost). Each row's reduction is the same computation either way."""
    L = len(resid) - 1
    stream = torch.stack(resid)  # (L+1, T, D)
    normed = [
        (
            resid[i],
            taps[f"blocks.{i}.hook_ln1"][0].float(),
            taps[f"blocks.{i}.hook_resid_mid"][0].float(),
            taps[f"blocks.{i}.hook_ln2"][0].float(),
        )
        for i in range(L)
    ]
    rows = torch.stack([torch.stack(four) for four in normed])  # (L, 4, T, D): in/out of norm1, of norm2
    stats = torch.stack([rows.mean(dim=-1), rows.var(dim=-1, unbiased=False)], dim=2)  # (L, 4, 2, T)
    T = stream.shape[1]
    return stream.norm(dim=-1), stats.view(L, 2, 2, 2, T)  # (L+1, T), (L, 2, 2, 2, T)


def stream_stats(
    taps: dict[str, torch.Tensor], n_layers: int
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """From one pass's taps (batch 1, T positions): the residual stream after the embeddings and after each
    block (L+1 tensors (T, D)), its L2 norms (L+1, T), and LayerNorm statistics (L, 2, 2, 2, T): layer,
    (norm1, norm2), (input, output), (mean, variance)."""
    L = n_layers
    resid = [taps["hook_embed"][0].float()]  # (T, D) entering block 0
    resid += [taps[f"blocks.{i}.hook_resid_post"][0].float() for i in range(L)]  # each (T, D)
    if resid[0].shape[0] <= FEW_POSITIONS:
        return resid, *_few_positions_stats(taps, resid)
    residual_norms = torch.stack([r.norm(dim=-1) for r in resid])  # (L+1, T)
    ln_stats = torch.stack(
        [
            torch.stack(
                [
                    torch.stack([_mean_var(resid[i]), _mean_var(taps[f"blocks.{i}.hook_ln1"][0].float())]),
                    torch.stack(
                        [
                            _mean_var(taps[f"blocks.{i}.hook_resid_mid"][0].float()),
                            _mean_var(taps[f"blocks.{i}.hook_ln2"][0].float()),
                        ]
                    ),
                ]
            )  # (2, 2, 2, T)
            for i in range(L)
        ]
    )  # (L, 2, 2, 2, T)
    return resid, residual_norms, ln_stats


def _build_snapshot(
    model: GPTModel,
    tokenizer: Tokenizer,
    ids: list[int],
    taps: dict[str, torch.Tensor],
    logits: torch.Tensor,
    mlp_layer: int,
    position: int,
    top_k: int,
    cropped: int,
) -> InspectionSnapshot:
    """`logits` (2, V): the model's output at `position` and at the last token (`tapped_pass`)."""
    L, H, T = model.cfg.n_layers, model.cfg.n_heads, len(ids)
    size = thumbnail_side(T)
    packed = np.empty((L, H, packed_attention_nbytes(T)), dtype=np.uint8)
    thumbs = np.empty((L, H, size, size), dtype=np.float16)
    thumbs_skip = np.empty((L, H, size, size), dtype=np.float16)
    for i in range(L):
        weights = taps.pop(f"blocks.{i}.attn.hook_weights")[0].cpu()  # (H, T, T), freed once packed
        packed[i], thumbs[i], thumbs_skip[i] = _pack_layer(weights)
        del weights

    resid, residual_norms, ln_stats = stream_stats(taps, L)  # L+1 x (T, D), (L+1, T), (L, 2, 2, 2, T)

    rows = torch.stack([r[position] for r in resid[:-1]])  # (L, D): embeddings, after blocks 0..L-2
    lens_ids, lens_probs = logit_lens(model, rows, logits[0], top_k)  # (L+1, k) each
    next_ids, next_probs = top_tokens(logits[1], top_k)  # (k,) each
    return InspectionSnapshot(
        token_ids=np.asarray(ids, dtype=np.int64),
        pieces=tuple(tokenizer.piece_or_id(i) for i in ids),
        attention=AttentionMaps(L, H, T, packed, thumbs, thumbs_skip),
        residual_norms=residual_norms.cpu().numpy().astype(np.float32),
        mlp_layer=mlp_layer,
        mlp_post=taps[f"blocks.{mlp_layer}.ff.hook_post"][0].float().cpu().numpy().copy(),  # (T, 4D)
        ln_stats=ln_stats.cpu().numpy().astype(np.float32),
        lens_position=position,
        lens_ids=lens_ids,
        lens_probs=lens_probs,
        lens_pieces=tuple(tuple(tokenizer.piece_or_id(int(i)) for i in row) for row in lens_ids),
        next_ids=next_ids,
        next_probs=next_probs,
        next_pieces=tuple(tokenizer.piece_or_id(int(i)) for i in next_ids),
        cropped=cropped,
    )


def mib(nbytes: int) -> float:
    return nbytes / 2**20


__all__ = [
    "THUMBNAIL_SIZE",
    "AttentionMaps",
    "InspectionSnapshot",
    "inspect_tokens",
    "mib",
    "packed_attention_nbytes",
    "snapshot_nbytes",
    "tapped_pass",
]
