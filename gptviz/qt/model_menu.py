"""The Model menu's models: Get GPT-2…, then every model on this machine a user can switch to in one click.

The list is rebuilt each time the menu opens, from what is on disk then: the bundled demo model, the
checkpoints in the data folder's models/ (what `gptviz download` and the Get GPT-2 dialog write) and the
recently opened checkpoints that still exist. The loaded model is checked. Choosing one asks the window to
open it, which goes through the model worker like File › Open checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QMenu

from gptviz.engine.models_folder import downloaded_models
from gptviz.qt.download_dialog import DownloadDialog, stop_all_downloads
from gptviz.resources import DEMO_MODEL_DIR

MAX_LABEL = 70


def _checkpoint_name(path: Path) -> str:
    """The name a checkpoint's meta gives it (e.g. 'GPT-2 124M (gpt2)'), else its folder's name."""
    try:
        meta = json.loads((path / "config.json").read_text()).get("meta") or {}
    except (OSError, ValueError, AttributeError):
        meta = {}
    return str(meta.get("name") or path.name)


def _elide(text: str) -> str:
    return text if len(text) <= MAX_LABEL else "…" + text[-(MAX_LABEL - 1) :]


def _same(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return str(a) == str(b)


class ModelMenu(QObject):
    """Adds 'Get GPT-2…' and a switch list to `menu`; the window supplies open_checkpoint and settings."""

    def __init__(self, window: Any, menu: QMenu) -> None:
        super().__init__(window)
        self.window = window
        self.menu = menu
        self.dialog: DownloadDialog | None = None
        self.get_action = QAction("&Get GPT-2…", window)
        self.get_action.setStatusTip("download OpenAI's GPT-2 (124M to 1558M) or any GPT-2 repo from the Hub")
        self.get_action.triggered.connect(self.open_download_dialog)
        menu.addAction(self.get_action)
        menu.addSeparator()
        self.anchor = menu.addSeparator()  # the switch list goes above this; the rest of the menu below it
        self.switch_actions: list[QAction] = []
        menu.aboutToShow.connect(self.rebuild)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(stop_all_downloads)
        self.rebuild()

    def entries(self) -> list[tuple[str, Path]]:
        """(label, checkpoint folder): the demo, downloaded models, then recent checkpoints; no duplicates."""
        found: list[tuple[str, Path]] = []

        def add(label: str, path: Path) -> None:
            if (path / "config.json").is_file() and not any(_same(path, p) for _, p in found):
                found.append((_elide(label), path))

        add("Demo model (tiny, trained on Python's docs)", DEMO_MODEL_DIR)
        for path in downloaded_models():
            add(_checkpoint_name(path), path)
        for kind, recent in self.window.settings.recent_files():
            if kind == "checkpoint":
                path = Path(recent)
                if (path / "checkpoint" / "config.json").is_file():
                    path = path / "checkpoint"  # a run directory: its model
                add(f"{_checkpoint_name(path)} — {recent}", path)
        return found

    def rebuild(self) -> None:
        for act in self.switch_actions:
            self.menu.removeAction(act)
            act.deleteLater()
        self.switch_actions = []
        info = getattr(self.window, "model_info", None)
        loaded = getattr(info, "path", "") or ""
        for label, path in self.entries():
            act = QAction(label, self.menu)
            act.setCheckable(True)
            act.setChecked(bool(loaded) and _same(loaded, path))
            act.setToolTip(str(path))
            act.triggered.connect(lambda _=False, p=path: self.window.open_checkpoint(p))
            self.menu.insertAction(self.anchor, act)
            self.switch_actions.append(act)

    def open_download_dialog(self) -> DownloadDialog:
        """Show the dialog (one at a time; reopening brings the running one back)."""
        if self.dialog is None:
            self.dialog = DownloadDialog(self.window)
            self.dialog.modelReady.connect(self.window.open_checkpoint)
            # The application state says a download runs (the status bar names it) until it ends.
            self.dialog.runningChanged.connect(
                lambda running: self.window.host.state.update(downloading=running)
            )
            self.dialog.finished.connect(self._dialog_closed)
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        return self.dialog

    def _dialog_closed(self, _code: int) -> None:
        if self.dialog is not None:
            self.dialog.deleteLater()
            self.dialog = None
