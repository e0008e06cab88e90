"""Model › Get GPT-2…: pick a size (or a repo id), see what it costs, download it in the background.

The download runs `gptviz.engine.download.download_model` on its own QThread (never the GUI thread, never
the model worker's), reporting through queued signals; Cancel sets an event the download checks between
chunks, which leaves the partial file in the Hugging Face cache for next time and nothing in models/. When
the checkpoint is written the dialog emits `modelReady(path)`, and the window asks its worker to load it, so
every pane follows.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import TypedDict

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gptviz.engine import download as dl
from gptviz.engine.download_errors import DownloadCancelled
from gptviz.engine.gpt2_sizes import GPT2_REPOS, hub_download_bytes, openai_config
from gptviz.engine.human_units import format_bytes, format_duration
from gptviz.engine.memory import USABLE_FRACTION, available_ram, estimate_memory
from gptviz.engine.models_folder import default_out, downloaded_models, folder_name, models_dir
from gptviz.errors import GptvizError

COLUMNS = ("Size", "Hub repo", "Download", "Memory to run", "This machine")
_RUNNING: set[DownloadJob] = set()  # jobs whose thread runs: kept alive until it ends, whatever closes


class SizeRow(TypedDict):
    """One OpenAI size in the dialog's table (bytes throughout)."""

    size: str
    repo: str
    download: int
    memory: int
    fits: bool
    room: int
    downloaded: bool


def size_rows(free_ram: int | None = None, models: Path | None = None) -> list[SizeRow]:
    """One row per OpenAI size: download bytes, memory to run at full context, whether it fits, if present."""
    room = available_ram() if free_ram is None else free_ram
    rows: list[SizeRow] = []
    for size, repo in GPT2_REPOS.items():
        cfg = openai_config(size)
        need = estimate_memory(cfg, training=False, batch_size=1, context=cfg.context_length).total
        folder = (models or models_dir()) / folder_name(size)
        rows.append(
            {
                "size": size,
                "repo": repo,
                "download": hub_download_bytes(size),
                "memory": need,
                "fits": need <= USABLE_FRACTION * room,
                "room": room,
                "downloaded": folder in downloaded_models(folder.parent),
            }
        )
    return rows


class _Runner(QObject):
    """Runs on the download thread: the whole download, then one of succeeded / failed / cancelled."""

    progressed = Signal(object)  # DownloadProgress
    succeeded = Signal(object)  # DownloadResult
    failed = Signal(str)  # one line for the user
    cancelled = Signal(str)
    finished = Signal()

    def __init__(self, name: str, out: Path | None, revision: str | None, cancel: threading.Event) -> None:
        super().__init__()
        self.name, self.out, self.revision, self.cancel = name, out, revision, cancel

    @Slot()
    def run(self) -> None:
        try:
            result = dl.download_model(
                self.name, self.out, self.revision, progress=self.progressed.emit, cancel=self.cancel
            )
        except DownloadCancelled as exc:
            self.cancelled.emit(str(exc))
        except GptvizError as exc:
            self.failed.emit(str(exc))
        except OSError as exc:  # disk full mid-file, a read-only folder: the OS's words
            self.failed.emit(f"{exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}")
        except Exception as exc:  # noqa: BLE001 - a bug must reach the user as a message, not kill the thread
            self.failed.emit(f"{type(exc).__name__}: {exc}")
        else:
            self.succeeded.emit(result)
        finally:
            self.finished.emit()


class DownloadJob(QObject):
    """One download on its own QThread, controlled from the GUI thread.

    The runner lives on the download thread; its signals reach this object (GUI thread) queued and are passed
    on. `finished` comes after the thread has ended, so whoever drops the job never destroys a running
    QThread.
    """

    progressed = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal(str)
    finished = Signal()

    def __init__(self, name: str, out: Path | None = None, revision: str | None = None) -> None:
        super().__init__()
        self.cancel = threading.Event()
        self.download_thread = QThread()
        self.download_thread.setObjectName("gptviz-download")
        self.runner = _Runner(name, out, revision, self.cancel)
        self.runner.moveToThread(self.download_thread)
        self.download_thread.started.connect(self.runner.run)
        for name_ in ("progressed", "succeeded", "failed", "cancelled"):
            getattr(self.runner, name_).connect(getattr(self, name_))
        self.runner.finished.connect(self.download_thread.quit)
        self.download_thread.finished.connect(self._on_thread_finished)

    def start(self) -> None:
        _RUNNING.add(self)
        self.download_thread.start()

    def stop(self, timeout_ms: int = 30_000) -> bool:
        """Cancel and wait for the thread (it stops at the next chunk); True when it has ended."""
        self.cancel.set()
        return self.download_thread.wait(timeout_ms) if self.download_thread.isRunning() else True

    @Slot()
    def _on_thread_finished(self) -> None:
        self.download_thread.wait()  # finished is emitted just before the thread returns: let it return
        _RUNNING.discard(self)
        self.finished.emit()


def stop_all_downloads(timeout_ms: int = 30_000) -> None:
    """At quit: cancel every download and wait, so no QThread is destroyed while it runs."""
    for job in list(_RUNNING):
        job.stop(timeout_ms)


