"""Token labels with partial UTF-8 made readable: a token that is only part of a character (the
tokenizer's piece is then its bytes escaped, '\\xe2\\x80') reads as ‹e2 80›, the way the Tokens pane's
chips and tooltips show bytes; everything else as gptviz.qt.token_labels.token_label (· for a space)."""

from __future__ import annotations

import functools
import re

from gptviz.qt.token_labels import elide, token_label

_ESCAPED_BYTES = re.compile(r"(?:\\x[0-9a-f]{2})+")


@functools.lru_cache(maxsize=1 << 16)  # panes relabel their tokens after every generation step
def display_token(piece: str, max_chars: int | None = None) -> str:
    if _ESCAPED_BYTES.fullmatch(piece):
        shown = "\u2039" + " ".join(piece[i + 2 : i + 4] for i in range(0, len(piece), 4)) + "\u203a"
        return shown if max_chars is None else elide(shown, max_chars)
    return token_label(piece, max_chars)


def quoted_display_token(piece: str) -> str:
    return f"'{display_token(piece)}'"
