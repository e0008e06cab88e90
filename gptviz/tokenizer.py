"""GPT-2 byte-pair encoding through tiktoken, offline, with each token's bytes and text span (book ch. 2)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tiktoken
from tiktoken.load import load_tiktoken_bpe

from gptviz.errors import TokenizerError
from gptviz.resources import TOKENIZER_FILE, TOKENIZER_SHA256_FILE

END_OF_TEXT = "<|endoftext|>"
END_OF_TEXT_ID = 50256
# tiktoken's r50k_base / gpt2 pre-tokenisation pattern.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


@dataclass(frozen=True)
class TokenPiece:
    """One token as a view needs it: id, raw bytes, and which characters of the input it covers.

    `complete` is False when the token's bytes are only part of a UTF-8 character (half an emoji):
    then `display` shows the bytes, because decoding them alone would print garbage.
    """

    id: int
    data: bytes
    start: int  # first character of the input this token touches
    end: int  # one past the last character it touches
    complete: bool
    special: bool

    @property
    def display(self) -> str:
        if self.complete:
            return self.data.decode("utf-8")
        return "".join(f"\\x{b:02x}" for b in self.data)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@functools.lru_cache(maxsize=4)
def _load_encoding(path: str, expected_sha: str | None) -> tiktoken.Encoding:
    file = Path(path)
    if not file.is_file():
        raise TokenizerError(f"tokenizer file not found: {file}")
    if expected_sha is not None and _sha256(file) != expected_sha:
        raise TokenizerError(f"tokenizer file {file} is corrupt: its sha256 does not match")
    ranks = load_tiktoken_bpe(str(file))
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={END_OF_TEXT: END_OF_TEXT_ID},
        explicit_n_vocab=50257,
    )


class Tokenizer:
    """The GPT-2 tokenizer built from the bundled ranks file; nothing is downloaded."""

    def __init__(self, path: Path | None = None) -> None:
        path = Path(path) if path is not None else TOKENIZER_FILE
        expected = None
        if path == TOKENIZER_FILE:
            expected = TOKENIZER_SHA256_FILE.read_text().split()[0]
        self.encoding = _load_encoding(str(path), expected)

    @property
    def vocab_size(self) -> int:
        return self.encoding.n_vocab

    @property
    def eot_id(self) -> int:
        return END_OF_TEXT_ID

    def encode(self, text: str, allow_special: bool = True) -> list[int]:
        """Text → ids. `<|endoftext|>` typed in the text becomes id 50256 when special tokens are allowed."""
        allowed = {END_OF_TEXT} if allow_special else set()
        return self.encoding.encode(text, allowed_special=allowed, disallowed_special=())

    def decode(self, ids: Sequence[int]) -> str:
        return self.encoding.decode(list(ids))

    def token_bytes(self, token_id: int) -> bytes:
        return self.encoding.decode_single_token_bytes(token_id)

    def piece_or_id(self, token_id: int) -> str:
        """`piece`, or "<id>" for an id this tokenizer does not have: a model whose vocabulary is padded past
        GPT-2's (nanoGPT's 50,304) has rows no text maps to, and they still show up among its top tokens."""
        try:
            return self.piece(int(token_id))
        except (KeyError, IndexError, ValueError):
            return f"<{int(token_id)}>"

    def piece(self, token_id: int) -> str:
        """How one token looks on its own (a display string; partial UTF-8 shown as escaped bytes)."""
        data = self.token_bytes(token_id)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return "".join(f"\\x{b:02x}" for b in data)

    def tokenize(self, text: str, allow_special: bool = True) -> list[TokenPiece]:
        """Ids plus bytes and character spans, so a view can colour tokens over the original text."""
        ids = self.encode(text, allow_special=allow_special)
        raw = text.encode("utf-8")
        # byte offset -> index of the character that byte belongs to
        char_of_byte: list[int] = []
        for index, char in enumerate(text):
            char_of_byte.extend([index] * len(char.encode("utf-8")))
        char_of_byte.append(len(text))
        pieces: list[TokenPiece] = []
        offset = 0
        for token_id in ids:
            data = self.token_bytes(token_id)
            end_byte = offset + len(data)
            start_char = char_of_byte[offset]
            # A token that ends inside a character still touches that character.
            end_char = char_of_byte[end_byte - 1] + 1 if data else start_char
            complete = _is_complete_utf8(raw, offset, end_byte)
            pieces.append(
                TokenPiece(
                    id=token_id,
                    data=data,
                    start=start_char,
                    end=end_char,
                    complete=complete,
                    special=token_id == END_OF_TEXT_ID,
                )
            )
            offset = end_byte
        return pieces


def _is_complete_utf8(raw: bytes, start: int, end: int) -> bool:
    """True when raw[start:end] starts and ends on character boundaries (no continuation byte cut)."""

    def is_boundary(i: int) -> bool:
        return i >= len(raw) or (raw[i] & 0xC0) != 0x80

    return is_boundary(start) and is_boundary(end)


@functools.lru_cache(maxsize=1)
def default_tokenizer() -> Tokenizer:
    return Tokenizer()
