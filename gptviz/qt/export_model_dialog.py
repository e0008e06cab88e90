"""File › Export model…: a small dialog (format and where) whose export runs in the model worker.

The worker owns the model, so the window never touches its tensors: the dialog only collects a format and a
path and sends the worker's `export_model` command; the worker answers on the `exported` channel with the
path it wrote (shown in the status bar) or with an error (the red strip, as every other command).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QWidget,
)

from gptviz.qt import commands as ch
from gptviz.qt.commands import ExportModel
from gptviz.qt.opening import remember_dir, start_dir

_HINTS = {
    "hf": "A new or empty folder. transformers.GPT2LMHeadModel.from_pretrained(folder) loads it.",
    "book": "One file. The book's GPTModel(cfg).load_state_dict(torch.load(file, weights_only=True)) loads it.",
}


class ExportModelDialog(QDialog):
    """Choose the format and the folder (Hugging Face) or file (the book's .pth) to write."""

    def __init__(self, parent: QWidget | None = None, start_dir: str = "", model_name: str = "model") -> None:
        super().__init__(parent)
        self.setWindowTitle("Export model")
        self._start_dir = Path(start_dir or Path.home())
        self._stem = _safe_stem(model_name)
        self.format_box = QComboBox()
        # format key (as `gptviz export --format`) -> what it writes; the dialog opens after torch has loaded
        from gptviz.engine.export import FORMATS

        for key, label in FORMATS.items():
            self.format_box.addItem(label[0].upper() + label[1:], key)
        self.path_edit = QLineEdit()
        self.browse_button = QPushButton("Browse…")
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(self.browse_button)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        form = QFormLayout(self)
        form.addRow("Format", self.format_box)
        form.addRow("Write to", row)
        form.addRow(self.hint)
        form.addRow(self.buttons)
        self.format_box.currentIndexChanged.connect(self._format_changed)
        self.path_edit.textChanged.connect(self._update_ok)
        self.browse_button.clicked.connect(self._browse)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self._default_path = ""
        self._format_changed()

    def fmt(self) -> str:
        return str(self.format_box.currentData())

    def path(self) -> str:
        return self.path_edit.text().strip()

    def set_format(self, fmt: str) -> None:
        self.format_box.setCurrentIndex(self.format_box.findData(fmt))

    def _format_changed(self, *_args: Any) -> None:
        """Follow the format with the suggested path, unless the user has typed their own."""
        fmt = self.fmt()
        self.hint.setText(_HINTS[fmt])
        suggested = str(self._start_dir / (f"{self._stem}-hf" if fmt == "hf" else f"{self._stem}.pth"))
        if self.path() in ("", self._default_path):
            self.path_edit.setText(suggested)
        self._default_path = suggested
        self._update_ok()

    def _update_ok(self, *_args: Any) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(bool(self.path()))

    def _browse(self) -> None:
        if self.fmt() == "hf":
            chosen = QFileDialog.getSaveFileName(self, "Folder to write (new or empty)", self.path())[0]
        else:
            chosen = QFileDialog.getSaveFileName(
                self, "File to write", self.path(), "PyTorch state dict (*.pth);;All files (*)"
            )[0]
        if chosen:
            self.path_edit.setText(chosen)


def _safe_stem(name: str) -> str:
    """A file name from a model name such as 'demo (untrained)': letters, digits, '-', '_' and '.'."""
    stem = re.sub(r"[^\w.-]+", "-", name).strip("-.")
    return stem or "model"


def request_export(window: Any, fmt: str, path: str) -> int:
    """Queue the export in the model worker; its answer comes back on the `exported` channel."""
    return window.host.submit(ExportModel(fmt, path))


def open_export_dialog(window: Any) -> None:
    info = getattr(window, "model_info", None)
    dialog = ExportModelDialog(window, start_dir(window.settings), info.name if info is not None else "model")
    if dialog.exec() == QDialog.DialogCode.Accepted and dialog.path():
        remember_dir(window.settings, dialog.path())
        request_export(window, dialog.fmt(), dialog.path())


def add_export_action(window: Any, menu: QMenu) -> QAction:
    """Put File › Export model… in `menu` and show where each export went in the window's status bar."""
    action = QAction("Export &model (Hugging Face / book)…", window)
    action.triggered.connect(lambda _=False: open_export_dialog(window))
    menu.addAction(action)

    def on_result(channel: str, payload: object) -> None:
        if channel == ch.EXPORTED:
            window.statusBar().showMessage(f"exported the model to {payload}", 8000)

    window.host.resultReady.connect(on_result)
    return action
