"""The GUI thread's side of the worker: it owns the worker's QThread, numbers requests, drops stale results,
keeps the application state up to date with what the worker says, and shuts the thread down cleanly.

Apart from `gptviz.qt.worker` (what runs in the worker thread) so that each file holds one side of the one
queued-signal boundary between the two threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from gptviz.qt import commands as c
from gptviz.qt.app_state import AppState, TrainState
from gptviz.qt.commands import (
    CORPUS,
    MODEL,
    PATCH,
    PATCH_ENDED,
    PLAY_STATE,
    SEQUENCE,
    SEQUENCE_REACHED,
    SEQUENCE_VIEWS,
    TRAIN_STATE,
    Command,
    Newest,
)
from gptviz.qt.gc_in_gui_thread import GuiThreadGarbageCollector
from gptviz.qt.worker import Worker

if TYPE_CHECKING:
    from gptviz.engine.session import Session


class WorkerHost(QObject):
    """GUI-thread side: owns the thread, numbers requests, drops stale results, keeps the application state
    (`state`, gptviz.qt.app_state) up to date with the worker's words, shuts down cleanly."""

    _submit = Signal(int, object)
    _finish = Signal()
    resultReady = Signal(str, object)  # channel, payload (only the newest per channel)
    errorRaised = Signal(str, str)
    activityChanged = Signal(str)
    progressChanged = Signal(int, int)
    ready = Signal()
    thread: QThread  # type: ignore[assignment]  # the worker's thread (shadows QObject.thread(), as before)

    def __init__(self, session_factory: Callable[[], Session], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._counter = 0
        self.newest = Newest()
        self.state = AppState(self)
        # While a worker thread lives, Qt objects must never be destroyed there (see gc_in_gui_thread):
        # every host, with a window or without (tests, the bench), collects garbage in the GUI thread.
        self.gc = GuiThreadGarbageCollector(self)
        self.thread = QThread()
        self.thread.setObjectName("gptviz-worker")
        self.worker = Worker(session_factory)
        self.worker.newest = self.newest  # shared: the worker reads, this side writes
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.start)
        self._submit.connect(self.worker.run_command, Qt.ConnectionType.QueuedConnection)
        self._finish.connect(self.worker.finish, Qt.ConnectionType.QueuedConnection)
        self.worker.result.connect(self._on_result, Qt.ConnectionType.QueuedConnection)
        self.worker.error.connect(self._on_error, Qt.ConnectionType.QueuedConnection)
        self.worker.activity.connect(self._on_activity, Qt.ConnectionType.QueuedConnection)
        self.worker.progress.connect(self.progressChanged, Qt.ConnectionType.QueuedConnection)
        self.worker.ready.connect(self.ready, Qt.ConnectionType.QueuedConnection)
        self._stopped = False
        self._sequence_reached = 0  # the newest SEQUENCE_REACHED the worker sent
        self._cancels: list[threading.Event] = []  # the cancel events of the latest analyses submitted

    def start(self) -> None:
        self.thread.start()

    def submit(self, command: Command) -> int:
        """Queue a command; returns its request id.

        A command with a `channel` (views: tokens, windows, inspection) replaces an older one of its kind:
        the worker skips the older one if it has not started, and its result is dropped if it has. Actions
        (a generation step, a training command) have no channel: every one of them runs, except generation
        steps that a later new prompt, reset or model has made moot (a storm of Step presses never delays
        the next prompt by more than the step in progress). A command that replaces the model cancels the
        analyses of the old one, running or queued.
        """
        if self._stopped:
            return -1
        self._counter += 1
        self.newest.note(command, self._counter)
        cancel = command.cancel_event()
        if cancel is not None:
            self._cancels = [*self._cancels[-7:], cancel]
        if command.cancels_analyses():
            for event in self._cancels:
                event.set()  # the worker stops the analysis of the old model between two batches
            self._cancels = []
        if isinstance(command, c.Patch):
            self.state.update(patching=True)
        self._submit.emit(self._counter, command)
        return self._counter

    @Slot(int, str, object)
    def _on_result(self, request: int, channel: str, payload: object) -> None:
        if self._stopped:
            return
        if channel == SEQUENCE_REACHED:
            self._sequence_reached = int(payload)  # type: ignore[call-overload]
            return
        self._observe(channel, payload)
        if channel in SEQUENCE_VIEWS and self.sequence_behind():
            return  # of a prompt, reset or model older than the newest asked for: stale, never drawn
        if self.newest.stale(channel, request):
            return
        self.resultReady.emit(channel, payload)

    def _observe(self, channel: str, payload: object) -> None:
        """The worker's words that the application state keeps (before the window sees the result)."""
        if channel == TRAIN_STATE:
            self.state.set_training(str(payload))
        elif channel == PLAY_STATE:
            self.state.update(playing=bool(payload))
        elif channel == MODEL:
            self.state.set_model(payload)
            self.gc.refreeze_soon()  # the model and what loading it built live on: later collections skip them
        elif channel == CORPUS:
            self.state.update(corpus=payload)
        elif channel in (PATCH, PATCH_ENDED):
            self.state.update(patching=False)

    @Slot(str)
    def _on_activity(self, text: str) -> None:
        self.state.update(activity=text)
        self.activityChanged.emit(text)

    @Slot(str, str)
    def _on_error(self, command: str, message: str) -> None:
        if command == c.Patch.name:
            self.state.update(patching=False)  # a bug ended it: no PATCH_ENDED follows
        self.errorRaised.emit(command, message)

    def sequence_behind(self) -> bool:
        """True while the worker has not reached the newest prompt, reset or model asked for: a generation
        or inspection view received before that request (and not drawn yet) is stale."""
        return self._sequence_reached < self.newest.newest(SEQUENCE)

    def is_running(self) -> bool:
        return self.thread.isRunning()

    def shutdown(self, timeout_ms: int = 2000) -> bool:
        """Stop training/play, end the thread's event loop and wait; True when the thread has finished.

        During a run the worker first finishes its step and writes the run's checkpoint (`Worker.finish`),
        then ends its loop."""
        self._stopped = True
        training = self.worker.training != TrainState.IDLE
        self.worker.abort.set()
        self.worker.training = TrainState.IDLE
        self.worker.playing = False
        if not self.thread.isRunning():
            self.gc.stop()
            return True
        if training:
            self._finish.emit()
        else:
            self.thread.quit()
        finished = self.thread.wait(timeout_ms)
        if finished:
            self.gc.stop()  # the worker has ended: the interpreter may collect in any thread again
        return finished
