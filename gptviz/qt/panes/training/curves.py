"""The Training pane's loss curves: bounded buffers, the tokens-seen axis, the plot and its numbers.

A mixin of TrainingPane: `_build_plot` makes `self.plot_box` (stats, progress bar, curve controls, plot) and
the curves draw from CurveBuffers that `refresh()` hands to pyqtgraph only when they changed.

Curves that do not lie (what TensorBoard taught its users to expect): the per-batch training loss is noisy,
so it can be smoothed with a *debiased* exponential moving average (`debiased_ema`; a plain EMA starts at
0 and drags the first hundred points down), while the raw curve stays visible, faint, behind it; the loss
axis can be logarithmic (late training happens in the last decimal places); the x axis can be optimizer
steps, tokens seen (to compare runs with different batch sizes) or wall time (to compare speed); and a
hover readout gives the numbers under the mouse instead of reading them off the grid.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QSlider,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from gptviz.engine.human_units import format_duration
from gptviz.qt.panes.mixin_base import PaneMixin

MAX_CURVE_POINTS = 10_000  # a curve keeps at most this many points, however long the run


MAX_MARKED_POINTS = 200  # evaluation curves show a marker per point up to this many points

X_MODES = {"step": "step", "tokens": "tokens seen", "time": "wall time (s)"}
DEFAULT_SMOOTHING = 0.6  # TensorBoard's default weight


def debiased_ema(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: s_t = w·s_{t-1} + (1 − w)·y_t from s_0 = 0, divided by 1 − w^t (t counted
    from 1) so the first points are not pulled towards zero. weight 0 returns the values unchanged."""
    values = np.asarray(values, dtype=np.float64)  # (N,)
    if weight <= 0 or values.size == 0:
        return values.copy()
    out = np.empty_like(values)  # (N,)
    last = 0.0
    scale = 1.0
    for i, y in enumerate(values.tolist()):
        last = last * weight + (1.0 - weight) * y
        scale *= weight
        out[i] = last / (1.0 - scale)
    return out


def to_axis(steps: np.ndarray, table: CurveBuffer) -> np.ndarray:
    """Map steps onto another axis recorded per step (table: x = step, y = tokens seen or seconds):
    exact at recorded steps, linear between them (a long run's table is downsampled)."""
    xs, ys = table.view()
    if xs.size == 0:
        return np.full(np.shape(steps), np.nan)
    return np.interp(steps, xs, ys)


class CurveBuffer:
    """x/y values in preallocated arrays that double when full; `view()` hands out the filled part.

    The history is bounded: when `max_points` are kept, every second point is dropped and from then on only
    every `stride`-th appended point is kept (uniformly downsampled, oldest to newest), so hours of training
    hold and redraw a few thousand points. The newest point is always shown, kept or not.
    """

    def __init__(self, capacity: int = 1024, max_points: int | None = None) -> None:
        max_points = MAX_CURVE_POINTS if max_points is None else max_points
        if max_points < 2:
            raise ValueError(f"max_points must be at least 2, got {max_points}")
        capacity = max(1, min(capacity, max_points))
        self.x = np.empty(capacity, dtype=np.float64)
        self.y = np.empty(capacity, dtype=np.float64)
        self.max_points = max_points
        self.stride = 1  # keep every stride-th appended point
        self._kept = 0
        self._seen = 0  # points appended since the last clear()
        self.version = 0  # bumped on every change, so a redraw can skip curves that did not move
        self._tail = False  # x[_kept] holds the newest point, which the stride does not keep

    @property
    def n(self) -> int:
        """Points shown: the kept ones plus the newest when it is not one of them."""
        return self._kept + self._tail

    def append(self, x: float, y: float) -> None:
        if self._kept == self.x.shape[0]:
            size = min(2 * self.x.shape[0], self.max_points)
            self.x = np.concatenate([self.x, np.empty(size - self.x.shape[0])])  # (size,)
            self.y = np.concatenate([self.y, np.empty(size - self.y.shape[0])])  # (size,)
        index = self._seen
        self._seen += 1
        self.version += 1
        self.x[self._kept] = x
        self.y[self._kept] = y
        if index % self.stride:
            self._tail = True
            return
        self._tail = False
        self._kept += 1
        if self._kept == self.max_points:
            self._decimate()

    def _decimate(self) -> None:
        """Keep every second point (appended indices 0, 2s, 4s, ...) and double the stride."""
        last = self._kept - 1
        newest = self.x[last], self.y[last]
        kept = (self._kept + 1) // 2
        self.x[:kept] = self.x[: self._kept : 2].copy()  # (kept,)
        self.y[:kept] = self.y[: self._kept : 2].copy()  # (kept,)
        self._kept = kept
        self.stride *= 2
        self._tail = last % 2 == 1  # the newest point was dropped: show it as the tail
        if self._tail:
            self.x[kept], self.y[kept] = newest

    def clear(self) -> None:
        self.version += 1
        self._kept = 0
        self._seen = 0
        self.stride = 1
        self._tail = False

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x[: self.n], self.y[: self.n]


