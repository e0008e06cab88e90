"""The Generation pane's text: the prompt and each generated token on the colour of the model's own
probability of it, over the status line, redrawn only where a step changed it.

A mixin of GenerationPane (gptviz.qt.panes.generation), apart from its controls and its candidates
(gptviz.qt.panes.generation_candidates): `_build_text` makes `self.text` and `self.status` in the box the
pane's splitter holds, `_show_text` draws a GenerationView into them, and the pane remembers each chosen
token's probability before the filters (`chosen_raw_probs`) for the colours and the mean p.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QSize
from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QLabel, QTextBrowser, QVBoxLayout, QWidget

from gptviz.qt.panes.mixin_base import PaneMixin
from gptviz.qt.token_labels import quoted_token, sequence_labels

TEXT_POINT_SIZE = 12
LABEL_CONTEXT = 3  # a UTF-8 character has at most 4 bytes: a token's label depends on 3 tokens either side

_TokenKey = tuple[str, float | None, bool]  # how a token of the text is drawn: (label, p or None, forced)


@dataclass
class _ShownText:
    """What the text box shows, so a step changes only the tokens it changed: the ids it was drawn from,
    each token's (label, p, forced) and the document position where each token starts (prompt included)."""

    prompt_ids: np.ndarray  # (P,)
    new_ids: np.ndarray  # (N,)
    keys: list[_TokenKey]  # (P + N)
    starts: list[int]  # (P + N)


class _TextWithStatus(QWidget):
    """The generated text over its status line, one part of the pane's splitter.

    A splitter gives each part at least its minimumSizeHint, and a layout's hint counts a word-wrapped
    label as one line: at 1280x720 the status (three lines in a third of the screen) ran a line over the
    bottom of the text. Here the least height is what the layout needs at the present width, the status's
    wrapped lines included."""

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        hint = super().minimumSizeHint()
        layout = self.layout()
        if layout is not None and self.width() > 0 and layout.hasHeightForWidth():
            hint.setHeight(max(hint.height(), layout.totalMinimumHeightForWidth(self.width())))
        return hint


def probability_color(p: float) -> QColor:
    """Red for an unlikely choice through yellow to green for a confident one (hue 0 -> 120)."""
    p = float(np.clip(p, 0.0, 1.0))
    return QColor.fromHsl(int(120 * p**0.5), 200, 205)


