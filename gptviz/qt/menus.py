"""The main window's menu bar (File, View, Generate, Model, Help), its shortcuts and the two Help boxes.

Why a room of its own: the menus are a long list of entries that each only name what they call on the window
or send to the worker. Kept in the window, that list hid the window's own job (docks, routing results,
closing). `WindowMenus` builds the bar once for a window and keeps the actions other code triggers or reads
(Generate › Step, the Model menu's models, the Start here strip). `SHORTCUTS` is the one list Help ›
Keyboard shortcuts shows; a test checks it against the actions' keys.

Generate's keys (Ctrl+Right, Ctrl+Left, Ctrl+P) also win over a text field's own use of them: `WindowMenus`
filters the window's text fields for that (a filter on the fields only; an application-wide one would see
every event).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from PySide6.QtCore import QEvent, QKeyCombination, QObject, Qt
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)

from gptviz import __version__ as GPTVIZ_VERSION  # noqa: N812
from gptviz.config import PRESETS
from gptviz.engine.train_settings import RECIPES
from gptviz.qt import commands as cmd
from gptviz.qt.export_model_dialog import add_export_action
from gptviz.qt.exports import export_data_dialog, export_png_dialog
from gptviz.qt.model_menu import ModelMenu
from gptviz.qt.start_here import install as install_start_here

if TYPE_CHECKING:
    from gptviz.qt.main_window import MainWindow

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

LAYOUT_ENTRIES = (
    ("explore", "&Explore", "Tokens, Attention and Activations large: how the model reads a text"),
    ("generate", "&Generate", "Generation with Attention and the logit lens beside it"),
    ("train", "&Train", "The loss curves large, with the probe's samples"),
)


class WindowMenus(QObject):
    """Builds `window`'s menu bar on construction and keeps the actions others reach for."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._main = window
        bar = window.menuBar()
        self._build_file(bar.addMenu("&File"))
        self._build_view(bar.addMenu("&View"))
        self._build_generate(bar.addMenu("&Generate"))
        self._build_model(bar.addMenu("&Model"))
        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts", lambda: show_shortcuts(window), "F1")
        self._action(help_menu, "&About gptviz", lambda: show_about(window))
        self.start_here = install_start_here(window, help_menu)  # the book's order, a button a chapter

    def _action(
        self, menu: QMenu, text: str, slot: Callable[..., Any], shortcut: str | None = None
    ) -> QAction:
        act = QAction(text, self._main)
        if shortcut:
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(slot)
        menu.addAction(act)
        return act

    def _build_file(self, menu: QMenu) -> None:
        window, opener, action = self._main, self._main.opener, self._action
        action(menu, "Open &corpus…", opener.open_corpus_dialog, "Ctrl+O")
        action(menu, "Open c&heckpoint…", opener.open_checkpoint_dialog, "Ctrl+Shift+O")
        action(menu, "&Import GPT-2 weights…", opener.import_weights_dialog)
        action(menu, "&Save checkpoint…", opener.save_checkpoint_dialog, "Ctrl+S")
        action(menu, "&Follow run directory…", opener.follow_dialog)
        action(menu, "Add run to co&mpare…", self._add_run_to_compare)  # the Training pane's Compare tab
        action(menu, "R&uns…", window.runs_dialog)  # every run trained in this window, kept on disk
        menu.addSeparator()
        action(menu, "&Export current pane as PNG…", lambda: export_png_dialog(window), "Ctrl+E")
        action(
            menu, "Export current pane &data (CSV / NPZ)…", lambda: export_data_dialog(window), "Ctrl+Shift+E"
        )
        add_export_action(window, menu)  # File › Export model… (Hugging Face folder or the book's .pth)
        menu.addSeparator()
        opener.set_recent_menu(menu.addMenu("&Recent files"))
        menu.addSeparator()
        action(menu, "&Quit", window.close, "Ctrl+Q")

    def _add_run_to_compare(self) -> None:
        """File › Add run to compare…: the Training pane's Compare tab, in front."""
        self._main.focus_pane("training")
        self._main.training_pane.compare_run_dialog()

    def _build_view(self, menu: QMenu) -> None:
        window, action = self._main, self._action
        for index, (key, dock) in enumerate(window.docks.items(), start=1):
            menu.addAction(dock.toggleViewAction())
            focus = QAction(f"Focus {dock.windowTitle()}", window)
            focus.setShortcut(QKeySequence(f"Ctrl+{index}"))
            focus.triggered.connect(lambda _=False, k=key: window.focus_pane(k))
            window.addAction(focus)
        menu.addSeparator()
        layouts = menu.addMenu("&Layout")
        for name, text, tip in LAYOUT_ENTRIES:
            act = action(layouts, text, lambda _=False, n=name: window.apply_layout(n))
            act.setToolTip(tip)
            act.setStatusTip(tip)
        layouts.setToolTipsVisible(True)
        layouts.addSeparator()
        action(layouts, "&Reset", window.default_layout)
        action(menu, "Reset layout", window.default_layout)

    def _build_generate(self, menu: QMenu) -> None:
        gp, action = self._main.generation_pane, self._action
        self.step_action = action(menu, "&Step one token", gp.step_button.click, "Ctrl+Right")
        self.play_action = action(menu, "&Play / pause", gp.play_button.click, "Ctrl+P")
        self.undo_action = action(menu, "&Undo the last token", gp.undo_button.click, "Ctrl+Left")
        self.reset_action = action(menu, "&Reset to the prompt", gp.reset_button.click, "Ctrl+Shift+R")
        self._window_keys = {
            a.shortcut().toString() for a in (self.step_action, self.play_action, self.undo_action)
        }
        for field in self._main.findChildren(QWidget):
            if isinstance(field, (QLineEdit, QAbstractSpinBox, QTextEdit, QPlainTextEdit)):
                field.installEventFilter(self)

    def _build_model(self, menu: QMenu) -> None:
        window, host, action = self._main, self._main.host, self._action
        self.model_switcher = ModelMenu(window, menu)  # Get GPT-2…, then downloaded/demo/recent models
        for name in PRESETS:
            action(menu, f"New untrained {name}", lambda _=False, n=name: host.submit(cmd.NewModel(n)))
        menu.addSeparator()
        self.train_action = action(menu, "Start / resume training", window.training_pane._on_start, "Ctrl+T")
        action(menu, "Pause training", lambda: host.submit(cmd.TrainPause()), "Ctrl+Shift+T")
        self.stop_train_action = action(
            menu, "Stop training", lambda: host.submit(cmd.TrainStop()), "Ctrl+Shift+X"
        )
        recipes = menu.addMenu("Train a &recipe")
        for recipe in RECIPES.values():
            act = action(
                recipes, recipe.title, lambda _=False, n=recipe.name: host.submit(cmd.TrainRecipe(n))
            )
            act.setStatusTip(recipe.description)
        menu.addSeparator()
        action(menu, "Activation &patching…", window.show_patching)
        window.causal.add_entries(menu)  # Ablations…, Embeddings…, and the panes' right-clicks to them
        action(menu, "Switch all parts back on", lambda: host.submit(cmd.SetAblations(())))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        """Ctrl+Right, Ctrl+Left and Ctrl+P step, undo and play from any focus in this window: a text field
        (the prompt, the Tokens editor) would otherwise take Ctrl+Left/Right as 'move a word'."""
        if event.type() == QEvent.Type.ShortcutOverride:
            key_event = cast(QKeyEvent, event)  # a ShortcutOverride is always a key event
            keys = QKeyCombination(key_event.modifiers(), Qt.Key(key_event.key()))
            if QKeySequence(keys).toString() in self._window_keys:
                event.ignore()  # not overridden: the window's action takes the key
                return True
        return False


def show_shortcuts(parent: QWidget) -> QMessageBox:
    """Help › Keyboard shortcuts: SHORTCUTS as a table, in a box that does not block the window."""
    rows = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;{html.escape(v)}</td></tr>" for k, v in SHORTCUTS)
    box = QMessageBox(parent)
    box.setWindowTitle("Keyboard shortcuts")
    box.setText(
        f"<table>{rows}</table><p>Drop a corpus file or a checkpoint folder onto the window to open it.</p>"
    )
    box.setModal(False)
    box.show()
    return box


def show_about(parent: QWidget) -> None:
    QMessageBox.about(
        parent,
        "About gptviz",
        f"<b>gptviz {GPTVIZ_VERSION}</b><p>See inside a GPT while it reads, learns and writes: the GPT-2 of "
        "<i>Build a Large Language Model (From Scratch)</i>, ch. 2–5, in PyTorch, with live views of its "
        "tokens, attention, activations, training and generation.</p>",
    )