class TokensSeenAxis(pg.AxisItem):
    """A top axis over the step axis that labels each tick with the tokens seen at that step."""

    def __init__(self, steps: CurveBuffer) -> None:
        super().__init__("top")
        self._steps = steps  # x = step, y = tokens seen

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        xs, ys = self._steps.view()
        out = []
        for v in values:
            if xs.size == 0:
                out.append("")
                continue
            if xs.size == 1:
                tokens = ys[0] / max(xs[0], 1.0) * v
            elif v <= xs[-1]:
                tokens = float(np.interp(v, xs, ys))
            else:  # beyond the last step: the same number of tokens a step
                tokens = ys[-1] + (v - xs[-1]) * (ys[-1] - ys[0]) / max(xs[-1] - xs[0], 1.0)
            out.append(_short(tokens) if tokens >= 0 else "")
        return out


def _short(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def _num(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return fmt.format(value)


class CurvesMixin(PaneMixin):
    """Builds the loss plot, its controls and its hover readout, draws the curves, exports their data
    (part of TrainingPane)."""

    if TYPE_CHECKING:  # the pane's state these methods read (set in TrainingPane.__init__)
        train_curve_data: CurveBuffer
        eval_curve_data: CurveBuffer
        val_curve_data: CurveBuffer
        tokens_data: CurveBuffer
        elapsed_data: CurveBuffer
        _dirty: bool
        _drawn_versions: dict[int, tuple[int, ...]]

        def refresh(self) -> None: ...

    def _build_plot(self) -> None:
        self.plot_box = QWidget()
        self.stats = {}
        self.x_mode = "step"
        self.reference = None  # gptviz.engine.book_curve.PrintedCurve drawn behind the live curves
        self._curve_view = 0  # bumped when smoothing, the x axis or the reference change: redraw all
        grid = QGridLayout()  # two rows of four: fits a laptop's narrow pane without wrapping
        names = ("step", "tokens seen", "train loss", "val loss", "perplexity", "lr", "tokens/s", "ETA")
        for name in names:
            title = QLabel(name)
            title.setStyleSheet("color: #666")
            value = QLabel("–")
            value.setObjectName(f"stat_{name.replace(' ', '_').replace('/', '_')}")
            value.setStyleSheet("font-weight: bold")
            value.setMinimumWidth(value.fontMetrics().horizontalAdvance("2.00e-04"))
            cell = QWidget()
            cell_layout = QVBoxLayout(cell)
            cell_layout.setContentsMargins(0, 0, 0, 0)
            cell_layout.setSpacing(0)
            cell_layout.addWidget(title)
            cell_layout.addWidget(value)
            grid.addWidget(cell, names.index(name) // 4, names.index(name) % 4)
            self.stats[name] = value
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("%v / %m steps (%p%)")
        self.history_label = QLabel()
        self.history_label.setObjectName("history_label")
        self.history_label.setWordWrap(True)
        self.history_label.setStyleSheet(
            "background: #eef4fb; border: 1px solid #c6d8ee; border-radius: 3px; padding: 3px 6px"
        )
        self.history_label.hide()
        self.top_axis = TokensSeenAxis(self.tokens_data)
        self.plot = pg.PlotWidget(axisItems={"top": self.top_axis})
        self.plot.showAxis("top")
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("top", "tokens seen")
        self.plot.setLabel("left", "cross-entropy loss")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        for name in ("left", "bottom"):
            # Grid and ticks at the major level only: the minor grid lines took 9 of the 12 ms a repaint
            # of this plot cost (measured with grab(), 10,000 points).
            self.plot.getAxis(name).setStyle(maxTickLevel=0)
        self.plot.setMinimumHeight(140)
        self.legend = self.plot.addLegend(offset=(-10, 10))
        self.legend.setLabelTextColor("#222")
        # The book's printed curve first, so the live curves draw over it; faint and dashed, in the
        # colours of the curves it compares with, and in the legend only while it is shown.
        self.book_train_curve = self.plot.plot(
            pen=pg.mkPen((31, 119, 180, 110), width=2, style=Qt.PenStyle.DashLine)
        )
        self.book_val_curve = self.plot.plot(
            pen=pg.mkPen((255, 127, 14, 110), width=2, style=Qt.PenStyle.DashLine)
        )
        self.train_curve = self.plot.plot(name="train (batch)", pen=pg.mkPen("#9ecae1", width=1))
        self.train_smooth_curve = self.plot.plot(name="train (smoothed)", pen=pg.mkPen("#3c8dbc", width=2))
        self.eval_curve = self.plot.plot(
            name="train (eval)",
            pen=pg.mkPen("#1f77b4", width=2),
            symbol="o",
            symbolSize=5,
            symbolBrush="#1f77b4",
        )
        self.val_curve = self.plot.plot(
            name="validation",
            pen=pg.mkPen("#ff7f0e", width=2),
            symbol="o",
            symbolSize=5,
            symbolBrush="#ff7f0e",
        )
        for curve in (self.train_curve, self.train_smooth_curve, self.eval_curve, self.val_curve):
            curve.setDownsampling(auto=True, method="peak")
            # One bin per pixel column (pyqtgraph's default is five): "peak" keeps each bin's lowest and
            # highest loss, so the band drawn is the same to about a pixel, with a fifth of the points to stroke
            # (at 100,000 steps the two training curves' paint went from 7 to about 2 ms).
            curve.opts["autoDownsampleFactor"] = 1.0
            curve.setClipToView(True)
        self._build_curve_controls()
        self.hover_label = QLabel(" ")
        self.hover_label.setObjectName("hover_readout")
        self.hover_label.setStyleSheet("color: #333")
        self._hover_proxy = pg.SignalProxy(self.plot.scene().sigMouseMoved, rateLimit=30, slot=self._on_hover)
        # The loss curves are the first of the views under the numbers; the diagnostics add theirs as tabs.
        self.curve_page = QWidget()
        page = QVBoxLayout(self.curve_page)
        page.setContentsMargins(0, 0, 0, 0)
        page.addLayout(self.curve_controls)
        page.addWidget(self.plot, 1)
        page.addWidget(self.hover_label)
        self.views = QTabWidget()
        self.views.setDocumentMode(True)
        self.views.addTab(self.curve_page, "Loss")
        layout = QVBoxLayout(self.plot_box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.history_label)
        layout.addLayout(grid)
        layout.addWidget(self.progress)
        layout.addWidget(self.views, 1)

    def _build_curve_controls(self) -> None:
        self.smoothing = QSlider(Qt.Orientation.Horizontal)
        self.smoothing.setRange(0, 99)
        self.smoothing.setValue(round(DEFAULT_SMOOTHING * 100))
        self.smoothing.setToolTip(
            "Smoothing of the per-batch training loss: a debiased exponential moving average with this "
            "weight (TensorBoard's). The raw curve stays visible, faint, behind it. 0 = off"
        )
        self.smoothing_value = QLabel()
        self.smoothing_value.setMinimumWidth(self.smoothing_value.fontMetrics().horizontalAdvance("0.00"))
        self.log_y = QCheckBox("log y")
        self.log_y.setToolTip("Logarithmic loss axis: late training moves in the last decimal places")
        self.x_axis = QComboBox()
        for key, label in X_MODES.items():
            self.x_axis.addItem(label, key)
        self.x_axis.setToolTip(
            "x axis: optimizer steps, tokens seen (runs with other batch sizes line up) or wall time"
        )
        self.smoothing.valueChanged.connect(self._on_curve_options)
        self.log_y.toggled.connect(self._on_curve_options)
        self.x_axis.currentIndexChanged.connect(self._on_curve_options)
        row = self.curve_controls = QHBoxLayout()
        row.addWidget(QLabel("smoothing"))
        row.addWidget(self.smoothing, 1)
        row.addWidget(self.smoothing_value)
        row.addWidget(self.log_y)
        row.addWidget(QLabel("x"))
        row.addWidget(self.x_axis)
        self.smoothing_value.setText(f"{self.smoothing_weight:.2f}")

    @property
    def smoothing_weight(self) -> float:
        return self.smoothing.value() / 100

    def _on_curve_options(self, *_args) -> None:
        self.smoothing_value.setText(f"{self.smoothing_weight:.2f}")
        mode = self.x_axis.currentData() or "step"
        if mode != self.x_mode:
            self.x_mode = mode
            self.plot.setLabel("bottom", X_MODES[mode])
            self.plot.getPlotItem().showAxis("top", mode == "step")  # tokens over steps only on the step axis
            self.plot.enableAutoRange(axis="x")
        self.plot.setLogMode(y=self.log_y.isChecked())
        self.plot.enableAutoRange(axis="y")
        self._curve_view += 1
        self._dirty = True
        self.refresh()

    def set_reference(self, curve) -> None:
        """Draw a printed curve (gptviz.engine.book_curve.PrintedCurve) behind the live one, or None to
        take it down."""
        if curve is self.reference:
            return
        for item, name in ((self.book_train_curve, "train"), (self.book_val_curve, "val")):
            self.legend.removeItem(item)
            if curve is not None:
                self.legend.addItem(item, f"{curve.label}: {name}")
        self.reference = curve
        self._curve_view += 1
        self._dirty = True

    def _x_of(self, steps: np.ndarray) -> np.ndarray:
        """Steps on the chosen x axis."""
        if self.x_mode == "tokens":
            return to_axis(steps, self.tokens_data)
        if self.x_mode == "time":
            return to_axis(steps, self.elapsed_data)
        return steps

    def _draw_curves(self) -> None:
        """Hand changed curves to pyqtgraph; most redraws add one training point, the evaluation curves
        change only every eval_freq steps."""
        for curve, data in (
            (self.train_curve, self.train_curve_data),
            (self.eval_curve, self.eval_curve_data),
            (self.val_curve, self.val_curve_data),
        ):
            key = (id(data), data.version, self._curve_view)
            if self._drawn_versions.get(id(curve)) == key:
                continue
            if curve is not self.train_curve:
                # Markers help while evaluations are few; past that they cost more paint than they show.
                curve.setSymbol("o" if data.n <= MAX_MARKED_POINTS else None)
            steps, values = data.view()
            x = self._x_of(steps)
            curve.setData(x, values)
            if curve is self.train_curve:
                weight = self.smoothing_weight
                smoothing = weight > 0 and data.n > 1
                # The raw batch losses stay visible, fainter, behind their smoothed curve.
                curve.setPen(pg.mkPen((158, 202, 225, 110) if smoothing else "#9ecae1", width=1))
                if smoothing:
                    self.train_smooth_curve.setData(x, debiased_ema(values, weight))
                else:
                    self.train_smooth_curve.setData([], [])
            self._drawn_versions[id(curve)] = key
        ref_key = (id(self.reference), self._curve_view)
        if self._drawn_versions.get(id(self.book_train_curve)) != ref_key:
            ref = self.reference
            if ref is None or self.x_mode == "time":  # the book printed no times
                self.book_train_curve.setData([], [])
                self.book_val_curve.setData([], [])
            else:
                x = np.asarray(ref.tokens_seen if self.x_mode == "tokens" else ref.steps, dtype=np.float64)
                self.book_train_curve.setData(x, np.asarray(ref.train))
                self.book_val_curve.setData(x, np.asarray(ref.val))
            self._drawn_versions[id(self.book_train_curve)] = ref_key
        if self.x_mode == "step":
            self.top_axis.picture = None  # tick labels depend on the tokens-seen buffer
            self.top_axis.update()

    def _on_hover(self, event) -> None:
        pos = event[0]
        box = self.plot.getPlotItem().vb
        if not self.plot.sceneBoundingRect().contains(pos):
            return
        self.hover_label.setText(self.readout_at(box.mapSceneToView(pos).x()))

    def readout_at(self, x: float) -> str:
        """The numbers at the recorded step nearest to `x` (on the current x axis): step, tokens seen,
        time, the batch loss (and its smoothed value) and the last evaluation's losses up to there."""
        steps, tokens = self.tokens_data.view()
        if steps.size == 0:
            return " "
        index = int(np.argmin(np.abs(self._x_of(steps) - x)))
        step = steps[index]
        parts = [f"step {int(step):,}", f"{_short(tokens[index])} tokens"]
        seconds = to_axis(np.array([step]), self.elapsed_data)[0]
        if math.isfinite(seconds):
            parts.append(format_duration(seconds))
        train_x, train_y = self.train_curve_data.view()
        hit = np.flatnonzero(train_x == step)
        if hit.size:
            text = f"train {train_y[hit[0]]:.3f}"
            if self.smoothing_weight > 0:
                text += f" (smoothed {debiased_ema(train_y[: hit[0] + 1], self.smoothing_weight)[-1]:.3f})"
            parts.append(text)
        for name, buffer in (("train eval", self.eval_curve_data), ("val", self.val_curve_data)):
            bx, by = buffer.view()
            upto = np.flatnonzero(bx <= step)
            if upto.size:
                at = int(bx[upto[-1]])
                parts.append(f"{name} {by[upto[-1]]:.3f}" + (f" (step {at:,})" if at != step else ""))
        if self.reference is not None:
            ref_steps = np.asarray(self.reference.steps)
            nearest = int(np.argmin(np.abs(ref_steps - step)))
            if ref_steps[nearest] == step:
                parts.append(f"book {self.reference.train[nearest]:.3f} / {self.reference.val[nearest]:.3f}")
        return " · ".join(parts)

    def point_counts(self) -> dict[str, int]:
        return {
            "train": self.train_curve_data.n,
            "train_eval": self.eval_curve_data.n,
            "val": self.val_curve_data.n,
        }

    def export_data(self) -> dict[str, np.ndarray]:
        data = {}
        for name, buffer in (
            ("train", self.train_curve_data),
            ("train_eval", self.eval_curve_data),
            ("val", self.val_curve_data),
            ("tokens_seen", self.tokens_data),
        ):
            x, y = buffer.view()
            data[f"{name}_step"] = x.copy()
            data[f"{name}_value"] = y.copy()
        return data

    def export_table(self) -> tuple[list[str], list[list[object]]]:
        steps, tokens = self.tokens_data.view()
        train: dict[float, float] = dict(zip(*self.train_curve_data.view(), strict=True))
        val: dict[float, float] = dict(zip(*self.val_curve_data.view(), strict=True))
        rows: list[list[object]] = [
            [int(s), int(t), train.get(s, ""), val.get(s, "")] for s, t in zip(steps, tokens, strict=True)
        ]
        return ["step", "tokens_seen", "train_loss", "val_loss"], rows
