import hashlib

import pytest

from gptviz.errors import TokenizerError
from gptviz.resources import TOKENIZER_FILE, TOKENIZER_SHA256_FILE
from gptviz.tokenizer import END_OF_TEXT_ID, Tokenizer, default_tokenizer

CH2_SENTENCE = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace."
CH2_IDS = [15496, 11, 466, 345, 588, 8887, 30, 220, 50256, 554, 262, 4252, 18250, 8812, 2114, 286, 617, 34680,
           27271, 13]  # fmt: skip


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return default_tokenizer()


def test_book_ids(tok):
    assert tok.encode("Hello, I am") == [15496, 11, 314, 716]
    assert tok.encode("Every effort moves you") == [6109, 3626, 6100, 345]
    assert tok.encode(CH2_SENTENCE) == CH2_IDS
    assert tok.decode(CH2_IDS) == CH2_SENTENCE


def test_endoftext_is_special_only_when_allowed(tok):
    assert tok.encode("<|endoftext|>") == [END_OF_TEXT_ID]
    assert END_OF_TEXT_ID not in tok.encode("<|endoftext|>", allow_special=False)
    pieces = tok.tokenize("a<|endoftext|>b")
    assert [p.special for p in pieces] == [False, True, False]
    assert pieces[1].display == "<|endoftext|>"


def test_vocab_size(tok):
    assert tok.vocab_size == 50257


def test_bundled_file_matches_its_checksum():
    expected = TOKENIZER_SHA256_FILE.read_text().split()[0]
    assert hashlib.sha256(TOKENIZER_FILE.read_bytes()).hexdigest() == expected


def test_corrupt_file_is_refused(tmp_path, monkeypatch):
    import gptviz.tokenizer as module

    bad = tmp_path / "gpt2.tiktoken"
    bad.write_bytes(TOKENIZER_FILE.read_bytes()[:-10])
    sha = tmp_path / "sha"
    sha.write_text(TOKENIZER_SHA256_FILE.read_text())
    monkeypatch.setattr(module, "TOKENIZER_FILE", bad)
    monkeypatch.setattr(module, "TOKENIZER_SHA256_FILE", sha)
    with pytest.raises(TokenizerError, match="sha256"):
        module.Tokenizer()


def test_spans_cover_the_text(tok):
    text = "Every effort moves you"
    pieces = tok.tokenize(text)
    assert [text[p.start : p.end] for p in pieces] == ["Every", " effort", " moves", " you"]
    assert all(p.complete for p in pieces)


def test_partial_utf8_tokens_are_shown_as_bytes(tok):
    text = "🦜"  # a rare emoji GPT-2 splits into byte pieces
    pieces = tok.tokenize(text)
    assert b"".join(p.data for p in pieces) == text.encode("utf-8")
    assert len(pieces) > 1
    partial = [p for p in pieces if not p.complete]
    assert partial, "the emoji should be split inside its UTF-8 bytes"
    assert all(p.display.startswith("\\x") for p in partial)
    assert all((p.start, p.end) == (0, 1) for p in pieces)


@pytest.mark.parametrize(
    "text",
    ["", "  ", "naïve café", "שלום עולם", "e\u0301\u0301", "👩‍👩‍👧 family", "a\n\n\tb", "<|endoftext|>x"],
)
def test_round_trip(tok, text):
    assert tok.decode(tok.encode(text)) == text
    pieces = tok.tokenize(text)
    assert b"".join(p.data for p in pieces) == text.encode("utf-8")


def test_piece_or_id_names_ids_past_the_vocabulary(tok):
    """nanoGPT pads the vocabulary to 50,304: rows 50,257.. are no token, and the views show them as <id>."""
    assert tok.piece_or_id(6109) == tok.piece(6109) == "Every"
    assert tok.piece_or_id(END_OF_TEXT_ID) == "<|endoftext|>"
    assert tok.piece_or_id(50257) == "<50257>" and tok.piece_or_id(50303) == "<50303>"
    with pytest.raises(KeyError):
        tok.piece(50257)  # the plain lookup still refuses: only display code asks for the fallback
