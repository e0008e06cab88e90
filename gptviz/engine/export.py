"""Write a gptviz model in other programs' formats: Hugging Face GPT-2 and the book's state dict.

- `hf`: a folder with `config.json` and `model.safetensors` that `transformers.GPT2LMHeadModel.from_pretrained`
  loads as it is (and so TransformerLens and anything else built on it). HF's Conv1D stores weights (in, out),
  the transpose of gptviz's nn.Linear; its `c_attn` is gptviz's fused Q/K/V projection with the same
  [q | k | v] layout. HF GPT-2 always has a q/k/v bias, so a model without one is written with zeros there
  (the same arithmetic; importing the folder back gives a model whose q/k/v bias is zero). A tied head is
  left out of the file and `tie_word_embeddings` says so, as `save_pretrained` does.
- `book`: a `.pth` written with `torch.save` holding only tensors, with exactly the state_dict names of the
  book's ch. 4 `GPTModel` (`gptviz.model.book_reference`): separate W_query/W_key/W_value, the causal-mask
  buffer `att.mask`, and an `out_head.weight` of its own (the book's model has no tied head), so
  `model.load_state_dict(torch.load(path, weights_only=True))` works in the book's notebooks.

Both are written atomically (a hidden sibling, then a rename), with `atomic.staged_directory` and
`atomic.staged_file` (gptviz.engine.atomic).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from gptviz.config import GPTConfig
from gptviz.engine.atomic import staged_directory, staged_file
from gptviz.errors import WeightsError
from gptviz.model.gpt import GPTModel, causal_mask

FORMATS = {
    "hf": "Hugging Face GPT-2 folder (config.json + model.safetensors)",
    "book": "the book's GPTModel state dict (.pth)",
}
HF_FILES = ("config.json", "model.safetensors")
_HF_CONV1D_SUFFIXES = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def export_model(model: GPTModel, fmt: str, out: str | os.PathLike) -> Path:
    """Write `model` in format `fmt` ("hf": a folder, "book": a .pth file) at `out`; returns what was written."""
    if fmt == "hf":
        return export_hf(model, out)
    if fmt == "book":
        return export_book(model, out)
    raise WeightsError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


# ---------------------------------------------------------------------------------------- Hugging Face


def hf_config(cfg: GPTConfig) -> dict[str, Any]:
    """The GPT2Config a gptviz model matches: tanh GELU, LayerNorm eps 1e-5, attention scaled by 1/sqrt(hd)."""
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.context_length,
        "n_ctx": cfg.context_length,
        "n_embd": cfg.emb_dim,
        "n_layer": cfg.n_layers,
        "n_head": cfg.n_heads,
        "n_inner": None,  # 4 * n_embd
        "activation_function": "gelu_new",
        "resid_pdrop": cfg.drop_rate,
        "embd_pdrop": cfg.drop_rate,
        "attn_pdrop": cfg.drop_rate,
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "use_cache": True,
        "bos_token_id": 50256,
        "eos_token_id": 50256,
        "tie_word_embeddings": cfg.tie_weights,
        "torch_dtype": "float32",
        "gptviz": {"name": cfg.name, "qkv_bias": cfg.qkv_bias},  # extra keys are kept, never read by HF
    }


def hf_state_dict(model: GPTModel) -> dict[str, torch.Tensor]:
    """gptviz names -> `GPT2LMHeadModel` names (`transformer.h.0.attn.c_attn.weight`, ...), Conv1D-transposed."""
    cfg = model.cfg
    src = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    out = {
        "transformer.wte.weight": src["tok_emb.weight"],  # (V, D)
        "transformer.wpe.weight": src["pos_emb.weight"],  # (T, D)
        "transformer.ln_f.weight": src["final_norm.scale"],  # (D,)
        "transformer.ln_f.bias": src["final_norm.shift"],  # (D,)
    }
    for i in range(cfg.n_layers):
        b, h = f"blocks.{i}.", f"transformer.h.{i}."
        qkv_bias = src.get(b + "attn.W_qkv.bias")
        out.update(
            {
                h + "ln_1.weight": src[b + "norm1.scale"],  # (D,)
                h + "ln_1.bias": src[b + "norm1.shift"],  # (D,)
                h + "attn.c_attn.weight": src[b + "attn.W_qkv.weight"].t(),  # (3D, D) -> (D, 3D)
                h + "attn.c_attn.bias": qkv_bias if qkv_bias is not None else torch.zeros(3 * cfg.emb_dim),
                h + "attn.c_proj.weight": src[b + "attn.out_proj.weight"].t(),  # (D, D)
                h + "attn.c_proj.bias": src[b + "attn.out_proj.bias"],  # (D,)
                h + "ln_2.weight": src[b + "norm2.scale"],  # (D,)
                h + "ln_2.bias": src[b + "norm2.shift"],  # (D,)
                h + "mlp.c_fc.weight": src[b + "ff.fc1.weight"].t(),  # (4D, D) -> (D, 4D)
                h + "mlp.c_fc.bias": src[b + "ff.fc1.bias"],  # (4D,)
                h + "mlp.c_proj.weight": src[b + "ff.fc2.weight"].t(),  # (D, 4D) -> (4D, D)
                h + "mlp.c_proj.bias": src[b + "ff.fc2.bias"],  # (D,)
            }
        )
    if not cfg.tie_weights:
        out["lm_head.weight"] = src["out_head.weight"]  # (V, D)
    # safetensors wants each tensor contiguous and owning its own storage (no views, no sharing).
    return {k: v.contiguous().clone() for k, v in out.items()}


def export_hf(model: GPTModel, directory: str | os.PathLike) -> Path:
    """Write a Hugging Face GPT-2 folder, replacing `directory` atomically.

    The folder must be new, empty or an earlier export (only config.json and model.safetensors), because the
    whole folder is swapped: anything else a user keeps there would be lost.
    """
    target = Path(directory)
    _refuse_foreign_folder(target)
    state = hf_state_dict(model)
    with staged_directory(target) as staging:
        save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})
        (staging / "config.json").write_text(json.dumps(hf_config(model.cfg), indent=2) + "\n")
    return target


def _refuse_foreign_folder(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise WeightsError(f"{target} is a file; a Hugging Face export is a folder")
    if target.is_dir():
        extra = sorted(p.name for p in target.iterdir() if p.name not in HF_FILES)
        if extra:
            shown = ", ".join(extra[:5]) + (", ..." if len(extra) > 5 else "")
            raise WeightsError(
                f"{target} holds other files ({shown}); export to a new or empty folder, because the "
                "folder is replaced as a whole"
            )


# ---------------------------------------------------------------------------------------------- the book


def book_config(cfg: GPTConfig) -> dict[str, Any]:
    """The book's config dictionary (GPT_CONFIG_124M's keys) that builds a model this state dict fits."""
    return {
        "vocab_size": cfg.vocab_size,
        "context_length": cfg.context_length,
        "emb_dim": cfg.emb_dim,
        "n_heads": cfg.n_heads,
        "n_layers": cfg.n_layers,
        "drop_rate": cfg.drop_rate,
        "qkv_bias": cfg.qkv_bias,
    }


def book_state_dict(model: GPTModel) -> dict[str, torch.Tensor]:
    """gptviz names -> the book's (`trf_blocks.0.att.W_query.weight`, ...), the fused Q/K/V split in three."""
    cfg = model.cfg
    src = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    T = cfg.context_length
    mask = causal_mask(T, T, 0, torch.device("cpu")).float()  # (T, T): 1 above the diagonal (the book's)
    out = {
        "tok_emb.weight": src["tok_emb.weight"],  # (V, D)
        "pos_emb.weight": src["pos_emb.weight"],  # (T, D)
        "final_norm.scale": src["final_norm.scale"],  # (D,)
        "final_norm.shift": src["final_norm.shift"],  # (D,)
        "out_head.weight": src["out_head.weight"],  # (V, D); the tied head's own copy
    }
    for i in range(cfg.n_layers):
        b, t = f"blocks.{i}.", f"trf_blocks.{i}."
        q, k, v = src[b + "attn.W_qkv.weight"].chunk(3, dim=0)  # (3D, D) -> 3 x (D, D)
        out.update({t + "att.W_query.weight": q, t + "att.W_key.weight": k, t + "att.W_value.weight": v})
        if cfg.qkv_bias:
            qb, kb, vb = src[b + "attn.W_qkv.bias"].chunk(3, dim=0)  # (3D,) -> 3 x (D,)
            out.update({t + "att.W_query.bias": qb, t + "att.W_key.bias": kb, t + "att.W_value.bias": vb})
        out.update(
            {
                t + "att.out_proj.weight": src[b + "attn.out_proj.weight"],  # (D, D)
                t + "att.out_proj.bias": src[b + "attn.out_proj.bias"],  # (D,)
                t + "att.mask": mask,
                t + "ff.layers.0.weight": src[b + "ff.fc1.weight"],  # (4D, D)
                t + "ff.layers.0.bias": src[b + "ff.fc1.bias"],  # (4D,)
                t + "ff.layers.2.weight": src[b + "ff.fc2.weight"],  # (D, 4D)
                t + "ff.layers.2.bias": src[b + "ff.fc2.bias"],  # (D,)
                t + "norm1.scale": src[b + "norm1.scale"],  # (D,)
                t + "norm1.shift": src[b + "norm1.shift"],  # (D,)
                t + "norm2.scale": src[b + "norm2.scale"],  # (D,)
                t + "norm2.shift": src[b + "norm2.shift"],  # (D,)
            }
        )
    # Own storage per tensor: torch.save keeps views' whole base storage (and ties), which the book's
    # untied model does not expect and which would bloat the file.
    return {k: v.contiguous().clone() for k, v in out.items()}


def export_book(model: GPTModel, path: str | os.PathLike) -> Path:
    """Write the book's state dict to `path` (a file, replaced atomically)."""
    target = Path(path)
    if target.is_dir():
        raise WeightsError(
            f"{target} is a folder; the book's format is one file, e.g. {target / 'model.pth'}"
        )
    state = book_state_dict(model)
    with staged_file(target) as staging:
        torch.save(state, staging)
    return target
