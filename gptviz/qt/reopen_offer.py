"""The offer at start-up to reopen the run the last session left unfinished: a strip under the menu bar.

Training in the window writes its run to the data folder (gptviz.engine.runs), and closing the window
mid-run writes a checkpoint of the last finished step. That alone does not bring the work back: a user who
closed the window (or whose machine crashed) should not have to know about File › Runs… to find it. So the
next launch says what happened and offers the ways back — Reopen (the model and its curves), Resume
training (from the checkpoint, same folder, optimizer and data position), Runs… (the list) — or × to let it
be. It is a strip, not a dialog: the window is usable at once, and nothing waits for an answer.

Which runs are offered (`gptviz.engine.runs.run_to_offer`): the last run, when the window was closed while
it trained or was paused (state "closed") or the process died while it trained (state still "running": a
crash, a kill, a power cut), it has a checkpoint and is not finished. A run the user stopped is not offered
(they saw it end; the status bar still names it, and File › Runs… lists it). Any answer, × included, is
recorded in the run's window.json, so the same run is not offered twice; resuming it and closing again
offers it again.
"""

from __future__ import annotations

import contextlib
import html
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QToolBar, QToolButton, QWidget

from gptviz.engine import runs
from gptviz.qt.commands import ResumeRun
from gptviz.qt.runs_dialog import last_run_message

if TYPE_CHECKING:  # the window imports this module: its class is for the checker only
    from gptviz.qt.main_window import MainWindow

STYLE = (
    "QToolBar#reopenOffer { background: #e6f0fb; border-bottom: 1px solid #9fbfe0; }"
    "QToolBar#reopenOffer QLabel { color: #1b2b3c; }"
)


def describe(run: runs.RunSummary) -> str:
    """One sentence (HTML) saying which run, how far it got, and how it ended."""
    total = f" of {run.total_steps:,}" if run.total_steps else ""
    started = f", started {run.started[:16]}" if run.started else ""
    what = f"<b>{html.escape(run.model)}</b> on {html.escape(run.corpus)}{html.escape(started)}"
    if run.state == runs.RUNNING:
        how = "did not end cleanly (gptviz was killed or crashed while it trained)"
        where = f"its newest checkpoint holds step {run.steps:,}{total}"
    else:
        how = "was still training when gptviz was closed"
        where = f"its checkpoint holds step {run.steps:,}{total}"
    return f"Last session's run {what} {how}; {where}."


class ReopenOffer(QToolBar):
    """The strip: a sentence and Reopen / Resume training / Runs… / ×. Hidden until `offer` finds a run."""

    def __init__(self, window: MainWindow, parent: QWidget | None = None) -> None:
        super().__init__("Reopen last run", parent)
        self.main_window = window  # (not `window`: that would hide QWidget.window())
        self.run: runs.RunSummary | None = None
        self.setObjectName("reopenOffer")  # QMainWindow.saveState names toolbars by objectName
        self.setMovable(False)
        self.setFloatable(False)
        box = QWidget()
        layout = QHBoxLayout(box)
        layout.setContentsMargins(8, 2, 4, 2)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        # A wrapped label in a toolbar is sized for a narrow width (three lines tall at 1280 pixels): from
        # 480 pixels up it takes one line, or two on a small window.
        self.label.setMinimumWidth(480)
        self.reopen_button = QPushButton("Reopen")
        self.reopen_button.setToolTip("load the run's model and show how it was trained")
        self.resume_button = QPushButton("Resume training")
        self.resume_button.setToolTip(
            "load the run and go on training from its checkpoint, in the same folder"
        )
        self.runs_button = QPushButton("Runs…")
        self.runs_button.setToolTip("every run trained in this window (File › Runs…)")
        self.dismiss_button = QToolButton()
        self.dismiss_button.setText("×")
        self.dismiss_button.setAutoRaise(True)
        self.dismiss_button.setToolTip("don't offer this run again (File › Runs… still lists it)")
        self.reopen_button.clicked.connect(self.reopen)
        self.resume_button.clicked.connect(self.resume)
        self.runs_button.clicked.connect(self.show_runs)
        self.dismiss_button.clicked.connect(self.dismiss)
        layout.addWidget(self.label, 1)
        for button in (self.reopen_button, self.resume_button, self.runs_button, self.dismiss_button):
            layout.addWidget(button)
        self.addWidget(box)
        self.setStyleSheet(STYLE)
        self.toggleViewAction().setVisible(False)  # not a toolbar the View menu should list
        self.hide()

    def offer(self) -> bool:
        """Look for a run to offer (a few small JSON reads, no folder walk) and show the strip if there is
        one; True when shown. Without one, the status bar names an unfinished run the user stopped."""
        self.run = runs.run_to_offer()
        if self.run is None:
            note = last_run_message()
            if note:
                self.main_window.statusBar().showMessage(note, 20_000)
            return False
        self.label.setText(describe(self.run))
        self.label.setToolTip(str(self.run.path))
        self.show()
        return True

    def _answer(self) -> runs.RunSummary | None:
        """Hide the strip and record that the offer was answered; the run it was about."""
        run, self.run = self.run, None
        self.hide()
        if run is not None:
            with contextlib.suppress(OSError):  # a read-only data folder: offered again next time, no more
                runs.answer_offer(run.path)
        return run

    def reopen(self) -> None:
        run = self._answer()
        if run is not None:
            self.main_window.open_checkpoint(run.path / "checkpoint")

    def resume(self) -> None:
        run = self._answer()
        if run is not None:
            self.main_window.host.submit(ResumeRun(str(run.path)))

    def show_runs(self) -> None:
        self._answer()
        self.main_window.runs_dialog()

    def dismiss(self) -> None:
        self._answer()


def install(window: MainWindow) -> ReopenOffer:
    """Add the strip to the window on a line of its own under the error banner, and offer the last run
    once the worker is ready (Reopen and Resume talk to it)."""
    strip = ReopenOffer(window, window)
    window.addToolBarBreak(Qt.ToolBarArea.TopToolBarArea)
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, strip)
    window.host.ready.connect(strip.offer)
    return strip


__all__ = ["ReopenOffer", "describe", "install"]
