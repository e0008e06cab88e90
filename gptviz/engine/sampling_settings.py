"""How the next token is chosen: temperature, top-k, top-p, seed (book ch. 5.3), checked once when made.

Apart from `gptviz.engine.sampling` (the torch functions that apply these) because the Generation pane builds
one at start-up, before torch is loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gptviz.errors import ConfigError


@dataclass(frozen=True)
class SamplingSettings:
    """How the next token is chosen. Frozen, so a GUI thread can hand a new one to the generator safely.

    temperature 0 means greedy (all mass on the most likely token); top_k 0 or None and top_p 1.0 switch
    those filters off; seed None draws a fresh seed; n_candidates is how many top tokens a step reports.
    """

    temperature: float = 0.8
    top_k: int | None = 50
    top_p: float = 1.0
    seed: int | None = None
    stop_at_eot: bool = True
    n_candidates: int = 10

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise ConfigError(f"temperature must be a finite number >= 0 (0 = greedy), got {t!r}")
        k = self.top_k
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 0):
            raise ConfigError(f"top_k must be an integer >= 0 (0 = off), got {k!r}")
        p = self.top_p
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not (0.0 < p <= 1.0):
            raise ConfigError(f"top_p must be in (0, 1] (1 = off), got {p!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ConfigError(f"seed must be an integer or None, got {self.seed!r}")
        n = self.n_candidates
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"n_candidates must be a positive integer, got {n!r}")

    @property
    def greedy(self) -> bool:
        """True when the choice is deterministic: temperature 0 or top-k of 1."""
        return self.temperature == 0 or self.top_k == 1


__all__ = ["SamplingSettings"]
