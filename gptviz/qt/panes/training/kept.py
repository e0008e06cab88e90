"""The Training pane's Checkpoints tab: a time slider over a run's kept checkpoints (gptviz train
--keep-checkpoints N|all) that loads any kept step into every pane, and one head's attention on a prompt
at two steps side by side: A, B and A − B.

Loading goes through the worker like File › Open checkpoint (`loadRequested` carries the kept folder; the
window submits it), so the Attention, Activations and Generation panes show the model as it was at that
step. The comparison loads its own two copies on a thread of its own (it never touches the window's
model, which the worker thread owns) and hands back three numpy matrices
(gptviz.engine.kept_checkpoints.compare_on_prompt).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from PySide6.QtCore import Qt, QThread, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from gptviz.engine.kept_checkpoints import AttentionComparison, KeptCheckpoint, list_kept
from gptviz.engine.path_kind import CONFIG_FILE
from gptviz.engine.views import DEFAULT_PROMPT
from gptviz.qt.token_labels import axis_labels
from gptviz.qt.widgets.heatmap import HeatmapView

_RUNNING: set[QThread] = set()  # jobs in flight, held until they finish even if their view is deleted


class _CompareJob(QThread):
    """compare_on_prompt on its own thread; `result` or `error` is set before `finished`."""

    def __init__(self, a: KeptCheckpoint, b: KeptCheckpoint, prompt: str, layer: int, head: int) -> None:
        super().__init__()
        self.args = (a, b, prompt, layer, head)
        self.result: AttentionComparison | None = None
        self.error = ""

    def run(self) -> None:
        from gptviz.engine.kept_checkpoints import compare_on_prompt

        try:
            self.result = compare_on_prompt(*self.args)
        except Exception as exc:  # noqa: BLE001 - shown in the tab; a bad checkpoint must not kill the thread
            self.error = str(exc) or type(exc).__name__


class KeptCheckpointsView(QWidget):
    loadRequested = Signal(str)  # a kept checkpoint folder to load into every pane

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run_dir: str | None = None
        self.kept: list[KeptCheckpoint] = []
        self.loading_allowed = True  # False while a run trains in the window (loading would replace it)
        self.comparison = None  # the last AttentionComparison shown
        self._job: _CompareJob | None = None
        self.header = QLabel()
        self.header.setWordWrap(True)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setToolTip("the kept steps of the run, oldest to newest; release to load that step")
        self.slider.valueChanged.connect(self._on_slider)
        self.slider.sliderReleased.connect(self.load_selected)
        self.step_label = QLabel("–")
        self.step_label.setMinimumWidth(
            self.step_label.fontMetrics().horizontalAdvance("step 1,000,000 (99/99)")
        )
        self.load_button = QPushButton("Load this step")
        self.load_button.setToolTip(
            "the model as it was at this step, in every pane (as File › Open checkpoint)"
        )
        self.load_button.clicked.connect(self.load_selected)
        slider_row = QHBoxLayout()
        slider_row.addWidget(QLabel("time"))
        slider_row.addWidget(self.slider, 1)
        slider_row.addWidget(self.step_label)
        slider_row.addWidget(self.load_button)
        self.step_a, self.step_b = QComboBox(), QComboBox()
        self.step_a.setToolTip("step A")
        self.step_b.setToolTip("step B")
        self.layer, self.head = QSpinBox(), QSpinBox()
        self.layer.setPrefix("layer ")
        self.head.setPrefix("head ")
        self.prompt = QLineEdit(DEFAULT_PROMPT)
        self.prompt.setToolTip(
            "the prompt whose attention is compared (follows the Generation pane's prompt)"
        )
        self.compare_button = QPushButton("Compare A, B")
        self.compare_button.clicked.connect(self.compare)
        ab_row = QHBoxLayout()
        for text, widget in (("A", self.step_a), ("B", self.step_b)):
            ab_row.addWidget(QLabel(text))
            ab_row.addWidget(widget)
        ab_row.addWidget(self.layer)
        ab_row.addWidget(self.head)
        ab_row.addWidget(self.prompt, 1)
        ab_row.addWidget(self.compare_button)
        self.status = QLabel(" ")
        self.status.setWordWrap(True)
        self.map_a = HeatmapView(value_name="A")
        self.map_b = HeatmapView(value_name="B")
        self.map_diff = HeatmapView(
            value_name="A − B", levels=(-1.0, 1.0), colormap="CET-D1", value_format="{:+.3f}"
        )
        maps = QHBoxLayout()
        for view in (self.map_a, self.map_b, self.map_diff):
            maps.addWidget(view, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.header)
        layout.addLayout(slider_row)
        layout.addLayout(ab_row)
        layout.addWidget(self.status)
        layout.addLayout(maps, 1)
        self._update_controls()

    # ---------------------------------------------------------------------------------------- kept steps

    def set_run_dir(self, run_dir: str | None) -> None:
        """The run whose kept checkpoints to list (a run shown, followed or trained in the window). None
        keeps the last one: loading a kept step takes the pane's history down, not the slider's run."""
        if run_dir and run_dir != self.run_dir:
            self.run_dir = run_dir
            self.kept = []
        self.rescan()

    def rescan(self) -> None:
        """List the run's kept checkpoints again (a run in progress keeps one more at each evaluation)."""
        kept = list_kept(self.run_dir) if self.run_dir else []
        if [k.step for k in kept] == [k.step for k in self.kept]:
            self._update_controls()  # the same steps (maybe of another run without any)
            return
        chosen = self.selected()
        self.kept = kept
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, len(kept) - 1))
        steps = [k.step for k in kept]
        self.slider.setValue(steps.index(chosen.step) if chosen and chosen.step in steps else len(kept) - 1)
        self.slider.blockSignals(False)
        for combo, default in ((self.step_a, 0), (self.step_b, len(kept) - 1)):
            previous = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            for k in kept:
                combo.addItem(f"step {k.step:,}", k.step)
            index = combo.findData(previous)
            combo.setCurrentIndex(index if index >= 0 else default)
            combo.blockSignals(False)
        self._read_shape()
        self._update_controls()

    def _read_shape(self) -> None:
        """The layer and head ranges from the newest kept step's config.json (no torch needed)."""
        if not self.kept:
            return
        try:
            config = json.loads((self.kept[-1].path / CONFIG_FILE).read_text(encoding="utf-8"))["config"]
            self.set_model_shape(int(config["n_layers"]), int(config["n_heads"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable: the comparison says so when it loads the weights

    def selected(self) -> KeptCheckpoint | None:
        index = self.slider.value()
        return self.kept[index] if 0 <= index < len(self.kept) else None

    def select_step(self, step: int) -> None:
        steps = [k.step for k in self.kept]
        if step in steps:
            self.slider.setValue(steps.index(step))

    def _on_slider(self, _value: int) -> None:
        self._update_controls()

    def load_selected(self) -> None:
        kept = self.selected()
        if kept is None:
            return
        if not self.loading_allowed:
            self.status.setStyleSheet("color: #b36b00")
            self.status.setText("a run is training in the window: stop it before loading a kept step into it")
            return
        self.status.setStyleSheet("color: #2a6")
        self.status.setText(f"loading step {kept.step:,} into every pane…")
        self.loadRequested.emit(str(kept.path))

    def set_loading_allowed(self, allowed: bool) -> None:
        self.loading_allowed = allowed
        self._update_controls()

    def _update_controls(self) -> None:
        kept = self.selected()
        count = len(self.kept)
        self.step_label.setText(f"step {kept.step:,} ({self.slider.value() + 1}/{count})" if kept else "–")
        self.load_button.setEnabled(kept is not None and self.loading_allowed)
        self.slider.setEnabled(count > 1)
        self.compare_button.setEnabled(count >= 1 and self._job is None)
        if not self.run_dir:
            self.header.setText("Open or follow a run to scrub through its kept checkpoints.")
        elif not count:
            self.header.setText(
                f"{Path(self.run_dir).name} keeps no checkpoints over time: train it with "
                "<code>gptviz train --keep-checkpoints N|all</code> to keep each evaluation's weights."
            )
        else:
            self.header.setText(f"{Path(self.run_dir).name}: {count} kept step{'s' * (count != 1)}")

    # ---------------------------------------------------------------------------------------- A vs B

    def set_model_shape(self, n_layers: int, n_heads: int) -> None:
        self.layer.setRange(0, max(0, n_layers - 1))
        self.head.setRange(0, max(0, n_heads - 1))

    def set_prompt(self, text: str) -> None:
        if text.strip():
            self.prompt.setText(text)

    def _kept_of(self, combo: QComboBox) -> KeptCheckpoint | None:
        step = combo.currentData()
        return next((k for k in self.kept if k.step == step), None)

    def compare(self) -> None:
        a, b = self._kept_of(self.step_a), self._kept_of(self.step_b)
        if a is None or b is None or self._job is not None:
            return
        self._job = _CompareJob(a, b, self.prompt.text(), self.layer.value(), self.head.value())
        self._job.finished.connect(self._on_compared)
        _RUNNING.add(self._job)
        self.status.setStyleSheet("color: #2a6")
        self.status.setText(
            f"computing L{self.layer.value()} H{self.head.value()} at steps {a.step:,} and {b.step:,}…"
        )
        self._update_controls()
        self._job.start()

    def busy(self) -> bool:
        return self._job is not None

    def _on_compared(self) -> None:
        job, self._job = self._job, None
        if job is None:
            return
        job.wait()
        _RUNNING.discard(job)
        job.deleteLater()
        self._update_controls()
        if job.result is None:
            self.status.setStyleSheet("color: #b00020")
            self.status.setText(job.error)
            return
        self.show_comparison(job.result)

    def show_comparison(self, comparison) -> None:
        self.comparison = comparison
        labels = axis_labels(list(comparison.tokens)) if comparison.tokens else None
        self.map_a.set_matrix(comparison.a, labels, labels)
        self.map_b.set_matrix(comparison.b, labels, labels)
        largest = float(abs(comparison.diff).max()) if comparison.diff.size else 0.0
        bound = largest if largest > 0 and math.isfinite(largest) else 1.0
        self.map_diff.set_matrix(comparison.diff, labels, labels, levels=(-bound, bound))
        a, b = comparison.steps
        self.status.setStyleSheet("color: #333")
        self.status.setText(
            f"layer {comparison.layer} head {comparison.head}: A = step {a:,}, B = step {b:,}; "
            f"largest change {largest:.3f} (red: A attends more, blue: B does)"
        )

    def shutdown(self) -> None:
        """Wait for a comparison in flight (a closing window must not destroy a running QThread)."""
        if self._job is not None:
            self._job.wait()
            QTimer.singleShot(0, self._on_compared)
