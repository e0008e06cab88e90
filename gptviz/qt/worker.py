"""One QObject on one QThread that owns the engine Session; the GUI talks to it only through queued signals.

Commands go in as `(request id, command)` through one queued signal, the command a frozen dataclass of
gptviz.qt.commands; the worker runs it with the handler its type maps to. Results come out as
`(request id, channel, payload)` where the payload is a frozen dataclass of numpy arrays or plain values.
The newest request of a kind wins (gptviz.qt.commands.Newest, written by `WorkerHost`): the worker skips a
queued command that a newer one has already replaced (typing in the token box sends one request per key;
only the last one is computed), and the host drops a result of an older request.

Training and Play are repeated single steps, each posted back to the worker's own event loop, so a pause,
a stop, a prompt change or a shutdown is handled between any two steps.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from gptviz.errors import GptvizError
from gptviz.qt import commands as c
from gptviz.qt.app_state import TrainState
from gptviz.qt.commands import (
    ABLATIONS,
    ATTENTION_STEPS,
    CORPUS,
    EMBEDDINGS,
    EXPORTED,
    FOLLOW,
    GENERATION,
    HISTORY,
    INPUTS,
    INPUTS_PROGRESS,
    INSPECTION,
    MODEL,
    PATCH,
    PATCH_ENDED,
    PATCH_PROGRESS,
    PLAY_STATE,
    RUN_DIR,
    RUN_SAVED,
    SAVED,
    SEQUENCE_REACHED,
    TOKENS,
    TRAIN_PHASE,
    TRAIN_STATE,
    TRAINING,
    WHY,
    WINDOWS,
    WORKER_ORIGIN,
    Command,
    Newest,
)

if TYPE_CHECKING:
    from gptviz.engine.run_follow import RunFollower
    from gptviz.engine.session import Session


class Worker(QObject):
    """Lives in the worker thread. Every public slot runs there; nothing here touches a widget."""

    result = Signal(int, str, object)  # request id, channel, payload
    error = Signal(str, str)  # command name, message for the user
    activity = Signal(str)  # what the worker is doing ("" when idle)
    progress = Signal(int, int)  # done, total (0, 0 hides the bar)
    ready = Signal()

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        super().__init__()
        self._factory = session_factory
        self.session: Session = None  # type: ignore[assignment]  # built in this thread by start()
        self.newest = Newest()  # written by the host (GUI thread), read here
        self.abort = threading.Event()
        self.training = TrainState.IDLE  # IDLE | RUNNING | PAUSED
        self.playing = False
        self._play_tick_s = 0.0  # how long the last Play token took, snapshot or not
        self._inspection_behind = False  # Play followed tokens the window has not been sent yet
        self._play_snapshot_at = -math.inf  # time.monotonic() when Play's last snapshot went out
        self.play_interval_ms = 120
        self.play_limit = 200
        self.inspection = c.Inspect()  # the last Inspect received: the panes' choices for the next steps
        self.auto_inspect = True
        self._follower: RunFollower | None = None
        self._handlers: dict[type[Command], Callable[[Any, int], None]] = {
            c.LoadCheckpoint: self._load_checkpoint,
            c.ImportWeights: self._import_weights,
            c.NewModel: self._new_model,
            c.SaveCheckpoint: self._save_checkpoint,
            c.ExportModel: self._export_model,
            c.LoadCorpus: self._load_corpus,
            c.Tokenize: self._tokenize,
            c.Windows: self._windows,
            c.Inspect: self._inspect_command,
            c.SetPrompt: self._set_prompt,
            c.SetAblations: self._set_ablations,
            c.AttentionSteps: self._attention_steps,
            c.Why: self._why,
            c.Embeddings: self._embeddings,
            c.IntegratedGradients: self._integrated_gradients,
            c.Patch: self._patch,
            c.SetSampling: self._set_sampling,
            c.GenStep: self._gen_step,
            c.Force: self._force,
            c.Undo: self._undo,
            c.Reset: self._reset,
            c.Play: self._play,
            c.PausePlay: self._pause_play,
            c.TrainStart: self._train_start,
            c.TrainRecipe: self._train_recipe,
            c.ResumeRun: self._resume_run,
            c.TrainPause: self._train_pause,
            c.TrainStop: self._train_stop,
            c.Follow: self._follow,
            c.PollFollow: self._poll_follow,
        }

    def handles(self, kind: type[Command]) -> bool:
        return kind in self._handlers

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

    @Slot(int, object)
    def run_command(self, request: int, command: Command) -> None:
        if self.abort.is_set() or self.session is None:
            return
        if self.newest.superseded(command, request):
            return  # a newer request of its kind is queued behind it (or a new prompt made a step moot)
        handler = self._handlers.get(type(command))
        if handler is None:
            self.error.emit(command.name, f"unknown command {type(command).__name__}")
            return
        self.activity.emit(command.activity)
        if command.starts_sequence:  # before its results: the host drops views computed before this one
            self.result.emit(request, SEQUENCE_REACHED, request)
        try:
            handler(command, request)
        except GptvizError as exc:
            self.error.emit(command.name, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the worker thread
            traceback.print_exc()
            self.error.emit(command.name, _message(exc))
        finally:
            if self.training != TrainState.RUNNING and not self.playing:
                self.activity.emit("")

    def _emit_model(self) -> None:
        self.result.emit(WORKER_ORIGIN, MODEL, self.session.info())

    def _emit_generation(self, request: int = WORKER_ORIGIN, snapshot: bool = True) -> None:
        """The generation view and, right behind it, the inspection of the same tokens. Both are computed
        before either is sent, so the window draws them together instead of redrawing the Generation pane
        while this thread still inspects (on two cores the two would slow each other down; measured, see
        the benchmarks' notes).

        `snapshot` False (Play, a token the window would not draw): the inspection only follows the token
        and nothing is sent; the next snapshot brings the view with it (`_emit_inspection`). So the
        Generation pane never runs ahead of the Attention and Activations panes: they always show the
        same tokens."""
        if self.auto_inspect and not snapshot:
            self.session.follow_generation(
                mlp_layer=self.inspection.mlp_layer, lens_position=self.inspection.lens_position
            )
            self._inspection_behind = True
            return
        view = self.session.generation_view()
        inspection = None
        try:
            if self.auto_inspect:
                inspection = self._inspect_now()
            self._inspection_behind = False
        finally:
            self.result.emit(request, GENERATION, view)
        if inspection is not None:
            self.result.emit(request, INSPECTION, inspection)

    def _emit_inspection(self, request: int) -> None:
        """A snapshot for the panes' new choices (or for the token Play paused on); the generation view
        goes first when Play followed tokens the window has not been sent."""
        if self._inspection_behind:
            self._emit_generation(request)
        else:
            self.result.emit(request, INSPECTION, self._inspect_now())

    def _inspect_now(self) -> Any:
        return self.session.inspect(
            mlp_layer=self.inspection.mlp_layer, lens_position=self.inspection.lens_position
        )

    def _set_play_state(self, request: int, playing: bool) -> None:
        self.playing = playing
        self.result.emit(request, PLAY_STATE, playing)

    def _model_changed(self, request: int) -> None:
        self.result.emit(request, ABLATIONS, ())  # a new model starts with nothing switched off
        self.training = TrainState.IDLE
        self.result.emit(request, TRAIN_STATE, TrainState.IDLE)
        self._set_play_state(request, False)
        self._emit_model()
        self._emit_history(request)
        self._emit_generation()

    def _emit_history(self, request: int = WORKER_ORIGIN) -> None:
        """Read once per model change: a model loaded with its run's files shows how it was trained."""
        self.result.emit(request, HISTORY, self.session.model_history())

    # ---------------------------------------------------------------------------------------- commands

    def _load_checkpoint(self, command: c.LoadCheckpoint, request: int) -> None:
        self.session.load_checkpoint(command.path)
        self._model_changed(request)

    def _import_weights(self, command: c.ImportWeights, request: int) -> None:
        self.session.import_weights(command.path, n_heads=command.n_heads)
        self._model_changed(request)

    def _new_model(self, command: c.NewModel, request: int) -> None:
        self.session.new_model(command.preset)
        self._model_changed(request)

    def _save_checkpoint(self, command: c.SaveCheckpoint, request: int) -> None:
        try:
            saved = self.session.save_checkpoint(command.path)
        except OSError as exc:  # disk full, read-only: the OS's reason; the save left the old files alone
            raise GptvizError(
                f"could not save the checkpoint to {command.path}: {exc.strerror or exc}"
            ) from None
        self.result.emit(request, SAVED, str(saved))

    def _export_model(self, command: c.ExportModel, request: int) -> None:
        """The loaded model as a Hugging Face folder or the book's .pth (gptviz.engine.export)."""
        from gptviz.engine.export import export_model

        try:
            written = export_model(self.session.model, command.fmt, command.path)
        except OSError as exc:  # disk full, read-only: the OS's reason; the export left old files alone
            raise GptvizError(
                f"could not export the model to {command.path}: {exc.strerror or exc}"
            ) from None
        self.result.emit(request, EXPORTED, str(written))

    def _load_corpus(self, command: c.LoadCorpus, request: int) -> None:
        info = self.session.load_corpus(command.path, lenient=command.lenient)
        self.result.emit(request, CORPUS, info)

    def _tokenize(self, command: c.Tokenize, request: int) -> None:
        self.result.emit(request, TOKENS, self.session.tokenize(command.text))

    def _windows(self, command: c.Windows, request: int) -> None:
        view = self.session.windows(command.max_length, command.stride, command.first, command.count)
        self.result.emit(request, WINDOWS, view)

    def _inspect_command(self, command: c.Inspect, request: int) -> None:
        self.inspection = command
        self._emit_inspection(request)

    def _set_prompt(self, command: c.SetPrompt, request: int) -> None:
        self._set_play_state(request, False)
        self.session.set_prompt(command.prompt)
        self._emit_generation(request)

    def _set_ablations(self, command: c.SetAblations, request: int) -> None:
        """Switch parts of the model off (or back on); every pane and the generator follow."""
        done = self.session.set_ablations(tuple(command.ablations))
        self.result.emit(request, ABLATIONS, done)
        self._emit_generation(request)

    def _attention_steps(self, command: c.AttentionSteps, request: int) -> None:
        steps = self.session.attention_steps(command.layer, command.head, command.query)
        self.result.emit(request, ATTENTION_STEPS, steps)

    def _why(self, command: c.Why, request: int) -> None:
        against = None if int(command.against_id) < 0 else int(command.against_id)
        self.result.emit(request, WHY, self.session.explain_last_choice(int(command.token_id), against))

    def _embeddings(self, command: c.Embeddings, request: int) -> None:
        """A token's nearest neighbours and the map of a text (`ids`, or the current one); a token that is
        not one token is answered on the view's channel, where the user typed it."""
        try:
            result = self.session.embeddings(command.token, int(command.k), command.ids)
        except GptvizError as exc:
            self.result.emit(request, EMBEDDINGS, str(exc))
            return
        self.result.emit(request, EMBEDDINGS, result)

    def _integrated_gradients(self, command: c.IntegratedGradients, request: int) -> None:
        from gptviz.engine.patching import Cancelled

        def progress(done: int, total: int) -> None:
            self.result.emit(request, INPUTS_PROGRESS, (done, total))

        cancel = command.cancel
        try:
            if cancel is not None and cancel.is_set():  # cancelled (or its model replaced) while queued
                raise Cancelled
            result = self.session.input_attribution_of_last_choice(
                int(command.token_id), steps=int(command.steps), progress=progress, cancel=cancel
            )
        except Cancelled:
            self.result.emit(request, INPUTS_PROGRESS, "cancelled")
            return
        self.result.emit(request, INPUTS, result)

    def _patch(self, command: c.Patch, request: int) -> None:
        """Activation patching, with progress after each batch; `cancel` (a threading.Event the window sets)
        stops it between batches."""
        from gptviz.engine.patching import Cancelled

        def progress(done: int, total: int) -> None:
            self.result.emit(request, PATCH_PROGRESS, (done, total))

        cancel = command.cancel
        try:
            if cancel is not None and cancel.is_set():  # cancelled (or its model replaced) while queued
                raise Cancelled
            result = self.session.patch(
                command.clean,
                command.corrupt,
                command.answer,
                command.wrong,
                progress=progress,
                cancel=cancel,
            )
        except Cancelled:
            self.result.emit(request, PATCH_ENDED, "cancelled: nothing was changed")
            return
        except GptvizError as exc:
            self.result.emit(request, PATCH_ENDED, str(exc))
            raise
        self.result.emit(request, PATCH, result)

    def _set_sampling(self, command: c.SetSampling, request: int) -> None:
        self.session.set_sampling(command.settings)

    def _gen_step(self, command: c.GenStep, request: int) -> None:
        self.session.gen_step()
        self._emit_generation(request)

    def _force(self, command: c.Force, request: int) -> None:
        self.session.force(command.token_id)
        self._emit_generation(request)

    def _undo(self, command: c.Undo, request: int) -> None:
        self.session.undo()
        self._emit_generation(request)

    def _reset(self, command: c.Reset, request: int) -> None:
        self._set_play_state(request, False)
        self.session.reset_generation()
        self._emit_generation(request)

    def _play(self, command: c.Play, request: int) -> None:
        self.play_interval_ms = max(0, int(command.interval_ms))
        self.play_limit = int(command.limit)
        if not self.playing:
            self._set_play_state(request, True)
            QTimer.singleShot(0, self._play_tick)

    def _pause_play(self, command: c.PausePlay, request: int) -> None:
        self._set_play_state(request, False)
        if self._inspection_behind:  # the last tokens played were followed without a snapshot: show them
            self._emit_generation(request)

    @Slot()
    def _play_tick(self) -> None:
        if not self.playing or self.abort.is_set():
            return
        self.activity.emit("generating")
        started = time.monotonic()
        try:
            view = self.session.gen_step()
        except GptvizError as exc:
            self._set_play_state(WORKER_ORIGIN, False)
            self.error.emit("play", str(exc))
            self.activity.emit("")
            return
        last = view.stopped or len(view.new_ids) >= self.play_limit
        # A snapshot only for a token the window will draw: the first whose result comes once the window
        # may redraw again (judged by the last token's time). An earlier one would be replaced unseen, and
        # its logit lens is most of what a token adds to the step. The tokens in between are only followed
        # and sent with that snapshot, which the window draws as it arrives. A snapshot just sent holds the
        # window for a gap even before the window has drawn it and said when it may redraw again.
        free_at = max(self.newest.redraw_free_at, self._play_snapshot_at + self.newest.redraw_gap)
        drawn = last or started + self._play_tick_s >= free_at
        if drawn:
            self._play_snapshot_at = started + self._play_tick_s
        self._emit_generation(snapshot=drawn)
        self._play_tick_s = time.monotonic() - started
        if last:
            self._set_play_state(WORKER_ORIGIN, False)
            self.activity.emit("")
            return
        QTimer.singleShot(self.play_interval_ms, self._play_tick)

    # ---------------------------------------------------------------------------------------- training

    def _run_started(self, request: int) -> None:
        self.training = TrainState.RUNNING
        self.result.emit(request, TRAIN_STATE, TrainState.RUNNING)
        QTimer.singleShot(0, self._train_tick)

    def _train_start(self, command: c.TrainStart, request: int) -> None:
        """Start a new run (a fresh model of `preset`, or the current model) or resume a paused one."""
        if self.training == TrainState.PAUSED and command.settings is None:
            self._run_started(request)
            return
        if command.preset:
            self._train_phase(request, f"building a new {command.preset} model")
            self.session.new_model(command.preset)
            self._emit_model()
        if self.session.corpus is not None:
            self._train_phase(request, f"tokenizing {self.session.corpus.n_tokens:,} tokens into windows")
        run_dir = self.session.start_window_run(command.settings)  # on disk: nothing trained only in memory
        self._report_phases(request)
        self.result.emit(request, RUN_DIR, str(run_dir))
        self.training = TrainState.RUNNING
        self._emit_generation()
        self._run_started(request)

    def _train_recipe(self, command: c.TrainRecipe, request: int) -> None:
        """Model › Recipe: the recipe's corpus and a fresh model of its shape, then train it on disk."""
        self._train_phase(request, "reading the corpus, building the model")
        run_dir = self.session.start_recipe(command.recipe_name)
        self._report_phases(request)
        self._model_changed(request)
        if self.session.corpus is not None:
            self.result.emit(request, CORPUS, self.session.corpus)
        self.result.emit(request, RUN_DIR, str(run_dir))
        self._run_started(request)

    def _report_phases(self, request: int) -> None:
        trainer = self.session.trainer
        if trainer is not None:
            trainer.on_phase = lambda text: self._train_phase(request, text)

    def _train_phase(self, request: int, text: str) -> None:
        """Say what starting a run is doing (the pane's notice and the status bar), before its first step."""
        self.result.emit(request, TRAIN_PHASE, text)
        self.activity.emit(text)

    def _resume_run(self, command: c.ResumeRun, request: int) -> None:
        """File › Runs… › Resume: load a run directory and go on training it."""
        self.session.resume_run(command.path)
        self._model_changed(request)
        self.result.emit(request, RUN_DIR, str(command.path))
        self._run_started(request)

    def _train_pause(self, command: c.TrainPause, request: int) -> None:
        if self.training == TrainState.RUNNING:
            self.training = TrainState.PAUSED
            self.result.emit(request, TRAIN_STATE, TrainState.PAUSED)
            self._checkpoint()

    def _train_stop(self, command: c.TrainStop, request: int) -> None:
        if self.training != TrainState.IDLE:
            self.training = TrainState.IDLE
            self._checkpoint()
            self.session.stop_training()
            self.result.emit(request, TRAIN_STATE, TrainState.IDLE)
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

    def _training_failed(self, message: str) -> None:
        self.training = TrainState.IDLE
        try:
            self.session.stop_training()  # back to eval mode: dropout must not leak into generation
        except Exception:  # noqa: BLE001 - the step's error is the one to show
            traceback.print_exc()
        self.result.emit(WORKER_ORIGIN, TRAIN_STATE, TrainState.IDLE)
        self.error.emit("training", message)
        self.activity.emit("")
        self.progress.emit(0, 0)

    @Slot()
    def _train_tick(self) -> None:
        if self.training != TrainState.RUNNING or self.abort.is_set():
            return
        try:
            update = self.session.begin_training() or self.session.train_step()  # step 0 first
        except GptvizError as exc:
            self._training_failed(str(exc))
            return
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            self._training_failed(_message(exc))
            return
        self.result.emit(WORKER_ORIGIN, TRAINING, update)
        self.activity.emit(f"training step {update.step}/{update.total_steps}")
        self.progress.emit(update.step, update.total_steps)
        if update.evaluated:
            self._emit_generation()
        if update.done:
            self.training = TrainState.IDLE
            self.session.stop_training()
            self.result.emit(WORKER_ORIGIN, TRAIN_STATE, TrainState.FINISHED)
            self.activity.emit("")
            self.progress.emit(0, 0)
            return
        QTimer.singleShot(0, self._train_tick)

    # ------------------------------------------------------------------------------------- run follower

    def _follow(self, command: c.Follow, request: int) -> None:
        """Follow (or, with None, stop following) a run directory written by another process."""
        self._follower = None
        if command.path is None:
            return
        if self.training != TrainState.IDLE:
            self.training = TrainState.IDLE
            self.session.stop_training()
        self._follower = self.session.follow_run(command.path)
        self._model_changed(request)
        self._poll_follow(c.PollFollow(), request)

    def _poll_follow(self, command: c.PollFollow, request: int) -> None:
        if self._follower is None:
            return
        batch = self.session.poll_run(self._follower)
        if batch is not None:
            self.result.emit(request, FOLLOW, batch)


def _message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, GptvizError) else text
