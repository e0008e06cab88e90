"""GPT-2 weights from elsewhere, read as gptviz models: Hugging Face GPT-2 (a folder or one file,
safetensors or .bin, sharded or not), the book's .pth state dict, nanoGPT's ckpt.pt (gptviz.engine.nanogpt)
and gptviz's own checkpoints (gptviz.engine.checkpoint).

What a path is comes from gptviz.engine.path_kind; pickled files are read by gptviz.engine.safe_load
(weights_only: no code in a file ever runs). This module renames each source's tensors to GPTModel's
(HF's Conv1D weights transposed, the book's separate Q/K/V fused), builds the config from HF's config.json
or the tensors' shapes, and loads the state dict with the checks of gptviz.engine.checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from gptviz.config import GPTConfig
from gptviz.engine.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    check_finite,
    check_tensors_cover,
    empty_model,
    load_checkpoint,
    load_state_into,
    model_state_for_saving,
    resolve_checkpoint_dir,
)
from gptviz.engine.path_kind import PathKind, checkpoint_in, classify, find_nanogpt_checkpoint
from gptviz.engine.safe_load import sniff_format, torch_load_safely
from gptviz.errors import ConfigError, WeightsError
from gptviz.model.gpt import GPTModel

HF_CONFIG_FILE = CONFIG_FILE
HF_SAFETENSORS = WEIGHTS_FILE
HF_SAFETENSORS_INDEX = "model.safetensors.index.json"
HF_TORCH_BIN = "pytorch_model.bin"
HF_TORCH_BIN_INDEX = "pytorch_model.bin.index.json"

# The head counts OpenAI used for each GPT-2 width; the tensors alone cannot tell how a width was split.
STANDARD_GPT2_HEADS = {768: 12, 1024: 16, 1280: 20, 1600: 25}

# HF GPT-2 stores these with Conv1D, whose weight is (in, out): the transpose of nn.Linear's (out, in).
_HF_CONV1D = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
HF_BLOCK_MAP = {
    "ln_1.weight": "norm1.scale",
    "ln_1.bias": "norm1.shift",
    "attn.c_attn.weight": "attn.W_qkv.weight",
    "attn.c_attn.bias": "attn.W_qkv.bias",
    "attn.c_proj.weight": "attn.out_proj.weight",
    "attn.c_proj.bias": "attn.out_proj.bias",
    "ln_2.weight": "norm2.scale",
    "ln_2.bias": "norm2.shift",
    "mlp.c_fc.weight": "ff.fc1.weight",
    "mlp.c_fc.bias": "ff.fc1.bias",
    "mlp.c_proj.weight": "ff.fc2.weight",
    "mlp.c_proj.bias": "ff.fc2.bias",
}
HF_TOP_MAP = {
    "wte.weight": "tok_emb.weight",
    "wpe.weight": "pos_emb.weight",
    "ln_f.weight": "final_norm.scale",
    "ln_f.bias": "final_norm.shift",
    "lm_head.weight": "out_head.weight",
}
HF_IGNORED_BLOCK = ("attn.bias", "attn.masked_bias")  # causal-mask buffers, not weights
_BOOK_BLOCK_MAP = {
    "att.out_proj.weight": "attn.out_proj.weight",
    "att.out_proj.bias": "attn.out_proj.bias",
    "ff.layers.0.weight": "ff.fc1.weight",
    "ff.layers.0.bias": "ff.fc1.bias",
    "ff.layers.2.weight": "ff.fc2.weight",
    "ff.layers.2.bias": "ff.fc2.bias",
    "norm1.scale": "norm1.scale",
    "norm1.shift": "norm1.shift",
    "norm2.scale": "norm2.scale",
    "norm2.shift": "norm2.shift",
}
BLOCK_KEY = re.compile(r"^(?P<prefix>h|trf_blocks|blocks)\.(?P<index>\d+)\.(?P<rest>.+)$")

log = logging.getLogger(__name__)


@dataclass
class ImportedWeights:
    """A model read by `read_weights`, with where it came from (recorded in the checkpoint's meta)."""

    model: GPTModel
    source: Path
    file_format: str  # "gptviz-checkpoint", "safetensors" or "torch-pickle"
    key_style: str  # "gptviz", "hf-transformers" (transformer.h.0...), "hf-hub" (h.0...), "book"
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def import_weights(
    src: str | os.PathLike, n_heads: int | None = None, *, warnings: list[str] | None = None
) -> GPTModel:
    """Read GPT-2 weights from any supported source as an fp32 gptviz model in eval mode (on the CPU).

    Sources: a Hugging Face GPT-2 folder or a single `.safetensors` / `.bin` file of it, the book's `.pth`
    state dict, nanoGPT's `ckpt.pt` (read by gptviz.engine.nanogpt), or a gptviz checkpoint directory.
    Pickled files are read with `weights_only=True`, so a file that would run code is refused, never
    executed. Problems that do not stop the import (NaN weights, an unusual config) are appended to
    `warnings` and logged.
    """
    return read_weights(src, n_heads, warnings=warnings).model


def read_weights(
    src: str | os.PathLike, n_heads: int | None = None, *, warnings: list[str] | None = None
) -> ImportedWeights:
    """Like `import_weights`, but also says which format and key style were found."""
    path = Path(src).expanduser()
    notes: list[str] = []
    if n_heads is not None and (not isinstance(n_heads, int) or n_heads <= 0):
        raise WeightsError(f"--heads must be a positive integer, got {n_heads!r}")
    kind = classify(path)
    if kind.is_own:  # a checkpoint, or the run directory around one
        path = checkpoint_in(path)
        model, _meta = load_checkpoint(path)
        if n_heads is not None and n_heads != model.cfg.n_heads:
            raise WeightsError(f"{path} is a gptviz checkpoint with {model.cfg.n_heads} heads, not {n_heads}")
        check_finite(model_state_for_saving(model), path, notes)
        result = ImportedWeights(model, path, "gptviz-checkpoint", "gptviz", [resolve_checkpoint_dir(path)])
    elif kind is PathKind.NANOGPT:
        from gptviz.engine.nanogpt import read_nanogpt  # it builds on this module's name maps

        nanogpt_file = find_nanogpt_checkpoint(path)
        assert nanogpt_file is not None  # classify found it
        result = read_nanogpt(nanogpt_file, n_heads, notes)
    else:
        files, hf_config = _locate_weight_files(path)
        raw: dict[str, torch.Tensor] = {}
        file_format = ""
        for file in files:
            part, file_format = _read_tensor_file(file)
            raw.update(part)
        state, key_style = _to_gptviz_names(raw, path)
        cfg = _build_config(state, hf_config, n_heads, path, notes)
        check_tensors_cover(cfg, state, path)
        check_finite(state, path, notes)
        model = empty_model(cfg)
        load_state_into(model, state, str(path))
        model.eval()
        result = ImportedWeights(model, path, file_format, key_style, files)
    for note in notes:
        log.warning(note)
    result.warnings = notes
    if warnings is not None:
        warnings.extend(notes)
    return result


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: a huge int
        raise WeightsError(f"{path} is unreadable: {exc}") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path} is not a JSON object")
    return data


