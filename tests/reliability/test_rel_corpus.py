"""Bad corpora and large corpora: a clear refusal for each bad file, bounded memory, progress and cancel.

The bad files go through `load_corpus`, the streaming `read_corpus_ids` and `gptviz train` (one line on
stderr, exit 1, no run directory left behind). The large-corpus test streams a generated file in a
subprocess and measures its peak resident memory against the file's size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gptviz.data import (
    TokenizeCancelled,
    encode_corpus,
    load_corpus,
    read_corpus_ids,
)
from gptviz.errors import DataError
from gptviz.tokenizer import default_tokenizer

REPO = Path(__file__).resolve().parents[2]


def _make(tmp_path: Path, kind: str) -> Path:
    """One bad corpus of the given kind, as a path."""
    path = tmp_path / f"{kind}.txt"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "whitespace":
        path.write_bytes(b" \n\t\r\n  \n")
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 10)
    elif kind == "binary-late-nul":
        path.write_bytes(b"text " * 100 + b"\x00\x01\x02")
    elif kind == "invalid-utf8":
        path.write_bytes("caf\xe9 au lait".encode("latin-1"))
    elif kind == "truncated-utf8":
        path.write_bytes("emoji at the end \U0001f600".encode()[:-1])
    elif kind == "directory":
        path = tmp_path / "a-folder"
        path.mkdir()
    elif kind == "missing":
        path = tmp_path / "nowhere.txt"
    elif kind == "unreadable":
        path = tmp_path / "fifo-dir" / "x.txt"  # a path through a file: ENOTDIR even for root
        (tmp_path / "fifo-dir").write_text("a file, not a folder")
    return path


BAD = {
    "empty": "is empty",
    "whitespace": "is empty",
    "binary": "binary",
    "binary-late-nul": "binary",
    "invalid-utf8": r"not valid UTF-8 \(byte 3\)",
    "truncated-utf8": r"not valid UTF-8 \(byte 17\)",
    "directory": "is a directory",
    "missing": "not found",
    "unreadable": "cannot read|not found",
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_corpus_is_refused_by_both_readers(tmp_path: Path, kind: str) -> None:
    path = _make(tmp_path, kind)
    tokenizer = default_tokenizer()
    for read in (lambda: load_corpus(path), lambda: read_corpus_ids(path, tokenizer, chunk_bytes=7)):
        with pytest.raises(DataError, match=BAD[kind]) as err:
            read()
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("kind", ["empty", "binary", "invalid-utf8", "directory", "missing"])
def test_bad_corpus_through_the_train_cli(tmp_path: Path, cli, kind: str) -> None:
    path = _make(tmp_path, kind)
    out = tmp_path / "run"
    result = cli("train", "--corpus", path, "--preset", "tiny", "--out", out, "--steps", "1", "--quiet")
    assert result.code == 1, result
    assert len(result.err_lines) == 1 and result.err_lines[0].startswith("gptviz train: error: "), result.err
    assert not out.exists() or not any(out.iterdir())


def test_corpus_shorter_than_one_window_through_the_train_cli(tmp_path: Path, cli) -> None:
    path = tmp_path / "short.txt"
    path.write_text("Every effort moves you.\n" * 3)
    result = cli(
        "train", "--corpus", path, "--preset", "tiny", "--out", tmp_path / "run", "--steps", "1", "--quiet"
    )
    assert result.code == 1 and len(result.err_lines) == 1, result.err
    assert "fewer than" in result.err


def test_lenient_counts_replacements_like_the_whole_file_reader(tmp_path: Path) -> None:
    path = tmp_path / "mixed.txt"
    # A genuine U+FFFD in the file, invalid bytes, and a character split across every small chunk size.
    path.write_bytes("ok \ufffd ".encode() + b"\xff\xfe bad " + "\u00e9t\u00e9 \U0001f600 end\n".encode())
    whole = load_corpus(path, lenient=True)
    tokenizer = default_tokenizer()
    expected = torch.tensor(tokenizer.encode(whole.text))
    for chunk in (1, 2, 3, 5, 1000):
        streamed = read_corpus_ids(path, tokenizer, lenient=True, chunk_bytes=chunk, max_carry=10**6)
        assert torch.equal(streamed.ids, expected), chunk
        assert streamed.replacements == whole.replacements == 2
        assert streamed.n_chars == len(whole.text)


def test_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfHello world\n")
    tokenizer = default_tokenizer()
    assert load_corpus(path).text == "Hello world\n"
    for chunk in (1, 2, 64):
        ids = read_corpus_ids(path, tokenizer, chunk_bytes=chunk, max_carry=10**6).ids
        assert ids.tolist() == tokenizer.encode("Hello world\n")


def _big_text(n_bytes: int) -> str:
    """Varied English-like text with long lines and blank lines, about n_bytes of it."""
    words = [
        "the",
        "model",
        "reads",
        "every",
        "token",
        "once",
        "and",
        "learns",
        "what",
        "comes",
        "next;",
        "café",
        "😀",
        "naïve",
        "123",
        "<|endoftext|>",
    ]
    lines = []
    size = 0
    i = 0
    while size < n_bytes:
        line = " ".join(words[(i * 7 + j) % len(words)] for j in range(5 + i % 40))
        if i % 11 == 0:
            line += "\n"
        lines.append(line)
        size += len(line.encode()) + 1
        i += 1
    return "\n".join(lines)


def test_streamed_ids_equal_whole_text_ids_and_progress_is_monotonic(tmp_path: Path) -> None:
    text = _big_text(300_000)
    path = tmp_path / "big.txt"
    path.write_text(text, encoding="utf-8")
    tokenizer = default_tokenizer()
    expected = torch.tensor(tokenizer.encode(text))
    seen: list[tuple[int, int]] = []
    result = read_corpus_ids(path, tokenizer, chunk_bytes=4096, progress=lambda d, t: seen.append((d, t)))
    assert torch.equal(result.ids, expected)
    assert result.forced_cuts == 0
    assert result.n_bytes == path.stat().st_size
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == path.stat().st_size
    assert all(t == path.stat().st_size for _, t in seen)
    assert len(seen) >= path.stat().st_size // 4096
    in_memory = encode_corpus(tokenizer, text, chunk_chars=999)
    assert torch.equal(in_memory, expected)


def test_cancel_stops_tokenisation_and_keeps_nothing(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text(_big_text(200_000), encoding="utf-8")
    tokenizer = default_tokenizer()
    calls: list[int] = []

    def progress(done: int, total: int) -> None:
        calls.append(done)

    with pytest.raises(TokenizeCancelled, match="cancelled"):
        read_corpus_ids(path, tokenizer, chunk_bytes=8192, progress=progress, cancel=lambda: len(calls) >= 3)
    assert len(calls) == 3  # stopped at the first check after the third chunk
    with pytest.raises(TokenizeCancelled):
        encode_corpus(tokenizer, "a b c " * 1000, chunk_chars=10, cancel=lambda: True)


def test_text_without_whitespace_is_cut_by_force_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "one-long-word.txt"
    path.write_text("abcdefghij" * 5000)  # 50 kB, no safe cut anywhere
    tokenizer = default_tokenizer()
    result = read_corpus_ids(path, tokenizer, chunk_bytes=1000, max_carry=4000)
    assert result.forced_cuts >= 10
    assert tokenizer.decode(result.ids.tolist()) == path.read_text()  # the text survives, cuts or not
    assert torch.equal(
        encode_corpus(tokenizer, path.read_text(), chunk_chars=1000),
        torch.tensor(tokenizer.encode(path.read_text())),
    )


MEASURE = r"""
import json, resource, sys, tracemalloc
from gptviz.data import read_corpus_ids
from gptviz.tokenizer import default_tokenizer
import torch
tok = default_tokenizer()
tok.encode("warm up the tokenizer")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
steps = []
result = read_corpus_ids(sys.argv[1], tok, chunk_bytes=int(sys.argv[2]), dtype=torch.int32,
                         progress=lambda d, t: steps.append(d))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"tokens": int(result.ids.numel()), "peak_growth": after - before, "bytes": result.n_bytes,
                  "monotonic": steps == sorted(steps), "chunks": len(steps), "forced": result.forced_cuts}))
