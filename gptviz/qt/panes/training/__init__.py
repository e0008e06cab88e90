"""Pane 4, Training (book ch. 5): settings, start/pause/stop/save, live loss curves, the probe's time-lapse.

Updates arrive one per step; the pane appends them to preallocated buffers (cheap) and draws only when the
main window's redraw timer calls `refresh()` (at most ~30 times a second, however fast training runs).
Whether a run is going, paused or over the pane reads from the application state (`qt/app_state.py`) it is
given, observing its `changed` signal for its buttons; nobody pushes a word to it. A pane made alone (tests,
benchmarks) gets an AppState of its own.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QScrollArea, QSplitter, QVBoxLayout, QWidget

from gptviz.engine.human_units import format_duration
from gptviz.errors import ConfigError, DataError
from gptviz.qt.app_state import AppState, TrainState
from gptviz.qt.panes.training.compare import CompareView, RunDropFilter, ask_for_run, is_run_dir
from gptviz.qt.panes.training.curves import (
    MAX_CURVE_POINTS,
    MAX_MARKED_POINTS,
    CurveBuffer,
    CurvesMixin,
    TokensSeenAxis,
    _num,
    _short,
)
from gptviz.qt.panes.training.diagnostics import DiagnosticsMixin
from gptviz.qt.panes.training.kept import KeptCheckpointsView
from gptviz.qt.panes.training.settings_form import CURRENT_MODEL, SettingsFormMixin, history_settings
from gptviz.qt.panes.training.timelapse import TimeLapseMixin, sample_html

if TYPE_CHECKING:
    from gptviz.engine.probe import ProbeRecord

__all__ = [
    "CURRENT_MODEL",
    "MAX_CURVE_POINTS",
    "MAX_MARKED_POINTS",
    "CurveBuffer",
    "TokensSeenAxis",
    "TrainingPane",
    "history_settings",
    "sample_html",
]


class TrainingPane(SettingsFormMixin, CurvesMixin, DiagnosticsMixin, TimeLapseMixin, QWidget):
    startRequested = Signal(object, str)  # TrainSettings, preset name ("" = the current model)
    pauseRequested = Signal()
    stopRequested = Signal()
    saveRequested = Signal()
    openCorpusRequested = Signal()
    followRequested = Signal()
    unfollowRequested = Signal()

    def __init__(self, parent: QWidget | None = None, app_state: AppState | None = None) -> None:
        super().__init__(parent)
        self.app_state = app_state if app_state is not None else AppState(self)
        self.following: str | None = None
        self.history: str | None = None  # label of the loaded model's history while the pane shows it
        self.train_curve_data = CurveBuffer()
        self.eval_curve_data = CurveBuffer()
        self.val_curve_data = CurveBuffer()
        self.tokens_data = CurveBuffer()  # x = step, y = tokens seen
        self.elapsed_data = CurveBuffer()  # x = step, y = seconds of training (the wall-time axis)
        self.probes: list[ProbeRecord] = []
        self.latest: dict[str, Any] | None = None  # newest StepResult-like record
        self._dirty = False
        self._drawn_versions: dict[int, tuple[int, ...]] = {}  # curve -> its last drawn key
        self._probe_shown = -1
        self._reference_checked: str | None = None  # the run directory whose settings were last looked at
        self._build_controls()
        self._build_plot()
        self._build_diagnostics()
        for view, title in (
            (self.grad_norm_view, "Gradient norms"),
            (self.update_ratio_view, "Update ratios"),
            (self.entropy_view, "Attention entropy"),
            (self.histogram_view, "Weight histograms"),
        ):
            self.views.addTab(view, title)
        self.compare_view = CompareView()
        self.views.addTab(self.compare_view, "Compare")
        self.compare_view.addRequested.connect(self.compare_run_dialog)
        # Several run folders dropped on the curves (or one on the Compare tab) go side by side.
        self._drop_filter = RunDropFilter(
            self.compare_runs, self, single=(self.compare_view.plot.viewport(),)
        )
        for plot in (self.plot, self.compare_view.plot):
            plot.setAcceptDrops(True)
            plot.viewport().setAcceptDrops(True)
            plot.viewport().installEventFilter(self._drop_filter)
        self.kept_view = KeptCheckpointsView()  # the run's kept checkpoints: a time slider, A vs B
        self.views.addTab(self.kept_view, "Checkpoints")
        self._kept_scanned = -1  # the probe count when the kept checkpoints were last listed
        self.views.currentChanged.connect(self._on_view_changed)
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
        self._show_training(self.app_state.training)
        self.app_state.changed.connect(self._on_app_state_changed)

    # ---------------------------------------------------------------------------------------- building

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

    @property
    def state(self) -> str:
        """idle | running | paused: the application state's word on the run (a finished run is idle)."""
        training = self.app_state.training
        return TrainState.IDLE.value if training == TrainState.FINISHED else training.value

    def _on_app_state_changed(self, what: frozenset[str]) -> None:
        if "training" in what:  # each of the worker's words counts, even the same one twice
            self._show_training(self.app_state.training)

    def _show_training(self, state: TrainState) -> None:
        """The buttons, the settings' enabled state and the notice for the worker's word on the run."""
        running, paused = state == TrainState.RUNNING, state == TrainState.PAUSED
        # Loading a kept step would replace the model a run is training.
        self.kept_view.set_loading_allowed(not running and not paused)
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
        if state == TrainState.FINISHED or (
            state == TrainState.IDLE and self.message.text().startswith("starting")
        ):
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
        for buffer in (
            self.train_curve_data,
            self.eval_curve_data,
            self.val_curve_data,
            self.tokens_data,
            self.elapsed_data,
        ):
            buffer.clear()
        self.set_reference(None)
        self._reference_checked = None
        self._clear_diagnostics()
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

    def _on_view_changed(self, _index: int) -> None:
        if self.views.currentWidget() is self.kept_view:
            self.kept_view.rescan()
        self._dirty = True
        self.refresh()

    def compare_runs(self, paths: list[str]) -> list[str]:
        """Put run directories side by side on the Compare tab (and show it). The first time, the run this
        pane shows (a history, a followed run or the window's own) joins them, to compare against."""
        paths = [str(p) for p in paths]
        own = self._reference_checked
        if not self.compare_view.runs and own and is_run_dir(own) and own not in paths:
            paths.insert(0, own)
        problems = self.compare_view.add_runs(paths)
        self.views.setCurrentWidget(self.compare_view)
        return problems

    def compare_run_dialog(self) -> None:
        """File › Add run to compare…: choose a run folder (starting in the data folder's runs/)."""
        from gptviz.engine.runs import runs_dir

        start = runs_dir()
        path = ask_for_run(self, str(start) if start.is_dir() else "")
        if path:
            self.compare_runs([path])

    def set_phase(self, text: str) -> None:
        """What starting a run is doing (the worker's words: building the model, tokenizing N tokens,
        evaluating the untrained model, first step), shown until the first step is done."""
        if self.latest is not None and self.latest.get("step", 0) >= 1:
            return
        self.message.setStyleSheet("color: #2a6")
        self.message.setText(f"starting: {text}…")
        self.progress.setFormat(f"{text}…")

    def set_run_dir(self, run_dir: str | None) -> None:
        """The run shown writes (or wrote) to `run_dir`: when its settings.json describes the book's
        chapter 5 run, draw the book's printed curve behind it."""
        from gptviz.engine.book_curve import is_book_run, printed_curve
        from gptviz.engine.rundir import read_settings

        self._reference_checked = run_dir
        self.kept_view.set_run_dir(run_dir)
        curve = None
        if run_dir:
            try:
                if is_book_run(read_settings(run_dir)):
                    curve = printed_curve()
            except (DataError, OSError):
                curve = None  # no settings yet, or the note is missing: no reference, no error
        self.set_reference(curve)

    def add_update(self, update) -> None:
        """One TrainingUpdate from the worker: buffers only, drawn at the next refresh()."""
        r = update.result
        if r.step == 0 and self.latest is not None:
            # A fresh run's first update (a recipe from the menu does not pass through Start): the curves
            # of the history or run shown before give way; the new run's reference curve stays.
            run_dir = self._reference_checked
            self.clear()
            self.set_run_dir(run_dir)
        if r.step >= 1 and self.message.text().startswith("starting"):
            # Step 0 (the untrained model's evaluation) comes first; the notice stays until a step is done.
            self.message.setText("")
            self.progress.setFormat("%v / %m steps (%p%)")
        self._add_point(
            step=r.step,
            tokens_seen=r.tokens_seen,
            train_loss=r.train_loss,
            train_eval=r.train_eval_loss,
            val_loss=r.val_loss,
            elapsed_s=r.elapsed_s,
        )
        self._add_diagnostics(r.step, r)
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
        if batch.run_dir and self.reference is None and self._reference_checked != batch.run_dir:
            self.set_run_dir(batch.run_dir)
        elif batch.run_dir and self.kept_view.run_dir != batch.run_dir:
            self.kept_view.set_run_dir(batch.run_dir)
        for rec in batch.records:
            self._add_point(
                step=rec["step"],
                tokens_seen=rec.get("tokens_seen", 0),
                train_loss=rec.get("train_loss"),
                train_eval=rec.get("train_eval_loss"),
                val_loss=rec.get("val_loss"),
                elapsed_s=rec.get("elapsed_s"),
            )
            self._add_diagnostics(rec["step"], rec)
            last: dict[str, Any] = dict(self.latest or {})
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

    def _add_point(self, step, tokens_seen, train_loss, train_eval, val_loss, elapsed_s=None) -> None:
        self.tokens_data.append(step, tokens_seen)
        if elapsed_s is not None and math.isfinite(elapsed_s):
            self.elapsed_data.append(step, elapsed_s)
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
        self._draw_curves()
        self._draw_diagnostics()
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
                "ETA": format_duration(eta if (eta := latest.get("eta_s")) is not None else float("nan")),
            }
            for name, text in fmt.items():
                self.stats[name].setText(text)
            self.progress.setRange(0, max(1, int(latest["total_steps"])))
            self.progress.setValue(int(latest["step"]))
        count = len(self.probes)
        if count != self._kept_scanned and self.kept_view.isVisible():
            self._kept_scanned = count  # an evaluation (a probe) may have kept another checkpoint
            self.kept_view.rescan()
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, count - 1))
        if self.follow_latest.isChecked() and count:
            self.slider.setValue(count - 1)
        self.slider.blockSignals(False)
        self._show_probe(self.slider.value())
