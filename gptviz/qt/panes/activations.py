"""The Activations pane: what flows between the attention maps.

* the residual stream's size per layer and token (L2 norms as a heatmap; click a token to select it),
  each row coloured on its own scale by default: the embeddings' norm (about 1) is so much smaller than
  the blocks' (20 to 50) that one scale drew the embed row black,
* one layer's MLP activations after GELU (tokens x neurons, and their histogram); the neurons can be
  sorted by their activation at the selected token, which zooms onto the most active ones,
* LayerNorm's input and output statistics at the selected token (the book's "mean 0, variance 1" check),
* the logit lens: the top tokens the residual stream after each layer would predict at the selected token.

The pane keeps only the last snapshot. The MLP layer and the lens position are computed by the engine, so
changing them asks for a new snapshot through `mlpLayerRequested` / `lensPositionRequested`.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHeaderView,
    QLabel,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gptviz.qt.panes.mlp_histogram import GrowingHistogram
from gptviz.qt.token_labels import axis_labels, quoted_token, token_label
from gptviz.qt.widgets.fit import FlowLayout
from gptviz.qt.widgets.heatmap import HeatmapView

HISTOGRAM_BINS = 80
LENS_LABEL_CHARS = 10  # a logit lens cell: long tokens shortened (the tooltip has them whole)
# The chosen token beside its spin box has a fixed width, so Play never reflows the controls: 7 average
# characters keep them on one row at 1280 x 720; a longer token ends in …
POSITION_LABEL_CHARS = 7
LENS_MIN_COLUMN = 48  # pixels: a lens column is never narrower than a probability ("0.005") needs
SORTED_NEURONS_SHOWN = 48  # sorting the neurons zooms onto this many of the most active ones
LN_COLUMNS = (
    ("norm1", "in", "mean"),
    ("norm1", "in", "var"),
    ("norm1", "out", "mean"),
    ("norm1", "out", "var"),
    ("norm2", "in", "mean"),
    ("norm2", "in", "var"),
    ("norm2", "out", "mean"),
    ("norm2", "out", "var"),
)

if TYPE_CHECKING:  # annotations only: importing these at run time would load torch before the window paints
    from gptviz.engine.inspection import InspectionSnapshot
STAT_SYMBOLS = {"mean": "\u03bc", "var": "\u03c3\u00b2"}  # μ, σ²: short headers keep the table narrow
IO_WORDS = {"in": "input", "out": "output"}


def format_stat(value: float) -> str:
    """A LayerNorm statistic in at most five or six characters ("-0.04", "1.92", "153", "2.1e+05"): the
    table must fit beside the histogram; the cell's tooltip has the value to six significant digits."""
    if not np.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude < 0.005:
        return "0.00"  # never "-0.00"
    if magnitude < 100:
        return f"{value:.2f}"
    if magnitude < 1e5:
        return f"{value:.0f}"
    return f"{value:.1e}"


def ln_headers() -> list[str]:
    """Two header lines a column: the norm's name over the first of its four columns only (as a header
    spanning them would), then input/output and the statistic: "norm1\nin μ", "\nin σ²", ...; the
    narrow columns let the table fit beside the histogram."""
    headers, previous = [], None
    for norm, io, stat in LN_COLUMNS:
        headers.append(f"{norm if norm != previous else ''}\n{io} {STAT_SYMBOLS[stat]}")
        previous = norm
    return headers


def probability_colour(p: float) -> QColor:
    """White for 0 to a deep blue for 1; sqrt so that 0.05 is already visibly tinted."""
    p = float(p) if math.isfinite(p) else 0.0  # a diverged model's NaN shows white, not an error
    t = math.sqrt(min(max(p, 0.0), 1.0))  # plain floats: 104 cells a Step, numpy cost 1 ms
    r, g, b = (int(lo + (hi - lo) * t) for lo, hi in ((255, 33), (255, 102), (255, 172)))
    return QColor(r, g, b)


def format_probability(p: float) -> str:
    """0.314 -> "0.314"; tiny ones in scientific form so they do not all read 0.000."""
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def layer_names(n_layers: int) -> list[str]:
    """Rows of the residual stream: after the embeddings, then after each block (the last is the output)."""
    return ["embed"] + [f"block {i}" for i in range(n_layers)]


