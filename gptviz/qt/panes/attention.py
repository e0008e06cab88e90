"""The Attention pane: every layer x head at a glance, and one of them (or a layer's average) up close.

The overview is one tiled image of the snapshot's max-pooled thumbnails (one ImageItem, no per-head
items), so 12 x 12 heads redraw in a few milliseconds. Clicking a tile opens that head in the detail
heatmap: query tokens down, key tokens across, hover for both tokens and the weight. The pane keeps only
the last snapshot and what it draws from it.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from gptviz.engine.ablation_spec import Ablation
from gptviz.engine.future_keys import future_keys, future_keys_square
from gptviz.qt.panes.attention_rows import GrowingMap
from gptviz.qt.token_labels import axis_labels
from gptviz.qt.widgets.fit import FlowLayout
from gptviz.qt.widgets.heatmap import LOG_FLOOR, HeatmapView

if TYPE_CHECKING:  # annotations only: importing these at run time would load torch before the window paints
    from gptviz.engine.inspection import InspectionSnapshot


def renormalise_without_first(weights: np.ndarray) -> np.ndarray:
    """(T, T) causal weights -> each row renormalised over keys 1..t, key 0 set to 0.

    The first token often soaks up most of the attention (an "attention sink"); dropping it shows where
    the rest goes. Row 0 can only see token 0, so it has nothing left and stays all zero.
    """
    rest = np.array(weights, dtype=np.float32, copy=True)  # (T, T)
    rest[:, 0] = 0.0
    total = rest.sum(axis=1, keepdims=True)  # (T, 1)
    np.divide(rest, total, out=rest, where=total > 0)
    rest[total[:, 0] <= 0] = 0.0
    return rest


def tile_thumbnails(thumbs: np.ndarray) -> np.ndarray:
    """(L, H, S, S) -> (L*S, H*S) float32: layer l, head h occupies rows l*S.., columns h*S.."""
    L, H, S, _ = thumbs.shape
    return np.ascontiguousarray(thumbs.transpose(0, 2, 1, 3).reshape(L * S, H * S), dtype=np.float32)


class AttentionOverview(pg.GraphicsLayoutWidget):
    """All heads as one tiled image; a click reports (layer, head)."""

    tileClicked = Signal(int, int)
    tileMenuRequested = Signal(int, int, object)  # layer, head, the global QPoint to open a menu at

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setBackground("w")
        self.plot = self.addPlot()
        for side in ("left", "bottom"):
            self.plot.hideAxis(side)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setMouseEnabled(False, False)
        self._labels: list[pg.TextItem] = []  # "L3" left of each row, "H5" above each column: they stay
        # next to the square tiles, where axes would sit at the edges of the (taller or wider) view
        self.view_box = self.plot.getViewBox()
        self.view_box.invertY(True)
        self.view_box.setAspectLocked(True)
        self.view_box.setDefaultPadding(0.0)
        self.view_box.disableAutoRange()  # _fit_range places the tiles and their labels
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setLookupTable(pg.colormap.get("viridis").getLookupTable(nPts=256))  # (256, 3) uint8
        self.plot.addItem(self.image)
        self.grid = pg.PlotCurveItem(pen=pg.mkPen("w", width=2), connect="pairs")
        self.plot.addItem(self.grid)
        self.highlight = QGraphicsRectItem()
        pen = QPen(Qt.GlobalColor.red)
        pen.setWidth(2)
        pen.setCosmetic(True)
        self.highlight.setPen(pen)
        self.highlight.setZValue(10)
        self.plot.addItem(self.highlight)
        self.crosses = pg.PlotCurveItem(
            pen=pg.mkPen("#e4002b", width=2), connect="pairs"
        )  # switched-off heads
        self.crosses.setZValue(11)
        self.plot.addItem(self.crosses)
        self.crossed: set[tuple[int, int]] = set()
        self.tiles = np.zeros((0, 0), dtype=np.float32)
        self.n_layers = self.n_heads = 0
        self.scene().sigMouseClicked.connect(self._on_click)
        self.view_box.sigResized.connect(self._fit_range)

    def set_tiles(self, tiles: np.ndarray, n_layers: int, n_heads: int, levels: tuple[float, float]) -> None:
        """Draw a (L*S, H*S) tiled image; grid lines and axis labels follow the layer/head counts."""
        # The grid and labels are in view units (one per tile), so only the counts matter: the tiles' pixel
        # size changes with every generated token while the map is small, and relabelling costs ~8 ms.
        shape_changed = (n_layers, n_heads) != (self.n_layers, self.n_heads)
        self.tiles, self.n_layers, self.n_heads = tiles, n_layers, n_heads
        self.image.setImage(tiles, levels=levels, autoLevels=False)
        self.image.setRect(QRectF(0, 0, n_heads, n_layers))  # one view unit per tile
        if shape_changed:
            xs = [(x, x) for x in range(1, n_heads)]
            ys = [(y, y) for y in range(1, n_layers)]
            line_x = [v for x in xs for v in x] + [0, n_heads] * len(ys)
            line_y = [v for _ in xs for v in (0, n_layers)] + [v for y in ys for v in y]
            self.grid.setData(np.array(line_x, dtype=float), np.array(line_y, dtype=float))
            self._place_labels(n_layers, n_heads)
        else:
            self._fit_range()  # the first tiles may come before the view has its size

    def _place_labels(self, n_layers: int, n_heads: int) -> None:
        for item in self._labels:
            self.plot.removeItem(item)
        self._labels = []
        every = 1 if n_heads <= 16 else 2
        for head in range(0, n_heads, every):
            self._labels.append(pg.TextItem(f"H{head}", color="#222", anchor=(0.5, 1.0)))
            self._labels[-1].setPos(head + 0.5, 0.0)
        every = 1 if n_layers <= 24 else 2
        for layer in range(0, n_layers, every):
            self._labels.append(pg.TextItem(f"L{layer}", color="#222", anchor=(1.0, 0.5)))
            self._labels[-1].setPos(0.0, layer + 0.5)
        for item in self._labels:
            self.plot.addItem(item, ignoreBounds=True)
        self._fit_range()

    def _fit_range(self, *_args: object) -> None:
        """Show the tiles with room above them for "H0" and left of them for "L11". The room is set in
        pixels: a fixed share of a tile (a third) was less than a line of text once the tiles were small
        (a 1280x720 window), and the head labels were cut off at the top."""
        if not (self.n_layers and self.n_heads):
            return
        heads = [i for i in self._labels if i.textItem.toPlainText().startswith("H")]
        layers = [i for i in self._labels if i.textItem.toPlainText().startswith("L")]
        # A TextItem ignores the view's scale: its bounding rect is in pixels, padding included.
        label_h = max((i.boundingRect().height() for i in heads), default=0.0) + 1.0
        label_w = max((i.boundingRect().width() for i in layers), default=0.0) + 1.0
        rect = self.view_box.boundingRect()
        tile = min(
            (rect.width() - label_w) / self.n_heads, (rect.height() - label_h) / self.n_layers
        )  # pixels a tile gets with the aspect locked
        if tile <= 1.0:
            return  # not laid out yet
        top, left = label_h / tile, label_w / tile  # in tiles
        self.view_box.setRange(QRectF(-left, -top, self.n_heads + left, self.n_layers + top), padding=0.0)

    def set_highlight(self, layer: int, head: int | None) -> None:
        """Outline one tile, or (head None) the whole layer row."""
        if head is None:
            self.highlight.setRect(QRectF(0, layer, self.n_heads, 1))
        else:
            self.highlight.setRect(QRectF(head, layer, 1, 1))

    def tile_at(self, scene_pos: QPointF) -> tuple[int, int] | None:
        if not self.view_box.sceneBoundingRect().contains(scene_pos):
            return None
        point = self.view_box.mapSceneToView(scene_pos)
        layer, head = int(math.floor(point.y())), int(math.floor(point.x()))
        if 0 <= layer < self.n_layers and 0 <= head < self.n_heads:
            return layer, head
        return None

    def set_crossed(self, heads: set[tuple[int, int]]) -> None:
        """Draw an X over each (layer, head) that is switched off."""
        self.crossed = set(heads)
        xs: list[float] = []
        ys: list[float] = []
        for layer, head in sorted(self.crossed):
            xs += [head + 0.15, head + 0.85, head + 0.85, head + 0.15]
            ys += [layer + 0.15, layer + 0.85, layer + 0.15, layer + 0.85]
        self.crosses.setData(np.array(xs, dtype=float), np.array(ys, dtype=float))

    def _on_click(self, event: object) -> None:
        button = event.button()  # type: ignore[attr-defined]
        tile = self.tile_at(event.scenePos())  # type: ignore[attr-defined]
        if tile is None:
            return
        if button == Qt.MouseButton.LeftButton:
            self.tileClicked.emit(*tile)
        elif button == Qt.MouseButton.RightButton:
            event.accept()  # type: ignore[attr-defined]
            self.tileMenuRequested.emit(*tile, event.screenPos().toPoint())  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=4)
def causal_display_mask(n_tokens: int, skip_first: bool) -> np.ndarray:
    """(T, T) bool, read-only: the keys after each query (and the first key when it is skipped), hatched
    in the detail map. Kept for the last few sizes: another head or option redraws at the same size."""
    if not skip_first:
        return future_keys_square(n_tokens)  # (T, T), read-only
    mask = future_keys(n_tokens, n_tokens)  # (T, T)
    mask[:, 0] = True
    mask.flags.writeable = False
    return mask


@functools.lru_cache(maxsize=4)
def causal_mask_runs(n_tokens: int, skip_first: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`mask_runs(causal_display_mask(n_tokens, skip_first))` without looking at the cells: query r hides
    keys r+1.. (one run), and with the first key skipped also key 0 (a second run, or one with the first
    for query 0). Finding them in the 1,000 x 1,000 mask took 2 ms a Step."""
    T = n_tokens
    if not skip_first:
        rows = np.arange(T - 1)  # (T-1,): the last query hides nothing
        begins, ends = rows + 1, np.full(T - 1, T)
    else:  # query 0 hides every key, one run; query r > 0 key 0, then keys r+1.. (none for the last)
        queries = np.arange(1, T)  # (T-1,)
        rows = np.concatenate([[0], np.repeat(queries, 2)])  # (2T-1,)
        begins = np.concatenate([[0], np.stack([np.zeros_like(queries), queries + 1], axis=1).ravel()])
        ends = np.concatenate(
            [[T], np.stack([np.ones_like(queries), np.full_like(queries, T)], axis=1).ravel()]
        )
        keep = begins < ends  # (2T-1,)
        rows, begins, ends = rows[keep], begins[keep], ends[keep]
    for array in (rows, begins, ends):
        array.flags.writeable = False
    return rows, begins, ends


