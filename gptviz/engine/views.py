"""What the panes show: frozen snapshots the engine hands to a GUI (or a CLI), plain values and numpy arrays.

A Session method returns one of these; a GUI's worker thread passes it to the GUI thread without sharing a
tensor. They live apart from gptviz.engine.session, and import neither torch nor the modules that do,
because the window's panes import them at start-up and the window paints before torch has loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from gptviz.engine.sampling_settings import SamplingSettings

if TYPE_CHECKING:  # annotations only: the generator imports torch
    from gptviz.engine.generator import GenStep
    from gptviz.engine.train_results import StepResult

DEFAULT_PROMPT = "Every effort moves you"  # the book's prompt: what generation starts from, and probes ask


@dataclass(frozen=True)
class ModelInfo:
    """What the status bar and the panes need to know about the loaded model."""

    name: str
    source: str  # "demo", "preset", "checkpoint", "import", "injected"
    path: str
    params: int
    bytes: int
    device: str
    n_layers: int
    n_heads: int
    emb_dim: int
    context_length: int
    vocab_size: int
    note: str = ""  # e.g. "demo model not found: using a freshly initialised tiny model"
    config: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TokensView:
    """A text split into GPT-2 tokens: ids, display pieces, raw bytes and character spans."""

    text: str
    ids: np.ndarray  # (T,) int64
    pieces: tuple[str, ...]
    data: tuple[bytes, ...]
    starts: np.ndarray  # (T,) int64, first character each token touches
    ends: np.ndarray  # (T,) int64, one past its last character
    special: np.ndarray  # (T,) bool, <|endoftext|>
    complete: np.ndarray  # (T,) bool, False for a partial UTF-8 character

    @property
    def n_chars(self) -> int:
        return len(self.text)

    @property
    def n_tokens(self) -> int:
        return int(self.ids.shape[0])


@dataclass(frozen=True)
class CorpusInfo:
    name: str
    path: str
    n_chars: int
    n_tokens: int
    replacements: int


@dataclass(frozen=True)
class WindowsView:
    """A page of the book's sliding windows over the corpus: inputs (n, L) and targets shifted by one."""

    corpus_name: str
    max_length: int
    stride: int
    total: int  # windows in the whole corpus
    first: int  # index of the first window in this page
    inputs: np.ndarray  # (n, L) int64
    targets: np.ndarray  # (n, L) int64
    input_pieces: tuple[tuple[str, ...], ...]
    target_pieces: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class CandidateRow:
    id: int
    piece: str
    prob_raw: float  # before temperature and filters
    prob_final: float  # after them; 0 when filtered out
    chosen: bool


@dataclass(frozen=True)
class GenerationView:
    """The whole generated sequence and the last step's candidates."""

    prompt_ids: np.ndarray  # (P,) int64
    new_ids: np.ndarray  # (N,) int64
    new_pieces: tuple[str, ...]
    new_probs: np.ndarray  # (N,) float32, probability each generated token had when it was chosen (final)
    new_forced: np.ndarray  # (N,) bool
    prompt_pieces: tuple[str, ...]
    candidates: tuple[CandidateRow, ...]  # of the last step; empty before the first
    last: GenStep | None
    cropped: int
    stopped: bool
    settings: SamplingSettings
    # (N,) float32: the model's own probability of each chosen token (before temperature and filters)
    new_probs_raw: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    # While parts are switched off: the last step with and without them (session_causal.AblationEffect)
    ablation_effect: Any = None

    @property
    def ids(self) -> np.ndarray:
        return np.concatenate([self.prompt_ids, self.new_ids])  # (P + N,)


@dataclass(frozen=True)
class TrainingUpdate:
    """One training step as the Training pane needs it (StepResult and ProbeRecord are plain values)."""

    result: StepResult
    new_probes: tuple  # ProbeRecord, in step order (the step-0 probe arrives with step 1)
    batch_tokens: int
    corpus_name: str

    @property
    def step(self) -> int:
        return self.result.step

    @property
    def total_steps(self) -> int:
        return self.result.total_steps

    @property
    def done(self) -> bool:
        return self.result.done

    @property
    def evaluated(self) -> bool:
        return self.result.train_eval_loss is not None or self.result.val_loss is not None


@dataclass(frozen=True)
class FollowBatch:
    """What a followed run appended since the last poll."""

    run_dir: str
    records: tuple  # metrics.jsonl dicts with a "step"
    probes: tuple  # ProbeRecord
    restart: bool  # the file was cut back or replaced: clear the curves first
    total_steps: int
    label: str = ""  # set for a loaded model's history (read once): "history of demo: 600 steps on …"
