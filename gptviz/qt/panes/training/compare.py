"""The Training pane's Compare tab: several runs' loss curves on one chart, a legend that toggles each run,
and a table of the settings that differ (gptviz.engine.run_compare reads the runs and finds the
differences; this module only draws them).

Runs come from File › Add run to compare…, the tab's own Add run… button, or several run folders dropped
onto the Training curves (`RunDropFilter`; one folder dropped there still follows or opens it, as anywhere
on the window). Each run keeps its colour while it is listed; its curves are its metrics.jsonl's numbers
as they are (the validation loss at each evaluation, the training loss over the fixed evaluation batches
dashed, and optionally every batch's loss, faint), so two runs' points can be read off against each other.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QDropEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gptviz.engine.run_compare import RunCurves, read_run, settings_diff
from gptviz.engine.rundir import SETTINGS_FILE
from gptviz.errors import DataError
from gptviz.qt.panes.training.curves import X_MODES

# Matplotlib's tab10: ten colours told apart by most readers; an eleventh run starts the cycle again.
COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
SUMMARY_ITEMS = 4  # differences named in the line above the table


def is_run_dir(path: str | os.PathLike) -> bool:
    """A folder gptviz train (or the window) wrote: it has a settings.json."""
    return (Path(path) / SETTINGS_FILE).is_file()


class CompareView(QWidget):
    """Runs side by side. `runs[i]` is drawn by `curves[i]` {"val", "train_eval", "train"} in COLOURS[i]."""

    addRequested = Signal()  # the Add run… button: the pane opens the folder dialog

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs: list[RunCurves] = []
        self.curves: list[dict[str, pg.PlotDataItem]] = []
        self.colours: list[str] = []
        self._next_colour = 0
        self.x_mode = "step"
        add = QPushButton("Add run…")
        add.setToolTip("a run directory (gptviz train --out DIR, or one under the data folder's runs/)")
        add.clicked.connect(self.addRequested)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("take the selected run off the chart")
        self.remove_button.clicked.connect(self.remove_selected)
        reload_button = QPushButton("Reload")
        reload_button.setToolTip("read every run's files again (a run still training has grown)")
        reload_button.clicked.connect(self.reload)
        self.show_val = QCheckBox("validation")
        self.show_val.setChecked(True)
        self.show_eval = QCheckBox("train (eval)")
        self.show_eval.setChecked(True)
        self.show_eval.setToolTip("training loss over the fixed evaluation batches (dashed)")
        self.show_train = QCheckBox("train (batch)")
        self.show_train.setToolTip("every step's batch loss, faint")
        for box in (self.show_val, self.show_eval, self.show_train):
            box.toggled.connect(self._apply_visibility)
        self.x_axis = QComboBox()
        for key, label in X_MODES.items():
            self.x_axis.addItem(label, key)
        self.x_axis.setToolTip(
            "x axis: steps, tokens seen (runs with other batch sizes line up) or wall time"
        )
        self.x_axis.currentIndexChanged.connect(self._on_x_axis)
        # Two short rows rather than one long one: the tab must fit the Training pane's half of a 1280-pixel
        # window (View › Layout › Train) without scrolling sideways.
        controls = QHBoxLayout()
        for widget in (add, self.remove_button, reload_button):
            controls.addWidget(widget)
        controls.addStretch(1)
        controls.addWidget(QLabel("x"))
        controls.addWidget(self.x_axis)
        curves = QHBoxLayout()
        for box in (self.show_val, self.show_eval, self.show_train):
            curves.addWidget(box)
        curves.addStretch(1)
        self.message = QLabel("Add runs to compare (File › Add run to compare…, or drop several run folders "
                              "onto the Training curves)")  # fmt: skip
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #666")
        self.plot = pg.PlotWidget()
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "cross-entropy loss")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setMinimumHeight(120)
        # The legend: one checkable, coloured entry per run (TensorBoard's runs list); unticking hides it.
        self.legend = QListWidget()
        self.legend.setToolTip("each run's colour; untick a run to hide its curves")
        self.legend.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.legend.itemChanged.connect(self._apply_visibility)
        self.summary = QLabel(" ")
        self.summary.setWordWrap(True)
        self.summary.setObjectName("compare_summary")
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setToolTip("the settings (settings.json) that are not the same in every run")
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.summary)
        right_layout.addWidget(self.table, 1)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.legend)
        bottom.addWidget(right)
        bottom.setStretchFactor(1, 2)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.plot)
        split.addWidget(bottom)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addLayout(curves)
        layout.addWidget(self.message)
        layout.addWidget(split, 1)

    # ---------------------------------------------------------------------------------------- runs

    def add_runs(self, paths: Sequence[str | os.PathLike]) -> list[str]:
        """Read and draw each run (one already listed is read again); returns the problems, also shown."""
        problems = []
        for path in paths:
            try:
                run = read_run(path)
            except (DataError, OSError) as exc:
                problems.append(str(exc))
                continue
            known = [r.run_dir.resolve() for r in self.runs]
            if run.run_dir.resolve() in known:
                self._replace(known.index(run.run_dir.resolve()), run)
            else:
                self._append(run)
        self._refresh_table()
        if problems:
            self.message.setStyleSheet("color: #b00020")
            self.message.setText("; ".join(problems))
        self.message.setVisible(bool(problems) or not self.runs)
        return problems

    def _append(self, run: RunCurves) -> None:
        colour = COLOURS[self._next_colour % len(COLOURS)]
        self._next_colour += 1
        self.runs.append(run)
        self.colours.append(colour)
        base = QColor(colour)
        faint = QColor(base)
        faint.setAlpha(80)
        curves = {
            "train": self.plot.plot(pen=pg.mkPen(faint, width=1)),
            "train_eval": self.plot.plot(pen=pg.mkPen(base, width=1.5, style=Qt.PenStyle.DashLine)),
            "val": self.plot.plot(pen=pg.mkPen(base, width=2), symbol="o", symbolSize=5, symbolBrush=base),
        }
        self.curves.append(curves)
        self._set_data(run, curves)
        item = QListWidgetItem(run.label)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked)
        item.setForeground(QBrush(base))
        item.setToolTip(str(run.run_dir))
        self.legend.blockSignals(True)
        self.legend.addItem(item)
        self.legend.blockSignals(False)
        self._apply_visibility()

    def _replace(self, index: int, run: RunCurves) -> None:
        self.runs[index] = run
        self._set_data(run, self.curves[index])

    def _set_data(self, run: RunCurves, curves: dict[str, pg.PlotDataItem]) -> None:
        for key, steps, values in (
            ("train", run.train_steps, run.train_loss),
            ("train_eval", run.eval_steps, run.train_eval_loss),
            ("val", run.val_steps, run.val_loss),
        ):
            curves[key].setData(run.x_of(steps, self.x_mode), values)

    def remove_selected(self) -> None:
        row = self.legend.currentRow()
        if 0 <= row < len(self.runs):
            self.remove(row)

    def remove(self, index: int) -> None:
        for curve in self.curves.pop(index).values():
            self.plot.removeItem(curve)
        self.runs.pop(index)
        self.colours.pop(index)
        self.legend.takeItem(index)
        self._refresh_table()
        self.message.setVisible(not self.runs)

    def clear(self) -> None:
        while self.runs:
            self.remove(len(self.runs) - 1)
        self._next_colour = 0

    def reload(self) -> None:
        self.add_runs([run.run_dir for run in self.runs])

    def paths(self) -> list[Path]:
        return [run.run_dir for run in self.runs]

    # ---------------------------------------------------------------------------------------- drawing

    def shown(self, index: int) -> bool:
        item = self.legend.item(index)
        return item is not None and item.checkState() == Qt.CheckState.Checked

    def _apply_visibility(self, *_args) -> None:
        wanted = {"val": self.show_val, "train_eval": self.show_eval, "train": self.show_train}
        for index, curves in enumerate(self.curves):
            on = self.shown(index)
            for key, curve in curves.items():
                curve.setVisible(on and wanted[key].isChecked())

    def _on_x_axis(self, *_args) -> None:
        self.x_mode = self.x_axis.currentData() or "step"
        self.plot.setLabel("bottom", X_MODES[self.x_mode])
        for run, curves in zip(self.runs, self.curves, strict=True):
            self._set_data(run, curves)
        self.plot.enableAutoRange()

    def _refresh_table(self) -> None:
        differences = settings_diff(self.runs)
        self.table.clear()
        self.table.setColumnCount(len(self.runs))
        self.table.setRowCount(len(differences))
        for column, (run, colour) in enumerate(zip(self.runs, self.colours, strict=True)):
            header = QTableWidgetItem(run.label)
            header.setForeground(QBrush(QColor(colour)))
            header.setToolTip(str(run.run_dir))
            self.table.setHorizontalHeaderItem(column, header)
        self.table.setVerticalHeaderLabels([d.name for d in differences])
        for row, difference in enumerate(differences):
            for column, value in enumerate(difference.values):
                self.table.setItem(row, column, QTableWidgetItem(value))
        if len(self.runs) < 2:
            self.summary.setText(
                "one run: add another to see how their settings differ" if self.runs else " "
            )
        elif not differences:
            self.summary.setText("the runs' settings are all the same")
        else:
            named = " · ".join(d.describe() for d in differences[:SUMMARY_ITEMS])
            more = len(differences) - SUMMARY_ITEMS
            self.summary.setText(named + (f" · and {more} more below" if more > 0 else ""))
        self.differences = differences


class RunDropFilter(QObject):
    """Run folders dropped onto a plot go to the comparison: several at once anywhere it is installed, or
    one onto the Compare tab itself. Anything else passes on (one run folder dropped on the Loss curves
    still reaches the window, which follows or opens it)."""

    def __init__(self, on_runs, parent: QObject | None = None, single: tuple[QObject, ...] = ()) -> None:
        super().__init__(parent)
        self._on_runs = on_runs
        self._single = single  # targets where one folder is enough

    def _runs(self, watched: QObject, event) -> list[str]:
        mime = event.mimeData()
        if not mime.hasUrls():
            return []
        folders = [u.toLocalFile() for u in mime.urls() if u.isLocalFile() and is_run_dir(u.toLocalFile())]
        least = 1 if watched in self._single else 2
        return folders if len(folders) >= least else []

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        kind = event.type()
        if not isinstance(event, QDropEvent):  # drag enter and drag move events are drop events too
            return False
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            if self._runs(watched, event):
                event.acceptProposedAction()
                return True
            return False
        if kind == QEvent.Type.Drop:
            folders = self._runs(watched, event)
            if folders:
                event.acceptProposedAction()
                self._on_runs(folders)
                return True
        return False


def ask_for_run(parent: QWidget, start: str = "") -> str:
    """A folder dialog for one run directory ("" when cancelled)."""
    return QFileDialog.getExistingDirectory(parent, "Add a run to compare (a run directory)", start)
