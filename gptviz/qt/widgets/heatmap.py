"""A matrix as one pyqtgraph image with token labels on both axes, a colour bar and a hover readout.

Speed comes from drawing the whole matrix as one ImageItem (float32, C-contiguous, fixed levels, a
256-entry lookup table) instead of one item per cell. Labels are chosen for the visible range and the
pixels it has, so zooming in shows more of them and they never overlap.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsRectItem, QLabel, QVBoxLayout, QWidget

from gptviz.qt.token_labels import elide, visible_whitespace

MAX_LABEL_CHARS = 14
LOG_FLOOR = 1e-4  # log scale shows weights from 1e-4 (and clamps smaller ones to it)


HINT = "hover: value \u00b7 drag: pan \u00b7 wheel: zoom"  # one line even in a narrow view


@functools.lru_cache(maxsize=1 << 16)  # a 1,000-token axis is relabelled after every generation step
def display_label(text: str) -> str:
    """Any label as a tick label: one line (newlines, tabs and other unprintables made visible as in
    every pane, spaces kept so "block 0" stays readable), long ones shortened with ….

    Panes pass tokens through `token_label` first, so a token's spaces show as · here too."""
    if not text.strip():
        shown = visible_whitespace(text)  # only whitespace: show every character, spaces too
    else:
        shown = "".join(ch if ch == " " else visible_whitespace(ch) for ch in text)
    return elide(shown, MAX_LABEL_CHARS)


def nice_step(minimum: float) -> int:
    """The smallest of 1, 2, 3, 4, 5, 10, 20, 50, 100, ... that is >= minimum."""
    if minimum <= 5:
        return max(1, math.ceil(minimum))
    power = 10 ** math.floor(math.log10(minimum))
    for factor in (1, 2, 5, 10):
        if factor * power >= minimum:
            return int(factor * power)
    return int(10 * power)


