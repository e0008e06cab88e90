"""The Training pane's settings form: corpus, model, the run's numbers, and Start/Pause/Stop/Save.

A mixin of TrainingPane (it builds `self.controls`, `self.button_grid` and `self.message`, and reads them
back as a TrainSettings), kept apart so the pane's file holds the wiring and not every spin box.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from gptviz.config import PRESETS
from gptviz.engine.views import DEFAULT_PROMPT
from gptviz.errors import ConfigError, DataError
from gptviz.qt.panes.mixin_base import PaneMixin
from gptviz.qt.settings import AppSettings

if TYPE_CHECKING:
    from PySide6.QtCore import Signal

CURRENT_MODEL = "current model"


def history_settings(run_dir: str):
    """The TrainSettings a recorded run was trained with (its settings.json), or None when the file is
    missing, unreadable or describes settings this version cannot make. A run counted in epochs gets its
    total steps instead, so the Steps box shows how long that run was."""
    from gptviz.engine.rundir import read_settings
    from gptviz.engine.train_settings import TrainSettings

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


class SettingsFormMixin(PaneMixin):
    """Builds and reads the settings form (part of TrainingPane)."""

    if TYPE_CHECKING:  # the pane's signals and slots its buttons connect to (defined on TrainingPane)
        openCorpusRequested: Signal
        pauseRequested: Signal
        stopRequested: Signal
        saveRequested: Signal

        def _on_start(self) -> None: ...
        def _on_follow(self) -> None: ...

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
        self.probe_prompt.addItems([DEFAULT_PROMPT, "The for statement", "A class definition"])
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

    # The form's values remembered between launches, under `training/`: the ints, then the learning rate.
    REMEMBERED = ("steps", "batch_size", "context", "eval_freq", "eval_iter", "warmup")

    def save_settings(self, settings: AppSettings) -> None:
        for key in self.REMEMBERED:
            settings.set_value(f"training/{key}", getattr(self, key).value())
        settings.set_value("training/lr", self.lr.value())

    def restore_settings(self, settings: AppSettings) -> None:
        for key in self.REMEMBERED:
            box = getattr(self, key)
            box.setValue(settings.value(f"training/{key}", box.value(), int))
        self.lr.setValue(settings.value("training/lr", self.lr.value(), float))

    def settings(self):
        """The TrainSettings the controls describe (raises ConfigError with the reason when they cannot work)."""
        from gptviz.engine.train_settings import TrainSettings

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
            probe_prompt=self.probe_prompt.currentText() or DEFAULT_PROMPT,
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
