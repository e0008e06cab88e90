"""Read nanoGPT's `train.py` checkpoints (`ckpt.pt`) as gptviz models.

nanoGPT (github.com/karpathy/nanoGPT) saves `{"model", "optimizer", "model_args", "iter_num",
"best_val_loss", "config"}` with `torch.save`. Everything in it is tensors and plain Python values, so it
loads with `torch.load(weights_only=True)` and no code in the file ever runs. What differs from Hugging Face
GPT-2, and why each step below exists:

- `model_args` (n_layer, n_head, n_embd, block_size, bias, vocab_size, dropout) gives the shape, heads
  included, so no guessing from tensor shapes;
- the weights are `nn.Linear` (out, in), like gptviz's, so nothing is transposed (HF's Conv1D is (in, out));
- the vocabulary is padded from GPT-2's 50257 to 50304 (a multiple of 64, for speed); the extra rows are
  never a target, so they are cut off and the model keeps the 50257 real tokens;
- a model compiled with `torch.compile` names every key `_orig_mod.…`; the prefix is dropped;
- `bias=False` models have no LayerNorm shifts and no linear biases: they load as zeros (the same arithmetic);
- older nanoGPT versions store the causal mask as a buffer `attn.bias`; it is not a weight and is skipped;
- `lm_head` is tied to `wte`; an untied head (a fork) is kept as gptviz's separate output head;
- the optimizer state, `iter_num`, `best_val_loss` and `config` are ignored.

nanoGPT's MLP uses the exact (erf) GELU while GPT-2, and gptviz, use the tanh approximation, so a nanoGPT
model's logits here differ slightly from nanoGPT's own; the import says so in its warnings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gptviz.config import GPT2_VOCAB_SIZE, GPTConfig
from gptviz.engine.checkpoint import (
    JUSTIFIED_SLACK,
    check_finite,
    check_tensors_cover,
    empty_model,
    load_state_into,
)
from gptviz.engine.importers import BLOCK_KEY, HF_BLOCK_MAP, HF_IGNORED_BLOCK, HF_TOP_MAP, ImportedWeights
from gptviz.engine.path_kind import NANOGPT_CHECKPOINT as CHECKPOINT_NAME  # what train.py writes
from gptviz.engine.safe_load import torch_load_safely
from gptviz.errors import ConfigError, WeightsError

COMPILED_PREFIX = "_orig_mod."  # torch.compile's wrapper module, saved into every key
FILE_FORMAT = "nanogpt-ckpt"
KEY_STYLE = "nanogpt"
_MODEL_ARGS = ("n_layer", "n_head", "n_embd", "block_size", "bias", "vocab_size", "dropout")
GELU_NOTE = (
    "nanoGPT computes the exact (erf) GELU and gptviz GPT-2's tanh approximation, so logits differ "
    "slightly from nanoGPT's own"
)


def read_nanogpt(path: Path, n_heads: int | None, notes: list[str]) -> ImportedWeights:
    """A nanoGPT `ckpt.pt` as an fp32 gptviz model in eval mode; problems that do not stop it go to `notes`."""
    checkpoint = torch_load_safely(path)
    model_args, raw = _checkpoint_parts(checkpoint, path)
    shape = _shape(model_args, path, notes)
    if n_heads is not None and n_heads != shape["n_head"]:
        raise WeightsError(f"{path}: model_args says {shape['n_head']} heads but --heads gave {n_heads}")
    _check_args_fit_tensors(raw, shape, path)
    state, tied = _gptviz_state(raw, shape)
    try:
        cfg = GPTConfig(
            vocab_size=GPT2_VOCAB_SIZE,
            context_length=shape["block_size"],
            emb_dim=shape["n_embd"],
            n_heads=shape["n_head"],
            n_layers=shape["n_layer"],
            drop_rate=shape["dropout"],
            qkv_bias=shape["bias"],
            tie_weights=tied,
            name=(path.parent.name if path.name == CHECKPOINT_NAME else path.stem) or "nanogpt",
        )
    except ConfigError as exc:
        raise WeightsError(f"{path}: model_args do not make a model: {exc}") from None
    check_tensors_cover(cfg, state, path)
    check_finite(state, path, notes)
    model = empty_model(cfg)
    load_state_into(model, state, f"{path} (nanoGPT)")
    model.eval()
    notes.append(GELU_NOTE)
    return ImportedWeights(model, path, FILE_FORMAT, KEY_STYLE, [path])


def _check_args_fit_tensors(raw: dict[str, torch.Tensor], shape: dict[str, Any], path: Path) -> None:
    """model_args size the zero biases of a bias=False model and the model itself: refuse, before either is
    allocated, args whose weight matrices alone (12 D^2 a layer, the embeddings) need far more numbers than
    the file holds. The zero biases (8 D a layer) then stay within what the file justifies too."""
    d = shape["n_embd"]
    needed = shape["n_layer"] * 12 * d * d + (GPT2_VOCAB_SIZE + shape["block_size"]) * d
    held = sum(t.numel() for t in raw.values())
    if needed > 2 * held + JUSTIFIED_SLACK:
        raise WeightsError(
            f"{path}: model_args describe {needed:,} weights but the file holds {held:,} numbers"
        )


def _checkpoint_parts(checkpoint: Any, path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """`model_args` and the `model` state dict, or a one-line error saying what the file holds instead."""
    if not isinstance(checkpoint, dict):
        raise WeightsError(f"{path} is not a nanoGPT checkpoint: it holds a {type(checkpoint).__name__}")
    model_args, state = checkpoint.get("model_args"), checkpoint.get("model")
    if not isinstance(model_args, dict):
        raise WeightsError(f"{path} is not a nanoGPT checkpoint: no model_args dictionary")
    if not isinstance(state, dict) or not state:
        raise WeightsError(f"{path} is not a nanoGPT checkpoint: no 'model' state dict beside model_args")
    not_tensors = sorted(str(k) for k, v in state.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise WeightsError(f"{path}: the 'model' state dict holds non-tensors: {', '.join(not_tensors[:5])}")
    return model_args, {str(k): v for k, v in state.items()}


def _shape(model_args: dict[str, Any], path: Path, notes: list[str]) -> dict[str, Any]:
    """model_args checked and typed; vocabularies other than GPT-2's are refused (gptviz speaks GPT-2 BPE)."""
    shape: dict[str, Any] = {}
    for key in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size"):
        value = model_args.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise WeightsError(f"{path}: model_args {key} must be a positive integer, got {value!r}")
        shape[key] = value
    bias = model_args.get("bias")
    if not isinstance(bias, bool):
        raise WeightsError(f"{path}: model_args bias must be True or False, got {bias!r}")
    shape["bias"] = bias
    dropout = model_args.get("dropout", 0.0)
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0.0 <= dropout < 1.0:
        raise WeightsError(f"{path}: model_args dropout must be in [0, 1), got {dropout!r}")
    shape["dropout"] = float(dropout)
    if shape["vocab_size"] < GPT2_VOCAB_SIZE:
        raise WeightsError(
            f"{path} has a {shape['vocab_size']}-token vocabulary (its own meta.pkl, e.g. characters); gptviz "
            f"reads only models over GPT-2's {GPT2_VOCAB_SIZE} tokens"
        )
    unknown = sorted(f"{k}={v!r}" for k, v in model_args.items() if k not in _MODEL_ARGS and v)
    if unknown:
        notes.append(f"{path}: model_args has settings gptviz does not implement: {', '.join(unknown)}")
    return shape


