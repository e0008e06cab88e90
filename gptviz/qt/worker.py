"""One QObject on one QThread that owns the engine Session; the GUI talks to it only through queued signals.

Commands go in as `(request id, channel, name, kwargs)` through one queued signal. Results come out as
`(request id, channel, payload)` where the payload is a frozen dataclass of numpy arrays or plain values;
`WorkerHost` (in the GUI thread) drops a result whose request id is older than the newest request on its
channel, and the worker skips a queued command that a newer one on the same channel has already replaced
(typing in the token box sends one request per key; only the last one is computed).

Training and Play are repeated single steps, each posted back to the worker's own event loop, so a pause,
a stop, a prompt change or a shutdown is handled between any two steps.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot

from gptviz.errors import GptvizError

# Channels: results on one channel replace each other (the newest request wins).
MODEL = "model"
CORPUS = "corpus"
TOKENS = "tokens"
WINDOWS = "windows"
INSPECTION = "inspection"
GENERATION = "generation"
TRAINING = "training"
TRAIN_STATE = "train_state"
PLAY_STATE = "play_state"
SAVED = "saved"
FOLLOW = "follow"
HISTORY = "history"  # the loaded model's own training history (FollowBatch with a label), or None
RUN_DIR = "run_dir"  # where a run started in the window writes its files (str)
TRAIN_PHASE = "train_phase"  # what starting a run is doing before its first step (str)
RUN_SAVED = "run_saved"  # the run's checkpoint was written (Pause, Stop): its path (str)
ABLATIONS = "ablations"  # what is switched off in the model (tuple of gptviz.engine.ablation.Ablation)
ATTENTION_STEPS = "attention_steps"  # (AttentionSteps, pieces) for the step-by-step view
WHY = "why"  # (LogitAttribution, target piece, other piece or None) for the Why this token? view
PATCH = "patch"  # (PatchResult, clean pieces) for the activation patching view
INPUTS = "inputs"  # (InputAttribution, pieces): integrated gradients for the Why this token? view
INPUTS_PROGRESS = "inputs_progress"  # (done, total) path points, or a one-line reason it ended (str)
PATCH_PROGRESS = "patch_progress"  # (done, total) batches
PATCH_ENDED = "patch_ended"  # a one-line reason the run ended without a result ("cancelled", an error)
EXPORTED = "exported"  # the path File › Export model… wrote
EMBEDDINGS = "embeddings"  # (Neighbours, EmbeddingMap) for the embeddings view, or a one-line error (str)

WORKER_ORIGIN = 0  # request id of results the worker sends on its own (after a step, a model change)


class Worker(QObject):
    """Lives in the worker thread. Every public slot runs there; nothing here touches a widget."""

    result = Signal(int, str, object)  # request id, channel, payload
    error = Signal(str, str)  # command, message for the user
    activity = Signal(str)  # what the worker is doing ("" when idle)
    progress = Signal(int, int)  # done, total (0, 0 hides the bar)
    ready = Signal()

    def __init__(self, session_factory: Callable[[], Any]) -> None:
        super().__init__()
        self._factory = session_factory
        self.session: Any = None
        self.latest: dict[str, int] = {}  # written by the host (GUI thread), read here; ints are atomic
        self.abort = threading.Event()
        self.training = "idle"  # idle | running | paused
        self.playing = False
        self.play_interval_ms = 120
        self.play_limit = 200
        self.inspect_args: dict[str, int] = {"mlp_layer": 0, "lens_position": -1}
        self.auto_inspect = True
        self._follower: Any = None

    # ------------------------------------------------------------------------------------------ plumbing

    @Slot()
    def start(self) -> None:
        """Build the session in this thread (loading a model can take a while) and announce it."""
        self.activity.emit("loading model")
        try:
            self.session = self._factory()
        except Exception as exc:  # noqa: BLE001 - reported, the host decides what to do
            self.error.emit("start", _message(exc))
            self.activity.emit("")
            return
        self._emit_model()
        self._emit_history()
        if self.session.corpus is not None:
            self.result.emit(WORKER_ORIGIN, CORPUS, self.session.corpus)
        self._emit_generation()
        self.activity.emit("")
        self.ready.emit()

    @Slot(int, str, str, object)
    def run_command(self, request: int, channel: str, name: str, kwargs: object) -> None:
        if self.abort.is_set() or self.session is None and name != "start":
            return
        if channel and request < self.latest.get(channel, 0):
            return  # a newer request on this channel is queued behind us
        if name in SEQUENCE_STEPS and request < self.latest.get(SEQUENCE, 0):
            return  # a new prompt, reset or model was asked for after this step: the step is moot
        if name == "set_prompt" and request < self.latest.get(PROMPT, 0):
            return  # a newer prompt is queued: this one would be replaced before anyone saw it
        handler = getattr(self, f"cmd_{name}", None)
        if handler is None:
            self.error.emit(name, f"unknown command {name!r}")
            return
        self.activity.emit(_ACTIVITY.get(name, name.replace("_", " ")))
        if name in SEQUENCE_RESETS:  # before its results: the host drops views computed before this one
            self.result.emit(request, SEQUENCE_REACHED, request)
        try:
            handler(request, channel, **(kwargs or {}))
        except GptvizError as exc:
            self.error.emit(name, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the worker thread
            traceback.print_exc()
            self.error.emit(name, _message(exc))
        finally:
            if self.training != "running" and not self.playing:
                self.activity.emit("")

    def _emit_model(self) -> None:
        self.result.emit(WORKER_ORIGIN, MODEL, self.session.info())

    def _emit_generation(self, request: int = WORKER_ORIGIN) -> None:
        """The generation view and, right behind it, the inspection of the same tokens. Both are computed
        before either is sent, so the window draws them together instead of redrawing the Generation pane
        while this thread still inspects (on two cores the two would slow each other down)."""
        view = self.session.generation_view()
        snapshot = None
        try:
            if self.auto_inspect:
                snapshot = self.session.inspect(**self.inspect_args)
        finally:
            self.result.emit(request, GENERATION, view)
        if snapshot is not None:
            self.result.emit(request, INSPECTION, snapshot)

    def _inspect(self, request: int = WORKER_ORIGIN) -> None:
        self.result.emit(request, INSPECTION, self.session.inspect(**self.inspect_args))

    def _model_changed(self, request: int) -> None:
        self.result.emit(request, ABLATIONS, ())  # a new model starts with nothing switched off
        self.training = "idle"
        self.playing = False
        self.result.emit(request, TRAIN_STATE, "idle")
        self.result.emit(request, PLAY_STATE, False)
        self._emit_model()
        self._emit_history(request)
        self._emit_generation()

    def _emit_history(self, request: int = WORKER_ORIGIN) -> None:
        """Read once per model change: a model loaded with its run's files shows how it was trained."""
        history = getattr(self.session, "model_history", None)
        self.result.emit(request, HISTORY, history() if history is not None else None)

    # ---------------------------------------------------------------------------------------- commands

    def cmd_load_checkpoint(self, request: int, channel: str, path: str) -> None:
        self.session.load_checkpoint(path)
        self._model_changed(request)

    def cmd_import_weights(self, request: int, channel: str, path: str, n_heads: int | None = None) -> None:
        self.session.import_weights(path, n_heads=n_heads)
        self._model_changed(request)

    def cmd_new_model(self, request: int, channel: str, preset: str) -> None:
        self.session.new_model(preset)
        self._model_changed(request)

    def cmd_save_checkpoint(self, request: int, channel: str, path: str) -> None:
        try:
            saved = self.session.save_checkpoint(path)
        except OSError as exc:  # disk full, read-only: the OS's reason; the save left the old files alone
            raise GptvizError(f"could not save the checkpoint to {path}: {exc.strerror or exc}") from None
        self.result.emit(request, SAVED, str(saved))

    def cmd_export_model(self, request: int, channel: str, fmt: str, path: str) -> None:
        """The loaded model as a Hugging Face folder or the book's .pth (gptviz.engine.export)."""
        from gptviz.engine.export import export_model

        try:
            written = export_model(self.session.model, fmt, path)
        except OSError as exc:  # disk full, read-only: the OS's reason; the export left old files alone
            raise GptvizError(f"could not export the model to {path}: {exc.strerror or exc}") from None
        self.result.emit(request, EXPORTED, str(written))

    def cmd_load_corpus(self, request: int, channel: str, path: str, lenient: bool = False) -> None:
        info = self.session.load_corpus(path, lenient=lenient)
        self.result.emit(request, CORPUS, info)

    def cmd_tokenize(self, request: int, channel: str, text: str) -> None:
        self.result.emit(request, TOKENS, self.session.tokenize(text))

    def cmd_windows(
        self, request: int, channel: str, max_length: int, stride: int, first: int, count: int
    ) -> None:
        self.result.emit(request, WINDOWS, self.session.windows(max_length, stride, first, count))

    def cmd_inspect(self, request: int, channel: str, **args: int) -> None:
        self.inspect_args.update({k: int(v) for k, v in args.items()})
        self._inspect(request)

    def cmd_set_prompt(self, request: int, channel: str, prompt: str) -> None:
        self.playing = False
        self.result.emit(request, PLAY_STATE, False)
        self.session.set_prompt(prompt)
        self._emit_generation(request)

    def cmd_set_ablations(self, request: int, channel: str, ablations: Any = ()) -> None:
        """Switch parts of the model off (or back on); every pane and the generator follow."""
        done = self.session.set_ablations(tuple(ablations))
        self.result.emit(request, ABLATIONS, done)
        self._emit_generation(request)

    def cmd_attention_steps(self, request: int, channel: str, layer: int, head: int, query: int = -1) -> None:
        self.result.emit(request, ATTENTION_STEPS, self.session.attention_steps(layer, head, query))

    def cmd_why(self, request: int, channel: str, token_id: int, against_id: int = -1) -> None:
        against = None if int(against_id) < 0 else int(against_id)
        self.result.emit(request, WHY, self.session.explain_last_choice(int(token_id), against))

    def cmd_embeddings(self, request: int, channel: str, token: Any, k: int = 10, ids: Any = None) -> None:
        """A token's nearest neighbours and the map of a text (`ids`, or the current one); a token that is
        not one token is answered on the view's channel, where the user typed it."""
        try:
            result = self.session.embeddings(token, int(k), ids)
        except GptvizError as exc:
            self.result.emit(request, EMBEDDINGS, str(exc))
            return
        self.result.emit(request, EMBEDDINGS, result)

    def cmd_integrated_gradients(
        self, request: int, channel: str, token_id: int, steps: int = 32, cancel: Any = None
    ) -> None:
        from gptviz.engine.patching import Cancelled

        def progress(done: int, total: int) -> None:
            self.result.emit(request, INPUTS_PROGRESS, (done, total))

        try:
            if cancel is not None and cancel.is_set():  # cancelled (or its model replaced) while queued
                raise Cancelled
            result = self.session.input_attribution_of_last_choice(
                int(token_id), steps=int(steps), progress=progress, cancel=cancel
            )
        except Cancelled:
            self.result.emit(request, INPUTS_PROGRESS, "cancelled")
            return
        self.result.emit(request, INPUTS, result)

    def cmd_patch(
        self,
        request: int,
        channel: str,
        clean: str,
        corrupt: str,
        answer: str,
        wrong: str,
        cancel: Any = None,
    ) -> None:
        """Activation patching, with progress after each batch; `cancel` (a threading.Event the window sets)
        stops it between batches."""
        from gptviz.engine.patching import Cancelled

        def progress(done: int, total: int) -> None:
            self.result.emit(request, PATCH_PROGRESS, (done, total))

        try:
            if cancel is not None and cancel.is_set():  # cancelled (or its model replaced) while queued
                raise Cancelled
            result = self.session.patch(clean, corrupt, answer, wrong, progress=progress, cancel=cancel)
        except Cancelled:
            self.result.emit(request, PATCH_ENDED, "cancelled: nothing was changed")
            return
        except GptvizError as exc:
            self.result.emit(request, PATCH_ENDED, str(exc))
            raise
        self.result.emit(request, PATCH, result)

    def cmd_set_sampling(self, request: int, channel: str, settings: Any) -> None:
        self.session.set_sampling(settings)

    def cmd_gen_step(self, request: int, channel: str) -> None:
        self.session.gen_step()
        self._emit_generation(request)

    def cmd_force(self, request: int, channel: str, token_id: int) -> None:
        self.session.force(token_id)
        self._emit_generation(request)

    def cmd_undo(self, request: int, channel: str) -> None:
        self.session.undo()
        self._emit_generation(request)

    def cmd_reset(self, request: int, channel: str) -> None:
        self.playing = False
        self.result.emit(request, PLAY_STATE, False)
        self.session.reset_generation()
        self._emit_generation(request)

    def cmd_play(self, request: int, channel: str, interval_ms: int = 120, limit: int = 200) -> None:
        self.play_interval_ms = max(0, int(interval_ms))
        self.play_limit = int(limit)
        if not self.playing:
            self.playing = True
            self.result.emit(request, PLAY_STATE, True)
            QTimer.singleShot(0, self._play_tick)

    def cmd_pause_play(self, request: int, channel: str) -> None:
        self.playing = False
        self.result.emit(request, PLAY_STATE, False)

    @Slot()
    def _play_tick(self) -> None:
        if not self.playing or self.abort.is_set():
            return
        self.activity.emit("generating")
        try:
            view = self.session.gen_step()
        except GptvizError as exc:
            self.playing = False
            self.result.emit(WORKER_ORIGIN, PLAY_STATE, False)
            self.error.emit("play", str(exc))
            self.activity.emit("")
            return
        self._emit_generation()
        if view.stopped or len(view.new_ids) >= self.play_limit:
            self.playing = False
            self.result.emit(WORKER_ORIGIN, PLAY_STATE, False)
            self.activity.emit("")
            return
        QTimer.singleShot(self.play_interval_ms, self._play_tick)

    # ---------------------------------------------------------------------------------------- training

    def cmd_train_start(
        self, request: int, channel: str, settings: Any = None, preset: str | None = None
    ) -> None:
        """Start a new run (a fresh model of `preset`, or the current model) or resume a paused one."""
        if self.training == "paused" and settings is None:
            self.training = "running"
        else:
            if preset:
                self._train_phase(request, f"building a new {preset} model")
                self.session.new_model(preset)
                self._emit_model()
            if self.session.corpus is not None:
                self._train_phase(request, f"tokenizing {self.session.corpus.n_tokens:,} tokens into windows")
            run_dir = self.session.start_window_run(settings)  # on disk: nothing trained is only in memory
            self.session.trainer.on_phase = lambda text: self._train_phase(request, text)
            self.result.emit(request, RUN_DIR, str(run_dir))
            self.training = "running"
            self._emit_generation()
        self.result.emit(request, TRAIN_STATE, "running")
        QTimer.singleShot(0, self._train_tick)

    def cmd_train_recipe(self, request: int, channel: str, recipe_name: str) -> None:
        """Model › Recipe: the recipe's corpus and a fresh model of its shape, then train it on disk."""
        self._train_phase(request, "reading the corpus, building the model")
        run_dir = self.session.start_recipe(recipe_name)
        self.session.trainer.on_phase = lambda text: self._train_phase(request, text)
        self._model_changed(request)
        if self.session.corpus is not None:
            self.result.emit(request, CORPUS, self.session.corpus)
        self.result.emit(request, RUN_DIR, str(run_dir))
        self.training = "running"
        self.result.emit(request, TRAIN_STATE, "running")
        QTimer.singleShot(0, self._train_tick)

    def _train_phase(self, request: int, text: str) -> None:
        """Say what starting a run is doing (the pane's notice and the status bar), before its first step."""
        self.result.emit(request, TRAIN_PHASE, text)
        self.activity.emit(text)

    def cmd_resume_run(self, request: int, channel: str, path: str) -> None:
        """File › Runs… › Resume: load a run directory and go on training it."""
        self.session.resume_run(path)
        self._model_changed(request)
        self.result.emit(request, RUN_DIR, str(path))
        self.training = "running"
        self.result.emit(request, TRAIN_STATE, "running")
        QTimer.singleShot(0, self._train_tick)

    def cmd_train_pause(self, request: int, channel: str) -> None:
        if self.training == "running":
            self.training = "paused"
            self.result.emit(request, TRAIN_STATE, "paused")
            self._checkpoint()

    def cmd_train_stop(self, request: int, channel: str) -> None:
        if self.training != "idle":
            self.training = "idle"
            self._checkpoint()
            self.session.stop_training()
            self.result.emit(request, TRAIN_STATE, "idle")
            self._emit_generation()

    def _checkpoint(self) -> None:
        """Write the run's checkpoint (Pause, Stop, close) and say where."""
        self.activity.emit("saving the run's checkpoint")
        try:
            saved = self.session.checkpoint_run()
        except OSError as exc:
            self.error.emit("training", f"could not save the run's checkpoint: {exc.strerror or exc}")
            return
        if saved is not None:
            self.result.emit(WORKER_ORIGIN, RUN_SAVED, str(saved))

    @Slot()
    def finish(self) -> None:
        """The window is closing: the step in progress has finished (this runs after it), so write the run's
        checkpoint, then end this thread's event loop."""
        try:
            if self.session is not None and self.session.trainer is not None:
                self.session.checkpoint_run(state="closed")  # runs.CLOSED: offered back at the next launch
        except Exception:  # noqa: BLE001 - closing must go on; the last evaluation's checkpoint remains
            traceback.print_exc()
        finally:
            thread = QThread.currentThread()
            if thread is not None:
                thread.quit()

    @Slot()
    def _train_tick(self) -> None:
        if self.training != "running" or self.abort.is_set():
            return
        try:
            update = self.session.begin_training() or self.session.train_step()  # step 0 first
        except GptvizError as exc:
            self.training = "idle"
            self.session.stop_training()
            self.result.emit(WORKER_ORIGIN, TRAIN_STATE, "idle")
            self.error.emit("training", str(exc))
            self.activity.emit("")
            self.progress.emit(0, 0)
            return
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            self.training = "idle"
            try:
                self.session.stop_training()  # back to eval mode: dropout must not leak into generation
            except Exception:  # noqa: BLE001 - the step's error is the one to show
                traceback.print_exc()
            self.result.emit(WORKER_ORIGIN, TRAIN_STATE, "idle")
            self.error.emit("training", _message(exc))
            self.activity.emit("")
            self.progress.emit(0, 0)
            return
        self.result.emit(WORKER_ORIGIN, TRAINING, update)
        self.activity.emit(f"training step {update.step}/{update.total_steps}")
        self.progress.emit(update.step, update.total_steps)
        if update.evaluated:
            self._emit_generation()
        if update.done:
            self.training = "idle"
            self.session.stop_training()
            self.result.emit(WORKER_ORIGIN, TRAIN_STATE, "finished")
            self.activity.emit("")
            self.progress.emit(0, 0)
            return
        QTimer.singleShot(0, self._train_tick)

    # ------------------------------------------------------------------------------------- run follower

    def cmd_follow(self, request: int, channel: str, path: str | None) -> None:
        """Follow (or, with None, stop following) a run directory written by another process."""
        if path is None:
            self._follower = None
            return
        if self.training != "idle":
            self.training = "idle"
            self.session.stop_training()
        self._follower = None
        self._follower = self.session.follow_run(path)
        self._model_changed(request)
        self.cmd_poll_follow(request, channel)

    def cmd_poll_follow(self, request: int, channel: str) -> None:
        if self._follower is None:
            return
        batch = self.session.poll_run(self._follower)
        if batch is not None:
            self.result.emit(request, FOLLOW, batch)


