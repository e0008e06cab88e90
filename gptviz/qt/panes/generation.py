"""Pane 5, Generation (book ch. 4-5): one token at a time, with the candidates of each step laid open.

The pane only shows the newest GenerationView and emits what the user asks for (step, play, undo, reset,
force a candidate, new sampling settings); the worker does the work. The text and the candidates' chart and
table are drawn by the mixins in gptviz.qt.panes.generation_text and gptviz.qt.panes.generation_candidates;
this module keeps the controls and the pane's signals.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from gptviz.engine.sampling_settings import SamplingSettings
from gptviz.engine.views import DEFAULT_PROMPT
from gptviz.errors import ConfigError
from gptviz.qt.panes.generation_candidates import CandidatesMixin
from gptviz.qt.panes.generation_text import GeneratedTextMixin
from gptviz.qt.settings import AppSettings
from gptviz.qt.widgets.fit import FlowLayout, labelled


class GenerationPane(GeneratedTextMixin, CandidatesMixin, QWidget):
    """The prompt, the buttons and the sampling controls over the generated text (GeneratedTextMixin) and the
    last step's candidates (CandidatesMixin); this class owns the signals, the controls and the view shown."""

    promptSubmitted = Signal(str)
    stepRequested = Signal()
    playToggled = Signal(bool)
    undoRequested = Signal()
    resetRequested = Signal()
    forceRequested = Signal(int)
    whyRequested = Signal(int, int)  # (candidate id, id to compare with or -1): split its logit into parts
    samplingChanged = Signal(object)  # SamplingSettings

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = None
        self.context_length: int | None = None  # the model's context (the window sets it), for the cut count
        self._raw_by_index: dict[int, tuple[int, float]] = {}  # new token index -> (id, p before filters)
        self._raw_prompt: tuple[int, ...] = ()
        self._text_shown = None  # what the text box shows (a generation_text._ShownText once drawn)
        # -- prompt and buttons
        self.prompt = QLineEdit()
        self.prompt.setPlaceholderText("Prompt (Enter to start over from it)")
        self.prompt.returnPressed.connect(lambda: self.promptSubmitted.emit(self.prompt.text()))
        self.step_button = QPushButton("Step ▶")
        self.step_button.setToolTip("Generate one token (Ctrl+Right)")
        self.play_button = QPushButton("Play")
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("Keep generating until paused, <|endoftext|> or the limit (Ctrl+P)")
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("Take back the last token (Ctrl+Left)")
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("Back to the prompt (Ctrl+Shift+R)")
        # The keys are the window's Generate menu actions, which work from any focus, the prompt included
        # (a button's own shortcut was dropped when Play was relabelled Pause).
        self.step_button.clicked.connect(self.stepRequested)
        self.play_button.toggled.connect(self._on_play)
        self.undo_button.clicked.connect(self.undoRequested)
        self.reset_button.clicked.connect(self.resetRequested)
        top = QHBoxLayout()
        top.addWidget(QLabel("Prompt"))
        top.addWidget(self.prompt, 1)

        # -- sampling controls
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 5.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setDecimals(2)
        self.temperature.setToolTip(
            "Temperature scaling (book ch. 5): divides the logits by this number before softmax. Below 1 the "
            "distribution gets sharper (the likely tokens more likely), above 1 flatter (more varied, more "
            "mistakes); 0 = greedy, always the most likely token (argmax)"
        )
        self.top_k = QSpinBox()
        self.top_k.setRange(0, 50257)
        self.top_k.setSpecialValueText("off")
        self.top_k.setToolTip(
            "Top-k sampling (book ch. 5): keep only the k largest logits and set the others to -inf, so after "
            "softmax they get probability 0 and can never be drawn (0 = off)"
        )
        self.top_p = QDoubleSpinBox()
        self.top_p.setRange(0.01, 1.0)
        self.top_p.setSingleStep(0.05)
        self.top_p.setDecimals(2)
        self.top_p.setToolTip(
            "Top-p (nucleus) sampling: after temperature and top-k, keep the smallest set of most likely "
            "tokens whose probabilities add up to p, the others set to -inf like top-k's; the kept ones are "
            "renormalised to sum to 1 (1 = off)"
        )
        self.seed = QSpinBox()
        self.seed.setRange(-1, 2**31 - 1)
        self.seed.setSpecialValueText("random")
        self.seed.setToolTip("seed of the random choice (applies from the next Reset)")
        self.stop_at_eot = QCheckBox("stop at <|endoftext|>")
        # Buttons and sampling controls in one row that wraps when the pane is narrow (a laptop screen).
        controls = FlowLayout()
        for button in (self.step_button, self.play_button, self.undo_button, self.reset_button):
            controls.addWidget(button)
        for label, widget in (
            ("temperature", self.temperature),
            ("top-k", self.top_k),
            ("top-p", self.top_p),
            ("seed", self.seed),
        ):
            controls.addWidget(labelled(label, widget))
        controls.addWidget(self.stop_at_eot)
        self.set_sampling(SamplingSettings(temperature=0.8, top_k=50, top_p=0.95, seed=0))
        for box in (self.temperature, self.top_k, self.top_p, self.seed):
            box.valueChanged.connect(self._emit_sampling)
        self.stop_at_eot.toggled.connect(self._emit_sampling)

        # -- generated text, and the candidates: bar chart + table
        text_box = self._build_text()
        candidates = self._build_candidates()
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(text_box)
        splitter.addWidget(candidates)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 2)
        splitter.setChildrenCollapsible(False)  # a part dragged below its least size would hide the status

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addLayout(controls)
        layout.addWidget(splitter, 1)

    # ------------------------------------------------------------------------------------------ controls

    def sampling(self) -> SamplingSettings:
        seed = self.seed.value()
        return SamplingSettings(
            temperature=float(self.temperature.value()),
            top_k=int(self.top_k.value()) or None,
            top_p=float(self.top_p.value()),
            seed=None if seed < 0 else seed,
            stop_at_eot=self.stop_at_eot.isChecked(),
        )

    def set_sampling(self, settings: SamplingSettings) -> None:
        widgets = (self.temperature, self.top_k, self.top_p, self.seed, self.stop_at_eot)
        for w in widgets:
            w.blockSignals(True)
        self.temperature.setValue(settings.temperature)
        self.top_k.setValue(settings.top_k or 0)
        self.top_p.setValue(settings.top_p)
        self.seed.setValue(-1 if settings.seed is None else settings.seed)
        self.stop_at_eot.setChecked(settings.stop_at_eot)
        for w in widgets:
            w.blockSignals(False)

    def save_settings(self, settings: AppSettings) -> None:
        """The prompt and the sampling controls, under `generation/`."""
        settings.set_value("generation/prompt", self.prompt.text())
        settings.set_value("generation/temperature", self.temperature.value())
        settings.set_value("generation/top_k", self.top_k.value())
        settings.set_value("generation/top_p", self.top_p.value())
        settings.set_value("generation/seed", self.seed.value())
        settings.set_value("generation/stop_at_eot", self.stop_at_eot.isChecked())

    def restore_settings(self, settings: AppSettings) -> None:
        """What save_settings wrote; a set of values that no longer validates keeps the pane's defaults."""
        self.prompt.setText(str(settings.value("generation/prompt", DEFAULT_PROMPT)))
        seed = settings.value("generation/seed", 0, int)
        try:
            sampling = SamplingSettings(
                temperature=settings.value("generation/temperature", 0.8, float),
                top_k=settings.value("generation/top_k", 50, int) or None,
                top_p=settings.value("generation/top_p", 0.95, float),
                seed=None if seed < 0 else seed,
                stop_at_eot=settings.value("generation/stop_at_eot", True, bool),
            )
        except ConfigError:
            return
        self.set_sampling(sampling)

    def _emit_sampling(self) -> None:
        try:
            self.samplingChanged.emit(self.sampling())
        except ConfigError as exc:
            self.status.setText(str(exc))

    def _on_play(self, checked: bool) -> None:
        self.play_button.setText("Pause" if checked else "Play")
        self.playToggled.emit(checked)

    def set_playing(self, playing: bool) -> None:
        """The worker's word on whether Play runs (it stops on its own at <|endoftext|> or the limit)."""
        self.play_button.blockSignals(True)
        self.play_button.setChecked(playing)
        self.play_button.setText("Pause" if playing else "Play")
        self.play_button.blockSignals(False)

    # ------------------------------------------------------------------------------------------ results

    def set_generation(self, view) -> None:  # view: gptviz.engine.views.GenerationView
        self.view = view
        self._remember_raw(view)
        self._show_text(view)
        self._show_candidates(view)
        self.undo_button.setEnabled(len(view.new_ids) > 0)

    def export_data(self) -> dict[str, np.ndarray]:
        if self.view is None:
            return {}
        v = self.view
        out = {
            "prompt_ids": v.prompt_ids,
            "new_ids": v.new_ids,
            "new_probs": v.new_probs,
            "candidate_ids": np.array([c.id for c in v.candidates], dtype=np.int64),
            "candidate_prob_before": np.array([c.prob_raw for c in v.candidates], dtype=np.float32),
            "candidate_prob_after": np.array([c.prob_final for c in v.candidates], dtype=np.float32),
        }
        effect = getattr(v, "ablation_effect", None)
        if effect is not None:
            out["candidate_prob_whole_model"] = effect.probs_plain
            out["candidate_logit_ablated"] = effect.logits_ablated
            out["candidate_logit_whole_model"] = effect.logits_plain
        return out

    def export_table(self) -> tuple[list[str], list[list[object]]]:
        rows: list[list[object]] = []
        if self.view is not None:
            for c in self.view.candidates:
                rows.append([c.id, c.piece, c.prob_raw, c.prob_final, int(c.chosen)])
        return ["id", "piece", "p_before", "p_after", "chosen"], rows
