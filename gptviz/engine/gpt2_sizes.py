"""Which GPT-2 a name means and what shape and size it has, without asking the Hub.

OpenAI's four sizes and their Hub repos, a size's shape and about how many bytes its download holds (the
download dialog shows both before anything is fetched), a name turned into a repo id, and the shape a
transformers GPT-2 config.json describes. Torch-free, so the dialog lists the sizes while the window paints.
"""

from __future__ import annotations

import re
from typing import Any

from gptviz.config import PRESETS, GPTConfig, count_params
from gptviz.engine.download_errors import NotGPT2Error, UnknownModelError, short
from gptviz.errors import GptvizError

GPT2_REPOS = {
    "124M": "openai-community/gpt2",
    "355M": "openai-community/gpt2-medium",
    "774M": "openai-community/gpt2-large",
    "1558M": "openai-community/gpt2-xl",
}
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def openai_config(size: str) -> GPTConfig:
    """OpenAI's GPT-2 of a size: the book's preset with the q/k/v bias OpenAI's weights carry."""
    return PRESETS[size].replace(qkv_bias=True, drop_rate=0.0)


def hub_download_bytes(size: str) -> int:
    """About how many bytes the Hub's model.safetensors of an OpenAI size holds, without asking the Hub.

    The files are fp32 weights plus each block's (1, 1, 1024, 1024) causal-mask buffer `attn.bias`:
    124M gives 548.09 MB against the 548.1 MB the Hub lists. The real sizes are read from the Hub's listing
    before downloading.
    """
    cfg = openai_config(size)
    return 4 * (count_params(cfg) + cfg.n_layers * cfg.context_length**2)


def resolve_repo_id(name: str) -> str:
    """'124M' -> 'openai-community/gpt2'; 'owner/name' as given; anything else is refused."""
    if name in GPT2_REPOS:
        return GPT2_REPOS[name]
    if _REPO_ID.match(name) and ".." not in name:
        return name
    raise UnknownModelError(
        f"unknown model {name!r}: give a GPT-2 size ({', '.join(GPT2_REPOS)}) or a Hugging Face repo id "
        "owner/name holding a GPT-2 model (e.g. distilbert/distilgpt2)"
    )


def gpt2_config(hf_config: dict[str, Any], repo_id: str) -> GPTConfig:
    """The gptviz shape of a transformers GPT-2 config.json; anything else is refused."""
    model_type = hf_config.get("model_type")
    if model_type != "gpt2":
        raise NotGPT2Error(
            f"{repo_id} is not a GPT-2 model: its config.json says model_type {model_type!r}, not 'gpt2'"
        )
    try:
        return GPTConfig(
            vocab_size=int(hf_config["vocab_size"]),
            context_length=int(
                hf_config["n_positions"] if "n_positions" in hf_config else hf_config["n_ctx"]
            ),
            emb_dim=int(hf_config["n_embd"]),
            n_heads=int(hf_config["n_head"]),
            n_layers=int(hf_config["n_layer"]),
            drop_rate=0.0,
            qkv_bias=True,
            name=repo_id.rsplit("/", 1)[-1],
        )
    except (KeyError, TypeError, ValueError, GptvizError) as exc:
        raise NotGPT2Error(f"{repo_id}'s config.json is not a usable GPT-2 config: {short(exc)}") from None
