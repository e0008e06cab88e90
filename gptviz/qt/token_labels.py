"""How a token reads on screen, in every pane: one convention so a newline never shows as `↵` in one
pane and `\\n` in the next.

A GPT-2 token often starts with a space or is nothing but whitespace, which a label would show as
nothing at all; so a space shows as ·, a newline as ↵, a tab as →, a carriage return as ␍, and any
other character that does not print (a control character, a no-break space) as its Python escape.
"""

from __future__ import annotations

import functools

WHITESPACE_MARKS = {" ": "\u00b7", "\n": "\u21b5", "\t": "\u2192", "\r": "\u240d"}
ELLIPSIS = "\u2026"


@functools.lru_cache(maxsize=1 << 16)  # every pane relabels its tokens after each generation step
def visible_whitespace(piece: str) -> str:
    """Make spaces, newlines and tabs visible: · for a space, ↵ for a newline, → for a tab, ␍ for a
    carriage return; other unprintable characters as escapes (\\x0b, \\u200b)."""
    out = []
    for ch in piece:
        mark = WHITESPACE_MARKS.get(ch)
        if mark is not None:
            out.append(mark)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(repr(ch)[1:-1])
    return "".join(out)


def elide(text: str, max_chars: int) -> str:
    """At most `max_chars` characters: a longer text keeps its start and ends in …."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    if len(text) <= max_chars:
        return text
    return text[: max_chars - 1] + ELLIPSIS


def token_label(piece: str, max_chars: int | None = None) -> str:
    """A token as a label (axis tick, table cell, chip): whitespace made visible, then shortened to
    `max_chars` with … where given (a table keeps the full text; a chart axis needs it short)."""
    shown = visible_whitespace(piece)
    return shown if max_chars is None else elide(shown, max_chars)


def quoted_token(piece: str) -> str:
    """A token inside a sentence ("Logit lens at token 9 '·the'"): its label in quotes."""
    return f"'{token_label(piece)}'"
