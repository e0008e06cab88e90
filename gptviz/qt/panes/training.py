"""Pane 4, Training (book ch. 5): settings, start/pause/stop/save, live loss curves, the probe's time-lapse.

Updates arrive one per step; the pane appends them to preallocated buffers (cheap) and draws only when the
main window's redraw timer calls `refresh()` (at most ~30 times a second, however fast training runs).
"""

from __future__ import annotations

import dataclasses
import html
import math
import re

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from gptviz.config import PRESETS
from gptviz.errors import ConfigError, DataError
from gptviz.qt.widgets.heatmap import HeatmapView
from gptviz.qt.widgets.labels import display_token as token_label

CURRENT_MODEL = "current model"


def history_settings(run_dir: str):
    """The TrainSettings a recorded run was trained with (its settings.json), or None when the file is
    missing, unreadable or describes settings this version cannot make. A run counted in epochs gets its
    total steps instead, so the Steps box shows how long that run was."""
    from gptviz.engine.rundir import read_settings
    from gptviz.engine.trainer import TrainSettings

    try:
        data = read_settings(run_dir)
    except (DataError, OSError):
        return None
    train = data.get("train")
    if not isinstance(train, dict):
        return None
    known = {f.name for f in dataclasses.fields(TrainSettings)}
    values = {k: v for k, v in train.items() if k in known}  # a newer version's extra keys are skipped
    total = data.get("total_steps")
    if values.get("steps") is None and isinstance(total, int) and total > 0:
        values["steps"], values["epochs"] = total, None
    try:
        return TrainSettings.from_dict(values)
    except (ConfigError, TypeError, ValueError):
        return None


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


