"""The GPT of "Build a Large Language Model (From Scratch)", ch. 3-4, written out.

Attention has two paths: the explicit one (scores -> mask -> softmax, every step visible to the taps) and
PyTorch's fused scaled_dot_product_attention. The fused path runs unless a tap inside the attention wants
to see its intermediate tensors, so capture changes what is visible, never what is computed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, overload

import torch
import torch.nn.functional as F
from torch import nn

from gptviz.config import GPTConfig
from gptviz.model.dropout import Dropout
from gptviz.model.few_rows import Linear
from gptviz.model.head_loss import TiedGradient, head_cross_entropy, tied_lookup
from gptviz.model.hooks import HookPoint, name_hook_points


class LayerNorm(nn.Module):
    """(x - mean) / sqrt(var + eps) * scale + shift, biased variance, eps 1e-5 (book ch. 4).

    F.layer_norm computes exactly this formula in one fused kernel; tests compare it with the written-out form.
    """

    def __init__(self, emb_dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), self.scale, self.shift, self.eps)  # (B, T, D)


class GELU(nn.Module):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the approximation GPT-2 was trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="tanh")


class FeedForward(nn.Module):
    """Expand to 4x the width, GELU, project back."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc1 = Linear(cfg.emb_dim, 4 * cfg.emb_dim)
        self.gelu = GELU()
        self.fc2 = Linear(4 * cfg.emb_dim, cfg.emb_dim)
        self.hook_pre = HookPoint()  # before GELU
        self.hook_post = HookPoint()  # after GELU
        self.hook_out = HookPoint()  # the MLP's output, added to the residual stream

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.hook_pre(self.fc1(x))  # (B, T, 4D)
        post = self.hook_post(self.gelu(pre))  # (B, T, 4D)
        return self.hook_out(self.fc2(post))  # (B, T, D)


class KVCache:
    """Keys and values of every layer for the tokens seen so far, preallocated to the context length.

    Generation feeds one new token at a time; attention then reads all earlier keys/values from here
    instead of recomputing them (book ch. 4 recomputes the whole context for every token).
    """

    def __init__(self, cfg: GPTConfig, batch_size: int, device: torch.device, dtype: torch.dtype) -> None:
        shape = (batch_size, cfg.n_heads, cfg.context_length, cfg.head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layers)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layers)]
        self.length = 0  # tokens stored
        self.capacity = cfg.context_length

    def reset(self) -> None:
        self.length = 0

    def truncate(self, length: int) -> None:
        """Forget everything after `length` tokens (undo of generation steps)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot truncate a cache of {self.length} tokens to {length}")
        self.length = length


class MultiHeadAttention(nn.Module):
    """Causal multi-head attention with one fused Q/K/V projection split into heads (book ch. 3)."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.head_dim = cfg.head_dim
        self.W_qkv = Linear(cfg.emb_dim, 3 * cfg.emb_dim, bias=cfg.qkv_bias)
        self.out_proj = Linear(cfg.emb_dim, cfg.emb_dim)
        self.dropout = Dropout(cfg.drop_rate)
        self.use_fused = True  # tests switch this off to compare the two paths
        self.hook_q = HookPoint()
        self.hook_k = HookPoint()
        self.hook_v = HookPoint()
        self.hook_scores = HookPoint()  # scaled and masked, before softmax
        self.hook_weights = HookPoint()  # after softmax (before dropout)
        self.hook_head_out = HookPoint()  # weights @ values, per head, before out_proj
        self.hook_out = HookPoint()  # the attention's output after out_proj, added to the residual stream
        self._inner_hooks = (self.hook_scores, self.hook_weights)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, D = x.shape
        qkv = self.W_qkv(x)  # (B, T, 3D)
        q, k, v = qkv.view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # each (B, H, T, hd)
        q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
        past = 0
        if cache is not None:
            past = cache.length
            cache.keys[layer][:, :, past : past + T] = k
            cache.values[layer][:, :, past : past + T] = v
            k = cache.keys[layer][:, :, : past + T]  # (B, H, S, hd), S = past + T
            v = cache.values[layer][:, :, : past + T]  # (B, H, S, hd)
        S = k.shape[2]
        # Quick dropout draws (gptviz.model.dropout) need the weights written out: the fused kernel draws its own.
        explicit = (
            not self.use_fused or any(h.active for h in self._inner_hooks) or self.dropout.draws_quickly(x)
        )
        if explicit and self._in_row_blocks(T):
            weights, context = blocked_causal_attention(q, k, v, past)  # (B, H, T, S), (B, H, T, hd)
            self.hook_weights(weights)  # a capture sees every row; nothing edits them here (_in_row_blocks)
        elif explicit:
            # scores = q k^T / sqrt(hd) with -inf where the causal mask hides a key, in one fused
            # baddbmm: about 2x faster than matmul, divide and masked_fill as three passes over (T, S).
            mask_bias = causal_bias(T, S, past, x.device, q.dtype)  # (T, S), 0 or -inf
            attn_scores = torch.baddbmm(
                mask_bias.expand(B * self.n_heads, T, S),
                q.reshape(B * self.n_heads, T, self.head_dim),
                k.reshape(B * self.n_heads, S, self.head_dim).transpose(1, 2),
                alpha=1.0 / math.sqrt(self.head_dim),
            ).view(B, self.n_heads, T, S)  # (B, H, T, S)
            attn_scores = self.hook_scores(attn_scores)
            attn_weights = self.hook_weights(torch.softmax(attn_scores, dim=-1))  # (B, H, T, S)
            context = self.dropout(attn_weights) @ v  # (B, H, T, hd)
        else:
            drop = self.dropout.p if self.training else 0.0
            if past == 0 or T == 1:
                # T == 1: the one query may see every stored key, so no mask is needed.
                context = F.scaled_dot_product_attention(
                    q, k, v, dropout_p=drop, is_causal=past == 0 and T > 1
                )
            else:
                allowed = ~causal_mask(T, S, past, x.device)  # (T, S)
                context = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=drop)
        context = self.hook_head_out(context)  # (B, H, T, hd)
        merged = context.transpose(1, 2).reshape(B, T, D)  # (B, T, D)
        return self.hook_out(self.out_proj(merged))  # (B, T, D)

    def _in_row_blocks(self, T: int) -> bool:
        """Whether the written-out attention may skip the keys each block of query rows cannot see: more
        rows than one block, no tap or edit on the scores, no edit on the weights, no dropout drawn, and no
        gradient (it writes into views, which autograd does not follow)."""
        return (
            T > ROW_BLOCK
            and not torch.is_grad_enabled()
            and not self.hook_scores.active
            and self.hook_scores.edit is None
            and self.hook_weights.edit is None
            and not (self.training and self.dropout.p > 0)
        )