def _titled(title: QLabel, body: QWidget) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(2, 2, 2, 2)
    layout.setSpacing(2)
    title.setStyleSheet("font-weight: bold")
    title.setWordWrap(True)
    layout.addWidget(title)
    layout.addWidget(body, 1)
    return box


class ActivationsPane(QWidget):
    """Residual norms, MLP activations, LayerNorm statistics and the logit lens of one inspection."""

    mlpLayerRequested = Signal(int)
    lensPositionRequested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._snapshot: InspectionSnapshot | None = None
        self._histogram = GrowingHistogram(HISTOGRAM_BINS)
        self._hist_counts = np.zeros(0, dtype=np.int64)
        self._hist_edges = np.zeros(0, dtype=np.float64)
        self._neuron_order = np.zeros(0, dtype=np.int64)

        self.layer_spin = QSpinBox()
        self.layer_spin.setPrefix("MLP layer ")
        self.layer_spin.setKeyboardTracking(False)
        self.position_spin = QSpinBox()
        self.position_spin.setPrefix("token ")
        self.position_spin.setKeyboardTracking(False)
        self.position_spin.setToolTip("The token the logit lens and LayerNorm table look at")
        self.position_label = QLabel("")
        # One width whatever the token (shortened with … to fit): a token of another length must not move
        # the controls after it, or wrap them and push the views down, at every Play redraw.
        metrics = self.position_label.fontMetrics()
        self.position_label.setFixedWidth(metrics.horizontalAdvance("'" + "n" * POSITION_LABEL_CHARS + "'"))

        self.residual_title = QLabel("Residual stream (L2 norm)")
        self.residual = HeatmapView(
            row_name="after", col_name="token", value_name="norm", levels=None, colormap="inferno"
        )
        self.residual.setToolTip("Click a token to look at it in the logit lens and LayerNorm table")
        self.residual_title.setToolTip(
            "The L2 norm of the residual stream after the embeddings and after each block, for every token. "
            "The residual stream is what flows from block to block: each block adds its attention's and its "
            "MLP's output to it through a shortcut connection (book ch. 4), so its norm grows layer by layer."
        )
        self.row_scale_box = QCheckBox("residual: each row its own colours")
        self.row_scale_box.setChecked(True)
        self.row_scale_box.setToolTip(
            "Colour each layer from its own smallest norm (dark) to its largest (bright). The embeddings' "
            "norm is far smaller than the blocks', so on one scale the embed row is all black. Hover a cell "
            "for its value."
        )
        self.residual.set_row_scaled(True)
        self.mlp_title = QLabel("MLP activations after GELU")
        self.mlp = HeatmapView(row_name="token", col_name="neuron", levels=None, value_format="{:.3f}")
        self.mlp.readout.setWordWrap(True)  # its one-line hint would hold the heatmap wider than it needs
        self.sort_box = QCheckBox("MLP: sort neurons")
        self.sort_box.setToolTip(
            "Order the neurons by their activation at the selected token, most active first, and zoom onto "
            f"the first {SORTED_NEURONS_SHOWN}; the column labels are the neurons' numbers. Wheel to zoom, "
            "drag to pan."
        )
        self.histogram = pg.PlotWidget()
        self.histogram.setBackground("w")
        self.histogram.setMenuEnabled(False)
        self.histogram.hideButtons()
        self.histogram.setLabel("bottom", "activation")
        self.histogram.getAxis("bottom").enableAutoSIPrefix(False)
        self.histogram.setLabel("left", "count")
        self.histogram_curve = pg.PlotDataItem(
            stepMode="center", fillLevel=0, pen=pg.mkPen("#21669c"), brush=pg.mkBrush(33, 102, 172, 90)
        )
        self.histogram.addItem(self.histogram_curve)

        self.lens_title = QLabel("Logit lens")
        self.lens_table = QTableWidget()
        self.lens_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.lens_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.lens_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.lens_table.horizontalHeader().setMinimumSectionSize(LENS_MIN_COLUMN)
        self.lens_table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.lens_table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.lens_table.setWordWrap(False)
        self.ln_title = QLabel("LayerNorm statistics")
        self.ln_table = QTableWidget()
        self.ln_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.ln_table.setColumnCount(len(LN_COLUMNS))
        for c, ((norm, io, stat), text) in enumerate(zip(LN_COLUMNS, ln_headers(), strict=True)):
            header = QTableWidgetItem(text)
            header.setToolTip(f"{norm} {IO_WORDS[io]}: {stat} over the features")
            self.ln_table.setHorizontalHeaderItem(c, header)
        self.ln_table.horizontalHeader().setMinimumSectionSize(20)
        self.ln_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.ln_table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)

        # Top: the two per-layer views side by side (same rows: embed, block 0, ...); bottom: one layer.
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(_titled(self.residual_title, self.residual))
        top.addWidget(_titled(self.lens_title, self.lens_table))
        top.setSizes([450, 550])  # the lens's columns are text: give them the room
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(_titled(self.mlp_title, self.mlp))
        histogram_title = QLabel("Histogram")
        histogram_title.setToolTip("How the MLP activations at the left are spread")
        bottom.addWidget(_titled(histogram_title, self.histogram))
        bottom.addWidget(_titled(self.ln_title, self.ln_table))
        bottom.setSizes([255, 115, 430])  # the LayerNorm table's eight columns fit without scrolling
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(top)
        self.splitter.addWidget(bottom)
        self.splitter.setSizes([500, 500])

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        # One row of controls that wraps when the pane is narrow, so the views' titles keep their width.
        controls = FlowLayout()
        controls.setContentsMargins(4, 2, 4, 2)
        for widget in (
            self.layer_spin,
            self.position_spin,
            self.position_label,
            self.row_scale_box,
            self.sort_box,
        ):
            controls.addWidget(widget)
        layout.addLayout(controls)
        layout.addWidget(self.splitter, 1)

        self.layer_spin.valueChanged.connect(self._on_layer_changed)
        self.position_spin.valueChanged.connect(self._on_position_changed)
        self.residual.cellClicked.connect(lambda _row, col: self.position_spin.setValue(col))
        self.row_scale_box.toggled.connect(self.residual.set_row_scaled)
        self.sort_box.toggled.connect(self._on_sort_toggled)

    # ------------------------------------------------------------------ state readers

    @property
    def snapshot(self) -> InspectionSnapshot | None:
        return self._snapshot

    @property
    def selected_position(self) -> int:
        return self.position_spin.value()

    @property
    def neuron_order(self) -> np.ndarray:
        """(4D,) the neuron shown in each column of the MLP heatmap (0, 1, 2, ... unless sorted)."""
        return self._neuron_order

    @property
    def histogram_counts(self) -> np.ndarray:
        return self._hist_counts

    @property
    def histogram_edges(self) -> np.ndarray:
        return self._hist_edges

    # ------------------------------------------------------------------ input

    def set_snapshot(self, snapshot: InspectionSnapshot) -> None:
        self._snapshot = snapshot
        T, L = snapshot.n_tokens, snapshot.n_layers
        for spin, top, value in (
            (self.layer_spin, L - 1, snapshot.mlp_layer),
            (self.position_spin, T - 1, snapshot.lens_position),
        ):
            spin.blockSignals(True)
            spin.setRange(0, top)
            spin.setValue(value)
            spin.blockSignals(False)
        self._token_labels = axis_labels(snapshot.pieces)  # repeated tokens carry their position: 7:↵
        self.residual.set_matrix(snapshot.residual_norms, layer_names(L), self._token_labels)
        self._draw_mlp()
        width = snapshot.mlp_post.shape[1]
        self.mlp_title.setText(f"MLP (GELU), block {snapshot.mlp_layer}")
        self.mlp_title.setToolTip(
            f"The MLP's activations after GELU in block {snapshot.mlp_layer}: {T} tokens (rows) by {width} "
            "neurons (columns)"
        )
        counts, edges = self._histogram.update(snapshot.mlp_post, (snapshot.lineage, snapshot.mlp_layer))
        self._hist_counts, self._hist_edges = counts, edges
        self.histogram_curve.setData(edges, counts)
        self._fill_lens_table()
        self._show_position(snapshot.lens_position, redraw_mlp=False)  # drawn above, in this order

    def _draw_mlp(self) -> None:
        """The MLP heatmap, its neurons in their own order or sorted by activation at the selected token."""
        snap = self._snapshot
        assert snap is not None
        values = snap.mlp_post  # (T, 4D)
        if self.sort_box.isChecked():
            position = min(self.position_spin.value(), values.shape[0] - 1)
            order = np.argsort(-values[position], kind="stable")  # (4D,) most active first
            values = values[:, order]  # (T, 4D)
        else:
            order = np.arange(values.shape[1])
        self._neuron_order = order
        self.mlp.set_matrix(values, self._token_labels, _neuron_labels(tuple(order.tolist())))

    def _on_sort_toggled(self, on: bool) -> None:
        if self._snapshot is None:
            return
        self._draw_mlp()
        if on:
            self.mlp.show_columns(0, SORTED_NEURONS_SHOWN)
        else:
            self.mlp.reset_view()

    def _on_layer_changed(self, layer: int) -> None:
        if self._snapshot is not None and layer != self._snapshot.mlp_layer:
            self.mlpLayerRequested.emit(layer)

    def _on_position_changed(self, position: int) -> None:
        self._show_position(position)
        if self._snapshot is not None and position != self._snapshot.lens_position:
            self.lensPositionRequested.emit(position)

    # ------------------------------------------------------------------ drawing

    def _show_position(self, position: int, redraw_mlp: bool = True) -> None:
        """Follow the selected token where the snapshot already has the data (norm column, LayerNorm)."""
        snap = self._snapshot
        if snap is None:
            return
        self.residual.mark_column(position)
        piece = snap.pieces[position]
        label = self.position_label
        label.setText(
            label.fontMetrics().elidedText(quoted_token(piece), Qt.TextElideMode.ElideRight, label.width())
        )
        label.setToolTip(f"token {position}: {quoted_token(piece)}")
        if redraw_mlp and self.sort_box.isChecked():
            self._draw_mlp()  # the order follows the selected token
        self._fill_ln_table(position)

    def _fill_lens_table(self) -> None:
        snap = self._snapshot
        assert snap is not None
        rows, k = snap.lens_probs.shape
        table = self.lens_table
        names = layer_names(rows - 1)
        names[-1] += " (output)"
        if (table.rowCount(), table.columnCount()) != (rows, k):  # another model's shape: new cells
            table.clear()
            table.setRowCount(rows)
            table.setColumnCount(k)
            table.setHorizontalHeaderLabels([f"#{i + 1}" for i in range(k)])
            table.setVerticalHeaderLabels(names)
            for r in range(rows):
                for c in range(k):
                    cell = QTableWidgetItem()
                    cell.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    table.setItem(r, c, cell)
        for r in range(rows):  # the cells stay; a Step rewrites what is in them (making 104 cost 2 ms more)
            for c in range(k):
                prob = float(snap.lens_probs[r, c])
                piece = snap.lens_pieces[r][c]
                item = table.item(r, c)
                assert item is not None  # made above for this shape
                item.setText(f"{token_label(piece, LENS_LABEL_CHARS)}\n{format_probability(prob)}")
                item.setToolTip(
                    f"{names[r]}: token {int(snap.lens_ids[r, c])} {quoted_token(piece)}, p = {prob:.4f}"
                )
                item.setBackground(QBrush(probability_colour(prob)))
                item.setForeground(QBrush(QColor("white" if prob > 0.45 else "black")))
        _fit_to_contents(table)
        position = snap.lens_position
        self.lens_title.setText(f"Logit lens at token {position} {quoted_token(snap.pieces[position])}")
        self.lens_title.setToolTip(
            "The final norm and output head applied to the residual stream after each layer: the logits "
            "(one score per token of the vocabulary) it would give, turned into probabilities by softmax. "
            "What the model would predict next if it stopped there; the last row is its real prediction."
        )

    def _fill_ln_table(self, position: int) -> None:
        snap = self._snapshot
        assert snap is not None
        L = snap.n_layers
        table = self.ln_table
        if table.rowCount() != L or table.item(0, 0) is None:  # another model's depth: new cells
            table.setRowCount(L)
            table.setVerticalHeaderLabels([f"block {i}" for i in range(L)])
            for layer in range(L):
                for c, (_norm, _io, _stat) in enumerate(LN_COLUMNS):
                    cell = QTableWidgetItem()
                    cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    table.setItem(layer, c, cell)
        norms = {"norm1": 0, "norm2": 1}
        ios = {"in": 0, "out": 1}
        stats = {"mean": 0, "var": 1}
        for layer in range(L):
            for c, (norm, io, stat) in enumerate(LN_COLUMNS):
                value = float(snap.ln_stats[layer, norms[norm], ios[io], stats[stat], position])
                item = table.item(layer, c)  # the cells stay; each Step rewrites them
                assert item is not None  # made above for this depth
                item.setText(format_stat(value))
                item.setToolTip(f"block {layer} {norm} {IO_WORDS[io]} {stat}: {value:.6g}")
                if io == "out":
                    target = 0.0 if stat == "mean" else 1.0
                    close = abs(value - target) < 0.05
                    item.setBackground(QBrush(QColor("#dff0d8" if close else "#fbe3c8")))
        _fit_to_contents(table)
        self.ln_title.setText(f"LayerNorm at token {position} {quoted_token(snap.pieces[position])}")
        self.ln_title.setToolTip(
            "Mean and variance over the features, before (in) and after (out) each norm. With scale 1 and "
            "shift 0 the output has mean 0 and variance 1 (green); trained scales and shifts move it (orange)."
        )

    # ------------------------------------------------------------------ export

    def export_data(self) -> dict[str, np.ndarray]:
        """Everything the pane shows, for File > Export data (NPZ/CSV)."""
        snap = self._snapshot
        if snap is None:
            return {}
        return {
            "token_ids": np.array(snap.token_ids, copy=True),
            "residual_norms": np.array(snap.residual_norms, copy=True),  # (L+1, T)
            "mlp_layer": np.array(snap.mlp_layer),
            "mlp_post": np.array(snap.mlp_post, copy=True),  # (T, 4D)
            "mlp_histogram_counts": np.array(self._hist_counts, copy=True),
            "mlp_histogram_edges": np.array(self._hist_edges, copy=True),
            "ln_stats": np.array(snap.ln_stats, copy=True),  # (L, 2, 2, 2, T)
            "lens_position": np.array(snap.lens_position),
            "lens_ids": np.array(snap.lens_ids, copy=True),  # (L+1, k)
            "lens_probs": np.array(snap.lens_probs, copy=True),  # (L+1, k)
        }

    def export_table(self) -> tuple[list[str], list[list[object]]]:
        """The logit lens as a CSV table, one row per layer and rank."""
        header = ["position", "layer", "rank", "token_id", "token", "probability"]
        snap = self._snapshot
        if snap is None:
            return header, []
        names = layer_names(snap.n_layers)
        rows = [
            [
                snap.lens_position,
                names[r],
                c + 1,
                int(snap.lens_ids[r, c]),
                snap.lens_pieces[r][c],
                float(snap.lens_probs[r, c]),
            ]
            for r in range(snap.lens_ids.shape[0])
            for c in range(snap.lens_ids.shape[1])
        ]
        return header, rows


@functools.lru_cache(maxsize=4)
def _neuron_labels(order: tuple[int, ...]) -> tuple[str, ...]:
    """The MLP heatmap's column labels: neuron numbers in the order shown (3,072 strings at 124M, the same
    at every Step unless the neurons are sorted by the selected token)."""
    return tuple(str(i) for i in order)


def _fit_to_contents(table: QTableWidget) -> None:
    """Size columns and rows to their text once, after filling. (ResizeToContents mode re-measures a whole
    column on every setItem: 38-59 ms a snapshot instead of about 10.) Rows are fitted when their count
    changes: a row's height is its lines' (two in the lens, one in the LayerNorm table), whatever a Step
    writes in it."""
    table.resizeColumnsToContents()
    if table.property("fitted_rows") != table.rowCount():
        table.resizeRowsToContents()
        table.setProperty("fitted_rows", table.rowCount())