_ACTIVITY = {
    "load_checkpoint": "loading checkpoint",
    "import_weights": "importing weights",
    "new_model": "building model",
    "save_checkpoint": "saving checkpoint",
    "load_corpus": "reading corpus",
    "tokenize": "tokenizing",
    "windows": "slicing windows",
    "inspect": "inspecting",
    "gen_step": "generating",
    "force": "generating",
    "train_start": "starting training",
    "poll_follow": "reading run directory",
}


# A generation step queued before a new prompt, a reset or a new model is skipped (see WorkerHost.submit).
SEQUENCE = "sequence"
SEQUENCE_RESETS = frozenset(
    {
        "set_prompt",
        "reset",
        "load_checkpoint",
        "import_weights",
        "new_model",
        "follow",
        "resume_run",
        "train_recipe",
    }
)
SEQUENCE_STEPS = frozenset({"gen_step", "force", "undo"})
# The views of the sequence: the host drops one computed before the newest prompt, reset or model asked for
# (the worker says where it is with SEQUENCE_REACHED, in order with its results), so none is drawn stale.
SEQUENCE_VIEWS = frozenset({GENERATION, INSPECTION})
SEQUENCE_REACHED = "sequence_reached"  # the request id of the prompt, reset or model the worker now holds
PROMPT = "prompt"  # the newest set_prompt: an older one still queued is skipped
# Commands that replace the model: a long analysis of the old one (patching, integrated gradients) running
# or queued is cancelled at its next batch, so the new model never waits for it.
MODEL_CHANGES = frozenset(
    {"load_checkpoint", "import_weights", "new_model", "follow", "resume_run", "train_recipe"}
)


