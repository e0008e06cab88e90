"""nanoGPT `train.py` checkpoints built from a transformers GPT-2's weights, for the tests (engine and window).

The layout follows nanoGPT's train.py: {"model", "optimizer", "model_args", "iter_num", "best_val_loss",
"config"}, nn.Linear weights (out, in), lm_head sharing wte's tensor, optional biases, the vocabulary padded
to 50304, `_orig_mod.` prefixes after torch.compile, and the causal-mask buffer `attn.bias` of older versions.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gptviz.config import GPT2_VOCAB_SIZE

N_EMBD, N_LAYER, N_HEAD, N_POS = 64, 2, 4, 32
PADDED_VOCAB = 50304
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def hf_model(*, bias: bool, tied: bool = True, seed: int = 0):
    """A random GPT2LMHeadModel; with bias=False every linear bias and LayerNorm shift is 0, as a nanoGPT
    bias=False model computes."""
    import transformers

    config = transformers.GPT2Config(
        n_embd=N_EMBD,
        n_layer=N_LAYER,
        n_head=N_HEAD,
        n_positions=N_POS,
        vocab_size=GPT2_VOCAB_SIZE,
        tie_word_embeddings=tied,
        attn_implementation="eager",
    )
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)  # same shape as p
            if name.endswith(".bias"):
                p.copy_(0.3 * noise if bias else torch.zeros_like(p))
            elif ".ln_" in name or "ln_f" in name:
                p.copy_(1.0 + 0.2 * noise)
            else:
                p.copy_(0.3 * noise)
    return model.eval()


def _nanogpt_state(source, *, bias: bool, padded: bool, compiled: bool, mask_buffer: bool):
    """The state dict nanoGPT's GPT has for these weights: nn.Linear (out, in), lm_head sharing wte's tensor."""
    state: dict[str, torch.Tensor] = {}
    for key, tensor in source.state_dict().items():
        if key == "lm_head.weight" or (not bias and key.endswith(".bias")):
            continue
        tensor = tensor.detach().clone()
        if key.endswith(_CONV1D):
            tensor = tensor.t().contiguous()  # Conv1D (in, out) -> Linear (out, in)
        state[key] = tensor
    wte = state["transformer.wte.weight"]  # (50257, D)
    if padded:
        extra = torch.randn(
            PADDED_VOCAB - GPT2_VOCAB_SIZE, N_EMBD, generator=torch.Generator().manual_seed(9)
        )
        wte = torch.cat([wte, extra])  # (50304, D)
        state["transformer.wte.weight"] = wte
    if source.config.tie_word_embeddings:
        state["lm_head.weight"] = wte  # the very same tensor, as nanoGPT ties them
    else:
        head = source.lm_head.weight.detach().clone()  # (50257, D)
        state["lm_head.weight"] = (
            torch.cat([head, torch.zeros(PADDED_VOCAB - GPT2_VOCAB_SIZE, N_EMBD)]) if padded else head
        )
    if mask_buffer:
        for i in range(N_LAYER):
            state[f"transformer.h.{i}.attn.bias"] = torch.tril(torch.ones(N_POS, N_POS)).view(
                1, 1, N_POS, N_POS
            )
    if compiled:
        state = {f"_orig_mod.{k}": v for k, v in state.items()}
    return state


def _optimizer_state() -> dict:
    """A real AdamW state dict after one step: tensors, ints, floats, tuples, bools, None."""
    params = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(3))]
    optimizer = torch.optim.AdamW(
        [{"params": params[:1], "weight_decay": 0.1}, {"params": params[1:], "weight_decay": 0.0}], lr=6e-4
    )
    sum(p.sum() for p in params).backward()
    optimizer.step()
    return optimizer.state_dict()


def write_nanogpt_ckpt(
    path: Path,
    source,
    *,
    bias: bool = True,
    padded: bool = True,
    compiled: bool = False,
    mask_buffer: bool = False,
    extra_model_args: dict | None = None,
) -> Path:
    """A ckpt.pt laid out exactly as nanoGPT's train.py saves it."""
    model_args = {
        "n_layer": N_LAYER,
        "n_head": N_HEAD,
        "n_embd": N_EMBD,
        "block_size": N_POS,
        "bias": bias,
        "vocab_size": PADDED_VOCAB if padded else GPT2_VOCAB_SIZE,
        "dropout": 0.0,
        **(extra_model_args or {}),
    }
    checkpoint = {
        "model": _nanogpt_state(source, bias=bias, padded=padded, compiled=compiled, mask_buffer=mask_buffer),
        "optimizer": _optimizer_state(),
        "model_args": model_args,
        "iter_num": 2000,
        "best_val_loss": torch.tensor(3.25),
        "config": {
            "out_dir": "out",
            "batch_size": 12,
            "learning_rate": 6e-4,
            "compile": compiled,
            "init_from": "scratch",
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path
