"""Embeddings: which tokens the model treats alike at its input (gptviz.engine.embeddings).

A table of one token's nearest neighbours in the token-embedding matrix (cosine of their rows) and a map:
the text's tokens (orange) and their nearest neighbours (grey, a thin line to the token they were found
for), on the two principal axes of those rows. Opened from Model › Embeddings… (the current text, its last
token) or by right-clicking a token chip (that token, the Tokens pane's text). Typing a token, or clicking
a point or a row, asks about that token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gptviz.qt.widgets.labels import display_token, quoted_display_token

if TYPE_CHECKING:  # annotations only: importing these at run time would load torch before the window paints
    from gptviz.engine.embeddings import EmbeddingMap, Neighbours

TEXT_COLOUR = "#ff7f0e"
NEIGHBOUR_COLOUR = "#7f7f7f"
MAX_LABELS = 120  # text items a map draws at most; more would be an unreadable smear (and slow)


class EmbeddingsView(QDialog):
    """Shows the worker's (Neighbours, EmbeddingMap); asks for another token by emitting `tokenRequested`."""

    tokenRequested = Signal(object, int)  # (token text or id, k): the window asks the worker
    ids_for_map: tuple[int, ...] | None = None  # the text the map is of (None: the current generation)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Embeddings — nearest tokens")
        self.resize(900, 560)
        self.neighbours: Neighbours | None = None
        self.map: EmbeddingMap | None = None
        self.token = QLineEdit()
        self.token.setPlaceholderText('a token, e.g. " the" (mind the space), or #262 for an id')
        self.token.returnPressed.connect(self._ask)
        self.k = QSpinBox()
        from gptviz.engine.embeddings import MAX_K  # the view opens on demand, after torch has loaded

        self.k.setRange(1, MAX_K)
        self.k.setValue(10)
        self.k.setToolTip("how many neighbours the table lists")
        self.k.valueChanged.connect(lambda _v: self._ask())
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["token", "id", "cosine"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumWidth(230)
        self.table.setToolTip("click a row to ask about that token")
        self.table.cellClicked.connect(self._on_row)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("bottom", "principal axis 1")
        self.plot.setLabel("left", "principal axis 2")
        for axis in ("bottom", "left"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)  # "x0.001" on an axis of PCA units misleads
        self.lines = pg.PlotDataItem(pen=pg.mkPen("#d0d0d0", width=1), connect="pairs")
        self.points = pg.ScatterPlotItem(size=8, pen=None)
        self.points.sigClicked.connect(self._on_point)
        self.plot.addItem(self.lines)
        self.plot.addItem(self.points)
        self.labels: list[pg.TextItem] = []
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.table)
        split.addWidget(self.plot)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 5)
        split.setSizes([260, 620])
        row = QHBoxLayout()
        row.addWidget(QLabel("Token"))
        row.addWidget(self.token, 1)
        row.addWidget(QLabel("neighbours"))
        row.addWidget(self.k)
        self.map_note = QLabel("")
        self.map_note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.summary)
        layout.addWidget(split, 1)
        layout.addWidget(self.map_note)

    # ------------------------------------------------------------------ asking

    def _ask(self) -> None:
        text = self.token.text()
        if not text:
            return
        stripped = text.strip()
        if stripped.startswith("#") and stripped[1:].isdigit():
            self.tokenRequested.emit(int(stripped[1:]), self.k.value())
        else:
            self.tokenRequested.emit(text, self.k.value())

    def ask_about(self, token_id: int) -> None:
        self.tokenRequested.emit(int(token_id), self.k.value())

    def _on_row(self, row: int, _column: int) -> None:
        item = self.table.item(row, 1)
        if item is not None:
            self.ask_about(int(item.text()))

    def _on_point(self, _item, spots, *_args) -> None:
        if len(spots):
            self.ask_about(int(spots[0].data()))

    def show_error(self, message: str) -> None:
        self.summary.setText(f"<span style='color:#b00020'>{message}</span>")

    # ------------------------------------------------------------------ showing

    def set_result(self, neighbours: Neighbours, found: EmbeddingMap) -> None:
        self.neighbours, self.map = neighbours, found
        self.token.blockSignals(True)
        self.token.setText(neighbours.piece)
        self.token.blockSignals(False)
        self.summary.setText(
            f"Nearest to {quoted_display_token(neighbours.piece)} (id {neighbours.token_id}) in the token-embedding "
            "matrix, by the cosine of their rows: tokens the model treats alike when it reads them."
        )
        self._fill_table(neighbours)
        self._draw_map(found, neighbours.token_id)

    def _fill_table(self, found: Neighbours) -> None:
        self.table.setRowCount(len(found.ids))
        for r, (token_id, piece, cos) in enumerate(
            zip(found.ids.tolist(), found.pieces, found.cosine.tolist(), strict=True)
        ):
            cells = (display_token(piece), str(token_id), f"{cos:+.4f}")
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)

    def _draw_map(self, found: EmbeddingMap, focus: int) -> None:
        for label in self.labels:
            self.plot.removeItem(label)
        self.labels = []
        xy = found.coords.astype(float)  # (n, 2)
        colours = [TEXT_COLOUR if t else NEIGHBOUR_COLOUR for t in found.in_text.tolist()]
        sizes = [
            12 if int(i) == focus else (9 if t else 6) for i, t in zip(found.ids, found.in_text, strict=True)
        ]
        self.points.setData(
            x=xy[:, 0],
            y=xy[:, 1],
            brush=[pg.mkBrush(c) for c in colours],
            size=sizes,
            data=found.ids.tolist(),
            pen=[pg.mkPen("#111", width=2) if int(i) == focus else None for i in found.ids.tolist()],
        )
        pairs = [(xy[i], xy[int(found.of[i])]) for i in np.flatnonzero(~found.in_text)]
        if pairs:
            segs = np.array(pairs).reshape(-1, 2)  # (2m, 2): neighbour, its token, neighbour, ...
            self.lines.setData(segs[:, 0], segs[:, 1])
        else:
            self.lines.setData([], [])
        for i in range(min(len(found.ids), MAX_LABELS)):
            text = display_token(found.pieces[i], 14)
            colour = "#a04000" if found.in_text[i] else "#555"
            label = pg.TextItem(text, color=colour, anchor=(0, 1))
            label.setPos(float(xy[i, 0]), float(xy[i, 1]))
            self.plot.addItem(label)
            self.labels.append(label)
        self.plot.autoRange()
        n_text = int(found.in_text.sum())
        a, b = (float(v) * 100 for v in found.explained)
        self.map_note.setText(
            f"Map: the text's {n_text} distinct tokens (orange) and their nearest neighbours (grey, a line to "
            f"the token they are near), on the two directions along which these rows differ most (PCA: "
            f"{a:.0f}% and {b:.0f}% of their variance). Click a point to ask about it."
        )


__all__ = ["EmbeddingsView"]