def _gptviz_state(
    raw: dict[str, torch.Tensor], shape: dict[str, Any]
) -> tuple[dict[str, torch.Tensor], bool]:
    """nanoGPT's names -> GPTModel's, the padded vocabulary cut, missing biases as zeros; and whether the
    head is tied. Names that fit nothing are kept as they are, so the load lists them as unexpected."""
    state: dict[str, torch.Tensor] = {}
    for key, tensor in raw.items():
        name = key.removeprefix(COMPILED_PREFIX).removeprefix("transformer.")
        match = BLOCK_KEY.match(name)
        if match and match["prefix"] == "h":
            rest = match["rest"]
            if rest in HF_IGNORED_BLOCK:
                continue  # the causal-mask buffer of older nanoGPT versions
            mapped = HF_BLOCK_MAP.get(rest)
            state[f"blocks.{match['index']}.{mapped}" if mapped else key] = tensor  # Linear: no transpose
        else:
            state[HF_TOP_MAP.get(name, key)] = tensor
    emb, head = state.get("tok_emb.weight"), state.get("out_head.weight")
    tied = head is None or (emb is not None and head.shape == emb.shape and torch.equal(head, emb))
    if tied:
        state.pop("out_head.weight", None)
    for key in ("tok_emb.weight", "out_head.weight"):
        matrix = state.get(key)
        if matrix is not None and matrix.dim() == 2 and matrix.shape[0] > GPT2_VOCAB_SIZE:
            state[key] = matrix[:GPT2_VOCAB_SIZE]  # (V_padded, D) -> (50257, D): padding rows dropped
    if not shape["bias"]:
        _add_zero_biases(state, shape["n_layer"], shape["n_embd"])
    return state, tied


def _add_zero_biases(state: dict[str, torch.Tensor], n_layers: int, emb_dim: int) -> None:
    """bias=False: every LayerNorm shift and linear bias gptviz has (q/k/v aside: it turns them off) is 0."""
    sizes = {
        "norm1.shift": emb_dim,
        "norm2.shift": emb_dim,
        "attn.out_proj.bias": emb_dim,
        "ff.fc1.bias": 4 * emb_dim,
        "ff.fc2.bias": emb_dim,
    }
    for index in range(n_layers):
        for name, size in sizes.items():
            state.setdefault(f"blocks.{index}.{name}", torch.zeros(size))  # (size,)
    state.setdefault("final_norm.shift", torch.zeros(emb_dim))  # (D,)
