"""Models shared by the benchmarks: ours from a preset, and the book's ch. 4 model holding the same weights.

Copying our weights into the book's layout (split Q/K/V, `trf_blocks`, untied `out_head`) makes the two
sides compute the same function, so a benchmark can check they give the same tokens before timing them.
"""

from __future__ import annotations

import torch

from gptviz.config import GPTConfig
from gptviz.model import book_reference
from gptviz.model.gpt import GPTModel


def book_config(cfg: GPTConfig) -> dict:
    """The book's dict config for a GPTConfig."""
    return {
        "vocab_size": cfg.vocab_size,
        "context_length": cfg.context_length,
        "emb_dim": cfg.emb_dim,
        "n_heads": cfg.n_heads,
        "n_layers": cfg.n_layers,
        "drop_rate": cfg.drop_rate,
        "qkv_bias": cfg.qkv_bias,
    }


def book_state_from(model: GPTModel) -> dict[str, torch.Tensor]:
    """Our state dict renamed to the book's keys (Q/K/V split, untied head copied from the embedding)."""
    cfg = model.cfg
    D = cfg.emb_dim
    src = model.state_dict()
    out: dict[str, torch.Tensor] = {
        "tok_emb.weight": src["tok_emb.weight"],  # (V, D)
        "pos_emb.weight": src["pos_emb.weight"],  # (C, D)
        "final_norm.scale": src["final_norm.scale"],  # (D,)
        "final_norm.shift": src["final_norm.shift"],  # (D,)
        "out_head.weight": src["out_head.weight"].clone(),  # (V, D): the book's head is its own tensor
    }
    for i in range(cfg.n_layers):
        ours, book = f"blocks.{i}", f"trf_blocks.{i}"
        qkv = src[f"{ours}.attn.W_qkv.weight"]  # (3D, D)
        for part, rows in zip(("query", "key", "value"), qkv.split(D, dim=0), strict=True):
            out[f"{book}.att.W_{part}.weight"] = rows  # (D, D)
        if cfg.qkv_bias:
            bias = src[f"{ours}.attn.W_qkv.bias"]  # (3D,)
            for part, piece in zip(("query", "key", "value"), bias.split(D), strict=True):
                out[f"{book}.att.W_{part}.bias"] = piece  # (D,)
        pairs = {
            "att.out_proj": "attn.out_proj",
            "ff.layers.0": "ff.fc1",
            "ff.layers.2": "ff.fc2",
        }
        for book_name, our_name in pairs.items():
            out[f"{book}.{book_name}.weight"] = src[f"{ours}.{our_name}.weight"]
            out[f"{book}.{book_name}.bias"] = src[f"{ours}.{our_name}.bias"]
        for norm in ("norm1", "norm2"):
            out[f"{book}.{norm}.scale"] = src[f"{ours}.{norm}.scale"]
            out[f"{book}.{norm}.shift"] = src[f"{ours}.{norm}.shift"]
    return out


def make_pair(cfg: GPTConfig, seed: int = 123) -> tuple[GPTModel, book_reference.GPTModel]:
    """Our model (seeded GPT-2 init) and the book's model holding the same weights, both in eval mode."""
    torch.manual_seed(seed)
    ours = GPTModel(cfg).eval()
    book = book_reference.GPTModel(book_config(cfg))
    missing, unexpected = book.load_state_dict(book_state_from(ours), strict=False)
    # The book registers its causal mask as a buffer; it is not a weight.
    missing = [k for k in missing if not k.endswith(".att.mask")]
    if missing or unexpected:
        raise RuntimeError(
            f"weight copy to the book's model failed: missing {missing}, unexpected {unexpected}"
        )
    return ours, book.eval()