class DownloadDialog(QDialog):
    modelReady = Signal(str)  # the checkpoint directory to load
    runningChanged = Signal(bool)  # a download started (True) or ended, however it ended (False)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Get GPT-2")
        self.setObjectName("downloadDialog")
        self.job: DownloadJob | None = None
        self.download_result: dl.DownloadResult | None = None
        self.messages: list[str] = []
        self._closing = False
        layout = QVBoxLayout(self)
        intro = QLabel(
            "OpenAI's GPT-2 from the Hugging Face Hub, saved as a gptviz checkpoint in "
            f"<code>{models_dir()}</code>. Downloads resume after Cancel; a second download reads the "
            "Hugging Face cache."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.itemDoubleClicked.connect(lambda _item: self.start())
        layout.addWidget(self.table)
        repo_row = QHBoxLayout()
        repo_row.addWidget(QLabel("or any GPT-2 repo on the Hub:"))
        self.repo_edit = QLineEdit()
        self.repo_edit.setPlaceholderText("owner/name, e.g. distilbert/distilgpt2")
        self.repo_edit.textChanged.connect(self._selection_changed)
        self.repo_edit.returnPressed.connect(self.start)
        repo_row.addWidget(self.repo_edit, 1)
        layout.addLayout(repo_row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        layout.addWidget(self.progress)
        self.status = QLabel(" ")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.download_button = QPushButton("Download")
        self.download_button.setDefault(True)
        self.download_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.reject)
        for button in (self.download_button, self.cancel_button, self.close_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.fill_table()
        self.table.selectRow(0)
        self.resize(760, 360)

    # ------------------------------------------------------------------------------------------ contents

    def fill_table(self) -> None:
        rows = size_rows()
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            need, room = int(row["memory"]), int(row["room"])
            machine = (
                f"fits ({format_bytes(room)} free)" if row["fits"] else f"too big: {format_bytes(room)} free"
            )
            if row["downloaded"]:
                machine = "downloaded · " + machine
            cells = (
                str(row["size"]),
                str(row["repo"]),
                format_bytes(int(row["download"])),
                format_bytes(need),
                machine,
            )
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 4 and not row["fits"]:
                    item.setForeground(Qt.GlobalColor.darkRed)
                if c in (2, 3):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                item.setData(Qt.ItemDataRole.UserRole, row["size"])
                self.table.setItem(r, c, item)
        self._rows = rows

    def chosen(self) -> str | None:
        """The NAME to download: the repo id typed, else the selected size."""
        typed = self.repo_edit.text().strip()
        if typed:
            return typed
        selected = self.table.selectionModel().selectedRows()
        return str(self._rows[selected[0].row()]["size"]) if selected else None

    def _existing(self, name: str) -> Path | None:
        folder = default_out(name)
        return folder if folder in downloaded_models(folder.parent) else None

    def _selection_changed(self) -> None:
        if self.is_running():
            return
        name = self.chosen()
        self.download_button.setEnabled(name is not None)
        self.download_button.setText("Open" if name and self._existing(name) else "Download")

    # ------------------------------------------------------------------------------------------ running

    def is_running(self) -> bool:
        return self.job is not None

    def start(self) -> None:
        name = self.chosen()
        if name is None or self.is_running():
            return
        existing = self._existing(name)
        if existing is not None:
            self.status.setText(f"opening {existing}")
            self.modelReady.emit(str(existing))
            self.accept()
            return
        self.download_result = None
        self.job = DownloadJob(name)
        self.job.progressed.connect(self._on_progress)
        self.job.succeeded.connect(self._on_succeeded)
        self.job.failed.connect(self._on_failed)
        self.job.cancelled.connect(self._on_cancelled)
        self.job.finished.connect(self._on_finished)
        self.download_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.table.setEnabled(False)
        self.repo_edit.setEnabled(False)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.status.setText(f"asking the Hub about {name}…")
        self.job.start()
        self.runningChanged.emit(True)

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel.set()
            self.cancel_button.setEnabled(False)
            self.status.setText("cancelling at the next chunk…")

    @Slot(object)
    def _on_progress(self, report: dl.DownloadProgress) -> None:
        if report.phase == "downloading":
            self.progress.setValue(int(round(1000 * report.fraction)))
            self.progress.setFormat(
                f"%p%  ·  {format_bytes(report.done)} / {format_bytes(report.total)}  ·  "
                f"{format_bytes(report.rate)}/s  ·  ETA {format_duration(report.eta_s, 'short', unknown='--')}"
            )
            self.status.setText(f"downloading {report.file}")
        elif report.phase != "done":
            self.status.setText(f"{report.phase} {report.file}")

    @Slot(object)
    def _on_succeeded(self, result: dl.DownloadResult) -> None:
        self.download_result = result
        self.progress.setValue(1000)
        self.status.setText(f"saved {result.path}; loading it")
        self.messages.append(f"downloaded {result.repo_id} -> {result.path}")
        self.modelReady.emit(str(result.path))

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.messages.append(message)
        self.status.setText(f"<span style='color:#b00020'>{html.escape(message)}</span>")

    @Slot(str)
    def _on_cancelled(self, message: str) -> None:
        self.messages.append(message)
        self.status.setText(message)

    @Slot()
    def _on_finished(self) -> None:
        self.job = None
        self.runningChanged.emit(False)
        self.cancel_button.setEnabled(False)
        self.table.setEnabled(True)
        self.repo_edit.setEnabled(True)
        self.fill_table()
        self._selection_changed()
        if self.download_result is not None and not self._closing:
            self.accept()

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        """Cancel a running download and wait for its thread (closing the dialog or the app)."""
        if self.job is not None:
            self.job.stop(timeout_ms)
            QApplication.processEvents()  # deliver its last queued signals while this dialog still exists

    def done(self, code: int) -> None:  # every way of closing: Close, Esc, the title bar, accept()
        """Closing cancels a running download without waiting for it: its thread stops at its next chunk
        (up to one read of the network, seconds on a stalled connection) and ends on its own, kept alive by
        _RUNNING; the window stays responsive meanwhile (the GUI monkey found a 30 s freeze here)."""
        self._closing = True
        if self.job is not None:
            self.job.cancel.set()
        super().done(code)
        self._closing = False
