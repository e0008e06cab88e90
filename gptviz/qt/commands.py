"""What the window asks the model worker to do: one frozen dataclass per command, and the rule that the newest
request of a kind wins.

A command carries its arguments as fields and its queueing rules as class attributes, so the rules are read
where the command is defined instead of in name sets beside the worker:

- `channel`: the kind of request in which the newest wins. For views (tokens, windows, inspection, the
  causal views) it is also the channel the result comes back on: the worker skips an older request still
  queued, and the host drops an older request's result. A command without one always runs.
- `starts_sequence`: a new prompt, a reset or a new model: generation steps queued before it are moot, and
  the generation and inspection views computed before it are stale.
- `sequence_step`: a generation step (Step, a forced token, Undo), skipped when a newer `starts_sequence`
  command was asked for after it (a storm of Step presses never delays the next prompt by more than the step
  in progress).
- `replaces_model`: the long analyses of the old model (patching, integrated gradients) running or queued
  are cancelled at their next batch, so the new model never waits for them.
- `activity`: what the status bar says while it runs; `name`: how an error names it (File › Recent files
  drops a path whose open failed by this name).

`Newest` is the one place "newest request of a kind wins" is kept: the host notes each request, the worker
asks it whether a queued command is superseded, and the host whether a result is stale.

No Qt and no torch here: the window imports this module while it paints, before torch is loaded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from collections.abc import Sequence

    from gptviz.engine.ablation_spec import Ablation
    from gptviz.engine.sampling_settings import SamplingSettings
    from gptviz.engine.train_settings import TrainSettings

# Result channels: results on one channel replace each other (the newest request wins).
MODEL = "model"
CORPUS = "corpus"
TOKENS = "tokens"
WINDOWS = "windows"
INSPECTION = "inspection"
GENERATION = "generation"
TRAINING = "training"
TRAIN_STATE = "train_state"  # gptviz.qt.app_state.TrainState: running, paused, idle or finished
PLAY_STATE = "play_state"  # bool
SAVED = "saved"
FOLLOW = "follow"
HISTORY = "history"  # the loaded model's own training history (FollowBatch with a label), or None
RUN_DIR = "run_dir"  # where a run started in the window writes its files (str)
TRAIN_PHASE = "train_phase"  # what starting a run is doing before its first step (str)
RUN_SAVED = "run_saved"  # the run's checkpoint was written (Pause, Stop): its path (str)
ABLATIONS = "ablations"  # what is switched off in the model (tuple of gptviz.engine.ablation_spec.Ablation)
ATTENTION_STEPS = "attention_steps"  # (AttentionSteps, pieces) for the step-by-step view
WHY = "why"  # (LogitAttribution, target piece, other piece or None) for the Why this token? view
PATCH = "patch"  # (PatchResult, clean pieces) for the activation patching view
INPUTS = "inputs"  # (InputAttribution, pieces): integrated gradients for the Why this token? view
INPUTS_PROGRESS = "inputs_progress"  # (done, total) path points, or a one-line reason it ended (str)
PATCH_PROGRESS = "patch_progress"  # (done, total) batches
PATCH_ENDED = "patch_ended"  # a one-line reason the run ended without a result ("cancelled", an error)
EXPORTED = "exported"  # the path File › Export model… wrote
EMBEDDINGS = "embeddings"  # (Neighbours, EmbeddingMap) for the embeddings view, or a one-line error (str)

# Kinds of request that are not result channels.
SEQUENCE = "sequence"  # the newest prompt, reset or model asked for
PROMPT = "prompt"  # the newest prompt: an older one still queued is skipped (no result is sent on it)
# The views of the sequence: the host drops one computed before the newest prompt, reset or model asked for
# (the worker says where it is with SEQUENCE_REACHED, in order with its results), so none is drawn stale.
SEQUENCE_VIEWS = frozenset({GENERATION, INSPECTION})
SEQUENCE_REACHED = "sequence_reached"  # the request id of the prompt, reset or model the worker now holds

WORKER_ORIGIN = 0  # request id of results the worker sends on its own (after a step, a model change)


@dataclass(frozen=True)
class Command:
    """Base of every command. Subclasses set the class attributes below; their fields are the arguments."""

    name: ClassVar[str] = "command"
    activity: ClassVar[str] = ""
    channel: ClassVar[str] = ""
    starts_sequence: ClassVar[bool] = False
    sequence_step: ClassVar[bool] = False
    replaces_model: ClassVar[bool] = False

    def cancels_analyses(self) -> bool:
        """True when submitting this command cancels the running and queued analyses of the old model."""
        return self.replaces_model

    def cancel_event(self) -> threading.Event | None:
        """The event that stops this command between two batches (the long analyses), else None."""
        return None


# ------------------------------------------------------------------------------------------------ the model


@dataclass(frozen=True)
class LoadCheckpoint(Command):
    name = "load_checkpoint"
    activity = "loading checkpoint"
    starts_sequence = True
    replaces_model = True
    path: str


@dataclass(frozen=True)
class ImportWeights(Command):
    name = "import_weights"
    activity = "importing weights"
    starts_sequence = True
    replaces_model = True
    path: str
    n_heads: int | None = None


@dataclass(frozen=True)
class NewModel(Command):
    name = "new_model"
    activity = "building model"
    starts_sequence = True
    replaces_model = True
    preset: str


@dataclass(frozen=True)
class SaveCheckpoint(Command):
    name = "save_checkpoint"
    activity = "saving checkpoint"
    path: str


@dataclass(frozen=True)
class ExportModel(Command):
    """The loaded model as a Hugging Face folder or the book's .pth (gptviz.engine.export)."""

    name = "export_model"
    activity = "export model"
    fmt: str
    path: str


