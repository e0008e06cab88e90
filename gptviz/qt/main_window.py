"""The main window: the panes in docks, their signals turned into worker commands, and the worker's results
routed back to them on a redraw timer. Layout and wiring only; nothing here runs the model.

Results from the worker are stored as "newest per channel" and drawn by a ~30 Hz timer, so a fast training
run or Play never queues one redraw per step. The window's other jobs live in rooms of their own, each built
for this window: the menu bar (`menus`), opening and following files and File › Recent (`opening`), pane
exports (`exports`), the status bar (`status_bar`), dock layouts and the window's size (`window_layout`), and
the windows that ask why (`causal_views`). The window keeps thin methods with the names other modules and the
tests call (`open_checkpoint`, `follow`, `export_png`, …).
"""

from __future__ import annotations

import dataclasses
import html
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QShowEvent
from PySide6.QtWidgets import QApplication, QDockWidget, QMainWindow, QWidget

from gptviz.engine.memory import process_rss_bytes
from gptviz.engine.views import DEFAULT_PROMPT
from gptviz.qt import commands as cmd
from gptviz.qt import reopen_offer
from gptviz.qt import window_layout as layout
from gptviz.qt.app_state import TrainState
from gptviz.qt.causal_views import CausalViews
from gptviz.qt.exports import write_data, write_png
from gptviz.qt.menus import WindowMenus
from gptviz.qt.opening import Opener
from gptviz.qt.panes.activations import ActivationsPane
from gptviz.qt.panes.attention import AttentionPane
from gptviz.qt.panes.generation import GenerationPane
from gptviz.qt.panes.tokens import TokensPane
from gptviz.qt.panes.training import TrainingPane
from gptviz.qt.runs_dialog import RunsDialog
from gptviz.qt.settings import AppSettings
from gptviz.qt.status_bar import WindowStatusBar
from gptviz.qt.widgets.error_banner import ErrorBanner
from gptviz.qt.worker_host import WorkerHost

if TYPE_CHECKING:
    from gptviz.engine.ablation_spec import Ablation

REDRAW_INTERVAL_MS = 33  # ~30 Hz


