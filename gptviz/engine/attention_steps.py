"""One attention head's computation for one query token, step by step, in the book's chapter 3 terms.

For query token i of head h in layer l: the query vector q_i, every key k_j and value v_j, the attention
scores q_i . k_j (j = 0..T-1), scaled by 1/sqrt(d_head), the causal mask (keys after i set to -inf), the
softmax (the attention weights), the weights times the values, their sum (the context vector z_i), and
this head's share of out_proj (z_i through its d_head columns of W_O: what the head writes into the residual
stream, before out_proj's bias). All of it this model's numbers on this text, from the taps of one pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from gptviz.errors import ConfigError
from gptviz.model.gpt import GPTModel
from gptviz.model.hooks import capture


@dataclass(frozen=True)
class AttentionSteps:
    layer: int
    head: int
    query_position: int
    token_ids: np.ndarray  # (T,)
    query: np.ndarray  # (hd,) q_i
    keys: np.ndarray  # (T, hd) k_j, every position (the mask decides which count)
    values: np.ndarray  # (T, hd) v_j
    scores: np.ndarray  # (T,) q_i . k_j
    scaled: np.ndarray  # (T,) scores / sqrt(hd)
    masked: np.ndarray  # (T,) scaled, -inf for keys after the query
    weights: np.ndarray  # (T,) softmax(masked): the attention weights, zero after the query
    weighted_values: np.ndarray  # (T, hd) weights[j] * v_j
    context: np.ndarray  # (hd,) z_i = sum_j weights[j] v_j
    head_output: np.ndarray  # (D,) z_i @ W_O[:, head's columns]^T: this head's share of out_proj

    @property
    def scale(self) -> float:
        return 1.0 / math.sqrt(self.query.shape[0])


def attention_steps(
    model: GPTModel, ids: Sequence[int], layer: int, head: int, query_position: int = -1
) -> AttentionSteps:
    """Every step of one head for one query token (see the module docstring)."""
    cfg = model.cfg
    ids = [int(i) for i in ids]
    if not ids or len(ids) > cfg.context_length:
        raise ConfigError(f"give between 1 and {cfg.context_length} tokens")
    if not 0 <= layer < cfg.n_layers or not 0 <= head < cfg.n_heads:
        raise ConfigError(f"the model has layers 0..{cfg.n_layers - 1} and heads 0..{cfg.n_heads - 1}")
    if not -len(ids) <= query_position < len(ids):
        raise ConfigError(f"query position {query_position} is outside the {len(ids)} tokens")
    i = query_position % len(ids)
    prefix = f"blocks.{layer}.attn."
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), capture(model, {prefix + n for n in ("hook_q", "hook_k", "hook_v")}) as taps:
            model(torch.tensor([ids], device=device))  # (1, T, V)
        q = taps[prefix + "hook_q"][0, head, i].double()  # (hd,)
        k = taps[prefix + "hook_k"][0, head].double()  # (T, hd)
        v = taps[prefix + "hook_v"][0, head].double()  # (T, hd)
        scores = k @ q  # (T,)
        scaled = scores / math.sqrt(q.shape[0])  # (T,)
        masked = scaled.clone()
        masked[i + 1 :] = float("-inf")  # (T,) the causal mask: no key after the query
        weights = torch.softmax(masked, dim=0)  # (T,)
        weighted = weights.unsqueeze(1) * v  # (T, hd)
        context = weighted.sum(dim=0)  # (hd,)
        hd = q.shape[0]
        w_o = model.blocks[layer].attn.out_proj.weight.double()[:, head * hd : (head + 1) * hd]  # (D, hd)
        head_output = w_o @ context  # (D,)
    finally:
        model.train(was_training)

    def arr(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().numpy()

    return AttentionSteps(
        layer,
        head,
        i,
        np.asarray(ids, dtype=np.int64),
        arr(q),
        arr(k),
        arr(v),
        arr(scores),
        arr(scaled),
        arr(masked),
        arr(weights),
        arr(weighted),
        arr(context),
        arr(head_output),
    )


__all__ = ["AttentionSteps", "attention_steps"]
