"""The book's own ch. 4 GPTModel, written the book's way, kept as a reference and a baseline.

"Build a Large Language Model (From Scratch)" builds its GPT with a dict config, separate W_query / W_key /
W_value projections, a registered causal-mask buffer, a hand-written LayerNorm and GELU, and
`generate_text_simple` that re-runs the whole context for every new token. gptviz.model.gpt is the same
network with a fused Q/K/V projection, taps, a fast attention path and a KV cache.

This module is not used by the app. It exists so that:
- tests can write `.pth` files with exactly the book's state_dict keys (`trf_blocks.0.att.W_query.weight`,
  `trf_blocks.0.ff.layers.0.weight`, `trf_blocks.0.norm1.scale`, `final_norm.shift`, `out_head.weight`) and
  check that `gptviz.engine.weights.import_weights` reads them;
- benchmarks can compare gptviz against "the book's way".
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# The book's ch. 4 configuration dictionary for the 124M model.
GPT_CONFIG_124M: dict[str, Any] = {
    "vocab_size": 50257,
    "context_length": 1024,
    "emb_dim": 768,
    "n_heads": 12,
    "n_layers": 12,
    "drop_rate": 0.1,
    "qkv_bias": False,
}


class MultiHeadAttention(nn.Module):
    """Causal multi-head attention with separate query/key/value projections (book ch. 3.6)."""

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        num_heads: int,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, num_tokens, d_in = x.shape
        keys = self.W_key(x)  # (b, T, d_out)
        queries = self.W_query(x)  # (b, T, d_out)
        values = self.W_value(x)  # (b, T, d_out)

        keys = keys.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)  # (b, H, T, hd)
        queries = queries.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)  # (b, H, T, hd)
        values = values.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)  # (b, H, T, hd)

        attn_scores = queries @ keys.transpose(2, 3)  # (b, H, T, T)
        mask_bool = self.mask.bool()[:num_tokens, :num_tokens]  # (T, T)
        attn_scores.masked_fill_(mask_bool, -torch.inf)  # (b, H, T, T)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)  # (b, H, T, T)
        attn_weights = self.dropout(attn_weights)  # (b, H, T, T)

        context_vec = (attn_weights @ values).transpose(1, 2)  # (b, T, H, hd)
        context_vec = context_vec.contiguous().view(b, num_tokens, self.d_out)  # (b, T, d_out)
        return self.out_proj(context_vec)  # (b, T, d_out)


class LayerNorm(nn.Module):
    """Normalise over the last dimension with the biased variance, then scale and shift (book ch. 4.2)."""

    def __init__(self, emb_dim: int) -> None:
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)  # (b, T, 1)
        var = x.var(dim=-1, keepdim=True, unbiased=False)  # (b, T, 1)
        norm_x = (x - mean) / torch.sqrt(var + self.eps)  # (b, T, D)
        return self.scale * norm_x + self.shift  # (b, T, D)


class GELU(nn.Module):
    """The tanh approximation of GELU, written out as in the book (ch. 4.3)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (
            0.5
            * x
            * (1 + torch.tanh(torch.sqrt(torch.tensor(2.0 / torch.pi)) * (x + 0.044715 * torch.pow(x, 3))))
        )  # same shape as x


class FeedForward(nn.Module):
    """Linear to 4x the width, GELU, Linear back (book ch. 4.3)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(cfg["emb_dim"], 4 * cfg["emb_dim"]),
            GELU(),
            nn.Linear(4 * cfg["emb_dim"], cfg["emb_dim"]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # (b, T, D)


class TransformerBlock(nn.Module):
    """Pre-norm block with shortcut connections (book ch. 4.5)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.att = MultiHeadAttention(
            d_in=cfg["emb_dim"],
            d_out=cfg["emb_dim"],
            context_length=cfg["context_length"],
            num_heads=cfg["n_heads"],
            dropout=cfg["drop_rate"],
            qkv_bias=cfg["qkv_bias"],
        )
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x  # (b, T, D)
        x = self.norm1(x)  # (b, T, D)
        x = self.att(x)  # (b, T, D)
        x = self.drop_shortcut(x)  # (b, T, D)
        x = x + shortcut  # (b, T, D)

        shortcut = x  # (b, T, D)
        x = self.norm2(x)  # (b, T, D)
        x = self.ff(x)  # (b, T, D)
        x = self.drop_shortcut(x)  # (b, T, D)
        return x + shortcut  # (b, T, D)


class GPTModel(nn.Module):
    """Embeddings, a stack of transformer blocks, a final norm and an untied output head (book ch. 4.6)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        batch_size, seq_len = in_idx.shape
        tok_embeds = self.tok_emb(in_idx)  # (b, T, D)
        pos_embeds = self.pos_emb(torch.arange(seq_len, device=in_idx.device))  # (T, D)
        x = tok_embeds + pos_embeds  # (b, T, D)
        x = self.drop_emb(x)  # (b, T, D)
        x = self.trf_blocks(x)  # (b, T, D)
        x = self.final_norm(x)  # (b, T, D)
        return self.out_head(x)  # (b, T, V)


def generate_text_simple(
    model: nn.Module, idx: torch.Tensor, max_new_tokens: int, context_size: int
) -> torch.Tensor:
    """Greedy decoding that re-runs the whole (cropped) context for every new token (book ch. 4.7)."""
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]  # (b, <=context_size)
        with torch.no_grad():
            logits = model(idx_cond)  # (b, T, V)
        logits = logits[:, -1, :]  # (b, V)
        probas = torch.softmax(logits, dim=-1)  # (b, V)
        idx_next = torch.argmax(probas, dim=-1, keepdim=True)  # (b, 1)
        idx = torch.cat((idx, idx_next), dim=1)  # (b, T+1)
    return idx
