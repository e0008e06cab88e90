"""The book's printed chapter 5 curve, read from the bundled note, and whether a run is the book's run.

The Training pane draws this curve faintly behind a live `book-ch5` run so a reader sees at once where their
run follows the book and where it drifts (the book's own note says its code differs between machines by a
few tenths in the middle of the run). The numbers are not copied into code: they are parsed from the note
beside the text (resources/the-verdict.README.md), the one place they are written, so the plot and the note
cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptviz.data import VERDICT
from gptviz.errors import DataError
from gptviz.resources import VERDICT_NOTE_FILE

# "0: 9.817, 9.924 · 5: 8.066, 8.332 · ..." after the sentence that introduces the table.
_TABLE_START = "printed table"
_ENTRY = re.compile(r"(\d+):\s*(\d+\.\d+),\s*(\d+\.\d+)")
# Model and training settings that may differ from the recipe while the printed curve still applies:
# the length of the run (a shorter run follows the curve's start) and where it runs.
_FREE = frozenset({"epochs", "steps", "device", "save_dtype", "amp", "probe_prompt", "probe_tokens"})


@dataclass(frozen=True)
class PrintedCurve:
    """The book's printed losses. `book_steps` are its "Step N" labels; `steps` the optimizer steps done
    when it printed them (N + 1: its Step 000000 line comes after the first update), gptviz's step axis."""

    book_steps: tuple[int, ...]
    steps: tuple[int, ...]
    tokens_seen: tuple[int, ...]  # steps × batch 2 × context 256
    train: tuple[float, ...]
    val: tuple[float, ...]
    label: str = "book (printed)"


def printed_curve(note: str | Path | None = None, tokens_per_step: int = 2 * 256) -> PrintedCurve:
    """Parse the book's chapter 5 table out of the-verdict's note (or `note`, a path or its text)."""
    if note is None or isinstance(note, Path):
        text = Path(note or VERDICT_NOTE_FILE).read_text(encoding="utf-8")
    else:
        text = note
    start = text.find(_TABLE_START)
    if start < 0:
        raise DataError(f"the note has no {_TABLE_START!r} section with the book's chapter 5 losses")
    entries = [(int(s), float(t), float(v)) for s, t, v in _ENTRY.findall(text[start:])]
    if not entries:
        raise DataError("the note's printed table has no 'step: train, val' entries")
    book_steps = tuple(e[0] for e in entries)
    steps = tuple(s + 1 for s in book_steps)
    return PrintedCurve(
        book_steps=book_steps,
        steps=steps,
        tokens_seen=tuple(s * tokens_per_step for s in steps),
        train=tuple(e[1] for e in entries),
        val=tuple(e[2] for e in entries),
    )


def is_book_run(settings: dict[str, Any]) -> bool:
    """Whether a run's settings.json describes the book's chapter 5 run (`--recipe book-ch5`, or the same
    switches spelled out): its corpus, model shape and training settings, however long it runs."""
    from gptviz.engine.train_settings import BOOK_CH5

    corpus = settings.get("corpus") or {}
    if corpus.get("source") != VERDICT and not str(corpus.get("name", "")).startswith(VERDICT):
        return False
    model = settings.get("model") or {}
    wanted = BOOK_CH5.config().to_dict()
    if any(model.get(k) != v for k, v in wanted.items() if k in model and k != "name"):
        return False
    if any(k not in model for k in ("n_layers", "emb_dim", "context_length", "tie_weights")):
        return False
    train = settings.get("train") or {}
    return all(train.get(k) == v for k, v in BOOK_CH5.train.items() if k not in _FREE)