def _read_hf_config(path: Path) -> dict[str, Any] | None:
    """The HF GPT-2 config.json beside the weights, or None if there is none."""
    if not path.is_file():
        return None
    data = _read_json(path)
    model_type = data.get("model_type", "gpt2")
    if model_type != "gpt2":
        raise WeightsError(f"{path} describes a {model_type!r} model; only GPT-2 weights can be imported")
    if "n_embd" not in data:
        return None  # some other config.json: shapes decide
    return data


def _locate_weight_files(path: Path) -> tuple[list[Path], dict[str, Any] | None]:
    """The weight file(s) to read and the HF config.json that describes them (if any)."""
    if not path.exists():
        raise WeightsError(f"weights not found: {path}")
    if path.is_file():
        return [path], _read_hf_config(path.parent / HF_CONFIG_FILE)
    if not path.is_dir():
        raise WeightsError(f"{path} is neither a file nor a folder")
    hf_config = _read_hf_config(path / HF_CONFIG_FILE)
    for index_name in (HF_SAFETENSORS_INDEX, HF_TORCH_BIN_INDEX):
        index = path / index_name
        if index.is_file():
            weight_map = _read_json(index).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise WeightsError(f"{index} has no weight_map")
            if not all(isinstance(n, str) and n and Path(n).name == n for n in weight_map.values()):
                raise WeightsError(f"{index} names shards that are not file names in {path}")
            names = sorted(set(weight_map.values()))
            files = [path / name for name in names]
            absent = [str(f) for f in files if not f.is_file()]
            if absent:
                raise WeightsError(f"{index} lists shards that are missing: {', '.join(absent)}")
            return files, hf_config
    for name in (HF_SAFETENSORS, HF_TORCH_BIN):
        if (path / name).is_file():
            return [path / name], hf_config
    candidates = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".pth", ".pt"))
    if len(candidates) == 1:
        return candidates, hf_config
    if candidates:
        listed = ", ".join(p.name for p in candidates)
        raise WeightsError(f"{path} holds several weight files ({listed}); name the one to import")
    raise WeightsError(
        f"{path} holds no weights: expected {HF_SAFETENSORS} or {HF_TORCH_BIN} (Hugging Face GPT-2), "
        f"a .pth file, or a gptviz checkpoint ({CONFIG_FILE} + {WEIGHTS_FILE})"
    )