class MainWindow(QMainWindow):
    def __init__(
        self,
        session_factory: Callable[[], Any],
        settings: AppSettings | None = None,
        *,
        start: bool = True,
        startup_tokens: int = 3,
    ) -> None:
        super().__init__()
        self.setWindowTitle("gptviz — inside a GPT")
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self.settings = settings or AppSettings()
        self.model_info = None
        self.last_error = ""
        self.errors: list[str] = []
        self._pending: dict[str, Any] = {}
        self.inspection = cmd.Inspect()  # the Activations pane's MLP layer and lens position, sent whole
        self._last_redraw = 0.0  # time.monotonic() of the last redraw
        self.causal = CausalViews(self)  # attention steps, Why this token?, activation patching
        self._redraw_gap = REDRAW_INTERVAL_MS / 1000  # seconds until the next redraw may start
        self._memory_tick = 0
        self._startup_tokens = startup_tokens  # a few real steps so the Generation pane opens populated
        self._shown_once = False

        self.host = WorkerHost(session_factory, self)
        self.host.resultReady.connect(self._on_result)
        self.host.errorRaised.connect(self._on_error)
        self.state = self.host.state  # what is loaded and what runs: the status bar and buttons follow it
        self.state.changed.connect(self._on_state_changed)
        self.host.ready.connect(self._on_ready)

        self.banner = ErrorBanner(self)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.banner)
        self._build_panes()
        self.opener = Opener(self)  # File › Open…, following a run, File › Recent files, drops
        self.status = WindowStatusBar(self.state, self.training_pane, self)
        self.setStatusBar(self.status)
        self.host.progressChanged.connect(self.status.show_progress)
        self.model_label, self.memory_label = self.status.model_label, self.status.memory_label
        self.device_label, self.activity_label = self.status.device_label, self.status.activity_label
        self.progress = self.status.progress
        self.menus = WindowMenus(self)
        self.step_action = self.menus.step_action  # the Start here strip's Generation step triggers it
        self.model_switcher = self.menus.model_switcher
        self.start_here = self.menus.start_here
        self._restore_settings()
        self._connect_panes()
        self.reopen_offer = reopen_offer.install(self)  # the last session's unfinished run, once ready

        self.redraw_timer = QTimer(self)
        self.redraw_timer.setInterval(REDRAW_INTERVAL_MS)
        self.redraw_timer.timeout.connect(self.redraw)
        self.redraw_timer.start()
        if start:
            self.host.start()

    # ------------------------------------------------------------------------------------------ building

    def _build_panes(self) -> None:
        self.tokens_pane = TokensPane()
        self.generation_pane = GenerationPane()
        self.training_pane = TrainingPane(app_state=self.state)  # it observes the run's state itself
        self.attention_pane = AttentionPane()
        self.activations_pane = ActivationsPane()
        self.panes: dict[str, QWidget] = {
            "tokens": self.tokens_pane,
            "generation": self.generation_pane,
            "attention": self.attention_pane,
            "activations": self.activations_pane,
            "training": self.training_pane,
        }
        titles = {"tokens": "Tokens", "generation": "Generation", "attention": "Attention"}
        titles |= {"activations": "Activations", "training": "Training"}
        self.docks: dict[str, QDockWidget] = {
            key: layout.make_dock(self, key, titles[key], pane) for key, pane in self.panes.items()
        }
        self.default_layout()
        self._current_pane = "generation"
        app = QApplication.instance()
        if isinstance(app, QApplication):  # always, in a window; the check narrows the type
            app.focusChanged.connect(self._on_focus_changed)

    def default_layout(self) -> None:
        """View › Reset layout: Tokens over Generation at the left; Attention over Activations (Training in a
        tab behind it) at the right."""
        self.apply_layout("default")

    def apply_layout(self, name: str) -> None:
        """View › Layout: arrange the docks by one of `window_layout.LAYOUTS`."""
        layout.arrange(self, self.docks, name)

    def fit_to_screen(
        self, width: int = layout.DEFAULT_SIZE[0], height: int = layout.DEFAULT_SIZE[1]
    ) -> None:
        layout.fit_to_screen(self, width, height)

    def _connect_panes(self) -> None:
        tp, gp, tr = self.tokens_pane, self.generation_pane, self.training_pane
        tp.textChanged.connect(self.request_tokens)
        tp.windowsRequested.connect(self.request_windows)
        gp.promptSubmitted.connect(self.set_prompt)
        gp.stepRequested.connect(lambda: self.host.submit(cmd.GenStep()))
        self.attention_pane.ablationsRequested.connect(
            lambda wanted: self.host.submit(cmd.SetAblations(tuple(wanted)))
        )
        self.attention_pane.queryClicked.connect(self.show_attention_steps)
        gp.whyRequested.connect(self.show_why)
        gp.undoRequested.connect(lambda: self.host.submit(cmd.Undo()))
        gp.resetRequested.connect(lambda: self.host.submit(cmd.Reset()))
        gp.forceRequested.connect(lambda token_id: self.host.submit(cmd.Force(token_id)))
        gp.playToggled.connect(self._on_play_toggled)
        gp.samplingChanged.connect(self._on_sampling_changed)
        tr.startRequested.connect(self._on_train_start)
        tr.pauseRequested.connect(lambda: self.host.submit(cmd.TrainPause()))
        tr.stopRequested.connect(lambda: self.host.submit(cmd.TrainStop()))
        tr.saveRequested.connect(self.opener.save_checkpoint_dialog)
        tr.openCorpusRequested.connect(self.opener.open_corpus_dialog)
        tr.followRequested.connect(self.opener.follow_dialog)
        tr.unfollowRequested.connect(self.stop_following)
        tr.kept_view.loadRequested.connect(self.open_checkpoint)  # Checkpoints tab: a kept step, every pane
        gp.prompt.textChanged.connect(tr.kept_view.set_prompt)  # its A vs B on the current prompt
        activations = self.activations_pane
        if hasattr(activations, "mlpLayerRequested"):
            activations.mlpLayerRequested.connect(lambda layer: self.request_inspect(mlp_layer=layer))
        if hasattr(activations, "lensPositionRequested"):
            activations.lensPositionRequested.connect(lambda pos: self.request_inspect(lens_position=pos))

    # ------------------------------------------------------------------------------------------ requests

    def request_tokens(self, text: str | None = None) -> int:
        text = self.tokens_pane.text() if text is None else text
        return self.host.submit(cmd.Tokenize(text))

    def request_windows(self, max_length: int, stride: int, first: int, count: int) -> int:
        return self.host.submit(cmd.Windows(max_length, stride, first, count))

    def request_inspect(self, **args: int) -> int:
        """The Activations pane's MLP layer or lens position changed: the window keeps its choices (the
        worker inspects again with the last Inspect it received after every step)."""
        self.inspection = dataclasses.replace(self.inspection, **args)
        return self.host.submit(self.inspection)

    def set_prompt(self, prompt: str) -> None:
        self.generation_pane.prompt.setText(prompt)
        self.host.submit(cmd.SetPrompt(prompt))

    def _on_sampling_changed(self, settings) -> None:
        self.host.submit(cmd.SetSampling(settings))

    def _on_play_toggled(self, playing: bool) -> None:
        self.host.submit(cmd.Play() if playing else cmd.PausePlay())

    def _on_train_start(self, settings, preset: str) -> None:
        if self.opener.follow_dir:
            self.stop_following()
        self.host.submit(cmd.TrainStart(settings, preset or None))

    def focus_pane(self, key: str) -> None:
        dock = self.docks[key]
        dock.show()
        dock.raise_()
        self.panes[key].setFocus()
        self._current_pane = key

    def _on_focus_changed(self, _old, new) -> None:
        while new is not None:
            for key, dock in self.docks.items():
                if new is dock:
                    self._current_pane = key
                    return
            new = new.parentWidget()

    def current_pane_key(self) -> str:
        return self._current_pane

    # ------------------------------------------------------------------------------------------ results

    @Slot()
    def _on_ready(self) -> None:
        self.host.submit(cmd.SetSampling(self.generation_pane.sampling()))
        self.set_prompt(self.generation_pane.prompt.text() or DEFAULT_PROMPT)
        for _ in range(self._startup_tokens):
            self.host.submit(cmd.GenStep())
        self._startup_tokens = 0
        self.request_tokens()
        self.tokens_pane.request_windows()

    @Slot(str, object)
    def _on_result(self, channel: str, payload: object) -> None:
        """Keep the newest result per channel; training updates are buffered in the pane (cheap)."""
        if self.causal.handle(channel, payload):
            return
        if channel == cmd.TRAINING:
            self.training_pane.add_update(payload)
        elif channel == cmd.FOLLOW:
            self.training_pane.add_follow(payload)
        elif channel == cmd.HISTORY:
            self.training_pane.set_history(payload)
        elif channel == cmd.TRAIN_PHASE:
            self.training_pane.set_phase(str(payload))
        elif channel == cmd.RUN_DIR:
            self.training_pane.set_run_dir(str(payload))  # the book's printed curve behind a book-ch5 run
        elif channel in (cmd.TRAIN_STATE, cmd.PLAY_STATE):
            pass  # kept by the application state (self.state), which the window observes
        elif channel == cmd.SAVED:
            self.statusBar().showMessage(f"saved {payload}", 5000)
            self.settings.add_recent("checkpoint", str(payload))
            self._rebuild_recent()
        elif channel == cmd.ABLATIONS:
            ablations = cast("tuple[Ablation, ...]", payload)  # what the worker switched off, in order
            self.attention_pane.set_ablations(ablations)
            if ablations:
                self.statusBar().showMessage("switched off: " + ", ".join(a.label for a in ablations), 8000)
        elif channel == cmd.MODEL:
            self._set_model_info(payload)
        elif channel == cmd.CORPUS:
            self.training_pane.set_corpus(payload)
            self.tokens_pane.request_windows()
        else:
            self._pending[channel] = payload
            if channel == cmd.INSPECTION:
                self.redraw()  # a lone Step shows at once, not at the timer's next tick
                self.causal.refresh_attention_steps(playing=self.state.playing)

    def redraw(self) -> None:
        """Draw the newest snapshot of each kind (the redraw timer, ~30 Hz, or a step's inspection).

        While Play or training runs, a redraw that took d seconds waits 2d before the next one (at least
        the timer's interval): the panes then take at most a third of the GUI thread, and the worker, which
        shares the two cores and the Python interpreter lock, keeps generating near its own speed. d runs
        until the panes have painted: a timer set now fires after the paint events the redraw posted (they
        cost about as much again as setting the panes' data, so d without them let the panes take two
        thirds)."""
        started = time.monotonic()
        if self.state.busy and started - self._last_redraw < self._redraw_gap:
            return
        self._last_redraw = started
        self._redraw_now()
        self._redraw_gap = max(REDRAW_INTERVAL_MS / 1000, 3 * (time.monotonic() - started))
        self.host.newest.redraw_free_at = started + self._redraw_gap
        self.host.newest.redraw_gap = self._redraw_gap
        QTimer.singleShot(1, self, lambda: self._painted(started))

    def _painted(self, started: float) -> None:
        """The redraw begun at `started` has painted: its full cost sets the gap before the next one."""
        if started == self._last_redraw:  # no later redraw began since
            self._redraw_gap = max(self._redraw_gap, 3 * (time.monotonic() - started))
            self.host.newest.redraw_free_at = started + self._redraw_gap
            self.host.newest.redraw_gap = self._redraw_gap

    def _redraw_now(self) -> None:
        pending, self._pending = self._pending, {}
        if self.host.sequence_behind():  # views kept for this redraw, but a newer prompt was asked for since
            pending.pop(cmd.GENERATION, None)
            pending.pop(cmd.INSPECTION, None)
        if cmd.TOKENS in pending:
            self.tokens_pane.set_tokens(pending[cmd.TOKENS])
        if cmd.WINDOWS in pending:
            self.tokens_pane.set_windows(pending[cmd.WINDOWS])
        if cmd.GENERATION in pending:
            self.generation_pane.set_generation(pending[cmd.GENERATION])
        if cmd.INSPECTION in pending:
            snapshot = pending[cmd.INSPECTION]
            for pane in (self.attention_pane, self.activations_pane):
                if hasattr(pane, "set_snapshot"):
                    pane.set_snapshot(snapshot)
        self.training_pane.refresh()
        self._memory_tick += 1
        if self._memory_tick % 30 == 1:
            rss = process_rss_bytes()
            self.memory_label.setText(f"RAM {rss / 2**20:,.0f} MB" if rss else "")

    def _set_model_info(self, info) -> None:
        self.model_info = info
        self.status.show_model(info)
        self.generation_pane.context_length = info.context_length

    def _rebuild_recent(self) -> None:
        self.opener.rebuild_recent()  # a checkpoint saved (SAVED) goes on File › Recent files

    @Slot(str, str)
    def _on_error(self, command: str, message: str) -> None:
        self.last_error = message
        self.errors.append(f"{command}: {message}")
        if self.opener.recent.failed(command):
            self.opener.rebuild_recent()
        self.banner.show_message(f"<b>{html.escape(command.replace('_', ' '))}</b>: {html.escape(message)}")
        self.statusBar().showMessage(message, 8000)
        if command in ("train_start", "training"):
            self.training_pane.show_error(message)
        if command in ("follow", "poll_follow"):
            self.opener.set_following(None)

    @Slot(object)
    def _on_state_changed(self, what: frozenset[str]) -> None:
        """The application state changed: Play follows (the status bar and the Training pane observe the
        state themselves)."""
        state = self.state
        if "playing" in what:
            self.generation_pane.set_playing(state.playing)
            if not state.playing:
                self.causal.refresh_attention_steps(playing=False)

    # ------------------------------------------------------------------------------------------ files
    # The work is `self.opener`'s (gptviz.qt.opening); these names are what other modules and tests call.

    def open_path(self, path: str | os.PathLike) -> None:
        self.opener.open_path(path)

    def open_corpus(self, path: str | os.PathLike) -> None:
        self.opener.open_corpus(path)

    def open_checkpoint(self, path: str | os.PathLike) -> None:
        self.opener.open_checkpoint(path)

    def import_weights(self, path: str | os.PathLike) -> None:
        self.opener.import_weights(path)

    def follow(self, path: str | os.PathLike) -> None:
        self.opener.follow(path)

    def stop_following(self) -> None:
        self.opener.stop_following()

    def open_checkpoint_dialog(self) -> None:
        self.opener.open_checkpoint_dialog()

    def runs_dialog(self) -> RunsDialog:
        return self.opener.runs_dialog()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        self.opener.drag_enter(event)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        self.opener.drop(event)

    # The windows that ask why live in gptviz.qt.causal_views; these names are what menus and tests call.
    def show_attention_steps(self, layer: int, head: int, query: int) -> Any:
        return self.causal.show_attention_steps(layer, head, query)

    def show_patching(self) -> Any:
        return self.causal.show_patching()

    def show_why(self, token_id: int, against_id: int = -1) -> None:
        self.causal.show_why(token_id, against_id)

    @property
    def steps_view(self) -> Any:
        return self.causal.steps_view

    @property
    def why_view(self) -> Any:
        return self.causal.why_view

    @property
    def patching_view(self) -> Any:
        return self.causal.patching_view

    # ------------------------------------------------------------------------------------------ exports

    def export_png(self, path: str | os.PathLike, key: str | None = None) -> Path:
        """The pane `key` (default: the current one), freshly drawn, as a PNG (gptviz.qt.exports)."""
        self.redraw()
        return write_png(self.panes[key or self._current_pane], path)

    def export_data(self, path: str | os.PathLike, key: str | None = None) -> Path:
        """The pane's arrays as NPZ, or its main table as CSV (gptviz.qt.exports.write_data)."""
        return write_data(self.panes[key or self._current_pane], path)

    # ------------------------------------------------------------------------------------------ settings

    def _restore_settings(self) -> None:
        layout.restore_geometry(self, self.docks, self.settings)
        for pane in (self.tokens_pane, self.generation_pane, self.training_pane):
            pane.restore_settings(self.settings)  # each pane reads back what its save_settings wrote

    def save_settings(self) -> None:
        layout.save_geometry(self, self.settings)
        for pane in (self.tokens_pane, self.generation_pane, self.training_pane):
            pane.save_settings(self.settings)
        self.settings.sync()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        super().showEvent(event)
        if not self._shown_once and self.screen() is not None:
            self._shown_once = True
            layout.refit_if_off_screen(self)  # the frame is known now: keep the title bar on the screen

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """Save the layout, stop training and the worker (within 2 s), then close."""
        self.redraw_timer.stop()
        self.opener.follow_timer.stop()
        if self.state.training in (TrainState.RUNNING, TrainState.PAUSED):
            # Closing waits for the step inside torch and the run's checkpoint (seconds at 124M): say so
            # at once, painted before the wait, not a window that looks frozen.
            self.status.show_stopping()
            self.repaint()
        self.save_settings()
        if not self.host.shutdown(2000):
            # A step already inside torch cannot be interrupted; the event loop has been told to quit,
            # so the thread ends right after it. Waiting here keeps Qt from destroying a running thread.
            self.host.thread.wait(60_000)
        self.host.gc.stop()  # the worker has ended: the interpreter may collect in any thread again
        event.accept()
