"""Corpus -> token ids -> the book's sliding windows (ch. 2), with a train/validation split.

Large corpora are tokenised in chunks (`read_corpus_ids` streams a file, `encode_corpus` a text in memory),
with a progress callback and a cancel check, keeping about two bytes a token: never the whole text as
Python ints.
"""

from __future__ import annotations

import codecs
import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from gptviz.errors import DataError, GptvizError
from gptviz.resources import VERDICT, VERDICT_FILE
from gptviz.tokenizer import END_OF_TEXT, Tokenizer

BUILTIN = "builtin"
BUILTIN_DESCRIPTION = (
    "the Python language reference topics that ship with every CPython (pydoc_data.topics, "
    "about 465k characters of the documentation's own prose and examples, PSF licence)"
)
# The book's chapter 2 and 5 text, bundled in resources/ (public domain; see its README there).
VERDICT_NAME = "the-verdict (Edith Wharton, 1908)"
VERDICT_DESCRIPTION = (
    'Edith Wharton\'s short story "The Verdict" (1908, public domain), 20,479 characters, 5,145 GPT-2 '
    "tokens: the text the book's chapters 2 and 5 train on"
)
SPLITS = ("tokens", "chars")
BINARY_SNIFF_BYTES = 65536  # a NUL byte in the first 64 KiB marks a binary file
DEFAULT_CHUNK_BYTES = 4 * 2**20  # bytes read (or characters encoded) per chunk
CUT_CHARS = " \n\t\r"

ProgressFn = Callable[[int, int], None]  # (done, total): bytes for a file, characters for a text
CancelFn = Callable[[], bool]


class TokenizeCancelled(GptvizError):
    """The user stopped tokenisation; nothing was kept."""


@dataclass(frozen=True)
class Corpus:
    text: str
    name: str
    replacements: int = 0  # U+FFFD characters inserted by lenient decoding


@dataclass(frozen=True)
class CorpusIds:
    """A corpus tokenised without ever holding all of its text: the ids and what was read."""

    ids: torch.Tensor  # (N,)
    name: str
    n_bytes: int
    n_chars: int
    replacements: int = 0  # U+FFFD characters inserted by lenient decoding
    forced_cuts: int = 0  # cuts made inside a run of more than max_carry characters without whitespace


def builtin_text() -> str:
    """The Python reference topics in a fixed order, so the built-in corpus is the same on every machine."""
    from pydoc_data.topics import topics

    return "\n\n".join(f"{key}\n{'=' * len(key)}\n{topics[key].strip()}" for key in sorted(topics))


def _check_corpus_path(path: Path) -> int:
    """The file's size, or a DataError a user can act on (missing, a directory, unreadable)."""
    if "\x00" in str(path):  # the OS cannot even look it up (os.stat raises ValueError: embedded null byte)
        raise DataError(f"{str(path)!r} is not a usable file name: it contains a NUL character")
    if path.is_dir():
        raise DataError(f"{path} is a directory; choose a text file")
    try:
        with open(path, "rb"):
            pass
        return path.stat().st_size
    except FileNotFoundError:
        raise DataError(f"corpus file not found: {path}") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None


def _binary_error(path: Path) -> DataError:
    return DataError(f"{path} looks like a binary file (it contains NUL bytes); choose a UTF-8 text file")


def _utf8_error(path: Path, byte: int) -> DataError:
    return DataError(f"{path} is not valid UTF-8 (byte {byte}); save it as UTF-8 or use lenient decoding")


def load_corpus(source: str | os.PathLike, lenient: bool = False) -> Corpus:
    """Read a UTF-8 text file (or the built-in corpus) with a message a user can act on when it fails.

    The whole text is held in memory; `read_corpus_ids` streams a file of any size instead.
    """
    if str(source) == BUILTIN:
        return Corpus(builtin_text(), "builtin (pydoc_data.topics)")
    if str(source) == VERDICT:
        return Corpus(VERDICT_FILE.read_text(encoding="utf-8"), VERDICT_NAME)
    path = Path(source)
    _check_corpus_path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not raw.strip():
        raise DataError(f"{path} is empty")
    if b"\x00" in raw[:BINARY_SNIFF_BYTES]:
        raise _binary_error(path)
    try:
        text = raw.decode("utf-8")
        replacements = 0
    except UnicodeDecodeError as exc:
        if not lenient:
            raise _utf8_error(path, exc.start) from None
        text = raw.decode("utf-8", errors="replace")
        replacements = text.count("\ufffd") - raw.decode("utf-8", errors="ignore").count("\ufffd")
    if text.startswith("\ufeff"):
        text = text[1:]
    return Corpus(text, path.name, replacements)


