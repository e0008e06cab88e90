"""The Attention pane's dense map of the selected head, grown by the rows each generated token adds.

Decoding the whole (T, T) map from the packed triangle took about 7 ms at 1,000 tokens after every Step; a
token adds one row. While the snapshots come from one lineage (InspectionSnapshot.lineage >= 0: a live
inspection that only appends) and the selection is the same, the earlier rows are kept and only the new ones
are decoded; anything else (another head, an undo, a new prompt or model) decodes the map again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: importing these at run time would load torch before the window paints
    from gptviz.engine.inspection import InspectionSnapshot


class GrowingMap:
    """The (T, T) float32 attention map of one head, or of a layer's average (head None)."""

    def __init__(self) -> None:
        self._key: tuple[int, int, int] | None = None
        self._buffer = np.zeros((0, 0), dtype=np.float32)  # (capacity, capacity)
        self._rows = 0
        self.decoded_rows = 0  # rows decoded so far (tests read it)

    def get(self, snapshot: InspectionSnapshot, layer: int, head: int | None) -> np.ndarray:
        """(T, T) for the snapshot's T, a copy of the kept rows (the heatmap keeps what it is given)."""
        T = snapshot.n_tokens
        key = (snapshot.lineage, layer, -1 if head is None else head)
        grows = snapshot.lineage >= 0 and key == self._key and self._rows <= T
        start = self._rows if grows else 0
        if self._buffer.shape[0] < T:
            capacity = max(T, 2 * self._buffer.shape[0])  # doubling: a step rarely copies the map
            grown = np.zeros((capacity, capacity), dtype=np.float32)
            if grows:
                grown[:start, :start] = self._buffer[:start, :start]
            self._buffer = grown
        # Rows start..T-1 are written whole; the cells right of column T in earlier rows lie above the
        # diagonal, zero in every causal map, so nothing stale from another map can show.
        if start < T:
            self._buffer[start:T, :T] = snapshot.attention.rows(layer, head, start, T)  # (T - start, T)
            self.decoded_rows += T - start
        self._key, self._rows = key, T
        return self._buffer[:T, :T].copy()
