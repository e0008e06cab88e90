"""One evented application state: what is loaded and what runs, kept in the GUI thread.

Before this, what ran was told three times (the Worker's training string, the Training pane's own word, the
window's `_busy_*` flags), each updated from the worker's results by hand. Now `WorkerHost` updates one
`AppState` from the worker's words (TRAIN_STATE, PLAY_STATE, its activity, the model it holds, a patching run
starting and ending) and the window's status bar, Play button and Training buttons observe its `changed`
signal. `changed` carries the names of what changed, so an observer redraws only its part (the activity
changes at every training step; the Training pane's buttons must not be reset that often).

`TrainState` is the worker's word on a run: the worker itself holds IDLE, RUNNING or PAUSED; FINISHED is
the word for a run that ended by itself (the worker is idle again, the pane clears its notice).
"""

from __future__ import annotations

import enum
from typing import Any

from PySide6.QtCore import QObject, Signal


class TrainState(enum.StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"


class Running(enum.StrEnum):
    """What the status bar names when nothing more specific is being said."""

    IDLE = "idle"
    TRAINING = "training"
    PAUSED = "training paused"
    PLAYING = "playing"
    DOWNLOADING = "downloading"
    PATCHING = "patching"


class AppState(QObject):
    """What is loaded (the model's info and name, the corpus, a followed run) and what runs (training, Play,
    a download, a patching run, the worker's current activity).

    Set through `update(**changes)`; `changed(frozenset of names)` follows once per update that changed
    something. `set_training` always notifies: each of the worker's words about a run counts, even the same
    one twice (a new model says "idle" again, and the Training pane clears its "starting…" note on it)."""

    changed = Signal(object)  # frozenset[str]: the names of the attributes that changed

    FIELDS = (
        "model",
        "model_name",
        "corpus",
        "following",
        "training",
        "playing",
        "downloading",
        "patching",
        "activity",
    )

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model: Any = None  # gptviz.engine.session.ModelInfo of the loaded model, None before the first
        self.model_name = ""
        self.corpus: Any = None  # gptviz.engine.session.CorpusInfo, or None
        self.following: str | None = None  # the run directory followed, if any
        self.training = TrainState.IDLE
        self.playing = False
        self.downloading = False
        self.patching = False
        self.activity = ""  # what the worker says it is doing; "" between commands

    def update(self, **changes: Any) -> frozenset[str]:
        """Set the given attributes; emit `changed` with the names whose value changed (if any)."""
        unknown = set(changes) - set(self.FIELDS)
        if unknown:
            raise AttributeError(f"AppState has no {', '.join(sorted(unknown))}")
        what = frozenset(k for k, v in changes.items() if getattr(self, k) != v)
        for key in what:
            setattr(self, key, changes[key])
        if what:
            self.changed.emit(what)
        return what

    def set_training(self, word: str) -> None:
        """The worker's word on the run (TRAIN_STATE); also ends the activity it reported for the run."""
        self.training = TrainState(word)
        self.activity = ""
        self.changed.emit(frozenset({"training", "activity"}))

    def set_model(self, info: Any) -> None:
        self.update(model=info, model_name=str(getattr(info, "name", "")))

    @property
    def running(self) -> Running:
        """The one thing that runs, as the status bar names it (training before Play before the rest)."""
        if self.training == TrainState.RUNNING:
            return Running.TRAINING
        if self.training == TrainState.PAUSED:
            return Running.PAUSED
        if self.playing:
            return Running.PLAYING
        if self.patching:
            return Running.PATCHING
        if self.downloading:
            return Running.DOWNLOADING
        return Running.IDLE

    @property
    def busy(self) -> bool:
        """Training or Play runs: the window then spaces its redraws so the worker keeps its speed."""
        return self.training == TrainState.RUNNING or self.playing

    def status_text(self) -> str:
        """The status bar's activity label: what the worker is doing, else "training paused" (Resume goes on
        from there), else a download or a patching run in progress, else "idle"."""
        if self.activity:
            return self.activity
        if self.training == TrainState.PAUSED:
            return Running.PAUSED.value
        return (
            self.running.value
            if self.running in (Running.PATCHING, Running.DOWNLOADING)
            else Running.IDLE.value
        )
