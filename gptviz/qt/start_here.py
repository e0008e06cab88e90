"""Start here: a one-line strip under the menu bar that walks the window in the book's order.

A newcomer opening gptviz sees five panes at once and nothing that says which to look at first. The book
(*Build a Large Language Model (From Scratch)*) has an order that works: tokens and sliding windows (ch. 2),
attention (ch. 3), the model's layers (ch. 4), training (ch. 5), then generating text. The strip offers
that order as five buttons; each brings its pane to the front, does the one thing that makes the pane
show the chapter's idea (open an attention head, take a generation step) and says in the status bar what
to look at. It is one line high so the panes keep their room on a 1280×720 laptop.

Dismissing it (×) is remembered in the settings; Help › Start here shows it again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QLabel, QMenu, QToolBar, QToolButton

if TYPE_CHECKING:  # the window imports this module: its class is for the checker only
    from gptviz.qt.main_window import MainWindow

SETTINGS_KEY = "start_here/dismissed"
HINT_MS = 20_000  # how long a step's hint stays in the status bar
STYLE = (
    "QToolBar#startHere { background: #eef6ea; border-bottom: 1px solid #b7d3a8; spacing: 2px; }"
    "QToolBar#startHere QToolButton:checked { background: #cfe6c2; border: 1px solid #8fb879; }"
)


@dataclass(frozen=True)
class Step:
    """One stop on the walk: its button's text, what the chapter is about (the tooltip), what to look at
    once there (the status bar's hint), and what the button does to the window."""

    key: str
    text: str
    tooltip: str
    hint: str
    go: Callable[[MainWindow], None]


def _tokens(window: MainWindow) -> None:
    window.focus_pane("tokens")
    window.tokens_pane.editor.setFocus()


def _attention(window: MainWindow) -> None:
    window.focus_pane("attention")
    pane = window.attention_pane
    if hasattr(pane, "select"):
        pane.select(pane.selected_layer, None, average=False)  # one head, as the book draws it


def _layers(window: MainWindow) -> None:
    window.focus_pane("activations")


def _training(window: MainWindow) -> None:
    window.focus_pane("training")


def _generation(window: MainWindow) -> None:
    window.focus_pane("generation")
    window.step_action.trigger()


STEPS = (
    Step(
        "tokens",
        "ch. 2 Tokens",
        "Chapter 2: text becomes token ids, and a corpus becomes sliding windows of inputs and targets",
        "Tokens: type in the box; each chip is one token and its id. Below, the corpus as windows: each "
        "target row is its input shifted by one.",
        _tokens,
    ),
    Step(
        "attention",
        "ch. 3 Attention",
        "Chapter 3: self-attention, the causal mask and multi-head attention",
        "Attention: each row is one query's weights over the earlier tokens (the causal mask hatches later "
        "ones); they make its context vector.",
        _attention,
    ),
    Step(
        "layers",
        "ch. 4 Layers",
        "Chapter 4: the transformer block, LayerNorm, GELU and shortcut connections",
        "Activations: the residual stream grows block by block through the shortcut connections; the MLP "
        "after GELU, LayerNorm, the logit lens.",
        _layers,
    ),
    Step(
        "training",
        "ch. 5 Training",
        "Chapter 5: the training loop, train and validation loss, perplexity",
        "Training: press Start; the train and validation loss fall, perplexity with them, and the "
        "time-lapse replays each evaluation.",
        _training,
    ),
    Step(
        "generation",
        "Generate",
        "Generate text one token at a time, with temperature and top-k",
        "Generation: a token was taken (Step, Ctrl+Right). The candidates' probabilities come from the "
        "logits; temperature and top-k change the pick.",
        _generation,
    ),
)


class StartHereStrip(QToolBar):
    """The strip: "Start here, in the book's order:" and a button per step, then × to dismiss it."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__("Start here", window)
        self.main_window = window  # (not `window`: that would hide QWidget.window())
        self.reopen_action: QAction | None = None  # Help › Start here, set by install()
        self.setObjectName("startHere")  # QMainWindow.saveState names toolbars by objectName
        self.setMovable(False)
        self.setFloatable(False)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.setStyleSheet(STYLE)
        self.title = QLabel(" <b>Start here</b>, in the book's order: ")
        self.addWidget(self.title)
        self.group = QActionGroup(self)
        self.group.setExclusive(True)
        self.step_actions: dict[str, QAction] = {}
        for step in STEPS:
            act = QAction(step.text, self)
            act.setCheckable(True)
            act.setToolTip(step.tooltip)
            act.setStatusTip(step.tooltip)
            act.triggered.connect(lambda _=False, s=step: self.go(s.key))
            self.group.addAction(act)
            self.addAction(act)
            self.step_actions[step.key] = act
        self.addSeparator()
        self.close_button = QToolButton()
        self.close_button.setText("\u00d7")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Hide this strip (Help \u203a Start here shows it again)")
        self.close_button.clicked.connect(self.dismiss)
        self.addWidget(self.close_button)
        self.toggleViewAction().setVisible(False)  # shown and hidden by × and Help › Start here only

    @property
    def dismissed(self) -> bool:
        return bool(self.main_window.settings.value(SETTINGS_KEY, False, bool))

    def go(self, key: str) -> None:
        """Take one step: its pane in front, its action done, its hint in the status bar."""
        step = next(s for s in STEPS if s.key == key)
        self.step_actions[key].setChecked(True)
        step.go(self.main_window)
        self.main_window.statusBar().showMessage(step.hint, HINT_MS)

    def dismiss(self) -> None:
        self.main_window.settings.set_value(SETTINGS_KEY, True)
        self.hide()

    def reopen(self) -> None:
        self.main_window.settings.set_value(SETTINGS_KEY, False)
        self.show()

    def apply_setting(self) -> None:
        """Shown unless dismissed: the settings say, not a window state restored from an older layout."""
        self.setVisible(not self.dismissed)


def install(window: MainWindow, help_menu: QMenu) -> StartHereStrip:
    """Add the strip on a line of its own at the top of the window, and Help › Start here to reopen it."""
    strip = StartHereStrip(window)
    window.addToolBarBreak(Qt.ToolBarArea.TopToolBarArea)
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, strip)
    strip.apply_setting()
    QTimer.singleShot(0, strip, strip.apply_setting)  # after the window restores its saved state
    reopen = QAction("&Start here", window)
    reopen.setStatusTip("Show the strip that walks the window in the book's order")
    reopen.triggered.connect(strip.reopen)
    if help_menu.actions():
        help_menu.insertAction(help_menu.actions()[0], reopen)
    else:
        help_menu.addAction(reopen)
    strip.reopen_action = reopen
    return strip


__all__ = ["STEPS", "StartHereStrip", "Step", "install"]