def _read_tensor_file(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    kind = sniff_format(path)
    if kind == "safetensors":
        try:
            return load_file(str(path)), "safetensors"
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path} is damaged or truncated safetensors: {exc}") from None
    if kind in ("zip", "pickle"):
        return _tensors_from_object(torch_load_safely(path), path), "torch-pickle"
    raise WeightsError(
        f"{path} is not a model file: expected safetensors or a PyTorch .bin/.pth (torch.save) file"
    )


def _tensors_from_object(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The state dict in a loaded object: plain, or the book's ch. 5 {"model_state_dict": ...}."""
    if isinstance(obj, dict):
        for key in ("model_state_dict", "state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, dict) and any(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise WeightsError(f"{path} holds no state dict (no named tensors found)")


def _to_gptviz_names(raw: dict[str, torch.Tensor], source: Path) -> tuple[dict[str, torch.Tensor], str]:
    """Rename (and reshape) tensors from any known key style to GPTModel's state_dict names."""
    keys = list(raw)
    if any(k.startswith("transformer.") for k in keys):
        return _from_hf(raw, "transformer."), "hf-transformers"
    if "wte.weight" in raw or any(k.startswith("h.") for k in keys):
        return _from_hf(raw, ""), "hf-hub"
    if any(k.startswith("trf_blocks.") for k in keys):
        return _from_book(raw), "book"
    if "tok_emb.weight" in raw or any(k.startswith("blocks.") for k in keys):
        return dict(raw), "gptviz"
    shown = ", ".join(sorted(keys)[:5]) + (", ..." if len(keys) > 5 else "")
    raise WeightsError(f"{source} does not look like GPT-2 weights (tensors: {shown})")


def _from_hf(raw: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for key, tensor in raw.items():
        name = key[len(prefix) :] if prefix and key.startswith(prefix) else key
        match = BLOCK_KEY.match(name)
        if match and match["prefix"] == "h":
            rest = match["rest"]
            if rest in HF_IGNORED_BLOCK:
                continue
            if rest not in HF_BLOCK_MAP:
                state[key] = tensor  # reported as unexpected under its own name
                continue
            if rest.rsplit(".", 1)[0] in _HF_CONV1D and rest.endswith(".weight") and tensor.dim() == 2:
                tensor = tensor.t()  # Conv1D (in, out) -> Linear (out, in)
            state[f"blocks.{match['index']}.{HF_BLOCK_MAP[rest]}"] = tensor  # copy_ accepts views
        elif name in HF_TOP_MAP:
            state[HF_TOP_MAP[name]] = tensor
        else:
            state[key] = tensor
    # c_attn's output is [q | k | v] along its last dim, each split into heads: exactly W_qkv's layout.
    head = state.get("out_head.weight")
    emb = state.get("tok_emb.weight")
    if head is not None and emb is not None and head.shape == emb.shape and torch.equal(head, emb):
        del state["out_head.weight"]  # tied to the token embedding
    return state


def _from_book(raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, dict[str, torch.Tensor]]] = {}  # block -> weight/bias -> query/key/value
    for key, tensor in raw.items():
        match = BLOCK_KEY.match(key)
        if match and match["prefix"] == "trf_blocks":
            index, rest = match["index"], match["rest"]
            if rest == "att.mask":
                continue  # the book's causal-mask buffer
            proj = re.fullmatch(r"att\.W_(query|key|value)\.(weight|bias)", rest)
            if proj:
                qkv.setdefault(index, {}).setdefault(proj[2], {})[proj[1]] = tensor
            elif rest in _BOOK_BLOCK_MAP:
                state[f"blocks.{index}.{_BOOK_BLOCK_MAP[rest]}"] = tensor
            else:
                state[key] = tensor
        else:
            state[key] = tensor  # tok_emb, pos_emb, final_norm, out_head keep their names
    for index, kinds in qkv.items():
        for kind, parts in kinds.items():
            ranks, widths = {t.dim() for t in parts.values()}, {tuple(t.shape[1:]) for t in parts.values()}
            if set(parts) == {"query", "key", "value"} and ranks in ({1}, {2}) and len(widths) == 1:
                fused = torch.cat([parts["query"], parts["key"], parts["value"]], dim=0)  # (3D, D) or (3D,)
                state[f"blocks.{index}.attn.W_qkv.{kind}"] = fused
            else:
                for part, tensor in parts.items():  # incomplete: leave them to be reported by name
                    state[f"trf_blocks.{index}.att.W_{part}.{kind}"] = tensor
    head = state.get("out_head.weight")
    emb = state.get("tok_emb.weight")
    if head is not None and emb is not None and head.shape == emb.shape and torch.equal(head, emb):
        del state["out_head.weight"]
    return state


def _infer_heads(emb_dim: int, n_heads: int | None, source: Path) -> int:
    if n_heads is not None:
        return n_heads
    if emb_dim in STANDARD_GPT2_HEADS:
        return STANDARD_GPT2_HEADS[emb_dim]
    raise WeightsError(
        f"cannot tell the number of attention heads of {source} (width {emb_dim} is not a standard GPT-2 "
        "size and there is no config.json); give it with --heads N"
    )


def _build_config(
    state: dict[str, torch.Tensor],
    hf_config: dict[str, Any] | None,
    n_heads: int | None,
    source: Path,
    notes: list[str],
) -> GPTConfig:
    """The model's shape: from an HF config.json if there is one, else read off the tensors."""
    for key in ("tok_emb.weight", "pos_emb.weight"):
        if key not in state or state[key].dim() != 2:
            raise WeightsError(f"{source} does not fit the model: missing: {key}")
    vocab_size, emb_dim = state["tok_emb.weight"].shape
    context_length = state["pos_emb.weight"].shape[0]
    layers = {int(m["index"]) for k in state if (m := BLOCK_KEY.match(k)) and m["prefix"] == "blocks"}
    n_layers = max(layers) + 1 if layers else 0
    if hf_config is not None:
        try:
            from_config = {
                "vocab_size": int(hf_config["vocab_size"]),
                "context_length": int(
                    hf_config["n_positions"] if "n_positions" in hf_config else hf_config["n_ctx"]
                ),
                "emb_dim": int(hf_config["n_embd"]),
                "n_heads": int(hf_config["n_head"]),
                "n_layers": int(hf_config["n_layer"]),
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"{source}: config.json lacks or garbles {exc}") from None
        if n_heads is not None and n_heads != from_config["n_heads"]:
            raise WeightsError(f"config.json says {from_config['n_heads']} heads but --heads gave {n_heads}")
        vocab_size, context_length = from_config["vocab_size"], from_config["context_length"]
        emb_dim, n_layers, heads = from_config["emb_dim"], from_config["n_layers"], from_config["n_heads"]
        _note_unsupported_hf_options(hf_config, notes)
    else:
        heads = _infer_heads(emb_dim, n_heads, source)
    if n_layers == 0:
        raise WeightsError(f"{source} holds no transformer blocks")
    try:
        return GPTConfig(
            vocab_size=vocab_size,
            context_length=context_length,
            emb_dim=emb_dim,
            n_heads=heads,
            n_layers=n_layers,
            drop_rate=0.0,
            qkv_bias="blocks.0.attn.W_qkv.bias" in state,
            tie_weights="out_head.weight" not in state,
            name=(source.stem if source.is_file() else source.name) or "imported",
        )
    except ConfigError as exc:
        raise WeightsError(f"{source}: {exc}") from None


def _note_unsupported_hf_options(hf_config: dict[str, Any], notes: list[str]) -> None:
    """GPT-2 variants whose arithmetic differs from the book's model import, but will not match exactly."""
    activation = hf_config.get("activation_function", "gelu_new")
    if activation not in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        notes.append(f"config.json uses activation {activation!r}; gptviz computes the tanh GELU")
    eps = hf_config.get("layer_norm_epsilon", 1e-5)
    if eps != 1e-5:
        notes.append(f"config.json uses layer_norm_epsilon {eps}; gptviz uses 1e-5")
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
        if hf_config.get(flag):
            notes.append(f"config.json sets {flag}, which gptviz does not implement")
    if hf_config.get("scale_attn_weights") is False:
        notes.append("config.json turns off attention scaling, which gptviz always applies")
