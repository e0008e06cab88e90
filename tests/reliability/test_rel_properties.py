"""Property-based tests (hypothesis): tokenizer round trip, chunked = whole encoding, sliding windows, and
the sampler's filters, on inputs nobody would think to write by hand."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gptviz.data import SlidingWindows, encode_corpus, read_corpus_ids
from gptviz.engine.sampling import (
    TOP_P_TOLERANCE,
    kept_distribution,
    sampling_distribution,
    top_k_filter,
    top_p_filter,
)
from gptviz.tokenizer import END_OF_TEXT, END_OF_TEXT_ID, default_tokenizer

TOK = default_tokenizer()
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any Unicode (hypothesis leaves out lone surrogates, which UTF-8 cannot hold), plus the things that break
# tokenizers: whitespace runs, combining marks, emoji with modifiers and joiners, right-to-left text, the
# special token written out.
TRICKY = st.sampled_from(
    [" ", "  ", "\n", "\n\n", "\r\n", "\t", "\u00a0", "\u3000", "e\u0301", "\U0001f469\u200d\U0001f4bb",
     "\U0001f44d\U0001f3fd", "\u05e9\u05dc\u05d5\u05dd", "\u0645\u0631\u062d\u0628\u0627", "\u200f", "'s", "'ll",
     "123", " 4567", END_OF_TEXT, "<|endof", "\x1c", "\u2028", "\ufeff"]
)  # fmt: skip
TEXT = st.lists(st.one_of(st.text(max_size=12), TRICKY), max_size=25).map("".join)


@FAST
@given(TEXT)
def test_tokenizer_round_trip_is_exact(text: str) -> None:
    ids = TOK.encode(text)
    assert TOK.decode(ids) == text
    pieces = TOK.tokenize(text)
    assert [p.id for p in pieces] == ids
    assert b"".join(p.data for p in pieces) == text.encode("utf-8")
    # Spans walk the text in order and stay inside it; complete pieces decode to exactly their span.
    for before, after in zip(pieces, pieces[1:], strict=False):
        assert before.start <= after.start and before.end <= after.end
    for piece in pieces:
        assert 0 <= piece.start <= piece.end <= len(text)
        if piece.complete:
            assert piece.data.decode("utf-8") == text[piece.start : piece.end]
        assert piece.special == (piece.id == END_OF_TEXT_ID)
    assert sum(p.special for p in pieces) == text.count(END_OF_TEXT)


@FAST
@given(TEXT, st.integers(min_value=1, max_value=20))
def test_chunked_encoding_equals_whole_encoding(text: str, chunk: int) -> None:
    whole = torch.tensor(TOK.encode(text), dtype=torch.long)  # (N,)
    assert torch.equal(encode_corpus(TOK, text, chunk_chars=chunk), whole)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT, st.integers(min_value=1, max_value=16))
def test_streamed_file_encoding_equals_whole_encoding(text: str, chunk: int) -> None:
    assume(text.encode("utf-8").strip() and "\x00" not in text)
    assume(not text.startswith("\ufeff"))  # a leading BOM is dropped on purpose
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.txt"
        path.write_bytes(text.encode("utf-8"))
        result = read_corpus_ids(path, TOK, chunk_bytes=chunk, max_carry=10**9)
    assert result.forced_cuts == 0
    assert result.ids.tolist() == TOK.encode(text)
    assert result.n_chars == len(text)


@FAST
@given(
    st.integers(min_value=2, max_value=300),
    st.integers(min_value=1, max_value=40),
    st.integers(min_value=1, max_value=40),
)
def test_sliding_windows_count_shift_and_bounds(n: int, max_length: int, stride: int) -> None:
    ids = torch.arange(n) * 3 + 1  # (n,) distinct values, so a wrong offset shows
    if n < max_length + 1:
        try:
            SlidingWindows(ids, max_length, stride)
        except ValueError as exc:
            assert "fewer than one window" in str(exc)
            return
        raise AssertionError("a too-short text must be refused")
    windows = SlidingWindows(ids, max_length, stride)
    assert len(windows) == (n - max_length - 1) // stride + 1
    for index in range(len(windows)):
        x, y = windows[index]
        start = index * stride
        assert x.shape == y.shape == (max_length,)
        assert torch.equal(x, ids[start : start + max_length])
        assert torch.equal(y, ids[start + 1 : start + max_length + 1])  # targets: inputs shifted by one
        assert start + max_length + 1 <= n  # inside the data
    # One more window would run past the end: the count is the largest possible.
    assert len(windows) * stride + max_length + 1 > n


LOGITS = st.lists(
    st.floats(min_value=-30, max_value=30, allow_nan=False, width=32), min_size=2, max_size=60
).map(lambda values: torch.tensor(values, dtype=torch.float32))


@FAST
@given(LOGITS, st.integers(min_value=1, max_value=70))
def test_top_k_keeps_exactly_k(logits: torch.Tensor, k: int) -> None:
    out = top_k_filter(logits, k)
    kept = torch.isfinite(out)
    expected = min(k, logits.numel())
    assert int(kept.sum()) == expected
    assert torch.equal(out[kept], logits[kept])  # survivors keep their values
    if expected < logits.numel():
        # Every kept logit >= every dropped one (ties may fall either way, but never out of order).
        assert float(logits[kept].min()) >= float(logits[~kept].max())


def _mass(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.double(), dim=0)  # (V,)


@FAST
@given(LOGITS, st.floats(min_value=0.01, max_value=1.0))
def test_top_p_keeps_the_smallest_set_reaching_p(logits: torch.Tensor, p: float) -> None:
    out = top_p_filter(logits, p)
    kept = torch.isfinite(out)
    probs = _mass(logits)
    mass = float(probs[kept].sum())
    assert int(kept.sum()) >= 1
    assert mass >= p - 1e-5  # reaches p
    if int(kept.sum()) > 1:
        # Smallest: without its least likely member the set would fall short of p.
        assert mass - float(probs[kept].min()) < p + TOP_P_TOLERANCE + 1e-9
    if int((~kept).sum()):
        assert float(probs[kept].min()) >= float(probs[~kept].max()) - 1e-12  # the most likely ones


@FAST
@given(
    LOGITS,
    st.sampled_from([0.0, 0.3, 1.0, 2.5]),
    st.one_of(st.none(), st.integers(min_value=0, max_value=70)),
    st.floats(min_value=0.05, max_value=1.0),
)
def test_sampling_distribution_sums_to_one_over_the_kept_tokens(logits, temperature, top_k, top_p) -> None:
    probs = sampling_distribution(logits, temperature, top_k, top_p)  # (V,)
    assert probs.shape == logits.shape
    assert math.isclose(float(probs.sum()), 1.0, abs_tol=1e-5)
    assert bool((probs >= 0).all())
    ids, kept = kept_distribution(logits, temperature, top_k, top_p)  # (m,), (m,)
    assert math.isclose(float(kept.sum()), 1.0, abs_tol=1e-5)
    outside = torch.ones_like(probs, dtype=torch.bool)
    outside[ids] = False
    assert float(probs[outside].abs().sum()) == 0.0  # exactly zero outside the kept set
    if top_k:
        assert ids.numel() <= top_k
    if temperature == 0:
        assert ids.numel() == 1 and float(logits[ids[0]]) == float(logits.max())