# ---------------------------------------------------------------------------------------------------------
# Chunked tokenisation.
#
# GPT-2's pre-tokeniser (the regex gptviz.tokenizer.GPT2_PATTERN) splits text into words before BPE merges
# anything, and merges never cross those splits. Cutting the text at index i therefore gives the same ids as
# encoding it whole when text[i] is an ASCII space, tab or newline and text[i - 1] is not whitespace: every
# non-space alternative of the regex stops at text[i] (whether the text goes on or ends there), the one
# lookahead, `\s+(?!\S)`, belongs to a match that ends before i - 1, and the regex has no lookbehind, so the
# part after i is matched exactly as inside the whole text. `<|endoftext|>` holds no whitespace, so it is
# never cut. tests/reliability/test_properties.py checks this on arbitrary Unicode text.
# ---------------------------------------------------------------------------------------------------------


def last_safe_cut(text: str, lo: int = 0, hi: int | None = None) -> int:
    """The largest i with lo < i < hi at which `text` can be cut without changing its tokens, or -1.

    Each cut character's last position is searched once and only moved back when rejected, so a long run
    of spaces costs O(n), not O(n^2).
    """
    hi = len(text) if hi is None else min(hi, len(text))
    last = {ch: text.rfind(ch, lo + 1, hi) for ch in CUT_CHARS}
    while True:
        ch, i = max(last.items(), key=lambda item: item[1])
        if i <= lo:
            return -1
        if not text[i - 1].isspace():
            return i
        last[ch] = text.rfind(ch, lo + 1, i)


def next_safe_cut(text: str, start: int) -> int:
    """The smallest safe cut i >= start (and i > 0), or -1."""
    nxt = {ch: text.find(ch, max(start, 1)) for ch in CUT_CHARS}
    while True:
        live = {ch: i for ch, i in nxt.items() if i >= 0}
        if not live:
            return -1
        ch, i = min(live.items(), key=lambda item: item[1])
        if not text[i - 1].isspace():
            return i
        nxt[ch] = text.find(ch, i + 1)


def _encode_array(tokenizer: Tokenizer, text: str) -> np.ndarray:
    """The ids of `text` as a numpy array, never a Python list (the same ids as tokenizer.encode)."""
    encoding = tokenizer.encoding
    if hasattr(encoding, "encode_to_numpy"):
        return encoding.encode_to_numpy(text, allowed_special={END_OF_TEXT}, disallowed_special=())
    return np.asarray(tokenizer.encode(text), dtype=np.int64)  # older tiktoken


class _IdStore:
    """Chunks of ids in the smallest integer type the vocabulary fits (uint16 for GPT-2: 2 bytes a token)."""

    def __init__(self, vocab_size: int) -> None:
        self.dtype = np.uint16 if vocab_size <= 2**16 else np.int32
        self.parts: list[np.ndarray] = []
        self.count = 0

    def add(self, ids: np.ndarray) -> None:
        if ids.size:
            self.parts.append(ids.astype(self.dtype))
            self.count += int(ids.size)

    def tensor(self, dtype: torch.dtype) -> torch.Tensor:
        """One tensor (N,) of every id; each part is freed as soon as it is copied in."""
        out = torch.empty(self.count, dtype=dtype)  # (N,)
        numpy_type = np.int64 if dtype == torch.long else np.int32
        pos = 0
        self.parts.reverse()
        while self.parts:
            part = self.parts.pop()
            out[pos : pos + part.size] = torch.from_numpy(part.astype(numpy_type))  # (n,)
            pos += part.size
        return out


def _check_cancel(cancel: CancelFn | None) -> None:
    if cancel is not None and cancel():
        raise TokenizeCancelled("tokenisation cancelled; nothing was kept")


def encode_corpus(
    tokenizer: Tokenizer,
    text: str,
    *,
    chunk_chars: int = DEFAULT_CHUNK_BYTES,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    dtype: torch.dtype = torch.long,
) -> torch.Tensor:
    """All the corpus' token ids as one tensor (N,), encoded in chunks cut where the tokens cannot change.

    Memory beyond the text is about two bytes a token plus one chunk, never a Python int per token.
    `progress(done_chars, total_chars)` follows each chunk; `cancel()` returning True stops with
    TokenizeCancelled.
    """
    if chunk_chars <= 0:
        raise DataError(f"chunk size must be positive, got {chunk_chars}")
    store = _IdStore(tokenizer.vocab_size)
    total = len(text)
    pos = 0
    while pos < total:
        _check_cancel(cancel)
        end = min(pos + chunk_chars, total)
        if end < total:
            cut = last_safe_cut(text, pos, end)
            if cut < 0:  # no cut inside this chunk: the next one after it (the text is in memory anyway)
                cut = next_safe_cut(text, end)
            end = cut if cut > 0 else total
        store.add(_encode_array(tokenizer, text[pos:end]))
        pos = end
        if progress is not None:
            progress(pos, total)
    return store.tensor(dtype)  # (N,)


