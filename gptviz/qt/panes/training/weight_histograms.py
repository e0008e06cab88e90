"""The Training pane's weight histograms over time: pick a part, see its bins × evaluations as a heatmap.

TensorBoard's "distributions / histograms" idea on gptviz's fixed log-spaced scale
(gptviz.engine.weight_histograms): each column is one evaluation, each row a bin of weight values (largest
at the top, zero in the middle, ±128 at the edges), the colour the share of the part's weights in that bin
(log10, so a handful of stray weights still shows). How to read it:
- A healthy part keeps a band that widens slowly from its initial spread (|w| ≈ 0.02 under GPT-2's init)
  as training pushes weights apart, with LayerNorm scales as a thin line near +1.
- Exploding weights: the band spreads outwards column after column and reaches the ±2 … ±128 rows (the
  loss usually jumps then; lower the learning rate or clip the gradients).
- A dead layer: its columns never change (no gradient reaches it), or, with weight decay and no gradient,
  the band drifts in towards the zero row.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from gptviz.engine.weight_histograms import LABELS, N_BINS, tick_bins, valid_counts
from gptviz.qt.panes.training.diagnostics import DiagnosticsView, SeriesTable

TOP_DOWN = [LABELS[b] for b in range(N_BINS - 1, -1, -1)]  # rows: the largest values on top


class HistogramTable(SeriesTable):
    """One part's histograms: rows = bins (largest first), columns = evaluations, values = the share of
    the part's weights in each bin; `totals` keeps each column's number of weights for the readout."""

    def clear(self) -> None:
        super().clear()
        self.totals: dict[int, int] = {}  # step -> the part's number of weights then

    def add(self, step: int, counts: np.ndarray) -> None:
        total = int(counts.sum())
        if total <= 0:
            return
        shares = counts[::-1] / total  # (N_BINS,) top down
        self.totals[int(step)] = total
        self.append(step, dict(zip(TOP_DOWN, shares.tolist(), strict=True)))


class HistogramHeatmap(DiagnosticsView):
    """A DiagnosticsView with the bins' value ticks and a readout that gives the share and the count."""

    table: HistogramTable

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(HistogramTable(), "share of weights", log=True, parent=parent)
        self.part = ""

    def row_ticks(self) -> list[tuple[float, str]]:
        return [(N_BINS - 1 - b + 0.5, text) for b, text in tick_bins()]

    def value_at(self, x: float, y: float) -> str:
        table = self.table
        row, column = int(math.floor(y)), int(math.floor(x))
        if not table.steps or not 0 <= row < len(table.names) or not 0 <= column < len(table.steps):
            return " "
        share = table.columns[column][row]
        total = table.totals.get(table.steps[column], 0)
        return (
            f"{self.part} · step {table.steps[column]:,} · {table.names[row]} · "
            f"{100 * share:.3g}% of its weights ({round(share * total):,} of {total:,})"
        )


class WeightHistogramsView(QWidget):
    """A part chooser over one heatmap; the histograms of every part are kept, one table each."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tables: dict[str, HistogramTable] = {}
        self.part_choice = QComboBox()
        self.part_choice.setToolTip("the part whose weights are shown: embeddings, a block, the final norm…")
        self.part_choice.currentTextChanged.connect(self._on_part)
        self.heatmap = HistogramHeatmap()
        self.empty = QLabel("no weight histograms yet: they arrive with each evaluation")
        self.empty.setStyleSheet("color: #666")
        row = QHBoxLayout()
        row.addWidget(QLabel("part"))
        row.addWidget(self.part_choice)
        row.addWidget(self.empty, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.heatmap, 1)
        self.setToolTip(
            "Each part's weights at each evaluation: rows are value bins (largest on top, 0 in the middle), "
            "colour the share of the part's weights there (log). Spreading out towards ±2 and beyond: "
            "exploding weights; columns that never change, or drift to 0: a dead layer"
        )

    def add(self, step: int, histograms: object) -> None:
        """One evaluation's {part: counts} (a metrics line's `weight_histograms`); other shapes are skipped."""
        if not isinstance(histograms, dict):
            return
        for part, raw in histograms.items():
            counts = valid_counts(raw)
            if counts is None:
                continue
            table = self.tables.get(part)
            if table is None:
                table = self.tables[part] = HistogramTable()
                self.part_choice.addItem(str(part))
            table.add(step, counts)
        self.empty.setVisible(not self.tables)

    def clear(self) -> None:
        self.tables = {}
        self.part_choice.blockSignals(True)
        self.part_choice.clear()
        self.part_choice.blockSignals(False)
        self.heatmap.table = HistogramTable()
        self.heatmap.part = ""
        self.heatmap._drawn = -1
        self.empty.show()

    def select(self, part: str) -> None:
        index = self.part_choice.findText(part)
        if index >= 0:
            self.part_choice.setCurrentIndex(index)

    def _on_part(self, part: str) -> None:
        table = self.tables.get(part)
        if table is None:
            return
        self.heatmap.table = table
        self.heatmap.part = part
        self.heatmap._drawn = -1  # another table: its version says nothing about what is drawn
        self.heatmap.draw()

    def draw(self) -> None:
        part = self.part_choice.currentText()
        if part and self.heatmap.table is not self.tables.get(part):
            self._on_part(part)
        self.heatmap.draw()
