"""From next-token logits to the distribution a token is drawn from (book ch. 5.3): temperature, top-k, top-p.

Pure functions on one logits vector (V,). The filters set the logits of dropped tokens to -inf, so a single
softmax at the end gives probabilities that sum to 1 over the kept set and are exactly 0 outside it;
`kept_distribution` does the same on the kept tokens only, which is what a generation step uses. The order is the usual one (and Hugging Face's): temperature, then top-k, then top-p, so the
nucleus is measured on the distribution the token is actually drawn from.
"""

from __future__ import annotations

import torch

from gptviz.errors import ConfigError

# Softmax of float32 logits is only accurate to ~1e-7 per entry; a nucleus whose mass equals p up to this
# tolerance counts as having reached p (otherwise 0.4 + 0.3 = 0.6999999 would pull in a third token at p=0.7).
TOP_P_TOLERANCE = 1e-6


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """logits / T: T < 1 sharpens the distribution, T > 1 flattens it. T = 0 (greedy) has no such form."""
    if not temperature > 0:
        raise ConfigError(
            f"temperature must be > 0 to scale logits (use 0 only through sampling_distribution), "
            f"got {temperature!r}"
        )
    return logits / temperature  # (V,)


def top_k_filter(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """Keep exactly the k largest logits (ties broken by torch.topk), the rest -inf. k 0/None = off."""
    if not k or k >= logits.shape[-1]:
        return logits
    _, keep = torch.topk(logits, k)  # (k,)
    out = torch.full_like(logits, float("-inf"))  # (V,)
    out[keep] = logits[keep]  # (V,)
    return out


def nucleus_size(sorted_logits: torch.Tensor, p: float) -> int:
    """How many of these logits (sorted, descending) form the smallest set whose probability mass reaches p.

    A token is kept while the mass of the tokens ranked above it is still below p, so it is always >= 1.
    """
    if p >= 1.0:
        return int(sorted_logits.shape[0])
    probs = torch.softmax(sorted_logits.double(), dim=0)  # (n,) float64 so the running sum is exact enough
    mass_before = torch.cumsum(probs, dim=0) - probs  # (n,)
    return max(1, int((mass_before < p - TOP_P_TOLERANCE).sum()))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus: keep the smallest set of most probable tokens whose probability mass reaches p, the rest -inf.

    Already-dropped (-inf) entries are left out of the sort, so after top-k only k values are sorted.
    """
    if p >= 1.0:
        return logits
    live = torch.isfinite(logits).nonzero().squeeze(1)  # (n,) indices still in play
    values, order = torch.sort(logits[live], descending=True)  # (n,), (n,)
    keep = live[order[: nucleus_size(values, p)]]  # (m,)
    out = torch.full_like(logits, float("-inf"))  # (V,)
    out[keep] = logits[keep]  # (V,)
    return out


def kept_distribution(
    logits: torch.Tensor, temperature: float, top_k: int | None = None, top_p: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The tokens that survive temperature 0 / top-k / top-p and their probabilities: ids (m,), probs (m,).

    The compact form of `sampling_distribution`: drawing from m entries instead of the whole vocabulary keeps
    a generation step's overhead small. With a filter on, ids are ordered most probable first.
    """
    logits = logits.float()  # (V,)
    vocab = logits.shape[0]
    if temperature == 0:
        best = torch.argmax(logits).reshape(1)  # (1,)
        return best, torch.ones(1, dtype=logits.dtype)
    scaled = apply_temperature(logits, temperature)  # (V,)
    if top_k and top_k < vocab:
        values, ids = torch.topk(scaled, top_k)  # (k,), (k,) sorted descending
    elif top_p < 1.0:
        values, ids = torch.sort(scaled, descending=True)  # (V,), (V,)
    else:
        return torch.arange(vocab), torch.softmax(scaled, dim=0)  # (V,), (V,)
    m = nucleus_size(values, top_p)
    return ids[:m], torch.softmax(values[:m], dim=0)  # (m,), (m,)


def sampling_distribution(
    logits: torch.Tensor, temperature: float, top_k: int | None = None, top_p: float = 1.0
) -> torch.Tensor:
    """The probabilities (V,) a token is drawn from: sums to 1, exactly 0 outside the kept set."""
    ids, probs = kept_distribution(logits, temperature, top_k, top_p)  # (m,), (m,)
    out = torch.zeros(logits.shape[0], dtype=probs.dtype)  # (V,)
    out[ids] = probs  # (V,)
    return out
