"""Tokens pane: chips carry the right ids and tooltips; the window table equals SlidingWindows."""

from __future__ import annotations

import numpy as np
import pytest

from gptviz.data import SlidingWindows
from gptviz.qt.panes.tokens import TokensPane
from gptviz.qt.token_labels import visible_whitespace


@pytest.fixture
def pane(qtbot):
    widget = TokensPane()
    widget.resize(700, 500)
    qtbot.addWidget(widget)
    widget.show()
    return widget


def test_chips_show_ids_tooltips_and_counts(pane, session):
    text = "Hello, do you like tea? <|endoftext|> In the sunlit"
    view = session.tokenize(text)
    pane.set_tokens(view)
    # Hello , do you like tea ? ' ' <|endoftext|> In the sun lit
    assert pane.chips.chip_count() == view.n_tokens == 13
    first = pane.chips.chip(0)
    assert first.token_id == 15496 and first.label == "Hello"
    assert first.tooltip == "id 15496\nbytes 48 65 6c 6c 6f (5)\nspan [0, 5) 'Hello'"
    assert [pane.chips.chip(i).token_id for i in range(9)] == [15496, 11, 466, 345, 588, 8887, 30, 220, 50256]
    special = pane.chips.chip(8)
    assert special.token_id == 50256 and special.special and special.label == "<|endoftext|>"
    assert special.tooltip.startswith("special token <|endoftext|>\nid 50256")
    assert pane.chips.chip(2).label == "·do"  # the leading space is made visible
    assert pane.counts.text() == f"{len(text)} characters · 13 tokens"
    # The tooltip lookup finds the chip under a point.
    assert pane.chips.chip_at(special.rect.center()) == 8


def test_whitespace_and_partial_utf8_are_visible(pane, session):
    view = session.tokenize("a\n\tb 🙂 😀")
    pane.set_tokens(view)
    labels = [pane.chips.chip(i).label for i in range(pane.chips.chip_count())]
    assert "↵" in "".join(labels) and "→" in "".join(labels)
    assert visible_whitespace(" x\n") == "·x↵"
    partial = [pane.chips.chip(i) for i in range(pane.chips.chip_count()) if not pane.chips.chip(i).complete]
    # 😀 is split over two tokens (20 f0 9f 98, then 80): the first shows it whole, the next the byte it adds
    assert [chip.label for chip in partial] == ["\u00b7\U0001f600", "\u203980\u203a"]
    assert all("\\x" not in label for label in labels)


def test_window_rows_equal_sliding_windows(pane, session):
    view = session.windows(max_length=5, stride=3, first=7, count=4)
    pane.set_windows(view)
    inputs, targets = pane.table_ids()
    dataset = SlidingWindows(session.corpus_ids, 5, 3)
    assert inputs.shape == targets.shape == (4, 5)
    for row in range(4):
        x, y = dataset[7 + row]
        np.testing.assert_array_equal(inputs[row], x.numpy())
        np.testing.assert_array_equal(targets[row], y.numpy())
    assert pane.table.verticalHeaderItem(0).text() == "input 7"
    assert pane.table.verticalHeaderItem(1).text() == "target 7"
    assert pane.first.maximum() == len(dataset) - 1


def test_changing_window_controls_requests_new_windows(pane, qtbot):
    with qtbot.waitSignal(pane.windowsRequested) as blocker:
        pane.max_length.setValue(8)
    assert blocker.args == [8, 1, 0, pane.WINDOW_ROWS]


def test_typing_is_debounced_into_one_request(pane, qtbot):
    with qtbot.waitSignal(pane.textChanged, timeout=2000) as blocker:
        pane.editor.insertPlainText("Every")
        pane.editor.insertPlainText(" effort")
    assert blocker.args == ["Every effort"]


def test_a_big_paste_keeps_the_window_responsive_and_says_what_it_shows(qtbot, main_window):
    """A long text (here 200 KB, about 44,000 tokens) is tokenised in the worker; the pane draws the first
    MAX_CHIPS chips and says so, and the GUI thread keeps answering its timers meanwhile."""
    import time

    from PySide6.QtCore import QTimer

    from gptviz.qt.panes.tokens import MAX_CHIPS

    pane = main_window.tokens_pane
    text = ("The quick brown fox jumps over the lazy dog. " * 5000)[:200_000]
    ticks = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    pane.editor.setPlainText(text)
    qtbot.waitUntil(lambda: "200,000 characters" in pane.counts.text(), timeout=60_000)
    timer.stop()
    n = pane.tokens_view.n_tokens
    assert n > MAX_CHIPS
    assert (
        pane.counts.text()
        == f"200,000 characters · {n:,} tokens (showing the first {MAX_CHIPS:,} of {n:,} as chips)"
    )
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert gaps and max(gaps) < 2.0  # never a stall a user would call frozen (measured: under 0.2 s for 1 MB)
