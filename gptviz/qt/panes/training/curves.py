"""The Training pane's loss curves: bounded buffers, the tokens-seen axis, the plot and its numbers.

A mixin of TrainingPane: `_build_plot` makes `self.plot_box` (stats, progress bar, plot) and the curves draw
from CurveBuffers that `refresh()` hands to pyqtgraph only when they changed.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (
    QGridLayout,
    QLabel,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

MAX_CURVE_POINTS = 10_000  # a curve keeps at most this many points, however long the run


MAX_MARKED_POINTS = 200  # evaluation curves show a marker per point up to this many points


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


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _num(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return fmt.format(value)


class CurvesMixin:
    """Builds the loss plot and exports its data (part of TrainingPane)."""

    def _build_plot(self) -> None:
        self.plot_box = QWidget()
        self.stats = {}
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
        legend = self.plot.addLegend(offset=(-10, 10))
        legend.setLabelTextColor("#222")
        self.train_curve = self.plot.plot(name="train (batch)", pen=pg.mkPen("#9ecae1", width=1))
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
        for curve in (self.train_curve, self.eval_curve, self.val_curve):
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
        layout = QVBoxLayout(self.plot_box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.history_label)
        layout.addLayout(grid)
        layout.addWidget(self.progress)
        layout.addWidget(self.plot, 1)

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
        train = dict(zip(*self.train_curve_data.view(), strict=True))
        val = dict(zip(*self.val_curve_data.view(), strict=True))
        rows = [
            [int(s), int(t), train.get(s, ""), val.get(s, "")] for s, t in zip(steps, tokens, strict=True)
        ]
        return ["step", "tokens_seen", "train_loss", "val_loss"], rows