def read_corpus_ids(
    source: str | os.PathLike,
    tokenizer: Tokenizer,
    *,
    lenient: bool = False,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    max_carry: int | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    dtype: torch.dtype = torch.long,
) -> CorpusIds:
    """Stream a text file of any size into token ids; the ids equal `encode_corpus(load_corpus(...).text)`.

    Reads `chunk_bytes` at a time, decodes, encodes up to the last safe cut and carries the rest into the next
    chunk, so memory is a few chunks plus two bytes a token, whatever the file's size. The refusals are
    `load_corpus`'s (missing, a directory, unreadable, empty, binary, invalid UTF-8 with its byte offset).
    A run of more than `max_carry` characters (default four chunks) with no safe cut, which real text does
    not have, is cut where it stands and counted in `forced_cuts` (ids there may differ from whole-text
    encoding). `progress(done_bytes, total_bytes)` follows each chunk and never goes back; `cancel()`
    returning True stops with TokenizeCancelled.
    """
    if chunk_bytes <= 0:
        raise DataError(f"chunk size must be positive, got {chunk_bytes}")
    if str(source) == BUILTIN:
        text = builtin_text()
        ids = encode_corpus(
            tokenizer, text, chunk_chars=chunk_bytes, progress=progress, cancel=cancel, dtype=dtype
        )  # (N,)
        return CorpusIds(ids, "builtin (pydoc_data.topics)", len(text.encode()), len(text))
    if str(source) == VERDICT:
        result = read_corpus_ids(
            VERDICT_FILE, tokenizer, chunk_bytes=chunk_bytes, progress=progress, cancel=cancel, dtype=dtype
        )
        return dataclasses.replace(result, name=VERDICT_NAME)
    max_carry = max_carry if max_carry is not None else 4 * chunk_bytes
    return _read_file_ids(Path(source), tokenizer, lenient, chunk_bytes, max_carry, progress, cancel, dtype)


def _read_file_ids(
    path: Path,
    tokenizer: Tokenizer,
    lenient: bool,
    chunk_bytes: int,
    max_carry: int,
    progress: ProgressFn | None,
    cancel: CancelFn | None,
    dtype: torch.dtype,
) -> CorpusIds:
    """read_corpus_ids for a file: read a chunk, decode it, encode what can be cut, until the end."""
    total = _check_corpus_path(path)
    text = _Utf8Chunks(path, lenient)
    encoder = _CarryingEncoder(tokenizer, max_carry)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        while True:
            _check_cancel(cancel)
            try:
                raw = handle.read(chunk_bytes)
            except OSError as exc:
                raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
            final = not raw
            encoder.add(text.decode(raw, final), final)
            if progress is not None and raw:
                progress(text.done, max(total, text.done))
            if final:
                break
    if not text.seen_text:
        raise DataError(f"{path} is empty")
    replacements = max(0, text.replacements)
    return CorpusIds(
        encoder.store.tensor(dtype), path.name, text.done, text.chars, replacements, encoder.forced
    )


class _Utf8Chunks:
    """A file's bytes, a chunk at a time, as text: refuses a binary file and invalid UTF-8 (naming the byte
    offset), drops a byte-order mark and, when `lenient`, counts the bytes it replaced."""

    def __init__(self, path: Path, lenient: bool) -> None:
        self.path = path
        self.lenient = lenient
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace" if lenient else "strict")
        self.done = 0  # bytes decoded
        self.chars = 0  # characters returned
        self.replacements = 0
        self.seen_text = False  # anything besides whitespace
        self._tail = (
            b""  # the last two bytes read: a U+FFFD written in the file and split across chunks counts
        )

    def decode(self, raw: bytes, final: bool) -> str:
        if self.done < BINARY_SNIFF_BYTES and b"\x00" in raw[: BINARY_SNIFF_BYTES - self.done]:
            raise _binary_error(self.path)
        self.seen_text = self.seen_text or bool(raw.strip())
        pending = len(self.decoder.getstate()[0])  # bytes of a character cut by the previous chunk
        try:
            piece = self.decoder.decode(raw, final=final)
        except UnicodeDecodeError as exc:
            raise _utf8_error(self.path, self.done - pending + exc.start) from None
        if self.lenient:
            # Replacement characters the file itself holds are text, not replaced bytes.
            genuine = (self._tail + raw).count(b"\xef\xbf\xbd")
            self.replacements += piece.count("\ufffd") - genuine
            self._tail = (self._tail + raw)[-2:]
        if self.chars == 0 and piece.startswith("\ufeff"):
            piece = piece[1:]
        self.chars += len(piece)
        self.done += len(raw)
        return piece


