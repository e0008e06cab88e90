import pytest
import torch

from gptviz.data import SlidingWindows, builtin_text, load_corpus, make_loader, split_ids
from gptviz.errors import DataError


def test_builtin_corpus_is_the_python_reference():
    text = builtin_text()
    assert 400_000 < len(text) < 600_000
    assert "Augmented assignment statements" in text
    assert load_corpus("builtin").text == text


def test_windows_follow_the_book():
    ids = torch.arange(10)
    windows = SlidingWindows(ids, max_length=4, stride=1)
    x, y = windows[0]
    assert x.tolist() == [0, 1, 2, 3] and y.tolist() == [1, 2, 3, 4]
    assert len(windows) == 6
    x, y = windows[5]
    assert x.tolist() == [5, 6, 7, 8] and y.tolist() == [6, 7, 8, 9]
    strided = SlidingWindows(ids, max_length=4, stride=4)
    assert [strided[i][0].tolist() for i in range(len(strided))] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_loader_batches():
    windows = SlidingWindows(torch.arange(100), max_length=8, stride=8)
    x, y = next(iter(make_loader(windows, batch_size=4, shuffle=False, drop_last=True)))
    assert x.shape == (4, 8) and torch.equal(y, x + 1)


def test_too_short_corpus_is_a_clear_error():
    with pytest.raises(DataError, match="fewer than one window"):
        SlidingWindows(torch.arange(4), max_length=4, stride=1)


def test_split_by_ratio():
    train, val = split_ids(torch.arange(100), 0.1)
    assert train.numel() == 90 and val.tolist() == list(range(90, 100))
    with pytest.raises(DataError):
        split_ids(torch.arange(10), 1.5)


def test_bad_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_corpus(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="directory"):
        load_corpus(tmp_path)
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(DataError, match="empty"):
        load_corpus(empty)
    binary = tmp_path / "b.bin"
    binary.write_bytes(b"\x00\x01\x02abc")
    with pytest.raises(DataError, match="binary"):
        load_corpus(binary)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 au lait, na\xefve".encode("latin-1"))
    with pytest.raises(DataError, match="not valid UTF-8"):
        load_corpus(latin)
    lenient = load_corpus(latin, lenient=True)
    assert lenient.replacements == 2
    assert lenient.text.count("\ufffd") == 2