class TokenAxis(pg.AxisItem):
    """An axis whose ticks sit at cell centres and read as the tokens (or any labels) of the rows/columns.

    Only as many labels as fit in the axis's pixels are shown (every 1st, 2nd, 5th, 10th ... cell);
    zooming in shows more.
    """

    def __init__(self, orientation: str, **kwargs: object) -> None:
        super().__init__(orientation, **kwargs)
        # Tokens have no units to scale: without this every pan or Step re-set the axis label's HTML.
        self.enableAutoSIPrefix(False)
        if orientation in ("top", "bottom"):
            # let the first and last labels run a little past the ends of the axis instead of vanishing
            self.style["hideOverlappingLabels"] = 40
        self._labels: list[str] = []
        self._given: list[str] = []  # the labels as passed to set_labels, before display_label
        self._widths: np.ndarray = np.zeros(0)

    @property
    def labels(self) -> list[str]:
        return list(self._labels)

    def set_labels(self, labels: Sequence[str]) -> None:
        """New labels; those already shown keep their measured widths (a generation step adds one label to
        a 1,000-label axis, and measuring text is what costs)."""
        given = list(labels)
        if given == self._given:  # the same labels again (another head, a redraw): nothing to remeasure
            return
        self._given = given
        labels = [display_label(str(s)) for s in given]
        if labels == self._labels:
            return
        metrics = QFontMetrics(self.style.get("tickFont") or QFont())
        font_key = metrics.height(), metrics.averageCharWidth()
        if getattr(self, "_font_key", None) != font_key:
            self._width_memo: dict[str, float] = {}
            self._font_key = font_key
        memo = self._width_memo
        widths = []
        for label in labels:
            width = memo.get(label)
            if width is None:
                width = memo[label] = float(metrics.horizontalAdvance(label))
            widths.append(width)
        self._labels = labels
        self._widths = np.array(widths, dtype=np.float32)
        self._line_height = metrics.height()
        self.picture = None
        self.update()

    def label_step(self, lo: float, hi: float, size: float) -> int:
        """How many cells apart the labels must be so the ones in [lo, hi) fit in `size` pixels."""
        n = len(self._labels)
        first, last = max(0, int(math.floor(lo))), min(n - 1, int(math.ceil(hi)) - 1)
        if last < first or size <= 0:
            return 0
        if self.orientation in ("left", "right"):
            needed = self._line_height + 2.0
        else:
            needed = float(self._widths[first : last + 1].max()) + 10.0
        pixels_per_cell = size / max(hi - lo, 1e-9)
        return nice_step(needed / pixels_per_cell)

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list:  # noqa: N802 (pyqtgraph API)
        minVal, maxVal = min(minVal, maxVal), max(minVal, maxVal)  # an inverted axis passes them swapped
        step = self.label_step(minVal, maxVal, size)
        if step == 0:
            return []
        first = max(0, int(math.floor(minVal)))
        last = min(len(self._labels) - 1, int(math.ceil(maxVal)) - 1)
        start = -(-first // step) * step
        return [(float(step), [i + 0.5 for i in range(start, last + 1, step)])]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        out = []
        for v in values:
            i = int(math.floor(v))
            out.append(self._labels[i] if 0 <= i < len(self._labels) else "")
        return out


class HeatmapView(QWidget):
    """A (rows, columns) matrix drawn as one image: row 0 at the top, labels on the left and top axes.

    Levels are fixed (default (0, 1), right for probabilities) or None for autoscale. Masked cells
    (`set_mask`) are drawn hatched grey instead of with a colour. Hovering shows
    "query 'you' -> key 'Every': 0.41" in the readout line (names set by `row_name`/`col_name`).
    """

    cellHovered = Signal(int, int)  # (row, column) under the mouse
    cellClicked = Signal(int, int)  # (row, column) clicked

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        row_name: str = "query",
        col_name: str = "key",
        value_name: str = "",
        levels: tuple[float, float] | None = (0.0, 1.0),
        colormap: str = "viridis",
        value_format: str = "{:.2f}",
    ) -> None:
        super().__init__(parent)
        self.row_name, self.col_name, self.value_name = row_name, col_name, value_name
        self.value_format = value_format
        self._default_levels = levels
        self._levels_override: tuple[float, float] | None = None
        self._log = False
        self._row_scaled = False
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._display = np.zeros((0, 0), dtype=np.float32)
        self._mask: np.ndarray | None = None
        self._bar_label: str | None = None  # the colour bar's label as last set
        self._levels: tuple[float, float] = (0.0, 1.0)
        self._row_labels_full: list[str] = []
        self._col_labels_full: list[str] = []

        self._row_axis = TokenAxis("left")
        self._col_axis = TokenAxis("top")
        self.plot_widget = pg.PlotWidget(axisItems={"left": self._row_axis, "top": self._col_axis})
        self.plot_widget.setBackground("w")
        self.plot = self.plot_widget.getPlotItem()
        self.plot.showAxis("top")
        self.plot.hideAxis("bottom")
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        for axis in (self._row_axis, self._col_axis):
            axis.setPen(pg.mkPen("#555"))
            axis.setTextPen(pg.mkPen("#222"))
        self.view_box = self.plot.getViewBox()
        self.view_box.invertY(True)
        self.view_box.setDefaultPadding(0.0)

        # Masked cells: a light grey fill and a hatch drawn over the image along the mask's outline, so
        # the image itself needs no NaN copy of the matrix.
        self._mask_fill = QGraphicsPathItem()
        self._mask_fill.setBrush(QBrush(QColor("#ececec")))
        self._hatch = QGraphicsPathItem()
        self._hatch.setBrush(QBrush(QColor("#9a9a9a"), Qt.BrushStyle.BDiagPattern))
        for z, item in enumerate((self._mask_fill, self._hatch)):
            item.setPen(QPen(Qt.PenStyle.NoPen))
            item.setZValue(5 + z)
            item.setVisible(False)
            self.plot.addItem(item)

        self._marker = QGraphicsRectItem()  # outlines a chosen column (the selected token)
        marker_pen = QPen(QColor("#e4002b"))
        marker_pen.setWidth(2)
        marker_pen.setCosmetic(True)
        self._marker.setPen(marker_pen)
        self._marker.setZValue(10)
        self._marker.setVisible(False)
        self._marker_column: int | None = None
        self.plot.addItem(self._marker)

        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setAutoDownsample(True)
        self.plot.addItem(self.image)
        self.colormap = pg.colormap.get(colormap)
        self.lut = self.colormap.getLookupTable(nPts=256)  # (256, 3) uint8
        self.image.setLookupTable(self.lut)
        self.color_bar = pg.ColorBarItem(
            values=(0.0, 1.0), colorMap=self.colormap, interactive=False, width=12, colorMapMenu=False
        )
        self.color_bar.setImageItem(self.image, insert_in=self.plot)
        self.color_bar.axis.setTextPen(pg.mkPen("#222"))

        self._readout_cell: tuple[int, int] | None = None  # the cell the readout describes
        self.readout = QLabel(HINT)
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.readout.setWordWrap(True)  # a one-line hint would hold the heatmap wider than it needs
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.plot_widget, 1)
        layout.addWidget(self.readout)

        scene = self.plot_widget.scene()
        scene.sigMouseMoved.connect(self._on_mouse_moved)
        scene.sigMouseClicked.connect(self._on_mouse_clicked)

    # ------------------------------------------------------------------ data

    @property
    def matrix(self) -> np.ndarray:
        """The values as given to set_matrix (float32), before log scale or mask."""
        return self._matrix

    @property
    def display_matrix(self) -> np.ndarray:
        """What the image draws: the matrix, or its log10 when the log scale is on (masked cells are
        covered by the hatch, see `hatch_mask`)."""
        return self._display

    @property
    def hatch_mask(self) -> np.ndarray | None:
        """(R, C) bool, True where a cell is hatched instead of coloured; None when nothing is masked.
        (Not `mask`: that would hide QWidget.mask(), the widget's clip region.)"""
        return self._mask

    @property
    def levels(self) -> tuple[float, float]:
        """The drawn colour range (in log10 units when the log scale is on)."""
        return self._levels

    @property
    def log_scale(self) -> bool:
        return self._log

    @property
    def row_scaled(self) -> bool:
        return self._row_scaled

    @property
    def row_labels(self) -> list[str]:
        return self._row_labels_full

    @property
    def col_labels(self) -> list[str]:
        return self._col_labels_full

    def set_matrix(
        self,
        matrix: np.ndarray,
        row_labels: Sequence[str] | None = None,
        col_labels: Sequence[str] | None = None,
        levels: tuple[float, float] | None = None,
        mask: np.ndarray | None = None,
        runs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Show `matrix` (R, C). Labels default to row/column numbers; `levels` overrides the default range
        for this matrix; `mask` (R, C) bool marks cells to hatch instead of colour, and `runs` may give its
        runs as `mask_runs` would find them, when the caller knows them (the causal mask: one a row). A matrix of the same
        shape as the last keeps the zoom and pan, and so does a larger one (a generation step) while the
        user is zoomed in; otherwise a new shape shows the whole matrix."""
        data = np.ascontiguousarray(matrix, dtype=np.float32)  # (R, C)
        if data.ndim != 2:
            raise ValueError(f"a heatmap needs a 2-D matrix, got shape {data.shape}")
        rows, cols = data.shape
        same_shape = data.shape == self._matrix.shape
        old_rows, old_cols = self._matrix.shape
        (x0, x1), (y0, y1) = self.view_box.viewRange()
        # Zoomed in (not showing the whole old matrix) and the matrix grew by a step: keep the zoom.
        zoomed = (
            old_rows > 0
            and rows >= old_rows
            and cols >= old_cols
            and (x1 - x0 < old_cols - 0.5 or y1 - y0 < old_rows - 0.5)
        )
        self._matrix = data
        self._row_labels_full = [str(s) for s in row_labels] if row_labels is not None else _numbers(rows)
        self._col_labels_full = [str(s) for s in col_labels] if col_labels is not None else _numbers(cols)
        if len(self._row_labels_full) != rows or len(self._col_labels_full) != cols:
            raise ValueError(
                f"{len(self._row_labels_full)} row and {len(self._col_labels_full)} column labels "
                f"for a {rows} x {cols} matrix"
            )
        self._row_axis.set_labels(self._row_labels_full)
        self._col_axis.set_labels(self._col_labels_full)
        self._levels_override = levels
        self._set_mask(mask, runs)
        self._redraw()
        self.view_box.setLimits(
            xMin=0,
            xMax=max(cols, 1),
            yMin=0,
            yMax=max(rows, 1),
            minXRange=min(cols, 2),
            minYRange=min(rows, 2),
        )
        if not same_shape and not zoomed:  # same shape (another head, an option) or a step: keep the zoom
            self.view_box.setRange(QRectF(0, 0, max(cols, 1), max(rows, 1)), padding=0)
        self._refresh_readout()

    def set_mask(self, mask: np.ndarray | None) -> None:
        self._set_mask(mask)
        self._redraw()
        self._refresh_readout()

    def _refresh_readout(self) -> None:
        """The readout shows the hovered cell's value now, not a value from before new data (another
        model, a toggled option); a cell that is gone takes the hint back."""
        cell = self._readout_cell
        if cell is None:
            return
        rows, cols = self._matrix.shape
        if cell[0] < rows and cell[1] < cols:
            self.readout.setText(self.readout_text(*cell))
        else:
            self._readout_cell = None
            self.readout.setText(HINT)

    def _set_mask(
        self, mask: np.ndarray | None, runs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    ) -> None:
        """Keep the mask and outline its cells: one rectangle per run of masked cells in a row."""
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != self._matrix.shape:
                raise ValueError(f"a {mask.shape} mask for a {self._matrix.shape} matrix")
            if not mask.any():
                mask = None
        self._mask = mask
        if mask is None:
            path = QPainterPath()
        else:
            path = _runs_path(*(runs if runs is not None else mask_runs(mask)))
        for item in (self._mask_fill, self._hatch):
            item.setPath(path)
            item.setVisible(mask is not None)

    def set_log_scale(self, enabled: bool) -> None:
        """Colour by log10 of the value (clamped at LOG_FLOOR), to see the small weights a linear scale hides."""
        if bool(enabled) != self._log:
            self._log = bool(enabled)
            self._redraw()

    def set_row_scaled(self, enabled: bool) -> None:
        """Colour each row from its own minimum (dark) to its own maximum (bright), for rows whose ranges
        differ so much that one scale leaves a row a single colour (the residual stream: the embeddings'
        norm is about 1, the blocks' 20 to 50). The readout still reads the values themselves."""
        if bool(enabled) != self._row_scaled:
            self._row_scaled = bool(enabled)
            if self._matrix.size:  # nothing drawn yet: the next set_matrix uses it
                self._redraw()

    def _linear_levels(self) -> tuple[float, float]:
        if self._levels_override is not None:
            return self._levels_override
        if self._default_levels is not None:
            return self._default_levels
        if self._mask is None and self._matrix.size:
            lo, hi = float(self._matrix.min()), float(self._matrix.max())  # no copy: 3M cells in ~2 ms
            if math.isfinite(lo) and math.isfinite(hi):
                return (lo, hi) if hi > lo else (lo, lo + 1.0)
        keep = np.isfinite(self._matrix)
        if self._mask is not None:
            keep &= ~self._mask
        finite = self._matrix[keep]
        if finite.size == 0:
            return (0.0, 1.0)
        lo, hi = float(finite.min()), float(finite.max())
        return (lo, hi) if hi > lo else (lo, lo + 1.0)

    def _redraw(self) -> None:
        lo, hi = self._linear_levels()
        if self._log:
            floor = max(lo, LOG_FLOOR) if lo > 0 else LOG_FLOOR
            top = max(hi, floor * 10)
            display = np.log10(np.maximum(self._matrix, floor))  # (R, C)
            levels = (math.log10(floor), math.log10(top))
            label = "log10"
        else:
            display = self._matrix
            levels = (lo, hi)
            label = ""
        if self._row_scaled and display.size:
            display, levels = _scale_rows(display), (0.0, 1.0)
            label = "per row"
        if label != self._bar_label:  # setting it re-lays the axis out (a QGraphicsTextItem's HTML)
            self._bar_label = label
            self.color_bar.axis.setLabel(label)
        self._display = np.ascontiguousarray(display, dtype=np.float32)
        self._levels = levels
        rows, cols = self._matrix.shape
        self.image.setImage(self._display, levels=levels, autoLevels=False)
        self.image.setRect(QRectF(0, 0, cols, rows))
        self.color_bar.setLevels(levels)

    @property
    def marked_column(self) -> int | None:
        return self._marker_column

    def mark_column(self, column: int | None) -> None:
        """Outline one column (None: no outline), e.g. the token other views are looking at."""
        rows, cols = self._matrix.shape
        if column is None or not 0 <= column < cols:
            self._marker_column = None
            self._marker.setVisible(False)
            return
        self._marker_column = int(column)
        self._marker.setRect(QRectF(column, 0, 1, rows))
        self._marker.setVisible(True)

    # ------------------------------------------------------------------ mouse

    def cell_at(self, scene_pos: QPointF) -> tuple[int, int] | None:
        """(row, column) under a scene position, or None outside the matrix."""
        if not self.view_box.sceneBoundingRect().contains(scene_pos):
            return None
        point = self.view_box.mapSceneToView(scene_pos)
        row, col = int(math.floor(point.y())), int(math.floor(point.x()))
        rows, cols = self._matrix.shape
        if 0 <= row < rows and 0 <= col < cols:
            return row, col
        return None

    def readout_text(self, row: int, col: int) -> str:
        """ "query 'you' -> key 'Every': 0.41" for one cell."""
        value = float(self._matrix[row, col])
        masked = self._mask is not None and bool(self._mask[row, col])
        shown = "masked" if masked else self.value_format.format(value)
        if self.value_name:
            shown = f"{self.value_name} {shown}"
        row_label, col_label = self._row_labels_full[row], self._col_labels_full[col]
        return f"{self.row_name} {row_label!r} -> {self.col_name} {col_label!r}: {shown}"

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        cell = self.cell_at(scene_pos)
        if cell is None:
            return
        self._readout_cell = cell
        self.readout.setText(self.readout_text(*cell))
        self.cellHovered.emit(*cell)

    def _on_mouse_clicked(self, event: object) -> None:
        if event.button() != Qt.MouseButton.LeftButton:  # type: ignore[attr-defined]
            return
        cell = self.cell_at(event.scenePos())  # type: ignore[attr-defined]
        if cell is not None:
            self._readout_cell = cell
            self.readout.setText(self.readout_text(*cell))
            self.cellClicked.emit(*cell)

    def show_columns(self, first: int, count: int) -> None:
        """Zoom to `count` columns from `first`, every row in view (e.g. the most active neurons)."""
        rows, cols = self._matrix.shape
        first = max(0, min(int(first), cols - 1))
        last = min(cols, first + max(1, int(count)))
        self.view_box.setRange(QRectF(first, 0, last - first, max(rows, 1)), padding=0)

    def reset_view(self) -> None:
        rows, cols = self._matrix.shape
        self.view_box.setRange(QRectF(0, 0, max(cols, 1), max(rows, 1)), padding=0)


def mask_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The runs of True cells in each row of `mask` (R, C): (rows, begins, ends), each (n,), a run covering
    columns begin..end-1, in row-major order. One comparison of neighbours and one nonzero over the cells
    (about 1 ms for a 1,000 x 1,000 causal mask; padding and diffing as int8 took 6 ms, on every Step)."""
    R, C = mask.shape
    change = mask[:, 1:] != mask[:, :-1]  # (R, C-1): a run starts or ends before column c + 1
    rows, cols = np.nonzero(change)  # (m,) each, row-major
    first = np.flatnonzero(mask[:, 0])  # rows whose run starts at column 0
    last = np.flatnonzero(mask[:, -1])  # rows whose run ends at column C
    rows = np.concatenate([first, rows, last])
    cols = np.concatenate([np.zeros_like(first), cols + 1, np.full_like(last, C)])
    order = np.lexsort((cols, rows))  # by row, then column: each row's boundaries alternate start, end
    rows, cols = rows[order], cols[order]
    return rows[0::2], cols[0::2], cols[1::2]


def _runs_path(rows: np.ndarray, begins: np.ndarray, ends: np.ndarray) -> QPainterPath:
    """One closed rectangle per run, built from arrays (pyqtgraph's arrayToQPath) rather than rectangle by
    rectangle in Python."""
    if rows.size == 0:
        return QPainterPath()
    x = np.stack([begins, ends, ends, begins, begins], axis=1).astype(np.float64).ravel()  # (5n,)
    y = np.stack([rows, rows, rows + 1, rows + 1, rows], axis=1).astype(np.float64).ravel()  # (5n,)
    connect = np.ones((rows.size, 5), dtype=np.int32)  # (n, 5)
    connect[:, -1] = 0  # each rectangle is its own closed figure
    return pg.arrayToQPath(x, y, connect=connect.ravel())


def _scale_rows(matrix: np.ndarray) -> np.ndarray:
    """(R, C) -> (R, C) in [0, 1]: each row from its finite minimum to its maximum; a flat row is 0.5."""
    finite = np.isfinite(matrix)
    lo = np.min(np.where(finite, matrix, np.inf), axis=1, keepdims=True)  # (R, 1)
    hi = np.max(np.where(finite, matrix, -np.inf), axis=1, keepdims=True)  # (R, 1)
    with np.errstate(invalid="ignore"):  # a row with no finite value: inf - inf, drawn as 0.5 below
        span = hi - lo
        flat = ~(span > 0)
        scaled = (matrix - lo) / np.where(flat, 1.0, span)  # (R, C)
    return np.where(flat, 0.5, scaled).astype(np.float32)


def _numbers(n: int) -> list[str]:
    return [str(i) for i in range(n)]