def _message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, GptvizError) else text


class WorkerHost(QObject):
    """GUI-thread side: owns the thread, numbers requests, drops stale results, shuts down cleanly."""

    _submit = Signal(int, str, str, object)
    _finish = Signal()
    resultReady = Signal(str, object)  # channel, payload (only the newest per channel)
    errorRaised = Signal(str, str)
    activityChanged = Signal(str)
    progressChanged = Signal(int, int)
    ready = Signal()

    def __init__(self, session_factory: Callable[[], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._counter = 0
        self.latest: dict[str, int] = {}
        self.thread = QThread()
        self.thread.setObjectName("gptviz-worker")
        self.worker = Worker(session_factory)
        self.worker.latest = self.latest  # shared dict: the worker reads, this side writes
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.start)
        self._submit.connect(self.worker.run_command, Qt.ConnectionType.QueuedConnection)
        self._finish.connect(self.worker.finish, Qt.ConnectionType.QueuedConnection)
        self.worker.result.connect(self._on_result, Qt.ConnectionType.QueuedConnection)
        self.worker.error.connect(self.errorRaised, Qt.ConnectionType.QueuedConnection)
        self.worker.activity.connect(self.activityChanged, Qt.ConnectionType.QueuedConnection)
        self.worker.progress.connect(self.progressChanged, Qt.ConnectionType.QueuedConnection)
        self.worker.ready.connect(self.ready, Qt.ConnectionType.QueuedConnection)
        self._stopped = False
        self._sequence_reached = 0  # the newest SEQUENCE_REACHED the worker sent
        self._cancels: list[Any] = []  # the cancel events of the latest analyses submitted

    def start(self) -> None:
        self.thread.start()

    def submit(self, name: str, channel: str = "", **kwargs: Any) -> int:
        """Queue a command; returns its request id.

        With a `channel` (views: tokens, windows, inspection) a newer request replaces an older one: the
        worker skips the older one if it has not started, and its result is dropped if it has. Actions (a
        generation step, a training command) pass no channel: every one of them runs, except generation
        steps that a later new prompt, reset or model has made moot (a storm of Step presses never delays
        the next prompt by more than the step in progress).
        """
        if self._stopped:
            return -1
        self._counter += 1
        if channel:
            self.latest[channel] = self._counter
        if name in SEQUENCE_RESETS:
            self.latest[SEQUENCE] = self._counter
        if name == "set_prompt":
            self.latest[PROMPT] = self._counter
        if kwargs.get("cancel") is not None:
            self._cancels = [*self._cancels[-7:], kwargs["cancel"]]
        if name in MODEL_CHANGES or (name == "train_start" and kwargs.get("preset")):
            for event in self._cancels:
                event.set()  # the worker stops the analysis of the old model between two batches
            self._cancels = []
        self._submit.emit(self._counter, channel, name, kwargs)
        return self._counter

    @Slot(int, str, object)
    def _on_result(self, request: int, channel: str, payload: object) -> None:
        if self._stopped:
            return
        if channel == SEQUENCE_REACHED:
            self._sequence_reached = int(payload)  # type: ignore[call-overload]
            return
        if channel in SEQUENCE_VIEWS and self.sequence_behind():
            return  # of a prompt, reset or model older than the newest asked for: stale, never drawn
        if request != WORKER_ORIGIN and request < self.latest.get(channel, 0):
            return
        self.resultReady.emit(channel, payload)

    def sequence_behind(self) -> bool:
        """True while the worker has not reached the newest prompt, reset or model asked for: a generation
        or inspection view received before that request (and not drawn yet) is stale."""
        return self._sequence_reached < self.latest.get(SEQUENCE, 0)

    def is_running(self) -> bool:
        return self.thread.isRunning()

    def shutdown(self, timeout_ms: int = 2000) -> bool:
        """Stop training/play, end the thread's event loop and wait; True when the thread has finished.

        During a run the worker first finishes its step and writes the run's checkpoint (`Worker.finish`),
        then ends its loop."""
        self._stopped = True
        training = self.worker.training != "idle"
        self.worker.abort.set()
        self.worker.training = "idle"
        self.worker.playing = False
        if not self.thread.isRunning():
            return True
        if training:
            self._finish.emit()
        else:
            self.thread.quit()
        return self.thread.wait(timeout_ms)
