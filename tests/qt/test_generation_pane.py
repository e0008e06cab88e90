"""Generation pane: the table shows the step's probabilities; clicking a candidate forces it (through the worker)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHeaderView, QLabel

from gptviz.engine.sampling_settings import SamplingSettings
from gptviz.qt import commands as cmd
from gptviz.qt.panes.generation import GenerationPane
from gptviz.qt.token_labels import token_label
from gptviz.qt.worker_host import WorkerHost


@pytest.fixture
def pane(qtbot):
    widget = GenerationPane()
    widget.resize(900, 600)
    qtbot.addWidget(widget)
    widget.show()
    return widget


def test_table_rows_equal_the_gen_step(pane, session):
    session.set_sampling(SamplingSettings(temperature=1.5, top_k=4, top_p=1.0, seed=7))
    view = session.gen_step()
    pane.set_generation(view)
    step = view.last
    rows = pane.table_probabilities()
    assert len(rows) == len(step.candidates) >= 10
    for (token_id, before, after), cand in zip(rows, step.candidates, strict=True):
        assert token_id == cand.id
        assert before == pytest.approx(cand.prob_raw, abs=1e-12)
        assert after == pytest.approx(cand.prob_final, abs=1e-12)
    # top-k 4: only the first four keep probability after the filters, and they sum to 1.
    assert sum(r[2] for r in rows[:4]) == pytest.approx(1.0, abs=1e-5)
    assert all(r[2] == 0.0 for r in rows[4:] if r[0] != step.chosen_id)
    chosen_row = [i for i, c in enumerate(step.candidates) if c.id == step.chosen_id][0]
    assert pane.table.item(chosen_row, 0).text() == "▶"
    assert pane.table.item(chosen_row, 0).font().bold()
    assert pane.undo_button.isEnabled()


def test_a_long_candidate_is_elided_on_the_chart_axis_and_whole_in_the_table(pane, session):
    """A 16-character token would squeeze the bars: the chart's axis shows 12 characters ending in …."""
    view = session.gen_step()
    long_piece = "*" * 16
    rows = list(view.candidates)
    rows[1] = dataclasses.replace(rows[1], piece=long_piece)
    rows[2] = dataclasses.replace(rows[2], piece="\n")
    pane.set_generation(dataclasses.replace(view, candidates=tuple(rows)))
    ticks = dict(pane.plot.getAxis("left")._tickLevels[0])
    assert ticks[1] == "*" * 11 + "\u2026" and len(ticks[1]) == 12
    assert ticks[2] == "\u21b5"  # a newline, as in the Tokens pane
    assert pane.table.item(1, 1).text() == long_piece
    assert pane.table.item(2, 1).text() == "\u21b5"


def test_sampling_controls_make_settings(pane, qtbot):
    with qtbot.waitSignal(pane.samplingChanged) as blocker:
        pane.top_k.setValue(0)
    settings = blocker.args[0]
    assert isinstance(settings, SamplingSettings) and settings.top_k is None
    pane.temperature.setValue(0.0)
    assert pane.sampling().greedy