@dataclass(frozen=True)
class SetAblations(Command):
    """Switch parts of the model off (or back on); every pane and the generator follow."""

    name = "set_ablations"
    activity = "set ablations"
    ablations: tuple[Ablation, ...] = ()


# ------------------------------------------------------------------------------------------- text and views


@dataclass(frozen=True)
class LoadCorpus(Command):
    name = "load_corpus"
    activity = "reading corpus"
    path: str
    lenient: bool = False


@dataclass(frozen=True)
class Tokenize(Command):
    name = "tokenize"
    activity = "tokenizing"
    channel = TOKENS
    text: str


@dataclass(frozen=True)
class Windows(Command):
    name = "windows"
    activity = "slicing windows"
    channel = WINDOWS
    max_length: int
    stride: int
    first: int = 0
    count: int = 8


@dataclass(frozen=True)
class Inspect(Command):
    """The Activations pane's choices: which MLP layer its histogram shows and which position the logit lens
    reads. The window keeps the latest and sends it whole; the worker inspects again after each step with
    the last one it received."""

    name = "inspect"
    activity = "inspecting"
    channel = INSPECTION
    mlp_layer: int = 0
    lens_position: int = -1


@dataclass(frozen=True)
class AttentionSteps(Command):
    name = "attention_steps"
    activity = "attention steps"
    channel = ATTENTION_STEPS
    layer: int
    head: int
    query: int = -1


@dataclass(frozen=True)
class Why(Command):
    """A candidate's logit split into the model's parts; `against_id` < 0: no second token."""

    name = "why"
    activity = "why"
    channel = WHY
    token_id: int
    against_id: int = -1


@dataclass(frozen=True)
class Embeddings(Command):
    """A token's nearest neighbours and the map of a text (`ids`, or the current one)."""

    name = "embeddings"
    activity = "embeddings"
    channel = EMBEDDINGS
    token: int | str
    k: int = 10
    ids: Sequence[int] | None = None


@dataclass(frozen=True)
class IntegratedGradients(Command):
    name = "integrated_gradients"
    activity = "integrated gradients"
    channel = INPUTS
    token_id: int
    steps: int = 32
    cancel: threading.Event | None = field(default=None, compare=False)

    def cancel_event(self) -> threading.Event | None:
        return self.cancel


@dataclass(frozen=True)
class Patch(Command):
    """Activation patching, with progress after each batch; `cancel` (set by the window) stops it between
    batches."""

    name = "patch"
    activity = "patch"
    clean: str
    corrupt: str
    answer: str
    wrong: str
    cancel: threading.Event | None = field(default=None, compare=False)

    def cancel_event(self) -> threading.Event | None:
        return self.cancel


# ------------------------------------------------------------------------------------------------ generation


@dataclass(frozen=True)
class SetPrompt(Command):
    name = "set_prompt"
    activity = "set prompt"
    channel = PROMPT
    starts_sequence = True
    prompt: str


@dataclass(frozen=True)
class SetSampling(Command):
    name = "set_sampling"
    activity = "set sampling"
    settings: SamplingSettings


@dataclass(frozen=True)
class GenStep(Command):
    name = "gen_step"
    activity = "generating"
    sequence_step = True


