"""File › Runs…: the training runs the window wrote (gptviz.engine.runs), to open, resume, reveal or delete.

Every run started in the window lives in the data folder's runs/ with its settings, metrics, probes and
checkpoint, so closing the window never loses trained weights; this dialog is the way back to them.
"""

from __future__ import annotations

from typing import Any

import shiboken6
from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gptviz.engine import runs
from gptviz.engine.human_units import format_bytes
from gptviz.errors import GptvizError

COLUMNS = ("Started", "Model", "Corpus", "Steps", "Size", "State")


def _confirm_delete(text: str) -> bool:
    """Ask before deleting, in a message box with no parent. QMessageBox.question builds its box on the
    stack as a child of the parent it is given; this dialog deletes itself when closed, and if it is closed
    while the question is up (the window closing, a monkey test's dialog sweep), Qt deleted the stack
    object with its parent and the process aborted ("double free or corruption (out)", found by the GUI
    monkey). Without a parent the box outlives the dialog, and the answer still counts."""
    return QMessageBox.question(None, "Delete run", text) == QMessageBox.StandardButton.Yes


class RunsDialog(QDialog):
    openRequested = Signal(str)  # a run's checkpoint folder: load the model (and its history)
    resumeRequested = Signal(str)  # a run directory: load it and go on training

    def __init__(self, parent: QWidget | None = None, *, ask: Any = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Runs")
        self.resize(820, 360)
        self._ask = ask or _confirm_delete
        self.runs: list[runs.RunSummary] = []
        self.where = QLabel()
        self.where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.cellDoubleClicked.connect(lambda *_: self.open_selected())
        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("load the run's model and show how it was trained")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("load the run and go on training from its checkpoint")
        self.reveal_button = QPushButton("Show folder")
        self.delete_button = QPushButton("Delete…")
        close = QPushButton("Close")
        self.open_button.clicked.connect(self.open_selected)
        self.resume_button.clicked.connect(self.resume_selected)
        self.reveal_button.clicked.connect(self.reveal_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        close.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        for button in (self.open_button, self.resume_button, self.reveal_button, self.delete_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.where)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self.refresh()

    def refresh(self) -> None:
        self.runs = runs.list_runs()
        self.where.setText(f"Runs started in this window are kept in {runs.runs_dir()}")
        self.table.setRowCount(len(self.runs))
        for row, run in enumerate(self.runs):
            steps = f"{run.steps:,} / {run.total_steps:,}" if run.total_steps else f"{run.steps:,}"
            state = "finished" if run.finished else ("stopped" if run.has_checkpoint else "no checkpoint")
            cells = (
                run.started or run.path.name,
                run.model,
                run.corpus,
                steps,
                format_bytes(run.size_bytes),
                state,
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(str(run.path))
                self.table.setItem(row, col, item)
        if self.runs:
            self.table.selectRow(0)
        self._update_buttons()

    def selected(self) -> runs.RunSummary | None:
        rows = self.table.selectionModel().selectedRows()
        return self.runs[rows[0].row()] if rows else None

    def _update_buttons(self) -> None:
        run = self.selected()
        self.open_button.setEnabled(run is not None and run.has_checkpoint)
        self.resume_button.setEnabled(run is not None and run.has_checkpoint and not run.finished)
        for button in (self.reveal_button, self.delete_button):
            button.setEnabled(run is not None)

    def open_selected(self) -> None:
        run = self.selected()
        if run is not None and run.has_checkpoint:
            self.openRequested.emit(str(run.path / "checkpoint"))
            self.accept()

    def resume_selected(self) -> None:
        run = self.selected()
        if run is not None and run.has_checkpoint and not run.finished:
            self.resumeRequested.emit(str(run.path))
            self.accept()

    def reveal_selected(self) -> None:
        run = self.selected()
        if run is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(run.path)))

    def delete_selected(self) -> None:
        run = self.selected()
        if run is None:
            return
        size = format_bytes(run.size_bytes)
        if not self._ask(
            f"Delete the run {run.path.name} ({run.steps:,} steps, {size})? This cannot be undone."
        ):
            return
        try:
            runs.delete_run(run.path)
        except (GptvizError, OSError) as exc:
            QMessageBox.warning(
                None, "Delete run", str(exc)
            )  # parentless, for the reason _confirm_delete gives
        if shiboken6.isValid(self):  # the dialog may have been closed (and deleted) while the question was up
            self.refresh()


def last_run_message() -> str:
    """For the status bar at start-up: the newest unfinished run, if any."""
    run = runs.last_run()
    if run is None:
        return ""
    total = f" of {run.total_steps:,}" if run.total_steps else ""
    return f"last run: {run.model} on {run.corpus}, {run.steps:,}{total} steps — File › Runs… to open or resume it"


__all__ = ["RunsDialog", "last_run_message"]