ROW_BLOCK = 256  # query rows per block of the written-out causal attention (blocked_causal_attention)


def blocked_causal_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, past: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The written-out causal attention, q (B, H, T, hd) against k and v (B, H, S, hd) with S = past + T, a
    block of ROW_BLOCK query rows at a time, each against only the keys it may see: rows [r0, r1) see keys
    [0, past + r1). Returns the weights (B, H, T, S), zero where a key is hidden, and the context
    (B, H, T, hd): what the one-block form gives, to float32 rounding (each row's sums skip only zeros).

    Why: the panes capture every layer's weights, so attention runs written out, and at 1,024 tokens the
    one-block form spent about a third of a forward pass on scores, softmax and products over the masked
    upper half. In blocks of 256 rows, 3/8 of that (T, S) work is skipped."""
    B, H, T, hd = q.shape
    S = k.shape[2]
    BH = B * H
    q3 = q.reshape(BH, T, hd)  # (BH, T, hd)
    k3 = k.reshape(BH, S, hd)  # (BH, S, hd)
    v3 = v.reshape(BH, S, hd)  # (BH, S, hd)
    weights = q.new_empty(BH, T, S)  # (BH, T, S)
    context = q.new_empty(BH, T, hd)  # (BH, T, hd)
    for r0 in range(0, T, ROW_BLOCK):
        r1 = min(T, r0 + ROW_BLOCK)
        seen = past + r1  # keys rows r0..r1 may see
        bias = causal_bias(r1 - r0, seen, past + r0, q.device, q.dtype)  # (rows, seen), 0 or -inf
        scores = torch.baddbmm(
            bias.expand(BH, r1 - r0, seen),
            q3[:, r0:r1],
            k3[:, :seen].transpose(1, 2),
            alpha=1.0 / math.sqrt(hd),
        )  # (BH, rows, seen)
        block = weights[:, r0:r1, :seen]  # (BH, rows, seen), a view: softmax writes the weights in place
        torch.softmax(scores, dim=-1, out=block)
        weights[:, r0:r1, seen:] = 0.0  # keys no row of the block may see
        torch.bmm(block, v3[:, :seen], out=context[:, r0:r1])  # (BH, rows, hd)
    return weights.view(B, H, T, S), context.view(B, H, T, hd)


def causal_mask(T: int, S: int, past: int, device: torch.device) -> torch.Tensor:
    """(T, S) bool, True above the diagonal: query i (at position past + i) must not see key j > past + i."""
    rows = torch.arange(T, device=device).unsqueeze(1) + past  # (T, 1)
    cols = torch.arange(S, device=device).unsqueeze(0)  # (1, S)
    return cols > rows  # (T, S)


def causal_bias(T: int, S: int, past: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(T, S) additive mask: 0 where query i may see key j, -inf where j is in its future."""
    bias = torch.zeros(T, S, device=device, dtype=dtype)  # (T, S)
    return bias.masked_fill_(causal_mask(T, S, past, device), float("-inf"))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + drop(attn(norm1(x))), then x + drop(ff(norm2(x)))."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.norm1 = LayerNorm(cfg.emb_dim)
        self.attn = MultiHeadAttention(cfg)
        self.norm2 = LayerNorm(cfg.emb_dim)
        self.ff = FeedForward(cfg)
        self.drop_shortcut = Dropout(cfg.drop_rate)
        self.hook_ln1 = HookPoint()  # normalised input to attention
        self.hook_resid_mid = HookPoint()  # residual stream after attention + shortcut
        self.hook_ln2 = HookPoint()  # normalised input to the feed-forward
        self.hook_resid_post = HookPoint()  # residual stream after the whole block

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        attended = self.attn(self.hook_ln1(self.norm1(x)), cache, layer)  # (B, T, D)
        x = self.hook_resid_mid(x + self.drop_shortcut(attended))  # (B, T, D)
        fed = self.ff(self.hook_ln2(self.norm2(x)))  # (B, T, D)
        return self.hook_resid_post(x + self.drop_shortcut(fed))  # (B, T, D)


if TYPE_CHECKING:

    class Blocks(nn.ModuleList):
        """What a type checker sees of `GPTModel.blocks`: an nn.ModuleList whose items are TransformerBlocks.

        nn.ModuleList types its items as plain Modules, so `model.blocks[i].attn` would read as an unknown
        attribute; at run time `Blocks` is nn.ModuleList itself (below), so nothing about the model changes.
        """

        @overload
        def __getitem__(self, idx: slice) -> Blocks: ...
        @overload
        def __getitem__(self, idx: int) -> TransformerBlock: ...
        def __getitem__(self, idx: int | slice) -> TransformerBlock | Blocks: ...
        def __iter__(self) -> Iterator[TransformerBlock]: ...

else:
    Blocks = nn.ModuleList


class GPTModel(nn.Module):
    """Token + position embeddings, n_layers blocks, final norm, output head (tied to tok_emb if asked)."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.emb_dim)
        self.drop_emb = Dropout(cfg.drop_rate)
        self.blocks = Blocks([TransformerBlock(cfg) for _ in range(cfg.n_layers)])
        self.final_norm = LayerNorm(cfg.emb_dim)
        self.out_head = Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.out_head.weight = self.tok_emb.weight
        self.hook_tok_emb = HookPoint()
        self.hook_pos_emb = HookPoint()
        self.hook_embed = HookPoint()  # token + position, the residual stream entering block 0
        self.hook_final_norm = HookPoint()
        self.hook_logits = HookPoint()
        self.apply(_init_weights)
        name_hook_points(self)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """idx (B, T) token ids -> logits (B, T, V). With a cache, idx holds only the new tokens."""
        return self.head(self.hidden(idx, cache))  # (B, T, V)

    def hidden(
        self, idx: torch.Tensor, cache: KVCache | None = None, *, tied: TiedGradient | None = None
    ) -> torch.Tensor:
        """idx (B, T) -> the residual stream after the last block (B, T, D), before the final norm.

        Split from `head` so a caller that needs the logits of one position (a generation step) does not
        pay the output head, the largest matrix of a small GPT, for every position of a prompt.
        `tied`: the token table's gradient goes into the tied head's (training_loss only; head_loss says why)."""
        B, T = idx.shape
        past = cache.length if cache is not None else 0
        if past + T > self.cfg.context_length:
            raise ValueError(
                f"{past + T} tokens exceed the model's context length of {self.cfg.context_length}"
            )
        positions = torch.arange(past, past + T, device=idx.device)  # (T,)
        if tied is not None:
            tok = self.hook_tok_emb(tied_lookup(idx, self.tok_emb.weight, tied))  # (B, T, D)
        else:
            tok = self.hook_tok_emb(self.tok_emb(idx))  # (B, T, D)
        pos = self.hook_pos_emb(self.pos_emb(positions))  # (T, D)
        x = self.hook_embed(tok + pos)  # (B, T, D)
        x = self.drop_emb(x)
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer)  # (B, T, D)
        if cache is not None:
            cache.length = past + T
        return x  # (B, T, D)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Residual stream (..., D) -> logits (..., V): final norm, then the output head."""
        x = self.hook_final_norm(self.final_norm(x))  # (..., D)
        return self.hook_logits(self.out_head(x))  # (..., V)

    def training_loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy, idx (B, T) and targets (B, T) -> (): the number
        F.cross_entropy(self(idx).flatten(0, 1), targets.flatten()) gives, to float32 rounding, for training.

        Two things cost less than in that plain form, and nothing else changes: the head and the loss run as
        one autograd step (gptviz.model.head_loss: no separate (B*T, V) log-probabilities and gradient), and
        with a tied head the lookup's backward adds the rows it touched into the head's dense gradient in
        place, instead of making a zeroed (V, D) table or a (V, D) sum. A tap or an edit on the logits, or
        autocast, gets the plain form."""
        tied = self.out_head.weight is self.tok_emb.weight
        logit_hook = self.hook_logits.active or self.hook_logits.edit is not None
        plain = logit_hook or torch.is_autocast_enabled(idx.device.type)
        shared = (
            TiedGradient()
            if tied and not plain and torch.is_grad_enabled() and self.tok_emb.weight.requires_grad
            else None
        )
        x = self.hook_final_norm(self.final_norm(self.hidden(idx, tied=shared)))  # (B, T, D)
        if plain:
            logits = self.hook_logits(self.out_head(x))  # (B, T, V)
            return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())  # ()
        return head_cross_entropy(x.flatten(0, 1), self.out_head.weight, targets.flatten(), shared)  # ()

    def new_cache(self, batch_size: int = 1) -> KVCache:
        weight = self.tok_emb.weight
        return KVCache(self.cfg, batch_size, weight.device, weight.dtype)

    def set_fused_attention(self, enabled: bool) -> None:
        for block in self.blocks:
            block.attn.use_fused = enabled

    def num_parameters(self) -> int:
        """Unique parameters: a tied output head is counted once."""
        return sum(p.numel() for p in self.parameters())


def _init_weights(module: nn.Module) -> None:
    """GPT-2's initialisation: normal(0, 0.02) for matrices and embeddings, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)


@torch.no_grad()
def generate_greedy(
    model: GPTModel, idx: torch.Tensor, max_new_tokens: int, use_cache: bool = True
) -> torch.Tensor:
    """Greedy decoding (book ch. 4 `generate_text_simple`), optionally with the KV cache. idx (B, T)."""
    ctx = model.cfg.context_length
    if not use_cache:
        for _ in range(max_new_tokens):
            logits = model(idx[:, -ctx:])  # (B, T, V)
            next_id = logits[:, -1].argmax(dim=-1, keepdim=True)  # (B, 1)
            idx = torch.cat([idx, next_id], dim=1)  # (B, T+1)
        return idx
    cache = model.new_cache(idx.shape[0])
    logits = model(idx[:, -ctx:], cache)  # (B, T, V)
    for step in range(max_new_tokens):
        next_id = logits[:, -1].argmax(dim=-1, keepdim=True)  # (B, 1)
        idx = torch.cat([idx, next_id], dim=1)  # (B, T+1)
        if step == max_new_tokens - 1:
            break
        if cache.length >= ctx:  # window full: rebuild the cache over the last ctx tokens
            cache.reset()
            logits = model(idx[:, -ctx:], cache)  # (B, ctx, V)
        else:
            logits = model(next_id, cache)  # (B, 1, V)
    return idx