class AttentionPane(QWidget):
    """Overview of all heads (left) and the selected head or layer average as a heatmap (right)."""

    selectionChanged = Signal(int, int)  # (layer, head); head is -1 for the average of the layer's heads
    ablationsRequested = Signal(object)  # tuple of gptviz.engine.ablation.Ablation: what should be off
    queryClicked = Signal(int, int, int)  # (layer, head, query row): open the step-by-step view there

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._snapshot: InspectionSnapshot | None = None
        self._layer = 0
        self._head = 0
        self._base = np.zeros((0, 0), dtype=np.float32)  # the selected map before options
        self._map = GrowingMap()  # decodes only the rows a generated token adds
        self.ablations: tuple[Ablation, ...] = ()  # what the worker says is switched off

        self.layer_spin = QSpinBox()
        self.layer_spin.setPrefix("layer ")
        self.head_spin = QSpinBox()
        self.head_spin.setPrefix("head ")
        self.average_box = QCheckBox("Average of heads")
        self.average_box.setToolTip("Show the mean of all heads of the selected layer")
        self.skip_first_box = QCheckBox("Skip first token")
        self.skip_first_box.setToolTip(
            "Renormalise every row over keys 1..t, leaving out the first token, which often takes most of "
            "the attention"
        )
        self.log_box = QCheckBox("Log colour")
        self.log_box.setToolTip(
            f"Colour by log10 of the weight (from {LOG_FLOOR:g} to 1) to see small weights"
        )
        self.mask_box = QCheckBox("Show mask")
        self.mask_box.setToolTip("Hatch the cells the causal mask hides (a query never sees later keys)")
        self.mask_box.setChecked(True)
        for spin in (self.layer_spin, self.head_spin):
            spin.setKeyboardTracking(False)
            spin.setRange(0, 0)

        controls = FlowLayout()  # wraps onto a second line when the pane is narrow
        controls.setContentsMargins(4, 2, 4, 2)
        for widget in (
            self.layer_spin,
            self.head_spin,
            self.average_box,
            self.skip_first_box,
            self.log_box,
            self.mask_box,
        ):
            controls.addWidget(widget)

        self.overview = AttentionOverview()
        self.overview.setMinimumWidth(160)
        self.overview.setToolTip(
            "Every layer (rows) and head (columns); click one to open it, right-click to switch it off"
        )
        self.heatmap = HeatmapView(row_name="query", col_name="key", value_format="{:.3g}")
        self.heatmap.setToolTip(
            "Each row is one query token's attention weights over the keys (the causal mask hides the keys "
            "after it); the row's weights times the values make that token's context vector (book ch. 3). "
            "Click a query row to see its weights computed step by step."
        )
        self.title = QLabel("No text inspected yet")
        self.title.setStyleSheet("font-weight: bold")
        detail = QWidget()
        detail_layout = QVBoxLayout(detail)
        detail_layout.setContentsMargins(0, 0, 0, 0)
        detail_layout.addWidget(self.title)
        detail_layout.addWidget(self.heatmap, 1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.overview)
        self.splitter.addWidget(detail)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)

        self.ablation_label = QLabel()
        self.ablation_label.setStyleSheet("color: #b00020")
        self.ablation_label.setWordWrap(True)
        self.restore_button = QPushButton("Switch all back on")
        self.restore_button.setToolTip("Undo every ablation: the model computes as it was trained")
        self.restore_button.clicked.connect(lambda: self.ablationsRequested.emit(()))
        ablation_row = QHBoxLayout()
        ablation_row.setContentsMargins(4, 0, 4, 0)
        ablation_row.addWidget(self.ablation_label, 1)
        ablation_row.addWidget(self.restore_button)
        self.ablation_bar = QWidget()
        self.ablation_bar.setLayout(ablation_row)
        self.ablation_bar.setVisible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addWidget(self.ablation_bar)
        layout.addWidget(self.splitter, 1)

        self.layer_spin.valueChanged.connect(lambda v: self.select(v))
        self.head_spin.valueChanged.connect(lambda v: self.select(self._layer, v))
        self.average_box.toggled.connect(self._on_average_toggled)
        self.skip_first_box.toggled.connect(self._on_skip_first_toggled)
        self.log_box.toggled.connect(self._on_log_toggled)
        self.mask_box.toggled.connect(lambda _on: self._show_detail())
        self.overview.tileClicked.connect(self._on_tile_clicked)
        self.overview.tileMenuRequested.connect(self._tile_menu)
        self.heatmap.cellClicked.connect(self._on_cell_clicked)

    # ------------------------------------------------------------------ state readers (for tests and export)

    @property
    def snapshot(self) -> InspectionSnapshot | None:
        return self._snapshot

    @property
    def selected_layer(self) -> int:
        return self._layer

    @property
    def selected_head(self) -> int | None:
        """The head shown, or None while the layer's average is shown."""
        return None if self.average_box.isChecked() else self._head

    @property
    def displayed_matrix(self) -> np.ndarray:
        """(T, T) float32: the weights in the detail heatmap, after "skip first token", before log colour."""
        return self.heatmap.matrix

    # ------------------------------------------------------------------ input

    def set_snapshot(self, snapshot: InspectionSnapshot) -> None:
        """Show a new inspection; the selected layer/head stay where they were when they still exist."""
        self._snapshot = snapshot
        L, H = snapshot.n_layers, snapshot.n_heads
        self._layer, self._head = min(self._layer, L - 1), min(self._head, H - 1)
        for spin, top, value in ((self.layer_spin, L - 1, self._layer), (self.head_spin, H - 1, self._head)):
            spin.blockSignals(True)
            spin.setRange(0, top)
            spin.setValue(value)
            spin.blockSignals(False)
        self._draw_overview()
        self._load_selection()

    def select(self, layer: int, head: int | None = None, *, average: bool | None = None) -> None:
        """Open `head` of `layer` (None keeps the current head); `average` switches the layer's head average
        on or off (None leaves it as it is)."""
        if self._snapshot is None:
            return
        self._layer = max(0, min(int(layer), self._snapshot.n_layers - 1))
        if head is not None:
            self._head = max(0, min(int(head), self._snapshot.n_heads - 1))
        if average is not None:
            self._set_box(self.average_box, average)
        self._load_selection()

    # ------------------------------------------------------------------ ablation

    def set_ablations(self, ablations: tuple) -> None:
        """The worker's word on what is switched off: cross those heads out and list everything."""
        self.ablations = tuple(ablations)
        self.overview.set_crossed(
            {(a.layer, a.index) for a in self.ablations if a.kind == "head" and a.index is not None}
        )
        self.ablation_label.setText(
            "Switched off: " + ", ".join(a.label for a in self.ablations) + " — every pane and the generator "
            "use the model without them"
        )
        self.ablation_bar.setVisible(bool(self.ablations))

    def ablation_actions(self, layer: int, head: int) -> list[tuple[str, tuple]]:
        """(menu text, the ablations it asks for) for a right-click on head `head` of layer `layer`."""
        others = tuple(
            a for a in self.ablations if not (a.kind == "head" and (a.layer, a.index) == (layer, head))
        )
        actions = []
        if len(others) != len(self.ablations):
            actions.append((f"Switch head {layer}.{head} back on", others))
        else:
            actions.append(
                (f"Switch off head {layer}.{head} (output zero)", (*others, Ablation("head", layer, head)))
            )
            actions.append(
                (
                    f"Switch off head {layer}.{head} (its mean over this text)",
                    (*others, Ablation("head", layer, head, "mean")),
                )
            )
        whole = Ablation("attn", layer)
        if whole in self.ablations:
            actions.append(
                (f"Switch layer {layer}'s attention back on", tuple(a for a in self.ablations if a != whole))
            )
        else:
            actions.append((f"Switch off all of layer {layer}'s attention", (*self.ablations, whole)))
        if self.ablations:
            actions.append(("Switch all back on", ()))
        return actions

    def _tile_menu(self, layer: int, head: int, where: object) -> None:
        menu = QMenu(self)
        for text, wanted in self.ablation_actions(layer, head):
            menu.addAction(text).triggered.connect(lambda _=False, w=wanted: self.ablationsRequested.emit(w))
        menu.popup(where)  # type: ignore[arg-type]
        self._menu = menu  # kept for tests and until it closes

    def _on_cell_clicked(self, row: int, _col: int) -> None:
        """A click on a query row of one head's map asks for that head's steps for that query."""
        if self._snapshot is not None and not self.average_box.isChecked():
            self.queryClicked.emit(self._layer, self._head, row)

    def _on_tile_clicked(self, layer: int, head: int) -> None:
        self.select(layer, head, average=False)

    def _on_average_toggled(self, _on: bool) -> None:
        self._load_selection()

    def _on_skip_first_toggled(self, _on: bool) -> None:
        self._draw_overview()
        self._show_detail()

    def _on_log_toggled(self, on: bool) -> None:
        self._draw_overview()
        self.heatmap.set_log_scale(on)

    @staticmethod
    def _set_box(box: QCheckBox, on: bool) -> None:
        box.blockSignals(True)
        box.setChecked(on)
        box.blockSignals(False)

    # ------------------------------------------------------------------ drawing

    def overview_tiles(self) -> np.ndarray:
        """(L*S, H*S) float32: what the overview draws (log10 when the log colour is on)."""
        if self._snapshot is None:
            return np.zeros((0, 0), dtype=np.float32)
        maps = self._snapshot.attention
        thumbs = maps.thumbnails_skip_first if self.skip_first_box.isChecked() else maps.thumbnails
        tiles = tile_thumbnails(thumbs)  # (L*S, H*S)
        if self.log_box.isChecked():
            return np.log10(np.maximum(tiles, LOG_FLOOR))
        return tiles

    def _draw_overview(self) -> None:
        if self._snapshot is None:
            return
        levels = (math.log10(LOG_FLOOR), 0.0) if self.log_box.isChecked() else (0.0, 1.0)
        self.overview.set_tiles(
            self.overview_tiles(), self._snapshot.n_layers, self._snapshot.n_heads, levels
        )

    def _load_selection(self) -> None:
        """Rebuild the dense map for the selected layer/head (the only costly step) and show it."""
        snap = self._snapshot
        if snap is None:
            return
        average = self.average_box.isChecked()
        self._base = self._map.get(snap, self._layer, None if average else self._head)  # (T, T)
        for spin, value in ((self.layer_spin, self._layer), (self.head_spin, self._head)):
            spin.blockSignals(True)
            spin.setValue(value)
            spin.blockSignals(False)
        self.head_spin.setEnabled(not average)
        self.overview.set_highlight(self._layer, None if average else self._head)
        self._show_detail()
        self.selectionChanged.emit(self._layer, -1 if average else self._head)

    def _show_detail(self) -> None:
        snap = self._snapshot
        if snap is None:
            return
        skip = self.skip_first_box.isChecked()
        matrix = renormalise_without_first(self._base) if skip else self._base  # (T, T)
        mask = runs = None
        if self.mask_box.isChecked():
            mask = causal_display_mask(matrix.shape[0], skip)  # (T, T)
            runs = causal_mask_runs(matrix.shape[0], skip)
        labels = axis_labels(snap.pieces)  # repeated tokens carry their position: 7:↵
        self.heatmap.set_matrix(matrix, labels, labels, mask=mask, runs=runs)
        self.heatmap.set_log_scale(self.log_box.isChecked())
        what = f"average of {snap.n_heads} heads" if self.average_box.isChecked() else f"head {self._head}"
        extra = ", first token skipped" if skip else ""
        cropped = f" (first {snap.cropped} cut to fit the context)" if snap.cropped else ""
        self.title.setText(f"Layer {self._layer}, {what}{extra} \u2014 {snap.n_tokens} tokens{cropped}")

    # ------------------------------------------------------------------ export

    def export_data(self) -> dict[str, np.ndarray]:
        """The shown map and its context, for File > Export data (NPZ/CSV)."""
        snap = self._snapshot
        if snap is None:
            return {}
        return {
            "attention": np.array(self.displayed_matrix, copy=True),  # (T, T) query x key
            "token_ids": np.array(snap.token_ids, copy=True),
            "layer": np.array(self._layer),
            "head": np.array(-1 if self.selected_head is None else self._head),
            "skip_first_token": np.array(self.skip_first_box.isChecked()),
            "overview": self.overview_tiles(),
        }

    def export_table(self) -> tuple[list[str], list[list[object]]]:
        """The shown map as a CSV table: one row per query token, one column per key token."""
        snap = self._snapshot
        if snap is None:
            return ["query"], []
        header = ["query"] + [f"{i}:{piece}" for i, piece in enumerate(snap.pieces)]
        rows = [
            [f"{i}:{piece}", *row.tolist()]
            for i, (piece, row) in enumerate(zip(snap.pieces, self.displayed_matrix, strict=True))
        ]
        return header, rows
