"""The main window's status bar: the model's line, memory, device, what runs, and the worker's progress.

Why a room of its own: the status bar says what is loaded and what runs, which it reads from the one
application state (`qt/app_state.py`) by observing its `changed` signal, not from the window. It also keeps
the one note the window adds to a model's name: after a run ends, "trained N steps on CORPUS", until another
model loads. The window hands it the model's info (the worker's MODEL result) and the worker's progress, and
reads nothing back from it.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QWidget

from gptviz.qt.app_state import AppState, TrainState

if TYPE_CHECKING:
    from gptviz.qt.panes.training import TrainingPane

ACTIVITY = frozenset({"activity", "training", "downloading", "patching"})  # what the activity label says


class WindowStatusBar(QStatusBar):
    """The model's line at the left; memory, device, activity and a progress bar at the right."""

    def __init__(self, state: AppState, training_pane: TrainingPane, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = state
        self._training_pane = training_pane  # read when a run ends: its last step and its corpus
        self._training_was = state.training
        self._model: Any = None  # the ModelInfo shown
        self.trained_note = ""  # "trained N steps on CORPUS" once a run on the shown model ended
        self.model_label = QLabel("loading model…")
        self.memory_label = QLabel("")
        self.device_label = QLabel("")
        self.activity_label = QLabel("starting")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.addWidget(self.model_label, 1)
        self.addPermanentWidget(self.memory_label)
        self.addPermanentWidget(self.device_label)
        self.addPermanentWidget(self.activity_label)
        self.addPermanentWidget(self.progress)
        state.changed.connect(self._on_state_changed)

    def show_model(self, info: Any) -> None:
        """The loaded model's line (name, size, shape, note) and its device."""
        if info is not self._model:
            self.trained_note = ""  # another model (or the trained one reloaded): its own name says it
        self._model = info
        name = info.name
        if self.trained_note:
            name = f"{name.replace(' (untrained)', '')}, {self.trained_note}"
        self.model_label.setText(
            f"<b>{html.escape(name)}</b> · {info.params / 1e6:.2f}M params · {info.bytes / 2**20:.0f} MB · "
            f"{info.n_layers} layers × {info.n_heads} heads · width {info.emb_dim} · context {info.context_length}"
            + (f" · <span style='color:#b36b00'>{html.escape(info.note)}</span>" if info.note else "")
        )
        self.model_label.setToolTip(info.path or info.source)
        self.device_label.setText(info.device)

    @Slot(int, int)
    def show_progress(self, done: int, total: int) -> None:
        """The worker's progress on a long command; a total of 0 or less hides the bar."""
        if total <= 0:
            self.progress.hide()
            return
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.show()

    def show_stopping(self) -> None:
        """Closing during training waits for the step inside torch and the run's checkpoint: say so."""
        running = self._state.training == TrainState.RUNNING
        text = "stopping after this step…" if running else "stopping training…"
        self.activity_label.setText(text)
        self.showMessage(text)

    @Slot(object)
    def _on_state_changed(self, what: frozenset[str]) -> None:
        state = self._state
        if "training" in what:
            was, self._training_was = self._training_was, state.training
            if state.training in (TrainState.IDLE, TrainState.FINISHED):
                self.progress.hide()  # Stop sends no last progress: the bar would stay
                latest = self._training_pane.latest
                if was in (TrainState.RUNNING, TrainState.PAUSED) and latest and latest.get("step"):
                    corpus = self._training_pane.corpus_label.text().split(":")[0]
                    self.trained_note = f"trained {latest['step']:,} steps on {corpus}"
                    if self._model is not None:
                        self.show_model(self._model)
        if what & ACTIVITY:
            self.activity_label.setText(state.status_text())