def test_clicking_a_candidate_forces_it(pane, qtbot, session_factory):
    host = WorkerHost(session_factory)
    views = []
    host.resultReady.connect(lambda ch, payload: views.append(payload) if ch == cmd.GENERATION else None)
    host.resultReady.connect(
        lambda ch, payload: pane.set_generation(payload) if ch == cmd.GENERATION else None
    )
    pane.forceRequested.connect(lambda token_id: host.submit(cmd.Force(token_id)))
    pane.stepRequested.connect(lambda: host.submit(cmd.GenStep()))
    pane.undoRequested.connect(lambda: host.submit(cmd.Undo()))
    try:
        with qtbot.waitSignal(host.ready, timeout=30_000):
            host.start()
        pane.step_button.click()
        qtbot.waitUntil(lambda: bool(views) and len(views[-1].new_ids) == 1, timeout=20_000)
        first = views[-1].last
        row = 3
        wanted = first.candidates[row].id
        assert wanted != first.chosen_id
        rect = pane.table.visualItemRect(pane.table.item(row, 1))
        qtbot.mouseClick(pane.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.waitUntil(lambda: views[-1].last is not None and views[-1].last.forced, timeout=20_000)
        forced = views[-1]
        assert forced.new_ids.tolist() == [wanted]  # replaced, not appended
        assert [c.id for c in forced.candidates[:10]] == [c.id for c in first.candidates[:10]]
        assert pane.table.item(row, 0).text() == "▶"
        # Undo goes back to the prompt.
        pane.undo_button.click()
        qtbot.waitUntil(lambda: len(views[-1].new_ids) == 0, timeout=20_000)
        assert views[-1].prompt_ids.tolist() == [6109, 3626, 6100, 345]
    finally:
        assert host.shutdown(5000)


def test_text_grown_one_step_at_a_time_equals_the_text_drawn_at_once(pane, session, qtbot):
    """After a step the pane appends the new token's span instead of re-laying out the text; an undo or a
    new prompt draws it all again. Either way the text and each token's colour are the same."""
    session.set_sampling(SamplingSettings(temperature=1.0, top_k=0, top_p=1.0, seed=3))
    session.set_prompt("Every effort moves you")
    for _ in range(12):
        pane.set_generation(session.gen_step())
    fresh = GenerationPane()
    qtbot.addWidget(fresh)
    fresh.set_generation(session.generation_view())
    assert pane.text.toPlainText() == fresh.text.toPlainText()
    assert _backgrounds(pane) == _backgrounds(fresh)  # every character coloured the same way
    pane.set_generation(session.undo())  # a shorter text: drawn again, not appended
    assert pane.text.toPlainText() == fresh.text.toPlainText()[: len(pane.text.toPlainText())]
    assert len(pane.text.toPlainText()) < len(fresh.text.toPlainText())


def _backgrounds(pane) -> list[str]:
    """The background colour of every character of the generated text, in order."""
    from PySide6.QtGui import QTextCursor

    document = pane.text.document()
    cursor = QTextCursor(document)
    colours = []
    for position in range(1, document.characterCount()):
        cursor.setPosition(position)
        colours.append(cursor.charFormat().background().color().name())
    return colours


def _two_tokens(session, pieces, ids):
    """Views after one and two steps whose generated tokens are `pieces` (ids `ids`): the engine's other
    arrays (probabilities, forced flags) stay those of the real steps."""
    first, second = session.gen_step(), session.gen_step()
    one = dataclasses.replace(first, new_pieces=pieces[:1], new_ids=np.array(ids[:1]))
    two = dataclasses.replace(second, new_pieces=pieces, new_ids=np.array(ids))
    return one, two


def test_a_character_split_over_tokens_reads_whole(pane, session, qtbot):
    """’ is the GPT-2 tokens e2 80 and 99. The prompt and the generated text show ’ on the first token and
    the byte the second adds as ‹99›, never the tokenizer's escapes (\\xe2\\x80)."""
    view = session.set_prompt("Every effort moves you\u2019s")
    assert "\\xe2\\x80" in view.prompt_pieces  # the case: the tokenizer splits ’
    pane.set_generation(view)
    text = pane.text.toPlainText()
    assert text == "Every\u00b7effort\u00b7moves\u00b7you\u2019\u203999\u203as", text
    assert "\\x" not in text
    # Generated: the first step shows half a character as its bytes; the step that completes it turns
    # that token into ’ (drawn again, not only appended) and reads the same as the text drawn at once.
    one, two = _two_tokens(session, ("\\xe2\\x80", "\\x99"), [447, 247])
    pane.set_generation(one)
    assert pane.text.toPlainText().endswith("\u2039e2 80\u203a")
    pane.set_generation(two)
    assert pane.text.toPlainText().endswith("s\u2019\u203999\u203a"), pane.text.toPlainText()
    fresh = GenerationPane()
    qtbot.addWidget(fresh)
    fresh.set_generation(two)
    assert pane.text.toPlainText() == fresh.text.toPlainText()
    assert _backgrounds(pane) == _backgrounds(fresh)
    pane.set_generation(one)  # undo: the half character shows as bytes again
    assert pane.text.toPlainText().endswith("s\u2039e2 80\u203a")


def test_a_step_appends_its_token_and_leaves_the_text_before_it(pane, session):
    """A step changes the document only at its end (the new token's span), so a step costs one token at
    any length of text, not a new layout of all of it."""
    session.set_sampling(SamplingSettings(temperature=1.0, top_k=0, top_p=1.0, seed=5))
    for _ in range(20):
        pane.set_generation(session.gen_step())
    document = pane.text.document()
    changes = []
    document.contentsChange.connect(lambda position, removed, added: changes.append((position, removed)))
    length = document.characterCount()
    view = session.gen_step()
    pane.set_generation(view)
    assert changes, "the new token was not drawn"
    piece = len(token_label(view.new_pieces[-1]))
    # Only the new token, or the 3 before it where it completes a character they started.
    assert all(position >= length - 1 - 4 * max(piece, 8) for position, _ in changes), (changes, length)
    assert all(removed <= 4 * max(piece, 8) for _, removed in changes), changes


def test_sampling_tooltips_in_the_books_terms(pane):
    """What a user reads when hovering the controls and the table's probability columns."""
    temperature = pane.temperature.toolTip()
    assert "divides the logits" in temperature and "before softmax" in temperature and "greedy" in temperature
    assert "k largest logits" in pane.top_k.toolTip()
    assert "add up to p" in pane.top_p.toolTip()
    # The label beside each box says the same (a user hovers the word as often as the box).
    label = next(
        lab
        for lab in pane.findChildren(QLabel)
        if lab.text() == "temperature" and lab.buddy() is pane.temperature
    )
    assert label.toolTip() == temperature
    before = pane.table.horizontalHeaderItem(3)
    after = pane.table.horizontalHeaderItem(4)
    assert (before.text(), after.text()) == ("p before", "p after")
    assert "model's own probability" in before.toolTip() and "before temperature" in before.toolTip()
    assert "logits / temperature" in after.toolTip() and "top-k and top-p" in after.toolTip()


def test_table_columns_fit_their_numbers_after_a_step(pane, session):
    """The table is filled with its columns' fitting paused (it re-measured every column after every cell)
    and fitted once after: each number still shows whole."""
    pane.set_generation(session.gen_step())
    header = pane.table.horizontalHeader()
    metrics = pane.table.fontMetrics()
    for column in (0, 2, 3, 4):
        widest = max(
            metrics.horizontalAdvance(pane.table.item(r, column).text()) for r in range(pane.table.rowCount())
        )
        assert header.sectionSize(column) >= widest, column
        assert header.sectionResizeMode(column) == QHeaderView.ResizeMode.ResizeToContents


def test_the_text_follows_the_newest_token_unless_scrolled_back(pane, session, qtbot):
    """At the end of the text a step scrolls to show its token; a user reading further up stays there."""
    from PySide6.QtGui import QTextCursor

    session.set_sampling(SamplingSettings(temperature=1.0, top_k=0, top_p=1.0, seed=11))
    pane.resize(500, 420)  # a short text box: 60 tokens run past it
    bar = pane.text.verticalScrollBar()

    def end_in_view() -> bool:
        cursor = QTextCursor(pane.text.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        return pane.text.viewport().rect().contains(pane.text.cursorRect(cursor))

    for _ in range(60):
        pane.set_generation(session.gen_step())
        qtbot.wait(0)
        assert end_in_view()
    assert bar.maximum() > 0  # the text is longer than the box: the case
    bar.setValue(bar.maximum() // 2)
    kept = bar.value()
    for _ in range(5):
        pane.set_generation(session.gen_step())
        qtbot.wait(0)
    assert bar.value() == kept and not end_in_view()


def test_any_sequence_of_steps_undos_and_forces_draws_the_text_as_drawn_at_once(pane, session, qtbot):
    """The text is changed in place (append, remove the tail, redraw the tokens a split character
    changes); after any mix of steps, forced tokens (half characters among them), undos and a reset it
    reads and is coloured exactly as a fresh pane draws the same generation."""
    rng = np.random.default_rng(0)
    session.set_sampling(SamplingSettings(temperature=1.0, top_k=0, top_p=1.0, seed=2))
    session.set_prompt("It was you")
    # e2 80 | 99 is ’ over two tokens, e5 | 80 | a8 is 倨 over three: first as scripted, then at random.
    halves = [447, 247, 161, 222, 101]
    scripted = [("half", 447), ("half", 247), ("undo", 0), ("half", 247), ("step", 0)]
    scripted += [("half", 161), ("half", 222), ("half", 101), ("undo", 0), ("force", 101), ("undo", 0)]
    scripted += [("undo", 0), ("half", 222), ("force", 247)]
    moves = scripted + [(str(rng.choice(["step", "step", "half", "force", "undo"])), 0) for _ in range(40)]
    split_seen = False
    for move, token in moves:
        token = token or int(rng.choice(halves))
        if move == "undo":
            view = session.undo()
        elif move == "half":
            view = session.gen_step(force_id=token)
        elif move == "force":
            view = session.force(token)
        else:
            view = session.gen_step()
        pane.set_generation(view)
        fresh = GenerationPane()
        qtbot.addWidget(fresh)
        fresh.set_generation(view)
        assert pane.text.toPlainText() == fresh.text.toPlainText()
        assert _backgrounds(pane) == _backgrounds(fresh)
        split_seen |= "\u5028\u2039" in pane.text.toPlainText()
    assert split_seen  # the three-token character was drawn whole
    pane.set_generation(session.reset_generation())
    assert pane.text.toPlainText() == "It\u00b7was\u00b7you"