class GeneratedTextMixin(PaneMixin):
    """Builds and draws the generated text and its status line (part of GenerationPane)."""

    if TYPE_CHECKING:  # the pane's state this reads (set in GenerationPane.__init__ and by the window)
        view: Any  # the newest GenerationView, or None
        context_length: int | None
        _raw_by_index: dict[int, tuple[int, float]]
        _raw_prompt: tuple[int, ...]
        _text_shown: _ShownText | None

    def _build_text(self) -> QWidget:
        """`self.text` over `self.status`, in the box the pane's splitter holds."""
        self.text = QTextBrowser()
        self.text.setOpenLinks(False)
        self.text.setMinimumHeight(70)
        self.text.setToolTip(
            "The prompt (grey), then each generated token on the colour of the model's own probability of it, "
            "before temperature and filters: red unlikely, green confident; a forced token is underlined. "
            "Spaces show as ·, newlines as ↵, and a character split over tokens (’) whole on its first token "
            "with the bytes the next add as ‹99›"
        )
        self.status = QLabel("")
        self.status.setWordWrap(True)
        text_box = _TextWithStatus()
        text_layout = QVBoxLayout(text_box)
        text_layout.setContentsMargins(0, 0, 0, 0)
        text_layout.addWidget(self.text, 1)
        text_layout.addWidget(self.status)
        return text_box

    def _remember_raw(self, view) -> None:
        """Keep each chosen token's probability before temperature and filters (the model's own), from the
        step that chose it; a new prompt starts over."""
        prompt = tuple(int(i) for i in view.prompt_ids)
        if prompt != self._raw_prompt:
            self._raw_prompt = prompt
            self._raw_by_index = {}
        if view.last is not None:
            self._raw_by_index[int(view.last.index)] = (
                int(view.last.chosen_id),
                float(view.last.chosen_prob_raw),
            )

    def chosen_raw_probs(self, view=None) -> np.ndarray:
        """(N,) the model's own probability of each generated token (before temperature / top-k / top-p),
        which colours the text and gives mean p. Where a step was not seen (Play skips views while it
        runs), the probability after the filters stands in."""
        view = self.view if view is None else view
        raw = getattr(view, "new_probs_raw", None)  # when the engine reports it for every token
        if raw is not None:
            return np.asarray(raw, dtype=np.float32)
        out = np.asarray(view.new_probs, dtype=np.float32).copy()  # (N,)
        for i, token in enumerate(view.new_ids.tolist()):
            known = self._raw_by_index.get(i)
            if known is not None and known[0] == token:
                out[i] = known[1]
        return out

    @staticmethod
    def _token_format(p: float | None, forced: bool) -> QTextCharFormat:
        """How one token of the text is drawn: a prompt token (p None) grey; a generated one on the colour of
        the model's own probability of it, underlined where the user forced it."""
        fmt = QTextCharFormat()
        fmt.setFontPointSize(TEXT_POINT_SIZE)
        if p is None:
            fmt.setForeground(QColor("#666666"))
            return fmt
        fmt.setBackground(probability_color(p))
        fmt.setForeground(QColor("#111111"))
        fmt.setFontUnderline(forced)
        return fmt

    @staticmethod
    def _text_keys(view, raw: np.ndarray, start: int) -> list[_TokenKey]:
        """How tokens `start`... of the text (prompt, then generated) are drawn: (label, colour, forced).

        The labels follow the one convention (gptviz.qt.token_labels), so a space reads ·, a newline ↵ and
        a character split over tokens (’ = e2 80 | 99) reads whole on the token that starts it. A token's
        label depends on at most LABEL_CONTEXT tokens either side of it (a character has at most 4 bytes),
        so labelling from LABEL_CONTEXT tokens earlier gives the labels the whole text would; a step labels
        a handful of tokens, not the whole text."""
        n_prompt = len(view.prompt_pieces)
        lo = max(0, start - LABEL_CONTEXT)
        pieces = tuple(view.prompt_pieces[lo:n_prompt]) + tuple(view.new_pieces[max(0, lo - n_prompt) :])
        labels = sequence_labels(pieces)[start - lo :]
        keys: list[_TokenKey] = []
        for i, label in enumerate(labels, start):
            if i < n_prompt:
                keys.append((label, None, False))
            else:
                j = i - n_prompt
                keys.append((label, float(raw[j]), bool(view.new_forced[j])))
        return keys

    def _insert_tokens(self, keys: list[_TokenKey], starts: list[int]) -> None:
        """Append tokens at the end of the text, each with its own character format (no HTML to parse);
        a newline token shows ↵ and breaks the line there. Records where each token starts."""
        cursor = QTextCursor(self.text.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        for label, p, forced in keys:
            starts.append(cursor.position())
            cursor.insertText(label.replace("\u21b5", "\u21b5\n"), self._token_format(p, forced))

    def _draw_text(self, view, raw: np.ndarray) -> None:
        """Show the prompt and the generated tokens, changing only what the last step changed.

        A step appends one token: its span is added at the end, and at most the 3 tokens before it are
        drawn again where their label changed (the new token completed a character they started). An undo
        removes the tail; a forced token replaces the last one. Only a new prompt (or a change reaching into
        it) draws the whole text again. Before, every step built the HTML span of every token to find the new
        one (15 ms at 1,000 tokens) and inserted it as HTML."""
        n_prompt = len(view.prompt_ids)
        total = n_prompt + len(view.new_ids)
        bar = self.text.verticalScrollBar()
        follow = bar.value() >= bar.maximum() - 4  # at the end: keep showing the newest token
        shown = self._text_shown
        redraw = True
        if shown is not None and np.array_equal(shown.prompt_ids, view.prompt_ids):
            m = min(len(shown.new_ids), len(view.new_ids))
            differ = np.flatnonzero(shown.new_ids[:m] != view.new_ids[:m])
            same_ids = n_prompt + (int(differ[0]) if differ.size else m)  # tokens whose id stayed
            first = max(0, same_ids - LABEL_CONTEXT)
            keys = self._text_keys(view, raw, first)
            changed = next(
                (i for i, key in enumerate(keys, first) if i >= len(shown.keys) or shown.keys[i] != key),
                total,
            )
            if changed == total == len(shown.keys):
                shown.new_ids = view.new_ids
                return
            redraw = changed < n_prompt  # a character completed across the prompt's end
        if redraw or shown is None:  # a new prompt, or a change inside it: draw it all
            self.text.clear()
            shown = self._text_shown = _ShownText(view.prompt_ids, view.new_ids, [], [])
            keys, first, changed, follow = self._text_keys(view, raw, 0), 0, 0, True
        else:
            if changed < len(shown.keys):  # remove the tokens from the first changed one on
                cursor = QTextCursor(self.text.document())
                cursor.setPosition(shown.starts[changed])
                cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
                cursor.removeSelectedText()
                del shown.keys[changed:], shown.starts[changed:]
            shown.new_ids = view.new_ids
        new_keys = keys[changed - first :]
        self._insert_tokens(new_keys, shown.starts)
        shown.keys.extend(new_keys)
        if follow:
            bar.setValue(bar.maximum())

    def _show_text(self, view) -> None:
        raw = self.chosen_raw_probs(view)  # (N,)
        self._draw_text(view, raw)
        n = len(view.new_ids)
        status = [f"{len(view.prompt_ids)} prompt tokens + {n} generated"]
        if n:
            status.append(f"mean p of the chosen tokens {float(np.mean(raw)):.2f} (before the filters)")
        if view.last is not None:
            last = view.last
            kind = "forced" if last.forced else ("greedy" if last.greedy else "sampled")
            status.append(
                f"last: {quoted_token(last.chosen_piece)} ({kind}, rank {last.chosen_rank + 1}, "
                f"{last.kept_count:,} tokens survived the filters)"
            )
        total = len(view.prompt_ids) + n
        cut = max(0, total - self.context_length) if self.context_length else view.cropped
        if cut:
            # The same count as the Attention pane: the text now, less the context the model sees.
            status.append(
                f"context full: the model sees the last tokens only (first {cut} cut to fit the context)"
            )
        if view.stopped:
            status.append("stopped at <|endoftext|>")
        self.status.setText(
            " · ".join(status)
            + "   — colour: the model's probability of each chosen token, before temperature and filters "
            "(red low, green high)"
        )
