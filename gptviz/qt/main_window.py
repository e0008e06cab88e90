"""The main window: docks, menus, status bar, and the redraw timer. Layout and wiring only.

Results from the worker are stored as "newest per channel" and drawn by a ~30 Hz timer, so a fast training
run or Play never queues one redraw per step. Nothing here runs the model.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from PySide6.QtCore import QEvent, QFileSystemWatcher, QKeyCombination, Qt, QTimer, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QTextEdit,
    QWidget,
)

from gptviz import __version__ as GPTVIZ_VERSION  # noqa: N812
from gptviz.config import PRESETS
from gptviz.engine.memory import process_rss_bytes
from gptviz.engine.path_kind import PathKind, classify
from gptviz.engine.run_follow import run_is_finished
from gptviz.engine.train_settings import RECIPES
from gptviz.engine.views import DEFAULT_PROMPT
from gptviz.qt import commands as cmd
from gptviz.qt import reopen_offer
from gptviz.qt import worker as w
from gptviz.qt.app_state import TrainState
from gptviz.qt.causal_views import CausalViews
from gptviz.qt.export_model_dialog import add_export_action
from gptviz.qt.gc_in_gui_thread import GuiThreadGarbageCollector
from gptviz.qt.model_menu import ModelMenu
from gptviz.qt.open_model_dialog import choose_model, how_to_open
from gptviz.qt.panes.activations import ActivationsPane
from gptviz.qt.panes.attention import AttentionPane
from gptviz.qt.panes.generation import GenerationPane
from gptviz.qt.panes.tokens import TokensPane
from gptviz.qt.panes.training import TrainingPane
from gptviz.qt.recent_opens import RecentOpens
from gptviz.qt.runs_dialog import RunsDialog
from gptviz.qt.settings import AppSettings
from gptviz.qt.start_here import install as install_start_here
from gptviz.qt.widgets.error_banner import ErrorBanner
from gptviz.qt.widgets.fit import PaneScroll
from gptviz.qt.worker_host import WorkerHost

if TYPE_CHECKING:
    from gptviz.engine.ablation_spec import Ablation

REDRAW_INTERVAL_MS = 33  # ~30 Hz
FOLLOW_POLL_MS = 1000
DEFAULT_SIZE = (1500, 950)
COMPACT_HEIGHT = 860  # below this window height, the default layout tabs Tokens behind Generation  # the first window, when the screen's available geometry has room for it

# View › Layout: (left column, right column, left column's share of the width, each column's height shares).
# A column is a list of cells from top to bottom; a cell is a list of panes tabbed together, the first in front.
LAYOUTS: dict[str, tuple[list[list[str]], list[list[str]], float, tuple[tuple[float, ...], ...]]] = {
    "default": (
        [["tokens"], ["generation"]],
        [["attention"], ["activations", "training"]],
        0.46,
        ((0.57, 0.43), (0.45, 0.55)),
    ),
    "explore": (
        [["tokens", "generation"]],
        [["attention"], ["activations", "training"]],
        0.4,
        ((1.0,), (0.5, 0.5)),
    ),
    "generate": (
        [["generation", "tokens"]],
        [["attention"], ["activations", "training"]],
        0.5,
        ((1.0,), (0.45, 0.55)),
    ),
    "train": (
        [["training"]],
        [["generation", "tokens"], ["activations", "attention"]],
        0.66,
        ((1.0,), (0.5, 0.5)),
    ),
}

SHORTCUTS = (
    ("Ctrl+O", "open a corpus file"),
    ("Ctrl+Shift+O", "open a checkpoint directory"),
    ("Ctrl+S", "save the model as a checkpoint"),
    ("Ctrl+E", "export the current pane as PNG"),
    ("Ctrl+Shift+E", "export the current pane's data (CSV or NPZ)"),
    ("Ctrl+Right", "generate one token (also from the prompt field)"),
    ("Ctrl+Left", "undo the last token"),
    ("Ctrl+P", "play / pause generation"),
    ("Ctrl+Shift+R", "reset generation to the prompt"),
    ("Ctrl+Shift+A", "Ablations…: switch heads, neurons or layers off, or back on"),
    ("Ctrl+Shift+N", "Embeddings…: a token's nearest tokens and the map of the text"),
    ("Ctrl+T", "start / resume training"),
    ("Ctrl+Shift+T", "pause training"),
    ("Ctrl+Shift+X", "stop training"),
    ("Ctrl+1 … Ctrl+5", "show and focus a pane"),
    ("Ctrl+Q", "quit"),
)


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
        self.recent = RecentOpens(self.settings)  # File › Recent files keeps what opened, not what failed
        self.model_info = None
        self.last_error = ""
        self.errors: list[str] = []
        self._pending: dict[str, Any] = {}
        self.inspection = cmd.Inspect()  # the Activations pane's MLP layer and lens position, sent whole
        self._last_redraw = 0.0  # time.monotonic() of the last redraw
        self.causal = CausalViews(self)  # attention steps, Why this token?, activation patching
        self.gc = GuiThreadGarbageCollector(self)  # Qt objects are never destroyed in the worker thread
        self._redraw_gap = REDRAW_INTERVAL_MS / 1000  # seconds until the next redraw may start
        self._follow_dir: str | None = None
        self._memory_tick = 0
        self._startup_tokens = startup_tokens  # a few real steps so the Generation pane opens populated
        self._shown_once = False

        self.host = WorkerHost(session_factory, self)
        self.host.resultReady.connect(self._on_result)
        self.host.errorRaised.connect(self._on_error)
        self.state = self.host.state  # what is loaded and what runs: the status bar and buttons follow it
        self.state.changed.connect(self._on_state_changed)
        self.host.progressChanged.connect(self._on_progress)
        self.host.ready.connect(self._on_ready)

        self.banner = ErrorBanner(self)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.banner)
        self._build_panes()
        self._build_menus()
        self._build_status_bar()
        self._restore_settings()
        self._connect_panes()
        self.reopen_offer = reopen_offer.install(self)  # the last session's unfinished run, once ready

        self.redraw_timer = QTimer(self)
        self.redraw_timer.setInterval(REDRAW_INTERVAL_MS)
        self.redraw_timer.timeout.connect(self.redraw)
        self.redraw_timer.start()
        self.follow_timer = QTimer(self)
        self.follow_timer.setInterval(FOLLOW_POLL_MS)
        self.follow_timer.timeout.connect(self._poll_follow)
        self.watcher = QFileSystemWatcher(self)
        self.watcher.fileChanged.connect(self._poll_follow)
        if start:
            self.host.start()

    # ------------------------------------------------------------------------------------------ building

    def _build_panes(self) -> None:
        self.tokens_pane = TokensPane()
        self.generation_pane = GenerationPane()
        self.training_pane = TrainingPane()
        self.attention_pane = AttentionPane()
        self.activations_pane = ActivationsPane()
        self.docks: dict[str, QDockWidget] = {}
        self.panes: dict[str, QWidget] = {
            "tokens": self.tokens_pane,
            "generation": self.generation_pane,
            "attention": self.attention_pane,
            "activations": self.activations_pane,
            "training": self.training_pane,
        }
        for key, title, pane in (
            ("tokens", "Tokens", self.tokens_pane),
            ("generation", "Generation", self.generation_pane),
            ("attention", "Attention", self.attention_pane),
            ("activations", "Activations", self.activations_pane),
            ("training", "Training", self.training_pane),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock_{key}")
            dock.setWidget(PaneScroll(pane))  # a dock smaller than its pane scrolls instead of clipping
            dock.setFeatures(
                QDockWidget.DockWidgetFeature.DockWidgetMovable
                | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                | QDockWidget.DockWidgetFeature.DockWidgetClosable
            )
            self.docks[key] = dock
        self._default_layout()
        self._current_pane = "generation"
        app = QApplication.instance()
        if isinstance(app, QApplication):  # always, in a window; the check narrows the type
            app.focusChanged.connect(self._on_focus_changed)

    def _default_layout(self) -> None:
        """View › Reset layout: Tokens over Generation at the left; Attention over Activations (Training in a
        tab behind it) at the right."""
        self.apply_layout("default")

    def apply_layout(self, name: str) -> None:
        """Arrange the docks by one of LAYOUTS: two columns, each a list of cells, each cell a list of panes
        tabbed together (the first one in front). Every pane stays reachable: none is hidden."""
        if name == "default" and self.height() < COMPACT_HEIGHT:
            name = "generate"  # two panes a column leave each too short on a laptop: tab the left one
        left, right, width_share, heights = LAYOUTS[name]
        d = self.docks
        for dock in d.values():
            dock.setFloating(False)
            self.removeDockWidget(dock)
        for column, area in (
            (left, Qt.DockWidgetArea.LeftDockWidgetArea),
            (right, Qt.DockWidgetArea.RightDockWidgetArea),
        ):
            first = column[0][0]
            self.addDockWidget(area, d[first])
            previous = first
            for cell in column[1:]:
                self.splitDockWidget(d[previous], d[cell[0]], Qt.Orientation.Vertical)
                previous = cell[0]
            for cell in column:
                for key in cell[1:]:
                    self.tabifyDockWidget(d[cell[0]], d[key])
        for dock in d.values():
            dock.show()
        for column in (left, right):
            for cell in column:
                d[cell[0]].raise_()
        width = max(self.width(), 400)
        height = max(self.height() - 60, 200)  # less the menu and status bars
        self.resizeDocks(
            [d[left[0][0]], d[right[0][0]]],
            [int(width * width_share), int(width * (1 - width_share))],
            Qt.Orientation.Horizontal,
        )
        for column, shares in zip((left, right), heights, strict=True):
            if len(column) > 1:
                self.resizeDocks(
                    [d[cell[0]] for cell in column],
                    [int(height * f) for f in shares],
                    Qt.Orientation.Vertical,
                )
        self._layout_name = name

    def fit_to_screen(self, width: int = DEFAULT_SIZE[0], height: int = DEFAULT_SIZE[1]) -> None:
        """Size the window to (width, height) or to the screen's available geometry, whichever is smaller,
        and place it inside that geometry (without a window manager, showMaximized does nothing)."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            self.resize(width, height)
            return
        available = screen.availableGeometry()
        frame = self.frameGeometry().size() - self.geometry().size()  # the title bar, once shown
        w = min(width, available.width() - frame.width())
        h = min(height, available.height() - frame.height())
        self.resize(w, h)
        self.move(
            available.x() + (available.width() - w - frame.width()) // 2,
            available.y() + (available.height() - h - frame.height()) // 2,
        )
        if (w < width or h < height) and QGuiApplication.platformName() not in ("offscreen", "minimal"):
            # A window manager then fits the window and its title bar to the screen itself.
            self.setWindowState(self.windowState() | Qt.WindowState.WindowMaximized)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")

        def action(menu, text: str, slot, shortcut: str | None = None) -> QAction:
            act = QAction(text, self)
            if shortcut:
                act.setShortcut(QKeySequence(shortcut))
            act.triggered.connect(slot)
            menu.addAction(act)
            return act

        action(file_menu, "Open &corpus…", self.open_corpus_dialog, "Ctrl+O")
        action(file_menu, "Open c&heckpoint…", self.open_checkpoint_dialog, "Ctrl+Shift+O")
        action(file_menu, "&Import GPT-2 weights…", self.import_weights_dialog)
        action(file_menu, "&Save checkpoint…", self.save_checkpoint_dialog, "Ctrl+S")
        action(file_menu, "&Follow run directory…", self.follow_dialog)
        action(  # the Training pane's Compare tab: runs side by side
            file_menu,
            "Add run to co&mpare…",
            self._add_run_to_compare,
        )
        action(file_menu, "R&uns…", self.runs_dialog)  # every run trained in this window, kept on disk
        file_menu.addSeparator()
        action(file_menu, "&Export current pane as PNG…", self.export_png_dialog, "Ctrl+E")
        action(file_menu, "Export current pane &data (CSV / NPZ)…", self.export_data_dialog, "Ctrl+Shift+E")
        add_export_action(self, file_menu)  # File › Export model… (Hugging Face folder or the book's .pth)
        file_menu.addSeparator()
        self.recent_menu = file_menu.addMenu("&Recent files")
        self._rebuild_recent()
        file_menu.addSeparator()
        action(file_menu, "&Quit", self.close, "Ctrl+Q")

        view_menu = bar.addMenu("&View")
        for index, (key, dock) in enumerate(self.docks.items(), start=1):
            toggle = dock.toggleViewAction()
            view_menu.addAction(toggle)
            focus = QAction(f"Focus {dock.windowTitle()}", self)
            focus.setShortcut(QKeySequence(f"Ctrl+{index}"))
            focus.triggered.connect(lambda _=False, k=key: self.focus_pane(k))
            self.addAction(focus)
        view_menu.addSeparator()
        layouts = view_menu.addMenu("&Layout")
        for name, text, tip in (
            ("explore", "&Explore", "Tokens, Attention and Activations large: how the model reads a text"),
            ("generate", "&Generate", "Generation with Attention and the logit lens beside it"),
            ("train", "&Train", "The loss curves large, with the probe's samples"),
        ):
            act = action(layouts, text, lambda _=False, n=name: self.apply_layout(n))
            act.setToolTip(tip)
            act.setStatusTip(tip)
        layouts.setToolTipsVisible(True)
        layouts.addSeparator()
        action(layouts, "&Reset", self._default_layout)
        action(view_menu, "Reset layout", self._default_layout)

        gen_menu = bar.addMenu("&Generate")
        gp = self.generation_pane
        self.step_action = action(gen_menu, "&Step one token", gp.step_button.click, "Ctrl+Right")
        self.play_action = action(gen_menu, "&Play / pause", gp.play_button.click, "Ctrl+P")
        self.undo_action = action(gen_menu, "&Undo the last token", gp.undo_button.click, "Ctrl+Left")
        self.reset_action = action(gen_menu, "&Reset to the prompt", gp.reset_button.click, "Ctrl+Shift+R")
        self._window_keys = {
            a.shortcut().toString() for a in (self.step_action, self.play_action, self.undo_action)
        }
        # These keys win over a text field's own use of them (no app-wide filter: it would see every event).
        for field in self.findChildren(QWidget):
            if isinstance(field, (QLineEdit, QAbstractSpinBox, QTextEdit, QPlainTextEdit)):
                field.installEventFilter(self)

        model_menu = bar.addMenu("&Model")
        self.model_switcher = ModelMenu(self, model_menu)  # Get GPT-2…, then downloaded/demo/recent models
        for name in PRESETS:
            action(
                model_menu,
                f"New untrained {name}",
                lambda _=False, n=name: self.host.submit(cmd.NewModel(n)),
            )
        model_menu.addSeparator()
        self.train_action = action(
            model_menu, "Start / resume training", self.training_pane._on_start, "Ctrl+T"
        )
        action(model_menu, "Pause training", lambda: self.host.submit(cmd.TrainPause()), "Ctrl+Shift+T")
        self.stop_train_action = action(
            model_menu, "Stop training", lambda: self.host.submit(cmd.TrainStop()), "Ctrl+Shift+X"
        )
        recipes = model_menu.addMenu("Train a &recipe")
        for recipe in RECIPES.values():
            act = action(
                recipes,
                recipe.title,
                lambda _=False, n=recipe.name: self.host.submit(cmd.TrainRecipe(n)),
            )
            act.setStatusTip(recipe.description)
        model_menu.addSeparator()
        action(model_menu, "Activation &patching…", self.show_patching)
        self.causal.add_entries(model_menu)  # Ablations…, Embeddings…, and the panes' right-clicks to them
        action(
            model_menu,
            "Switch all parts back on",
            lambda: self.host.submit(cmd.SetAblations(())),
        )

        help_menu = bar.addMenu("&Help")
        action(help_menu, "&Keyboard shortcuts", self.show_shortcuts, "F1")
        action(help_menu, "&About gptviz", self.show_about)
        self.start_here = install_start_here(self, help_menu)  # the book's order, a button a chapter

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.model_label = QLabel("loading model…")
        self.memory_label = QLabel("")
        self.device_label = QLabel("")
        self.activity_label = QLabel("starting")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress.setTextVisible(True)
        self.progress.hide()
        status.addWidget(self.model_label, 1)
        status.addPermanentWidget(self.memory_label)
        status.addPermanentWidget(self.device_label)
        status.addPermanentWidget(self.activity_label)
        status.addPermanentWidget(self.progress)

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
        tr.saveRequested.connect(self.save_checkpoint_dialog)
        tr.openCorpusRequested.connect(self.open_corpus_dialog)
        tr.followRequested.connect(self.follow_dialog)
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
        if self._follow_dir:
            self.stop_following()
        self.host.submit(cmd.TrainStart(settings, preset or None))

    def focus_pane(self, key: str) -> None:
        dock = self.docks[key]
        dock.show()
        dock.raise_()
        self.panes[key].setFocus()
        self._current_pane = key

    def _add_run_to_compare(self) -> None:
        """File › Add run to compare…: the Training pane's Compare tab, in front."""
        self.focus_pane("training")
        self.training_pane.compare_run_dialog()

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
        if channel == w.TRAINING:
            self.training_pane.add_update(payload)
        elif channel == w.FOLLOW:
            self.training_pane.add_follow(payload)
        elif channel == w.HISTORY:
            self.training_pane.set_history(payload)
        elif channel == w.TRAIN_PHASE:
            self.training_pane.set_phase(str(payload))
        elif channel == w.RUN_DIR:
            self.training_pane.set_run_dir(str(payload))  # the book's printed curve behind a book-ch5 run
        elif channel in (w.TRAIN_STATE, w.PLAY_STATE):
            pass  # kept by the application state (self.state), which the window observes
        elif channel == w.SAVED:
            self.statusBar().showMessage(f"saved {payload}", 5000)
            self.settings.add_recent("checkpoint", str(payload))
            self._rebuild_recent()
        elif channel == w.ABLATIONS:
            ablations = cast("tuple[Ablation, ...]", payload)  # what the worker switched off, in order
            self.attention_pane.set_ablations(ablations)
            if ablations:
                self.statusBar().showMessage("switched off: " + ", ".join(a.label for a in ablations), 8000)
        elif channel == w.MODEL:
            self._set_model_info(payload)
        elif channel == w.CORPUS:
            self.training_pane.set_corpus(payload)
            self.tokens_pane.request_windows()
        else:
            self._pending[channel] = payload
            if channel == w.INSPECTION:
                self.redraw()  # a lone Step shows at once, not at the timer's next tick
                self.causal.refresh_attention_steps(playing=self.state.playing)

    def redraw(self) -> None:
        """Draw the newest snapshot of each kind (the redraw timer, ~30 Hz, or a step's inspection).

        While Play or training runs, a redraw that took d seconds waits 2d before the next one (at least
        the timer's interval): the panes then take at most a third of the GUI thread, and the worker, which
        shares the two cores and the Python interpreter lock, keeps generating near its own speed."""
        started = time.monotonic()
        if self.state.busy and started - self._last_redraw < self._redraw_gap:
            return
        self._last_redraw = started
        self._redraw_now()
        self._redraw_gap = max(REDRAW_INTERVAL_MS / 1000, 3 * (time.monotonic() - started))

    def _redraw_now(self) -> None:
        pending, self._pending = self._pending, {}
        if self.host.sequence_behind():  # views kept for this redraw, but a newer prompt was asked for since
            pending.pop(w.GENERATION, None)
            pending.pop(w.INSPECTION, None)
        if w.TOKENS in pending:
            self.tokens_pane.set_tokens(pending[w.TOKENS])
        if w.WINDOWS in pending:
            self.tokens_pane.set_windows(pending[w.WINDOWS])
        if w.GENERATION in pending:
            self.generation_pane.set_generation(pending[w.GENERATION])
        if w.INSPECTION in pending:
            snapshot = pending[w.INSPECTION]
            for pane in (self.attention_pane, self.activations_pane):
                if hasattr(pane, "set_snapshot"):
                    pane.set_snapshot(snapshot)
        self.training_pane.refresh()
        self._memory_tick += 1
        if self._memory_tick % 30 == 1:
            rss = process_rss_bytes()
            self.memory_label.setText(f"RAM {rss / 2**20:,.0f} MB" if rss else "")

    def _set_model_info(self, info) -> None:
        if info is not self.model_info:
            self._trained_note = ""  # another model (or the trained one reloaded): its own name says it
        self.model_info = info
        name = info.name
        if getattr(self, "_trained_note", ""):
            name = f"{name.replace(' (untrained)', '')}, {self._trained_note}"
        self.model_label.setText(
            f"<b>{html.escape(name)}</b> · {info.params / 1e6:.2f}M params · {info.bytes / 2**20:.0f} MB · "
            f"{info.n_layers} layers × {info.n_heads} heads · width {info.emb_dim} · context {info.context_length}"
            + (f" · <span style='color:#b36b00'>{html.escape(info.note)}</span>" if info.note else "")
        )
        self.model_label.setToolTip(info.path or info.source)
        self.device_label.setText(info.device)
        self.generation_pane.context_length = info.context_length

    @Slot(str, str)
    def _on_error(self, command: str, message: str) -> None:
        self.last_error = message
        self.errors.append(f"{command}: {message}")
        if self.recent.failed(command):
            self._rebuild_recent()
        self.banner.show_message(f"<b>{html.escape(command.replace('_', ' '))}</b>: {html.escape(message)}")
        self.statusBar().showMessage(message, 8000)
        if command in ("train_start", "training"):
            self.training_pane.show_error(message)
        if command in ("follow", "poll_follow"):
            self._set_following(None)

    @Slot(object)
    def _on_state_changed(self, what: frozenset[str]) -> None:
        """The application state changed: the status bar, Play and the Training pane's buttons follow."""
        state = self.state
        if "training" in what:
            was = self.training_pane.state
            self.training_pane.set_state(str(state.training))
            if state.training in (TrainState.IDLE, TrainState.FINISHED):
                self.progress.hide()  # Stop sends no last progress: the bar would stay
                latest = self.training_pane.latest
                if was in ("running", "paused") and latest and latest.get("step"):
                    corpus = self.training_pane.corpus_label.text().split(":")[0]
                    self._trained_note = f"trained {latest['step']:,} steps on {corpus}"
                    if self.model_info is not None:
                        self._set_model_info(self.model_info)
        if "playing" in what:
            self.generation_pane.set_playing(state.playing)
            if not state.playing:
                self.causal.refresh_attention_steps(playing=False)
        if what & {"activity", "training", "downloading", "patching"}:
            self.activity_label.setText(state.status_text())

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        if total <= 0:
            self.progress.hide()
            return
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.show()

    # ------------------------------------------------------------------------------------------ files

    def open_path(self, path: Path) -> None:
        """Open whatever the user dropped or named; what it is comes from gptviz.engine.path_kind."""
        path = Path(path)
        kind = classify(path)
        if kind is PathKind.RUN_DIR:
            # A finished run will not change: open its model with its history, read once.
            (self.open_checkpoint if run_is_finished(path) else self.follow)(path)
        elif kind is PathKind.CHECKPOINT:
            self.open_checkpoint(path)
        elif kind.is_model:  # a Hugging Face folder or file, the book's .pth, nanoGPT's ckpt.pt
            self.import_weights(path)
        elif kind is PathKind.CORPUS:
            self.open_corpus(path)
        elif kind is PathKind.MISSING:
            self._on_error("open", f"{path} not found")
        else:
            self._on_error("open", f"{path} is neither a checkpoint, a run directory nor GPT-2 weights")

    def open_corpus(self, path: str | os.PathLike) -> None:
        self.host.submit(cmd.LoadCorpus(str(path)))
        self.recent.opening("corpus", path)
        self._rebuild_recent()

    def open_checkpoint(self, path: str | os.PathLike) -> None:
        if self._follow_dir:
            self.stop_following()  # the followed run's model is being replaced
        self.host.submit(cmd.LoadCheckpoint(str(path)))
        self.recent.opening("checkpoint", path)
        self._rebuild_recent()

    def import_weights(self, path: str | os.PathLike) -> None:
        if self._follow_dir:
            self.stop_following()
        self.host.submit(cmd.ImportWeights(str(path)))
        self.recent.opening("import", path)
        self._rebuild_recent()

    def follow(self, path: str | os.PathLike) -> None:
        self._set_following(str(path))
        self.host.submit(cmd.Follow(str(path)))
        self.recent.opening("rundir", path)
        self._rebuild_recent()

    def stop_following(self) -> None:
        self.host.submit(cmd.Follow(None))
        self._set_following(None)

    def _set_following(self, path: str | None) -> None:
        if self.watcher.files():
            self.watcher.removePaths(self.watcher.files())
        self._follow_dir = path
        self.training_pane.set_following(path)
        if path:
            metrics = Path(path) / "metrics.jsonl"
            if metrics.exists():
                self.watcher.addPath(str(metrics))
            self.follow_timer.start()
            self.focus_pane("training")
        else:
            self.follow_timer.stop()

    def _poll_follow(self, *_args) -> None:
        if self._follow_dir:
            self.host.submit(cmd.PollFollow())
            metrics = str(Path(self._follow_dir) / "metrics.jsonl")
            if metrics not in self.watcher.files() and Path(metrics).exists():
                self.watcher.addPath(metrics)

    def _start_dir(self) -> str:
        return str(self.settings.value("dialogs/last_dir", str(Path.home())))

    def _remember_dir(self, path: str) -> None:
        self.settings.set_value("dialogs/last_dir", str(Path(path).parent))

    def open_corpus_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open corpus", self._start_dir(), "Text (*.txt *.md);;All files (*)"
        )
        if path:
            self._remember_dir(path)
            self.open_corpus(path)

    def open_checkpoint_dialog(self) -> None:
        """A checkpoint or run folder, or a weights file (model.safetensors, model.pth, ckpt.pt)."""
        path = choose_model(self, self._start_dir())
        if path is not None:
            self._remember_dir(str(path))
            how = how_to_open(path)  # a run directory loads with its history; File › Follow follows one
            if how == "checkpoint":
                self.open_checkpoint(path)
            elif how == "import":
                self.import_weights(path)
            else:
                self._on_error("open", f"{path.name} is not a model: choose a model's folder or weights file")

    def import_weights_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Import GPT-2 weights (a file of a Hugging Face folder, the book's .pth, or nanoGPT's ckpt.pt)",
            self._start_dir(),
            "Weights (*.safetensors *.bin *.pth *.pt);;All files (*)",
        )
        if path:
            self._remember_dir(path)
            p = Path(path)
            # A Hugging Face file is read with its folder's config.json.
            self.import_weights(
                p.parent
                if p.suffix in (".safetensors", ".bin") and (p.parent / "config.json").is_file()
                else p
            )

    def save_checkpoint_dialog(self) -> None:
        path = QFileDialog.getSaveFileName(self, "Save checkpoint (a directory)", self._start_dir())[0]
        if path:
            self._remember_dir(path)
            self.host.submit(cmd.SaveCheckpoint(path))

    def follow_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "Follow a run directory (gptviz train --out DIR)", self._start_dir()
        )
        if path:
            self._remember_dir(path)
            self.follow(path)

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

    def runs_dialog(self) -> RunsDialog:
        """File › Runs…: open, resume, reveal or delete a run this window trained (non-modal)."""
        dialog = RunsDialog(self)
        dialog.openRequested.connect(self.open_checkpoint)
        dialog.resumeRequested.connect(lambda path: self.host.submit(cmd.ResumeRun(path)))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        self.runs_window = dialog
        return dialog

    def export_png(self, path: str | os.PathLike, key: str | None = None) -> Path:
        widget = self.panes[key or self._current_pane]
        self.redraw()
        pixmap = widget.grab()
        if not pixmap.save(str(path), "PNG"):
            raise OSError(f"could not write {path}")
        return Path(path)

    def export_data(self, path: str | os.PathLike, key: str | None = None) -> Path:
        """NPZ: every array the pane shows; CSV: its main table (or its first array of at most 2 dimensions)."""
        widget = self.panes[key or self._current_pane]
        path = Path(path)
        data = widget.export_data() if hasattr(widget, "export_data") else {}
        if path.suffix.lower() == ".csv":
            if hasattr(widget, "export_table"):
                header, rows = widget.export_table()
            else:
                arrays = [(k, np.asarray(v)) for k, v in data.items() if np.asarray(v).ndim in (1, 2)]
                if not arrays:
                    raise ValueError("this pane has no table to export; choose .npz")
                name, array = arrays[0]
                array = array.reshape(array.shape[0], -1)
                header = [f"{name}[{i}]" for i in range(array.shape[1])]
                rows = array.tolist()
            with open(path, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(header)
                writer.writerows(rows)
        else:
            if path.suffix.lower() != ".npz":
                path = path.with_suffix(".npz")
            named: dict[str, np.ndarray] = {k: np.asarray(v) for k, v in data.items()}
            np.savez(path, allow_pickle=False, **named)  # numbers only: nothing to pickle
        return path

    def export_png_dialog(self) -> None:
        title = self.docks[self._current_pane].windowTitle()
        path, _ = QFileDialog.getSaveFileName(
            self, f"Export {title} as PNG", self._start_dir(), "PNG (*.png)"
        )
        if path:
            self._remember_dir(path)
            try:
                self.export_png(path if path.endswith(".png") else path + ".png")
            except OSError as exc:
                self._on_error("export", str(exc))

    def export_data_dialog(self) -> None:
        title = self.docks[self._current_pane].windowTitle()
        path, _ = QFileDialog.getSaveFileName(
            self, f"Export {title} data", self._start_dir(), "NumPy arrays (*.npz);;CSV table (*.csv)"
        )
        if path:
            self._remember_dir(path)
            try:
                self.export_data(path)
            except (OSError, ValueError) as exc:
                self._on_error("export", str(exc))

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        items = self.settings.recent_files()
        if not items:
            empty = self.recent_menu.addAction("(none)")
            empty.setEnabled(False)
            return
        for kind, path in items:
            act = self.recent_menu.addAction(f"{kind}: {path}")
            act.triggered.connect(lambda _=False, k=kind, p=path: self._open_recent(k, p))
        self.recent_menu.addSeparator()
        clear = self.recent_menu.addAction("Clear list")
        clear.triggered.connect(self._clear_recent)

    def _clear_recent(self) -> None:
        self.settings.clear_recent()
        self._rebuild_recent()

    def _open_recent(self, kind: str, path: str) -> None:
        {
            "corpus": self.open_corpus,
            "checkpoint": self.open_checkpoint,
            "import": self.import_weights,
            "rundir": self.follow,
        }.get(kind, lambda p: self.open_path(Path(p)))(path)

    # ------------------------------------------------------------------------------------------ drag and drop

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.open_path(Path(url.toLocalFile()))
                event.acceptProposedAction()
                return
        event.ignore()

    # ------------------------------------------------------------------------------------------ help

    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;{html.escape(v)}</td></tr>" for k, v in SHORTCUTS)
        box = QMessageBox(self)
        box.setWindowTitle("Keyboard shortcuts")
        box.setText(
            f"<table>{rows}</table><p>Drop a corpus file or a checkpoint folder onto the window to open it.</p>"
        )
        box.setModal(False)
        box.show()

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            "About gptviz",
            f"<b>gptviz {GPTVIZ_VERSION}</b><p>See inside a GPT while it reads, learns and writes: the GPT-2 of "
            "<i>Build a Large Language Model (From Scratch)</i>, ch. 2–5, in PyTorch, with live views of its "
            "tokens, attention, activations, training and generation.</p>",
        )

    # ------------------------------------------------------------------------------------------ settings

    def _restore_settings(self) -> None:
        s = self.settings
        geometry, state = s.geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        available = self._available_size()
        # Qt shrinks a geometry saved on a larger screen to two thirds of this one: a laptop after an
        # external monitor would open in a small window. Saved on another screen size: fit this one.
        screen_then = s.value("window/screen", "")
        screen_now = f"{available.width()}x{available.height()}" if available is not None else ""
        if (
            geometry is None
            or screen_then != screen_now
            or (
                available is not None
                and (self.width() > available.width() or self.height() > available.height())
            )
        ):
            self.fit_to_screen()  # a first launch, or a layout saved on a larger screen
            self.apply_layout("default")  # the dock sizes follow the window's
        if state is not None:
            self.restoreState(state)
        for pane in (self.tokens_pane, self.generation_pane, self.training_pane):
            pane.restore_settings(s)  # each pane reads back what its save_settings wrote

    def eventFilter(self, watched, event) -> bool:  # noqa: N802
        """Ctrl+Right, Ctrl+Left and Ctrl+P step, undo and play from any focus in this window: a text field
        (the prompt, the Tokens editor) would otherwise take Ctrl+Left/Right as 'move a word'."""
        if event.type() == QEvent.Type.ShortcutOverride:
            keys = QKeyCombination(event.modifiers(), Qt.Key(event.key()))
            if QKeySequence(keys).toString() in self._window_keys:
                event.ignore()  # not overridden: the window's action takes the key
                return True
        return False

    def showEvent(self, event) -> None:  # noqa: N802
        """On the first show the frame (title bar, borders) is known: refit when it pushes the window off the
        screen's available geometry."""
        super().showEvent(event)
        screen = self.screen()
        if not self._shown_once and screen is not None:
            self._shown_once = True
            available = screen.availableGeometry()
            frame = self.frameGeometry()
            if frame.width() > available.width() or frame.height() > available.height():
                self.fit_to_screen(self.width(), self.height())

    def _available_size(self):
        screen = self.screen() or QGuiApplication.primaryScreen()
        return screen.availableGeometry().size() if screen is not None else None

    def save_settings(self) -> None:
        s = self.settings
        s.set_geometry(self.saveGeometry(), self.saveState())
        available = self._available_size()
        if available is not None:
            s.set_value("window/screen", f"{available.width()}x{available.height()}")
        for pane in (self.tokens_pane, self.generation_pane, self.training_pane):
            pane.save_settings(s)
        s.sync()

    def _show_stopping(self) -> None:
        """Closing during training waits for the step inside torch and the run's checkpoint (seconds at
        124M): say so at once, painted before the wait, not a window that looks frozen."""
        text = "stopping after this step…" if self.training_pane.state == "running" else "stopping training…"
        self.activity_label.setText(text)
        self.statusBar().showMessage(text)
        self.repaint()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """Save the layout, stop training and the worker (within 2 s), then close."""
        self.redraw_timer.stop()
        self.follow_timer.stop()
        if self.training_pane.state in ("running", "paused"):
            self._show_stopping()
        self.save_settings()
        if not self.host.shutdown(2000):
            # A step already inside torch cannot be interrupted; the event loop has been told to quit,
            # so the thread ends right after it. Waiting here keeps Qt from destroying a running thread.
            self.host.thread.wait(60_000)
        self.gc.stop()  # the worker has ended: the interpreter may collect in any thread again
        event.accept()