class TrainingPane(QWidget):
    startRequested = Signal(object, str)  # TrainSettings, preset name ("" = the current model)
    pauseRequested = Signal()
    stopRequested = Signal()
    saveRequested = Signal()
    openCorpusRequested = Signal()
    followRequested = Signal()
    unfollowRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = "idle"
        self.following: str | None = None
        self.history: str | None = None  # label of the loaded model's history while the pane shows it
        self.train_curve_data = CurveBuffer()
        self.eval_curve_data = CurveBuffer()
        self.val_curve_data = CurveBuffer()
        self.tokens_data = CurveBuffer()  # x = step, y = tokens seen
        self.probes: list = []
        self.latest = None  # newest StepResult-like record
        self._dirty = False
        self._drawn_versions: dict[int, tuple[int, int]] = {}  # curve -> (buffer, version) last drawn
        self._probe_shown = -1
        self._build_controls()
        self._build_plot()
        self._build_probe()
        splitter = QSplitter(Qt.Orientation.Horizontal)
        # The settings scroll up and down only, never sideways (that clipped their labels); the buttons
        # stay above them, in reach however small the pane.
        scroll = QScrollArea()
        scroll.setObjectName("training_settings_scroll")
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.controls)
        scroll.setMinimumWidth(
            self.controls.minimumSizeHint().width()
            + scroll.verticalScrollBar().sizeHint().width()
            + 2 * scroll.frameWidth()
        )
        self.settings_scroll = scroll
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addLayout(self.button_grid)
        left_layout.addWidget(self.message)
        left_layout.addWidget(scroll, 1)
        splitter.addWidget(left)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.plot_box)
        right.addWidget(self.probe_box)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)
        self.set_state("idle")

    # ---------------------------------------------------------------------------------------- building

    def _build_controls(self) -> None:
        self.controls = QWidget()
        form = QFormLayout()
        self.corpus_label = QLabel("built-in corpus")
        self.corpus_label.setWordWrap(True)
        open_corpus = QPushButton("Open corpus…")
        open_corpus.clicked.connect(self.openCorpusRequested)
        corpus_row = QVBoxLayout()
        corpus_row.addWidget(self.corpus_label)
        corpus_row.addWidget(open_corpus)
        form.addRow("Corpus", corpus_row)
        self.model_choice = QComboBox()
        self.model_choice.addItem(CURRENT_MODEL)
        for name in PRESETS:
            self.model_choice.addItem(f"new {name}", name)
        self.model_choice.setToolTip(
            "Go on training the loaded model, or start from a freshly initialised preset"
        )
        form.addRow("Model", self.model_choice)

        def spin(lo: int, hi: int, value: int, special: str | None = None) -> QSpinBox:
            box = QSpinBox()
            box.setRange(lo, hi)
            box.setValue(value)
            if special:
                box.setSpecialValueText(special)
            return box

        def dspin(lo: float, hi: float, value: float, decimals: int, step: float) -> QDoubleSpinBox:
            box = QDoubleSpinBox()
            box.setRange(lo, hi)
            box.setDecimals(decimals)
            box.setSingleStep(step)
            box.setValue(value)
            return box

        self.steps = spin(1, 10_000_000, 300)
        self.batch_size = spin(1, 4096, 8)
        self.context = spin(0, 1_000_000, 64, "model's")
        self.stride = spin(0, 1_000_000, 0, "= context")
        self.lr = dspin(1e-6, 10.0, 1e-3, 6, 1e-4)
        self.weight_decay = dspin(0.0, 10.0, 0.1, 3, 0.01)
        self.warmup = spin(0, 1_000_000, 20)
        self.cosine = QCheckBox("cosine decay")
        self.cosine.setChecked(True)
        self.eval_freq = spin(1, 1_000_000, 25)
        self.eval_iter = spin(1, 10_000, 4)
        self.val_ratio = dspin(0.01, 0.9, 0.1, 2, 0.05)
        self.seed = spin(0, 2**31 - 1, 123)
        self.probe_prompt = QComboBox()
        self.probe_prompt.setEditable(True)
        self.probe_prompt.addItems(["Every effort moves you", "The for statement", "A class definition"])
        for label, widget in (
            ("Steps", self.steps),
            ("Batch size", self.batch_size),
            ("Context", self.context),
            ("Stride", self.stride),
            ("Learning rate", self.lr),
            ("Weight decay", self.weight_decay),
            ("Warm-up steps", self.warmup),
            ("", self.cosine),
            ("Evaluate every", self.eval_freq),
            ("Eval batches", self.eval_iter),
            ("Validation ratio", self.val_ratio),
            ("Seed", self.seed),
            ("Probe prompt", self.probe_prompt),
        ):
            form.addRow(label, widget)

        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("Start a run, or resume a paused one (Ctrl+T)")
        self.pause_button = QPushButton("Pause")
        self.stop_button = QPushButton("Stop")
        self.save_button = QPushButton("Save…")
        self.start_button.clicked.connect(self._on_start)
        self.pause_button.clicked.connect(self.pauseRequested)
        self.stop_button.clicked.connect(self.stopRequested)
        self.save_button.clicked.connect(self.saveRequested)
        buttons = self.button_grid = QGridLayout()
        buttons.addWidget(self.start_button, 0, 0)
        buttons.addWidget(self.pause_button, 0, 1)
        buttons.addWidget(self.stop_button, 1, 0)
        buttons.addWidget(self.save_button, 1, 1)
        self.follow_button = QPushButton("Follow run directory…")
        self.follow_button.clicked.connect(self._on_follow)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #b00020")

        layout = QVBoxLayout(self.controls)
        layout.setContentsMargins(0, 0, 0, 0)
        box = QGroupBox("Settings")
        box.setLayout(form)
        layout.addWidget(box)
        layout.addWidget(self.follow_button)
        layout.addStretch(1)

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

    def _build_probe(self) -> None:
        self.probe_box = QWidget()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setToolTip("Time-lapse: what the model said about the probe prompt at each evaluation")
        self.slider.valueChanged.connect(self._show_probe)
        self.follow_latest = QCheckBox("follow newest")
        self.follow_latest.setChecked(True)
        self.probe_label = QLabel("no probes yet: start training")
        self.layer = QSpinBox()
        self.layer.setPrefix("layer ")
        self.head = QSpinBox()
        self.head.setPrefix("head ")
        self.layer.valueChanged.connect(lambda _v: self._show_probe(self.slider.value(), force=True))
        self.head.valueChanged.connect(lambda _v: self._show_probe(self.slider.value(), force=True))
        row = QHBoxLayout()
        row.addWidget(QLabel("Probe"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.follow_latest)
        row.addWidget(self.layer)
        row.addWidget(self.head)
        self.sample = QTextBrowser()
        self.sample.setMinimumHeight(60)
        self.heatmap = HeatmapView(row_name="query", col_name="key")
        self.heatmap.setMinimumHeight(110)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.sample)
        bottom.addWidget(self.heatmap)
        bottom.setStretchFactor(0, 3)
        bottom.setStretchFactor(1, 2)
        layout = QVBoxLayout(self.probe_box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.probe_label)
        layout.addWidget(bottom, 1)

    # ---------------------------------------------------------------------------------------- controls

    def settings(self):
        """The TrainSettings the controls describe (raises ConfigError with the reason when they cannot work)."""
        from gptviz.engine.trainer import TrainSettings

        return TrainSettings(
            steps=self.steps.value(),
            batch_size=self.batch_size.value(),
            context=self.context.value() or None,
            stride=self.stride.value() or None,
            lr=self.lr.value(),
            weight_decay=self.weight_decay.value(),
            warmup_steps=self.warmup.value(),
            cosine=self.cosine.isChecked(),
            eval_freq=self.eval_freq.value(),
            eval_iter=self.eval_iter.value(),
            val_ratio=self.val_ratio.value(),
            seed=self.seed.value(),
            probe_prompt=self.probe_prompt.currentText() or "Every effort moves you",
        )

    def apply_settings(self, settings) -> None:
        """Show a TrainSettings in the controls (values outside a box's range are clamped to it)."""
        self.steps.setValue(settings.steps or self.steps.value())
        self.batch_size.setValue(settings.batch_size)
        self.context.setValue(settings.context or 0)
        self.stride.setValue(settings.stride or 0)
        self.lr.setValue(settings.lr)
        self.weight_decay.setValue(settings.weight_decay)
        self.eval_freq.setValue(settings.eval_freq)
        self.eval_iter.setValue(settings.eval_iter)
        self.val_ratio.setValue(settings.val_ratio)
        self.warmup.setValue(settings.warmup_steps)
        self.cosine.setChecked(settings.cosine)
        self.seed.setValue(settings.seed)
        self.probe_prompt.setCurrentText(settings.probe_prompt)

    def _on_start(self) -> None:
        if self.state == "paused":
            self.startRequested.emit(None, "")
            return
        try:
            settings = self.settings()
        except ConfigError as exc:
            self.message.setText(str(exc))
            return
        self.clear()
        # Until the first step comes back (tokenizing a large corpus and building a model take a while),
        # say what is happening, and show the run's steps on the axis instead of an empty -1..1 plot.
        corpus = self.corpus_label.text().split(":")[0] or "the corpus"
        preset = self.model_choice.currentData()
        self.message.setStyleSheet("color: #2a6")
        self.message.setText(
            f"starting: cutting {corpus} into {settings.batch_size} × context windows, "
            + (f"building a new {preset} model, " if preset else "")
            + "evaluating it, then the first step…"
        )
        self.progress.setRange(0, settings.steps or 1)
        self.progress.setValue(0)
        self.progress.setFormat("starting…")
        self.plot.setXRange(0, max(settings.steps or 1, 1), padding=0.02)
        self.plot.enableAutoRange(axis="x")  # the curves take over as their points arrive
        self.startRequested.emit(settings, preset or "")

    def _on_follow(self) -> None:
        if self.following:
            self.unfollowRequested.emit()
        else:
            self.followRequested.emit()

    def set_state(self, state: str) -> None:
        """idle | running | paused | finished (the worker's word)."""
        self.state = "idle" if state == "finished" else state
        running, paused = state == "running", state == "paused"
        self.start_button.setText("Resume" if paused else "Start")
        self.start_button.setEnabled(not running and not self.following)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running or paused)
        for w in (
            self.model_choice,
            self.steps,
            self.batch_size,
            self.context,
            self.stride,
            self.seed,
            self.val_ratio,
        ):
            w.setEnabled(not running and not paused)
        if state == "finished" or (state == "idle" and self.message.text().startswith("starting")):
            self.message.setText("")
        if paused:
            self.message.setStyleSheet("color: #b36b00")
            self.message.setText("paused: Resume goes on from this step, Stop ends the run")
        elif running and self.message.text().startswith("paused"):
            self.message.setText("")

    def set_following(self, run_dir: str | None) -> None:
        self.following = run_dir
        self.follow_button.setText("Stop following" if run_dir else "Follow run directory…")
        self.start_button.setEnabled(not run_dir and self.state != "running")
        if run_dir:
            self.clear()
            self.message.setStyleSheet("color: #2a6")
            self.message.setText(f"following {run_dir}")
        else:
            self.message.setStyleSheet("color: #b00020")
            self.message.setText("")

    def set_corpus(self, info) -> None:
        extra = f", {info.replacements} replacement characters" if info.replacements else ""
        self.corpus_label.setText(
            f"{info.name}: {info.n_chars:,} characters, {info.n_tokens:,} tokens{extra}"
        )

    def show_error(self, message: str) -> None:
        self.message.setStyleSheet("color: #b00020")
        self.message.setText(message)

    # ---------------------------------------------------------------------------------------- updates

    def clear(self) -> None:
        for buffer in (self.train_curve_data, self.eval_curve_data, self.val_curve_data, self.tokens_data):
            buffer.clear()
        self.probes = []
        self.latest = None
        self._probe_shown = -1
        self._dirty = True
        self.history = None
        self.history_label.hide()
        self.follow_latest.setChecked(True)

    def set_history(self, batch) -> None:
        """Show how the loaded model was trained (a FollowBatch read once from its run files), or, with
        None (a model without a record), take down a history shown before. A live run is left alone."""
        if batch is None:
            if self.history is not None:
                self.clear()
            return
        if self.following or self.state != "idle":
            return
        self.clear()
        self.add_follow(batch)
        self.history = batch.label
        recorded = history_settings(batch.run_dir)
        if recorded is not None:  # Start then goes on with the settings this history was made with
            self.apply_settings(recorded)
            self.model_choice.setCurrentIndex(0)  # the loaded model, whose history this is
        self.history_label.setText(
            f"<b>{html.escape(batch.label)}</b> <span style='color:#555'>· recorded when it was trained "
            "(read once from its run files); Start begins a new run"
            + (" with its settings" if recorded is not None else "")
            + "</span>"
        )
        self.history_label.setToolTip(batch.run_dir)
        self.history_label.show()

    def add_update(self, update) -> None:
        """One TrainingUpdate from the worker: buffers only, drawn at the next refresh()."""
        r = update.result
        if self.latest is None and self.message.text().startswith("starting"):
            self.message.setText("")
            self.progress.setFormat("%v / %m steps (%p%)")
        self._add_point(
            step=r.step,
            tokens_seen=r.tokens_seen,
            train_loss=r.train_loss,
            train_eval=r.train_eval_loss,
            val_loss=r.val_loss,
        )
        self.latest = {
            "step": r.step,
            "total_steps": r.total_steps,
            "tokens_seen": r.tokens_seen,
            "train_loss": r.train_loss,
            "val_loss": r.val_loss if r.val_loss is not None else (self.latest or {}).get("val_loss"),
            "perplexity": r.perplexity if r.perplexity is not None else (self.latest or {}).get("perplexity"),
            "lr": r.lr,
            "tokens_per_s": r.tokens_per_s,
            "eta_s": r.eta_s,
        }
        self.probes.extend(update.new_probes)
        self._dirty = True

    def add_follow(self, batch) -> None:
        """Records a followed run appended (metrics.jsonl lines and probes)."""
        if batch.restart:
            self.clear()
        for rec in batch.records:
            self._add_point(
                step=rec["step"],
                tokens_seen=rec.get("tokens_seen", 0),
                train_loss=rec.get("train_loss"),
                train_eval=rec.get("train_eval_loss"),
                val_loss=rec.get("val_loss"),
            )
            last = dict(self.latest or {})
            last.update(
                step=rec["step"],
                total_steps=max(batch.total_steps, rec["step"]),
                tokens_seen=rec.get("tokens_seen", 0),
                train_loss=rec.get("train_loss"),
                lr=rec.get("lr"),
                tokens_per_s=rec.get("tokens_per_s"),
                eta_s=float("nan"),
            )
            if rec.get("val_loss") is not None:
                last["val_loss"] = rec["val_loss"]
                last["perplexity"] = rec.get("perplexity")
            self.latest = last
        self.probes.extend(batch.probes)
        self._dirty = True

    def _add_point(self, step, tokens_seen, train_loss, train_eval, val_loss) -> None:
        self.tokens_data.append(step, tokens_seen)
        if train_loss is not None and math.isfinite(train_loss):
            self.train_curve_data.append(step, train_loss)
        if train_eval is not None:
            self.eval_curve_data.append(step, train_eval)
        if val_loss is not None:
            self.val_curve_data.append(step, val_loss)

    def refresh(self) -> None:
        """Draw what arrived since the last refresh (called by the main window's redraw timer)."""
        if not self._dirty:
            return
        self._dirty = False
        # Most redraws add one training point; the evaluation curves change only every eval_freq steps.
        for curve, data in (
            (self.train_curve, self.train_curve_data),
            (self.eval_curve, self.eval_curve_data),
            (self.val_curve, self.val_curve_data),
        ):
            if self._drawn_versions.get(id(curve)) != (id(data), data.version):
                if curve is not self.train_curve:
                    # Markers help while evaluations are few; past that they cost more paint than they show.
                    curve.setSymbol("o" if data.n <= MAX_MARKED_POINTS else None)
                curve.setData(*data.view())
                self._drawn_versions[id(curve)] = (id(data), data.version)
        self.top_axis.picture = None  # tick labels depend on the tokens-seen buffer
        self.top_axis.update()
        latest = self.latest
        if latest is None:
            for value in self.stats.values():
                value.setText("–")
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
        else:
            fmt = {
                "step": f"{latest['step']:,} / {latest['total_steps']:,}",
                "tokens seen": _short(latest["tokens_seen"] or 0),
                "train loss": _num(latest.get("train_loss"), "{:.3f}"),
                "val loss": _num(latest.get("val_loss"), "{:.3f}"),
                "perplexity": _num(latest.get("perplexity"), "{:.1f}"),
                "lr": _num(latest.get("lr"), "{:.2e}"),
                "tokens/s": _num(latest.get("tokens_per_s"), "{:,.0f}"),
                "ETA": format_duration(
                    latest.get("eta_s") if latest.get("eta_s") is not None else float("nan")
                ),
            }
            for name, text in fmt.items():
                self.stats[name].setText(text)
            self.progress.setRange(0, max(1, int(latest["total_steps"])))
            self.progress.setValue(int(latest["step"]))
        count = len(self.probes)
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, count - 1))
        if self.follow_latest.isChecked() and count:
            self.slider.setValue(count - 1)
        self.slider.blockSignals(False)
        self._show_probe(self.slider.value())

    def _show_probe(self, index: int, force: bool = False) -> None:
        if not self.probes:
            self.probe_label.setText(
                "no probes yet: start training (a probe is recorded at every evaluation)"
            )
            self.sample.setHtml("")
            return
        index = max(0, min(index, len(self.probes) - 1))
        if index == self._probe_shown and not force:
            return
        self._probe_shown = index
        if index != len(self.probes) - 1:
            self.follow_latest.setChecked(False)
        probe = self.probes[index]
        self.probe_label.setText(
            f"probe {index + 1} of {len(self.probes)} · step {probe.step:,} · {_short(probe.tokens_seen)} tokens seen"
        )
        tops = ", ".join(
            f"{html.escape(token_label(p))} {q:.2f}"
            for p, q in zip(probe.top_pieces[:10], probe.top_probs[:10], strict=False)
        )
        self.sample.setHtml(
            f"<p><span style='color:#666'>{html.escape(probe.prompt)}</span>"
            f"<b>{sample_html(probe.sample_text)}</b></p>"
            f"<p style='color:#444'>next token: {tops}</p>"
        )
        attention = probe.attention
        if attention is not None and attention.ndim == 4 and attention.size:
            n_layers, n_heads = attention.shape[:2]
            self.layer.blockSignals(True)
            self.head.blockSignals(True)
            self.layer.setRange(0, n_layers - 1)
            self.head.setRange(0, n_heads - 1)
            self.layer.blockSignals(False)
            self.head.blockSignals(False)
            labels = [token_label(p) for p in probe.prompt_pieces]
            matrix = np.ascontiguousarray(
                attention[self.layer.value(), self.head.value()], dtype=np.float32
            )  # (T, T)
            mask = np.triu(np.ones(matrix.shape, dtype=bool), k=1)  # (T, T) the causal mask
            self.heatmap.set_matrix(matrix, labels, labels, mask=mask)

    # ---------------------------------------------------------------------------------------- export

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


def sample_html(text: str) -> str:
    """A probe's continuation as HTML that keeps its layout: an untrained model often writes only newlines
    and spaces, which HTML would collapse to nothing; newlines show as ↵, and a run of them breaks the line once."""
    escaped = re.sub(r"\n+", lambda m: "↵" * len(m.group()) + "<br>", html.escape(text))
    return f"<span style='white-space: pre-wrap'>{escaped}</span>"


def _num(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return fmt.format(value)
