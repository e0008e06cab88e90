"""File › Open checkpoint: one dialog that takes a model as a file or as a folder.

A model on disk is sometimes a folder (a gptviz checkpoint, a run directory, a Hugging Face folder, a
nanoGPT out_dir) and sometimes a file (the book's model.pth, nanoGPT's ckpt.pt, a Hub model.safetensors).
A folder-only dialog greyed out every file, so a user holding model.safetensors could not choose it. This
dialog lists files and folders: choosing a file opens it, and choosing a folder that holds a model opens the
folder instead of stepping into it (any other folder is stepped into, as usual).

`model_target` says what to open for a chosen path: a file that belongs to a model folder (its config.json,
model.safetensors or pytorch_model.bin) stands for the folder; anything else is itself. `how_to_open` says
how, from gptviz.engine.path_kind.classify (the one place that says what a path is): gptviz's own
checkpoints and run directories load as checkpoints (a run directory with its history, finished or not:
following a live run is File › Follow run directory), everything else is imported.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QFileInfo
from PySide6.QtWidgets import QDialog, QFileDialog, QFileIconProvider, QWidget

from gptviz.engine.path_kind import CONFIG_FILE, WEIGHTS_FILE, classify

NAME_FILTERS = (
    "Models (*.safetensors *.pth *.pt *.bin config.json)",
    "All files (*)",
)
FOLDER_FILES = (CONFIG_FILE, WEIGHTS_FILE, "pytorch_model.bin")  # they stand for their folder


def is_model_folder(path: Path) -> bool:
    """A folder gptviz opens as a model: a checkpoint or Hugging Face folder, a run directory, an out_dir."""
    return path.is_dir() and classify(path).is_model


def model_target(path: str | Path) -> Path:
    """What to open when `path` is chosen: the folder for a file that is part of a model folder (a
    checkpoint's model.safetensors needs its config.json), otherwise `path` itself."""
    path = Path(path)
    if path.is_file() and path.name in FOLDER_FILES and (path.parent / CONFIG_FILE).is_file():
        return path.parent
    return path


def how_to_open(path: str | Path) -> str | None:
    """ "checkpoint" (gptviz's own, or a run directory around one), "import" (a Hugging Face folder or
    file, the book's .pth, nanoGPT's ckpt.pt or its out_dir), or None when `path` is no model."""
    kind = classify(path)
    if kind.is_own:
        return "checkpoint"
    return "import" if kind.is_model else None


class NameOnlyIcons(QFileIconProvider):
    """File types from names only. Qt's default provider reads each listed file's first bytes to guess its
    type, in the GUI thread: in /proc, reading /proc/kmsg waits for the next kernel message, so the dialog
    (and the window) froze for good the moment it showed that folder (found by the GUI monkey)."""

    def type(self, info: QFileInfo) -> str:  # noqa: A003 - Qt's name
        if info.isDir():
            return "Folder"
        return f"{info.suffix().upper()} file" if info.suffix() else "File"


class OpenModelDialog(QFileDialog):
    """A file dialog (Qt's own, so it behaves the same everywhere) whose Open also accepts a model folder."""

    def __init__(self, parent: QWidget | None = None, directory: str = "") -> None:
        super().__init__(parent, "Open a model: a checkpoint folder or a weights file", directory)
        self.setOption(QFileDialog.Option.DontUseNativeDialog, True)  # a native one would not ask accept()
        self.setFileMode(QFileDialog.FileMode.ExistingFile)
        self.setAcceptMode(QFileDialog.AcceptMode.AcceptOpen)
        self.setNameFilters(list(NAME_FILTERS))
        self.icons = NameOnlyIcons()  # kept: the dialog does not own its icon provider
        self.setIconProvider(self.icons)
        self.chosen: Path | None = None

    def accept(self) -> None:
        """Open on a model folder chooses it; on any other folder, steps in; on a file, chooses the file."""
        selected = self.selectedFiles()
        path = Path(selected[0]) if selected else None
        if path is not None and is_model_folder(path):
            self.chosen = path
            QDialog.accept(self)  # not QFileDialog.accept, which would step into the folder
            return
        super().accept()
        if self.result() == QDialog.DialogCode.Accepted and path is not None:
            self.chosen = path


def choose_model(parent: QWidget | None, directory: str) -> Path | None:
    """Ask for a model file or folder; what to open (see `model_target`), or None when cancelled."""
    dialog = OpenModelDialog(parent, directory)
    if dialog.exec() != QDialog.DialogCode.Accepted or dialog.chosen is None:
        return None
    return model_target(dialog.chosen)


__all__ = [
    "NameOnlyIcons",
    "OpenModelDialog",
    "choose_model",
    "how_to_open",
    "is_model_folder",
    "model_target",
]