class _CarryingEncoder:
    """Text encoded up to its last safe cut, the rest carried into the next piece, so the ids equal the whole
    text's. A carry longer than `max_carry` with no safe cut is encoded as it stands (counted in `forced`)."""

    def __init__(self, tokenizer: Tokenizer, max_carry: int) -> None:
        self.tokenizer = tokenizer
        self.max_carry = max_carry
        self.store = _IdStore(tokenizer.vocab_size)
        self.carry = ""
        self.forced = 0

    def add(self, piece: str, final: bool) -> None:
        self.carry += piece
        end = len(self.carry) if final else last_safe_cut(self.carry)
        if end < 0 and len(self.carry) > self.max_carry:
            end = len(self.carry)
            self.forced += 1
        if end > 0:
            self.store.add(_encode_array(self.tokenizer, self.carry[:end]))
            self.carry = self.carry[end:]


class SlidingWindows(Dataset):
    """Input windows of max_length tokens every `stride` tokens; targets are the inputs shifted by one.

    Windows are views into one token tensor: nothing is copied until a batch is stacked.
    """

    def __init__(self, token_ids: torch.Tensor, max_length: int, stride: int) -> None:
        if max_length <= 0 or stride <= 0:
            raise DataError(f"max_length and stride must be positive (got {max_length}, {stride})")
        if token_ids.numel() < max_length + 1:
            raise DataError(
                f"the text has {token_ids.numel()} tokens, fewer than one window needs "
                f"({max_length} + 1 for the shifted target); use more text or a shorter max_length"
            )
        self.token_ids = token_ids  # (N,)
        self.max_length = max_length
        self.stride = stride
        self.count = (token_ids.numel() - max_length - 1) // stride + 1

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.count:
            raise IndexError(index)
        start = index * self.stride
        chunk = self.token_ids[start : start + self.max_length + 1]  # (max_length + 1,)
        return chunk[:-1], chunk[1:]  # inputs (max_length,), targets (max_length,)


def split_ids(token_ids: torch.Tensor, val_ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Split the token stream at (1 - val_ratio): the book's train/validation split."""
    if not 0.0 < val_ratio < 1.0:
        raise DataError(f"val_ratio must be between 0 and 1, got {val_ratio}")
    cut = int(round(token_ids.numel() * (1.0 - val_ratio)))
    return token_ids[:cut], token_ids[cut:]  # (cut,), (N - cut,)


def split_text(text: str, val_ratio: float) -> tuple[str, str]:
    """Split the characters at (1 - val_ratio), as the book's ch. 5 does before tokenizing each part.

    The book writes `split_idx = int(train_ratio * len(text_data))` with train_ratio 0.90; the same
    formula here gives the same cut for val_ratio 0.1 (1 - 0.1 == 0.9 in floating point).
    """
    if not 0.0 < val_ratio < 1.0:
        raise DataError(f"val_ratio must be between 0 and 1, got {val_ratio}")
    cut = int((1.0 - val_ratio) * len(text))
    return text[:cut], text[cut:]


@dataclass(frozen=True)
class SplitIds:
    """A corpus read and split into training and validation ids, by tokens or by characters."""

    train: torch.Tensor  # (N_train,)
    val: torch.Tensor  # (N_val,)
    name: str
    split: str
    replacements: int = 0


def read_split_ids(
    source: str | os.PathLike,
    tokenizer: Tokenizer,
    val_ratio: float,
    split: str = "tokens",
    *,
    lenient: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> SplitIds:
    """Read a corpus and split it for training.

    "tokens" streams the file (any size) and cuts the id stream at (1 - val_ratio). "chars" is the book's
    ch. 5 split: the whole text is read, cut at (1 - val_ratio) of its characters and each part tokenized
    on its own, so the token at the cut is the one the book's loaders see (a word cut in two becomes two
    tokens' worth, exactly as in the book).
    """
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "tokens":
        corpus = read_corpus_ids(source, tokenizer, lenient=lenient, progress=progress, cancel=cancel)
        train, val = split_ids(corpus.ids, val_ratio)  # (N_train,), (N_val,)
        return SplitIds(train, val, corpus.name, split, corpus.replacements)
    text = load_corpus(source, lenient=lenient)
    train_text, val_text = split_text(text.text, val_ratio)
    train = encode_corpus(tokenizer, train_text, progress=progress, cancel=cancel)  # (N_train,)
    val = encode_corpus(tokenizer, val_text, cancel=cancel)  # (N_val,)
    return SplitIds(train, val, text.name, split, text.replacements)


def make_loader(
    windows: SlidingWindows, batch_size: int, shuffle: bool, drop_last: bool, seed: int = 0
) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        windows, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, generator=generator
    )
