"""Model presets (the book's sizes plus a tiny one) as frozen dataclasses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from gptviz.errors import ConfigError

GPT2_VOCAB_SIZE = 50257


@dataclass(frozen=True)
class GPTConfig:
    """Everything that decides the shape of a GPT. Frozen so it can be shared across threads."""

    vocab_size: int = GPT2_VOCAB_SIZE
    context_length: int = 1024
    emb_dim: int = 768
    n_heads: int = 12
    n_layers: int = 12
    drop_rate: float = 0.1
    qkv_bias: bool = False
    tie_weights: bool = True
    name: str = "custom"

    def __post_init__(self) -> None:
        self.validate()

    @property
    def head_dim(self) -> int:
        return self.emb_dim // self.n_heads

    def validate(self) -> None:
        """Refuse settings that cannot build a model, with a message that says which and why."""
        for field in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{field} must be a positive integer, got {value!r}")
        if self.emb_dim % self.n_heads:
            raise ConfigError(
                f"n_heads ({self.n_heads}) must divide emb_dim ({self.emb_dim}) so every head gets "
                "the same width"
            )
        if not 0.0 <= self.drop_rate < 1.0:
            raise ConfigError(f"drop_rate must be in [0, 1), got {self.drop_rate}")

    def replace(self, **changes: Any) -> GPTConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GPTConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"bad config: {exc}") from None


# The book's four sizes (ch. 4) use qkv_bias=False; OpenAI's checkpoints set it True on import.
PRESETS: dict[str, GPTConfig] = {
    "tiny": GPTConfig(context_length=128, emb_dim=128, n_heads=4, n_layers=6, drop_rate=0.1, name="tiny"),
    "124M": GPTConfig(emb_dim=768, n_heads=12, n_layers=12, name="124M"),
    "355M": GPTConfig(emb_dim=1024, n_heads=16, n_layers=24, name="355M"),
    "774M": GPTConfig(emb_dim=1280, n_heads=20, n_layers=36, name="774M"),
    "1558M": GPTConfig(emb_dim=1600, n_heads=25, n_layers=48, name="1558M"),
}


def preset(name: str) -> GPTConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def count_params(cfg: GPTConfig, tied: bool | None = None) -> int:
    """Parameter count from the config alone, so a 1558M model can be sized without allocating it."""
    tied = cfg.tie_weights if tied is None else tied
    d, v = cfg.emb_dim, cfg.vocab_size
    attn = 3 * d * d + (3 * d if cfg.qkv_bias else 0) + d * d + d  # fused W_qkv + out_proj
    ff = d * 4 * d + 4 * d + 4 * d * d + d
    norms = 2 * 2 * d
    per_block = attn + ff + norms
    embeddings = v * d + cfg.context_length * d
    head = 0 if tied else v * d
    return embeddings + cfg.n_layers * per_block + 2 * d + head


def size_report(cfg: GPTConfig) -> dict:
    """The numbers `gptviz info` prints: counts tied and untied, fp32 bytes of the untied model (book ch. 4)."""
    params = count_params(cfg)
    untied = count_params(cfg, tied=False)
    return {
        "name": cfg.name,
        "params": params,
        "params_untied": untied,
        "bytes_fp32": params * 4,
        "bytes_fp32_untied": untied * 4,
        "n_layers": cfg.n_layers,
        "n_heads": cfg.n_heads,
        "emb_dim": cfg.emb_dim,
        "context_length": cfg.context_length,
        "vocab_size": cfg.vocab_size,
        "qkv_bias": cfg.qkv_bias,
        "tie_weights": cfg.tie_weights,
    }
