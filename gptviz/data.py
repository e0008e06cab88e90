"""Corpus -> token ids -> the book's sliding windows (ch. 2), with a train/validation split."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from gptviz.errors import DataError
from gptviz.tokenizer import Tokenizer

BUILTIN = "builtin"
BUILTIN_DESCRIPTION = (
    "the Python language reference topics that ship with every CPython (pydoc_data.topics, "
    "about 465k characters of the documentation's own prose and examples, PSF licence)"
)


@dataclass(frozen=True)
class Corpus:
    text: str
    name: str
    replacements: int = 0  # U+FFFD characters inserted by lenient decoding


def builtin_text() -> str:
    """The Python reference topics in a fixed order, so the built-in corpus is the same on every machine."""
    from pydoc_data.topics import topics

    return "\n\n".join(f"{key}\n{'=' * len(key)}\n{topics[key].strip()}" for key in sorted(topics))


def load_corpus(source: str | os.PathLike, lenient: bool = False) -> Corpus:
    """Read a UTF-8 text file (or the built-in corpus) with a message a user can act on when it fails."""
    if str(source) == BUILTIN:
        return Corpus(builtin_text(), "builtin (pydoc_data.topics)")
    path = Path(source)
    if path.is_dir():
        raise DataError(f"{path} is a directory; choose a text file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"corpus file not found: {path}") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not raw.strip():
        raise DataError(f"{path} is empty")
    if b"\x00" in raw[:65536]:
        raise DataError(f"{path} looks like a binary file (it contains NUL bytes); choose a UTF-8 text file")
    try:
        text = raw.decode("utf-8")
        replacements = 0
    except UnicodeDecodeError as exc:
        if not lenient:
            raise DataError(
                f"{path} is not valid UTF-8 (byte {exc.start}); save it as UTF-8 or use lenient decoding"
            ) from None
        text = raw.decode("utf-8", errors="replace")
        replacements = text.count("\ufffd") - raw.decode("utf-8", errors="ignore").count("\ufffd")
    if text.startswith("\ufeff"):
        text = text[1:]
    return Corpus(text, path.name, replacements)


def encode_corpus(tokenizer: Tokenizer, text: str) -> torch.Tensor:
    """All the corpus' token ids as one int64 tensor (N,)."""
    return torch.tensor(tokenizer.encode(text), dtype=torch.long)  # (N,)


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


def make_loader(
    windows: SlidingWindows, batch_size: int, shuffle: bool, drop_last: bool, seed: int = 0
) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        windows, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, generator=generator
    )