"""


def test_large_corpus_streams_with_bounded_memory(tmp_path: Path) -> None:
    """A 48 MB corpus read 1 MB at a time: peak memory grows by far less than the text would take.

    Holding the text alone would cost its size in bytes; a Python list of its ids ~36 bytes a token. The
    stream keeps a few chunks plus 2 bytes a token (uint16 parts) and the final int32 tensor (4 a token).
    """
    size = 48 * 2**20
    path = tmp_path / "large.txt"
    block = _big_text(2**20).encode()
    with open(path, "wb") as handle:
        for _ in range(size // len(block) + 1):
            handle.write(block)
    chunk = 2**20
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path), str(chunk)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    n_bytes, tokens, growth = data["bytes"], data["tokens"], data["peak_growth"]
    assert n_bytes == path.stat().st_size and data["monotonic"] and data["forced"] == 0
    assert data["chunks"] == -(-n_bytes // chunk)
    bound = 6 * tokens + 16 * chunk  # uint16 parts + int32 result + a few chunks as bytes and str
    assert growth < bound, (growth, bound)
    assert growth < 0.6 * n_bytes, (growth, n_bytes)  # less than the text alone would need


def test_a_path_with_a_nul_character_is_a_one_line_error(tmp_path: Path) -> None:
    """Found by the GUI monkey: a dialog answer with a NUL reached the banner as 'ValueError: embedded null byte'."""
    path = tmp_path / "bad\x00name.txt"
    for read in (lambda: load_corpus(path), lambda: read_corpus_ids(path, default_tokenizer())):
        with pytest.raises(DataError, match="NUL character") as err:
            read()
        assert "\n" not in str(err.value)