@dataclass(frozen=True)
class Force(Command):
    name = "force"
    activity = "generating"
    sequence_step = True
    token_id: int


@dataclass(frozen=True)
class Undo(Command):
    name = "undo"
    activity = "undo"
    sequence_step = True


@dataclass(frozen=True)
class Reset(Command):
    name = "reset"
    activity = "reset"
    starts_sequence = True


@dataclass(frozen=True)
class Play(Command):
    name = "play"
    activity = "play"
    interval_ms: int = 120
    limit: int = 200


@dataclass(frozen=True)
class PausePlay(Command):
    name = "pause_play"
    activity = "pause play"


# -------------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainStart(Command):
    """Start a new run (a fresh model of `preset`, or the current model), or with no settings resume a
    paused one."""

    name = "train_start"
    activity = "starting training"
    settings: TrainSettings | None = None
    preset: str | None = None

    def cancels_analyses(self) -> bool:
        return bool(self.preset)  # a fresh model replaces the one being analysed


@dataclass(frozen=True)
class TrainRecipe(Command):
    """Model › Recipe: the recipe's corpus and a fresh model of its shape, then train it on disk."""

    name = "train_recipe"
    activity = "train recipe"
    starts_sequence = True
    replaces_model = True
    recipe_name: str


@dataclass(frozen=True)
class ResumeRun(Command):
    """File › Runs… › Resume: load a run directory and go on training it."""

    name = "resume_run"
    activity = "resume run"
    starts_sequence = True
    replaces_model = True
    path: str


@dataclass(frozen=True)
class TrainPause(Command):
    name = "train_pause"
    activity = "train pause"


@dataclass(frozen=True)
class TrainStop(Command):
    name = "train_stop"
    activity = "train stop"


@dataclass(frozen=True)
class Follow(Command):
    """Follow a run directory written by another process; None stops following (and changes nothing else)."""

    name = "follow"
    activity = "follow"
    starts_sequence = True
    replaces_model = True
    path: str | None


@dataclass(frozen=True)
class PollFollow(Command):
    name = "poll_follow"
    activity = "reading run directory"
    channel = FOLLOW


ALL_COMMANDS: tuple[type[Command], ...] = tuple(Command.__subclasses__())


# Channels whose results add to what the window holds rather than replace it. A poll of a followed run that
# has started reads the run's new lines, and its batch is the only one that will hold them: dropping it as
# superseded (a newer poll asked for meanwhile: the follow timer, or a watcher firing on every write) lost
# those records, which happened whenever polls overlapped (seen with the machine under load). A poll that
# has not started may still be skipped: the next one reads everything.
ADDED_UP = frozenset({FOLLOW})


class Newest:
    """Request ids of the newest request of each kind (a result channel, the sequence, the prompt).

    The host writes from the GUI thread and the worker reads from its own: one dict item read or written
    is atomic in CPython, and a read that is one request late only lets one superseded command run."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        # time.monotonic() from which the window may redraw again while Play or training runs (its redraws
        # are spaced by their cost): Play makes a token's snapshot only if it arrives after this, since an
        # earlier one would be replaced before it is drawn. One float, written by the window, read by the
        # worker.
        self.redraw_free_at = 0.0
        # Seconds the window waits between redraws while Play runs (their cost, tripled): a snapshot sent
        # less than this ago will hold the window until at least then, even before the window has drawn it
        # and moved redraw_free_at.
        self.redraw_gap = 0.0

    def note(self, command: Command, request: int) -> None:
        """`command` was just asked for as `request`: it is now the newest of its kinds."""
        if command.channel:
            self._ids[command.channel] = request
        if command.starts_sequence:
            self._ids[SEQUENCE] = request

    def newest(self, kind: str) -> int:
        return self._ids.get(kind, 0)

    def superseded(self, command: Command, request: int) -> bool:
        """True when a newer request of the same kind was asked for after `request` (so it need not run):
        a newer one on its channel, or for a generation step a newer prompt, reset or model."""
        if command.channel and request < self.newest(command.channel):
            return True
        return command.sequence_step and request < self.newest(SEQUENCE)

    def stale(self, channel: str, request: int) -> bool:
        """True for a result on `channel` of a request older than the newest on that channel (the worker's
        own results are never stale by this rule, nor are a followed run's batches: each holds the lines
        read since the one before, which no later batch repeats)."""
        if channel in ADDED_UP:
            return False
        return request != WORKER_ORIGIN and request < self.newest(channel)
