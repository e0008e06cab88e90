"""How a token reads on screen, in every pane: one convention, so a newline never shows as `↵` in one
pane and `\\n` in the next, and half a character never shows as `\\xe2\\x80` in one and `‹e2 80›` in
another.

* A GPT-2 token often starts with a space or is nothing but whitespace, which a label would show as nothing
  at all; so a space shows as ·, a newline as ↵, a tab as →, a carriage return as ␍, and any other
  character that does not print (a control character, a zero-width space) as its Python escape.
* A token can hold only part of a UTF-8 character: "’" is the two tokens e2 80 and 99. Alone, such a token
  shows its bytes in angle quotes, ‹e2 80›. The tokenizer names it by its escaped bytes ("\\xe2\\x80"),
  which `piece_bytes` turns back into bytes.
* In a sequence (the prompt, an axis of tokens) the token that starts a character shows the whole
  character when the following tokens complete it, and those tokens show the bytes they add: ’ ‹99›.
* On an axis, a label that appears more than once (three ↵, two ·the) gets its position, 7:↵, so the
  rows and columns can be told apart; a label that appears once is left alone.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Sequence

WHITESPACE_MARKS = {" ": "\u00b7", "\n": "\u21b5", "\t": "\u2192", "\r": "\u240d"}
ELLIPSIS = "\u2026"
BYTES_OPEN, BYTES_CLOSE = "\u2039", "\u203a"  # ‹ ›
_ESCAPED_BYTES = re.compile(r"(?:\\x[0-9a-f]{2})+")


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


def piece_bytes(piece: str | bytes) -> bytes:
    """The bytes a token's piece stands for: the tokenizer writes a token that is not whole UTF-8 as
    escaped bytes ("\\xe2\\x80"); any other piece is its text."""
    if isinstance(piece, bytes):
        return piece
    if _ESCAPED_BYTES.fullmatch(piece):
        return bytes(int(piece[i + 2 : i + 4], 16) for i in range(0, len(piece), 4))
    return piece.encode("utf-8")


def bytes_mark(data: bytes) -> str:
    """Bytes that are not a whole character: ‹e2 80›."""
    return BYTES_OPEN + " ".join(f"{b:02x}" for b in data) + BYTES_CLOSE


def _utf8_length(lead: int) -> int:
    """How many bytes the character starting with `lead` has; 0 for a byte no character starts with."""
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0


def _characters(data: bytes) -> list[tuple[int, int, str | None]]:
    """(start, end, text) for each character of `data`, in order; a byte that starts no whole character
    in `data` (a continuation byte, a lead byte whose character is cut off) is its own (i, i + 1, None)."""
    out: list[tuple[int, int, str | None]] = []
    i = 0
    while i < len(data):
        n = _utf8_length(data[i])
        text = None
        if n and i + n <= len(data):
            try:
                text = data[i : i + n].decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if text is None:
            out.append((i, i + 1, None))
            i += 1
        else:
            out.append((i, i + n, text))
            i += n
    return out


def _render(parts: list[tuple[str, bytes | str]]) -> str:
    """Text parts made visible, runs of loose bytes as one ‹..› each."""
    out, loose = [], bytearray()
    for kind, value in parts:
        if kind == "byte":
            loose += value  # type: ignore[arg-type]
            continue
        if loose:
            out.append(bytes_mark(bytes(loose)))
            loose = bytearray()
        out.append(visible_whitespace(value))
    if loose:
        out.append(bytes_mark(bytes(loose)))
    return "".join(out)


@functools.lru_cache(maxsize=1 << 16)
def bytes_label(data: bytes) -> str:
    """One token's bytes as a label: whole characters made visible, the rest as ‹e2 80› (" \\xe2" reads
    ·‹e2›)."""
    return _render([("text", t) if t is not None else ("byte", data[a:b]) for a, b, t in _characters(data)])


@functools.lru_cache(maxsize=1 << 16)
def _piece_label(piece: str) -> str:
    if _ESCAPED_BYTES.fullmatch(piece):
        return bytes_label(piece_bytes(piece))
    return visible_whitespace(piece)


def token_label(piece: str | bytes, max_chars: int | None = None) -> str:
    """A token on its own as a label (a table cell, a chip, a candidate): whitespace made visible, partial
    UTF-8 as ‹e2 80›, then shortened to `max_chars` with … where given (an axis needs it short)."""
    shown = bytes_label(piece) if isinstance(piece, bytes) else _piece_label(piece)
    return shown if max_chars is None else elide(shown, max_chars)


def quoted_token(piece: str | bytes) -> str:
    """A token inside a sentence ("Logit lens at token 9 '·the'"): its label in quotes."""
    return f"'{token_label(piece)}'"


def sequence_labels(pieces: Sequence[str | bytes]) -> list[str]:
    """Labels of consecutive tokens (a prompt, a text): as `token_label`, except that a character split
    over several tokens shows whole on the token that starts it, and the later tokens show the bytes they
    add (’ ‹99›), instead of ‹e2 80› ‹99›. A character the sequence never completes keeps its bytes."""
    if not any(isinstance(p, bytes) or _ESCAPED_BYTES.fullmatch(p) for p in pieces):
        return [visible_whitespace(str(p)) for p in pieces]  # the usual case: every token is whole text
    datas = [piece_bytes(p) for p in pieces]
    stream = b"".join(datas)
    ends, offset = [], 0
    for data in datas:
        offset += len(data)
        ends.append(offset)
    parts: list[list[tuple[str, bytes | str]]] = [[] for _ in datas]
    token = 0
    for start, end, text in _characters(stream):
        while token < len(datas) and start >= ends[token]:
            token += 1
        if text is not None:
            parts[token].append(("text", text))  # whole, even when later tokens hold its last bytes
            covered = token + 1
            while covered < len(datas) and ends[covered - 1] < end:  # those tokens add its bytes
                lo = ends[covered - 1]
                parts[covered].append(("byte", stream[lo : min(end, ends[covered])]))
                covered += 1
        else:
            parts[token].append(("byte", stream[start:end]))
    return [_render(p) for p in parts]


def axis_labels(pieces: Sequence[str | bytes]) -> list[str]:
    """Tokens as the labels of a heatmap's rows or columns: `sequence_labels`, with the position in
    front of every label that appears more than once (7:↵), so repeated tokens can be told apart on the
    axis and in the hover readout."""
    return list(_axis_labels(tuple(pieces)))


@functools.lru_cache(maxsize=4)
def _axis_labels(pieces: tuple[str | bytes, ...]) -> tuple[str, ...]:
    """Kept for the last few sequences: after a Step three heatmaps in two panes label the same 1,000
    tokens (1.7 ms each time at 1,000 tokens)."""
    labels = sequence_labels(pieces)
    counts = Counter(labels)
    return tuple(f"{i}:{label}" if counts[label] > 1 else label for i, label in enumerate(labels))
