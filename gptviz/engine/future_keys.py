"""The causal mask as numpy cells, for what stores and draws attention maps (the model's own mask is
`gptviz.model.gpt.causal_mask`, a torch tensor on the model's device).

One place says which (query, key) cells a causal query cannot see: the packed attention store keeps the
others, the live inspection appends a new row's visible part, and the heatmaps hatch the hidden ones. Free
of torch, so the window can import it before torch loads.
"""

from __future__ import annotations

import functools

import numpy as np


def future_keys(rows: int, keys: int, past: int = 0) -> np.ndarray:
    """(rows, keys) bool: True where key j comes after query past + r, the cells the causal mask hides."""
    return np.arange(keys)[None, :] > (np.arange(rows)[:, None] + past)


@functools.lru_cache(maxsize=4)
def future_keys_square(n_tokens: int) -> np.ndarray:
    """(T, T) bool, read-only, kept for the last few sizes: `future_keys(T, T)`, the square map's hidden
    cells (another head or layer of the same text reuses it)."""
    mask = future_keys(n_tokens, n_tokens)  # (T, T)
    mask.flags.writeable = False
    return mask


__all__ = ["future_keys", "future_keys_square"]
