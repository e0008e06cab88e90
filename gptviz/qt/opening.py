"""Opening things in the window: a checkpoint, GPT-2 weights, a corpus, a run directory to follow; the File
dialogs that ask for them, File › Recent files, and what is dropped on the window.

Why a room of its own: every way in (a menu, a dialog, a drop, a recent entry, `gptviz --open`) ends in the
same few worker commands, and following a run adds a poll timer and a file watcher that nothing else in the
window needs. `Opener` holds those and the Recent list; the window keeps thin methods with the old names
(`open_path`, `open_checkpoint`, `follow`, …) that other modules and tests call. What a path is comes from
`gptviz.engine.path_kind`, never from sniffing here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QFileSystemWatcher, QObject, Qt, QTimer
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QFileDialog, QMenu

from gptviz.engine.path_kind import PathKind, classify
from gptviz.engine.run_follow import run_is_finished
from gptviz.qt import commands as cmd
from gptviz.qt.open_model_dialog import choose_model, how_to_open
from gptviz.qt.recent_opens import RecentOpens
from gptviz.qt.runs_dialog import RunsDialog
from gptviz.qt.settings import AppSettings

if TYPE_CHECKING:
    from gptviz.qt.main_window import MainWindow

FOLLOW_POLL_MS = 1000
LAST_DIR_KEY = "dialogs/last_dir"


def start_dir(settings: AppSettings) -> str:
    """Where a file dialog opens: the folder of the last file chosen in any of them, else home."""
    return str(settings.value(LAST_DIR_KEY, str(Path.home())))


def remember_dir(settings: AppSettings, path: str) -> None:
    settings.set_value(LAST_DIR_KEY, str(Path(path).parent))


class Opener(QObject):
    """Opens what the user names in `window`'s worker, follows a run directory as it grows, and keeps
    File › Recent files (what opened, not what failed: `RecentOpens`)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._main = window
        self.settings = window.settings
        self.recent = RecentOpens(self.settings)
        self.recent_menu: QMenu | None = None  # set by the menus once File › Recent files exists
        self.runs_window: RunsDialog | None = None  # the last File › Runs… opened
        self.follow_dir: str | None = None
        self.follow_timer = QTimer(self)
        self.follow_timer.setInterval(FOLLOW_POLL_MS)
        self.follow_timer.timeout.connect(self.poll_follow)
        self.watcher = QFileSystemWatcher(self)
        self.watcher.fileChanged.connect(self.poll_follow)

    def _submit(self, command: cmd.Command) -> int:
        return self._main.host.submit(command)

    # ---------------------------------------------------------------------------------------- opening

    def open_path(self, path: str | os.PathLike) -> None:
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
            self._main._on_error("open", f"{path} not found")
        else:
            self._main._on_error("open", f"{path} is neither a checkpoint, a run directory nor GPT-2 weights")

    def open_corpus(self, path: str | os.PathLike) -> None:
        self._submit(cmd.LoadCorpus(str(path)))
        self._opening("corpus", path)

    def open_checkpoint(self, path: str | os.PathLike) -> None:
        if self.follow_dir:
            self.stop_following()  # the followed run's model is being replaced
        self._submit(cmd.LoadCheckpoint(str(path)))
        self._opening("checkpoint", path)

    def import_weights(self, path: str | os.PathLike) -> None:
        if self.follow_dir:
            self.stop_following()
        self._submit(cmd.ImportWeights(str(path)))
        self._opening("import", path)

    def _opening(self, kind: str, path: str | os.PathLike) -> None:
        self.recent.opening(kind, path)
        self.rebuild_recent()

    # ---------------------------------------------------------------------------------------- following

    def follow(self, path: str | os.PathLike) -> None:
        self.set_following(str(path))
        self._submit(cmd.Follow(str(path)))
        self._opening("rundir", path)

    def stop_following(self) -> None:
        self._submit(cmd.Follow(None))
        self.set_following(None)

    def set_following(self, path: str | None) -> None:
        """Follow `path` (watch its metrics file, poll it each second, show the Training pane) or nothing."""
        if self.watcher.files():
            self.watcher.removePaths(self.watcher.files())
        self.follow_dir = path
        self._main.training_pane.set_following(path)
        if path:
            metrics = Path(path) / "metrics.jsonl"
            if metrics.exists():
                self.watcher.addPath(str(metrics))
            self.follow_timer.start()
            self._main.focus_pane("training")
        else:
            self.follow_timer.stop()

    def poll_follow(self, *_args: object) -> None:
        if self.follow_dir:
            self._submit(cmd.PollFollow())
            metrics = str(Path(self.follow_dir) / "metrics.jsonl")
            if metrics not in self.watcher.files() and Path(metrics).exists():
                self.watcher.addPath(metrics)

    # ---------------------------------------------------------------------------------------- dialogs

    def open_corpus_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self._main, "Open corpus", start_dir(self.settings), "Text (*.txt *.md);;All files (*)"
        )
        if path:
            remember_dir(self.settings, path)
            self.open_corpus(path)

    def open_checkpoint_dialog(self) -> None:
        """A checkpoint or run folder, or a weights file (model.safetensors, model.pth, ckpt.pt)."""
        path = choose_model(self._main, start_dir(self.settings))
        if path is not None:
            remember_dir(self.settings, str(path))
            how = how_to_open(path)  # a run directory loads with its history; File › Follow follows one
            if how == "checkpoint":
                self.open_checkpoint(path)
            elif how == "import":
                self.import_weights(path)
            else:
                self._main._on_error(
                    "open", f"{path.name} is not a model: choose a model's folder or weights file"
                )

    def import_weights_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self._main,
            "Import GPT-2 weights (a file of a Hugging Face folder, the book's .pth, or nanoGPT's ckpt.pt)",
            start_dir(self.settings),
            "Weights (*.safetensors *.bin *.pth *.pt);;All files (*)",
        )
        if path:
            remember_dir(self.settings, path)
            p = Path(path)
            # A Hugging Face file is read with its folder's config.json.
            self.import_weights(
                p.parent
                if p.suffix in (".safetensors", ".bin") and (p.parent / "config.json").is_file()
                else p
            )

    def save_checkpoint_dialog(self) -> None:
        path = QFileDialog.getSaveFileName(
            self._main, "Save checkpoint (a directory)", start_dir(self.settings)
        )[0]
        if path:
            remember_dir(self.settings, path)
            self._submit(cmd.SaveCheckpoint(path))

    def follow_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self._main, "Follow a run directory (gptviz train --out DIR)", start_dir(self.settings)
        )
        if path:
            remember_dir(self.settings, path)
            self.follow(path)

    def runs_dialog(self) -> RunsDialog:
        """File › Runs…: open, resume, reveal or delete a run this window trained (non-modal)."""
        dialog = RunsDialog(self._main)
        dialog.openRequested.connect(self.open_checkpoint)
        dialog.resumeRequested.connect(lambda path: self._submit(cmd.ResumeRun(path)))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        self.runs_window = dialog
        return dialog

    # ---------------------------------------------------------------------------------------- recent

    def set_recent_menu(self, menu: QMenu) -> None:
        self.recent_menu = menu
        self.rebuild_recent()

    def rebuild_recent(self) -> None:
        menu = self.recent_menu
        if menu is None:
            return
        menu.clear()
        items = self.settings.recent_files()
        if not items:
            empty = menu.addAction("(none)")
            empty.setEnabled(False)
            return
        for kind, path in items:
            act = menu.addAction(f"{kind}: {path}")
            act.triggered.connect(lambda _=False, k=kind, p=path: self.open_recent(k, p))
        menu.addSeparator()
        clear = menu.addAction("Clear list")
        clear.triggered.connect(self.clear_recent)

    def clear_recent(self) -> None:
        self.settings.clear_recent()
        self.rebuild_recent()

    def open_recent(self, kind: str, path: str) -> None:
        {
            "corpus": self.open_corpus,
            "checkpoint": self.open_checkpoint,
            "import": self.import_weights,
            "rundir": self.follow,
        }.get(kind, self.open_path)(path)

    # ---------------------------------------------------------------------------------------- drops

    def drag_enter(self, event: QDragEnterEvent) -> None:
        """Accept a drag that carries a local file (what it is, is asked on the drop)."""
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def drop(self, event: QDropEvent) -> None:
        """Open the first local file dropped, as `open_path` would."""
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.open_path(Path(url.toLocalFile()))
                event.acceptProposedAction()
                return
        event.ignore()
