"""The Training pane's per-layer diagnostics: parts × steps heatmaps of gradient norms and update ratios
(log colour), and each head's attention entropy over the evaluations.

How to read them (gptviz.engine.training_diagnostics measures them):
- Gradient norms: a healthy run shows every row in similar colours that drift slowly. A row far darker
  than its neighbours all along is a part that gets (almost) no gradient: a dead layer. A vertical bright
  stripe is a spike in one step (clipping, if on, caps its effect).
- Update ratios ‖Δw‖/‖w‖: around 1e-3 (log10 ≈ −3) is the usual rule of thumb. Rows rising towards 1e-2 and
  above mean the learning rate is too high for that part; rows sinking to 1e-5 have stopped learning.
- Attention entropy: a head starts near the uniform entropy of the probe prompt and falls as it learns to
  look at a few tokens; a head at 0 attends to one token only; one that never leaves the top stays uniform.
- Weight histograms (qt.panes.training.weight_histograms): one part's weights, bins × evaluations.

A mixin of TrainingPane: the data come with each update (or metrics line) and are kept in `SeriesTable`s,
drawn at the redraw timer's pace, and only for the tab that is visible.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

MAX_COLUMNS = 2000  # steps kept per heatmap: the oldest are thinned out (every second) beyond this


class SeriesTable:
    """Named values per step (columns = steps, rows = names), bounded like CurveBuffer: past
    `max_columns` every second column is dropped and only every `stride`-th new one is kept."""

    def __init__(self, max_columns: int = MAX_COLUMNS) -> None:
        self.max_columns = max_columns
        self.clear()

    def clear(self) -> None:
        self.names: list[str] = []
        self.steps: list[int] = []
        self.columns: list[np.ndarray] = []
        self.stride = 1
        self._seen = 0
        self.version = getattr(self, "version", 0) + 1

    def append(self, step: int, values: dict[str, float | None] | list | None) -> None:
        if not values:
            return
        if isinstance(values, list):  # [layer][head] -> "L0 H0", "L0 H1", ...
            values = {
                f"L{layer} H{head}": v for layer, row in enumerate(values) for head, v in enumerate(row)
            }
        index = self._seen
        self._seen += 1
        if index % self.stride:
            return
        for name in values:
            if name not in self.names:
                self.names.append(name)
                self.columns = [np.append(c, np.nan) for c in self.columns]  # a part that appears later
        column = np.array(
            [np.nan if (v := values.get(n)) is None else float(v) for n in self.names], dtype=np.float64
        )  # (M,)
        self.steps.append(int(step))
        self.columns.append(column)
        self.version += 1
        if len(self.steps) > self.max_columns:
            self.steps = self.steps[::2]
            self.columns = self.columns[::2]
            self.stride *= 2

    def matrix(self) -> np.ndarray:
        """(names, steps) float64, NaN where a value is missing."""
        if not self.columns:
            return np.zeros((0, 0))
        return np.stack(self.columns, axis=1)  # (M, N)


class DiagnosticsView(QWidget):
    """One heatmap (rows = parts or heads, columns = steps) with a colour bar and a hover readout."""

    def __init__(self, table: SeriesTable, title: str, log: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = table
        self.title = title
        self.log = log
        self._drawn = -1
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot = pg.PlotWidget()
        self.plot.addItem(self.image)
        self.plot.invertY(True)
        self.plot.setLabel("bottom", "step")
        self.plot.setMinimumHeight(120)
        self.plot.getPlotItem().setMouseEnabled(x=True, y=False)
        colormap = pg.colormap.get("viridis")
        self.image.setLookupTable(colormap.getLookupTable(nPts=256))
        self.colorbar = pg.ColorBarItem(
            colorMap=colormap, label=("log10 " if log else "") + title, interactive=False, width=12
        )
        self.colorbar.setImageItem(self.image, insert_in=self.plot.getPlotItem())
        self.readout = QLabel(" ")
        self.readout.setStyleSheet("color: #333")
        self._proxy = pg.SignalProxy(self.plot.scene().sigMouseMoved, rateLimit=30, slot=self._on_hover)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.readout)
        self.shown = np.zeros((0, 0), dtype=np.float32)  # what the image holds: log10 values or plain

    def empty_text(self) -> str:
        return f"no {self.title} yet: they arrive with each training step"

    def draw(self) -> None:
        """Redraw when the table changed since the last draw."""
        if self._drawn == self.table.version:
            return
        self._drawn = self.table.version
        values = self.table.matrix()  # (M, N)
        if values.size == 0:
            self.image.clear()
            self.shown = np.zeros((0, 0), dtype=np.float32)
            self.readout.setText(self.empty_text())
            return
        if self.readout.text() == self.empty_text():  # the data came: the empty notice must not stay
            self.readout.setText(" ")
        with np.errstate(divide="ignore", invalid="ignore"):
            shown = np.log10(values) if self.log else values.copy()  # (M, N)
        shown[~np.isfinite(shown)] = np.nan
        self.shown = np.ascontiguousarray(shown, dtype=np.float32)  # (M, N)
        finite = self.shown[np.isfinite(self.shown)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if high - low < 1e-9:
            high = low + 1.0
        steps = self.table.steps
        filled = np.where(np.isfinite(self.shown), self.shown, low)  # (M, N) missing values as the lowest
        self.image.setImage(filled, levels=(low, high), autoLevels=False)
        # One column per record, labelled with its step: evaluations are not evenly spaced (step 0, step
        # 1, then every eval_freq), so a step axis would stretch some columns over others' steps.
        self.image.setRect(QRectF(0, 0, len(steps), len(self.table.names)))
        every = max(1, math.ceil(len(steps) / 10))
        self.plot.getAxis("bottom").setTicks(
            [[(i + 0.5, f"{step:,}") for i, step in enumerate(steps) if i % every == 0]]
        )
        self.colorbar.setLevels((low, high))
        self.plot.getAxis("left").setTicks([self.row_ticks()])

    def row_ticks(self) -> list[tuple[float, str]]:
        """The left axis's labels: every row's name, or every few when there are many (at most ~24)."""
        names = self.table.names
        every = max(1, math.ceil(len(names) / 24))
        return [(i + 0.5, name) for i, name in enumerate(names) if i % every == 0]

    def value_at(self, x: float, y: float) -> str:
        """The readout for a point of the plot (data coordinates: column, row): part or head, step, value."""
        names, steps = self.table.names, self.table.steps
        if not names or not steps:
            return " "
        row = int(math.floor(y))
        if not 0 <= row < len(names):
            return " "
        column = int(math.floor(x))
        if not 0 <= column < len(steps):
            return " "
        value = self.table.columns[column][row] if row < len(self.table.columns[column]) else math.nan
        text = f"{names[row]} · step {steps[column]:,} · {self.title} "
        return text + ("–" if not math.isfinite(value) else f"{value:.3g}")

    def _on_hover(self, event) -> None:
        pos = event[0]
        if not self.plot.sceneBoundingRect().contains(pos):
            return
        point = self.plot.getPlotItem().vb.mapSceneToView(pos)
        self.readout.setText(self.value_at(point.x(), point.y()))


class DiagnosticsMixin:
    """The diagnostics tables and views (part of TrainingPane)."""

    def _build_diagnostics(self) -> None:
        self.grad_norm_table = SeriesTable()
        self.update_ratio_table = SeriesTable()
        self.entropy_table = SeriesTable()
        self.grad_norm_view = DiagnosticsView(self.grad_norm_table, "gradient norm", log=True)
        self.update_ratio_view = DiagnosticsView(self.update_ratio_table, "update ratio", log=True)
        self.entropy_view = DiagnosticsView(self.entropy_table, "attention entropy (nats)", log=False)
        from gptviz.qt.panes.training.weight_histograms import WeightHistogramsView

        self.histogram_view = WeightHistogramsView()
        self.grad_norm_view.setToolTip(
            "L2 norm of each part's gradient at each step, before clipping (log colour). A row far darker "
            "than the others all along: a part that gets no gradient (a dead layer)"
        )
        self.update_ratio_view.setToolTip(
            "‖Δw‖/‖w‖ of each part at each step (log colour). About 1e-3 is usual; rising to 1e-2 and "
            "above: learning rate too high for that part; sinking to 1e-5: it stopped learning"
        )
        self.entropy_view.setToolTip(
            "Each head's attention entropy on the probe prompt at each evaluation: high = spread evenly "
            "over the prompt, 0 = looks at one token only"
        )

    def _add_diagnostics(self, step: int, record) -> None:
        get = record.get if isinstance(record, dict) else lambda k: getattr(record, k, None)
        self.grad_norm_table.append(step, get("grad_norms"))
        self.update_ratio_table.append(step, get("update_ratios"))
        self.entropy_table.append(step, get("attention_entropy"))
        self.histogram_view.add(step, get("weight_histograms"))

    def _clear_diagnostics(self) -> None:
        for table in (self.grad_norm_table, self.update_ratio_table, self.entropy_table):
            table.clear()
        self.histogram_view.clear()

    def _draw_diagnostics(self) -> None:
        """Draw the diagnostics view that is on screen (the others wait until their tab is chosen)."""
        for view in (self.grad_norm_view, self.update_ratio_view, self.entropy_view):
            if view.isVisible():
                view.draw()
        if self.histogram_view.isVisible():
            self.histogram_view.draw()
