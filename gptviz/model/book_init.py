"""The book's initial weights: PyTorch's default initialisation, drawn in the book's module order.

The book's ch. 4-5 `GPTModel` never initialises anything itself: every nn.Embedding draws N(0, 1) and every
nn.Linear draws kaiming_uniform_(a=sqrt(5)) for its weight and U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for its
bias, in the order the modules are built: tok_emb, pos_emb, then per block W_query, W_key, W_value,
out_proj, ff.layers.0, ff.layers.2, and last out_head. gptviz.model.gpt builds its modules in another order
(norms first, one fused W_qkv) and re-draws GPT-2's N(0, 0.02). `init_book_` re-draws a gptviz model's
weights with the book's distributions in the book's order, so that after `torch.manual_seed(123)` it holds
the book's initial weights bit for bit and leaves the random number generator where the book's
construction leaves it (the state its DataLoader and dropout then draw from).

The draws go into CPU float32 tensors of the book's shapes (a fused W_qkv is filled one (D, D) third at a
time) and are copied into the parameters, so the values are the same wherever the model lives.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gptviz.model.gpt import GPTModel


def _linear_weight(shape: tuple[int, int]) -> torch.Tensor:
    """nn.Linear.reset_parameters' weight: kaiming_uniform_ with a = sqrt(5) (a bound of 1/sqrt(fan_in))."""
    weight = torch.empty(shape)  # (out, in)
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    return weight


def _linear_bias(size: int, fan_in: int) -> torch.Tensor:
    """nn.Linear.reset_parameters' bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn right after its weight."""
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    bias = torch.empty(size)  # (out,)
    nn.init.uniform_(bias, -bound, bound)
    return bias


def _embedding(shape: tuple[int, int]) -> torch.Tensor:
    """nn.Embedding.reset_parameters: N(0, 1)."""
    weight = torch.empty(shape)  # (num, D)
    nn.init.normal_(weight)
    return weight


@torch.no_grad()
def init_book_(model: GPTModel) -> GPTModel:
    """Re-draw every weight from the global RNG as the book's GPTModel(cfg) constructor draws them.

    Call it right after `torch.manual_seed(seed)` (or inside `torch.random.fork_rng`): the draws consume
    the generator exactly as the book's constructor does. A tied output head keeps the token embedding's
    N(0, 1) draw (the book's head is untied and draws its own kaiming_uniform_ last). Norms are reset to
    scale 1, shift 0.
    """
    cfg = model.cfg
    d = cfg.emb_dim

    def put(param: torch.Tensor, value: torch.Tensor) -> None:
        param.copy_(value.to(device=param.device, dtype=param.dtype))

    put(model.tok_emb.weight, _embedding((cfg.vocab_size, d)))  # (V, D)
    put(model.pos_emb.weight, _embedding((cfg.context_length, d)))  # (ctx, D)
    for block in model.blocks:
        attn, ff = block.attn, block.ff
        # The book's W_query, W_key and W_value are three Linear(D, D), built in that order; gptviz's W_qkv
        # stacks them as rows [q; k; v] (the order its forward splits them in).
        for part in range(3):
            rows = slice(part * d, (part + 1) * d)
            put(attn.W_qkv.weight[rows], _linear_weight((d, d)))  # (D, D)
            if attn.W_qkv.bias is not None:
                put(attn.W_qkv.bias[rows], _linear_bias(d, d))  # (D,)
        put(attn.out_proj.weight, _linear_weight((d, d)))  # (D, D)
        put(attn.out_proj.bias, _linear_bias(d, d))  # (D,)
        put(ff.fc1.weight, _linear_weight((4 * d, d)))  # (4D, D)
        put(ff.fc1.bias, _linear_bias(4 * d, d))  # (4D,)
        put(ff.fc2.weight, _linear_weight((d, 4 * d)))  # (D, 4D)
        put(ff.fc2.bias, _linear_bias(d, 4 * d))  # (D,)
        for norm in (block.norm1, block.norm2):
            norm.scale.fill_(1.0)
            norm.shift.zero_()
    model.final_norm.scale.fill_(1.0)
    model.final_norm.shift.zero_()
    if model.out_head.weight is not model.tok_emb.weight:
        put(model.out_head.weight, _linear_weight((cfg.vocab_size, d)))  # (V, D)
    return model


def book_init_rng_state(model: GPTModel, seed: int) -> torch.Tensor:
    """Seed, draw the book's initial weights into `model`, and return the CPU RNG state that follows.

    The process-wide generator is left as it was (fork_rng): the caller keeps the returned state as the
    "global" generator of a book-faithful run.
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # the CPU part of torch.manual_seed; CUDA is left alone
        init_book_(model)
        return torch.get_rng_state()
