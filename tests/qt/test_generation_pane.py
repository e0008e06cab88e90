"""Generation pane: the table shows the step's probabilities; clicking a candidate forces it (through the worker)."""

from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtCore import Qt

from gptviz.engine.sampling import SamplingSettings
from gptviz.qt import worker as w
from gptviz.qt.panes.generation import GenerationPane
from gptviz.qt.worker import WorkerHost


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
    host.resultReady.connect(lambda ch, payload: views.append(payload) if ch == w.GENERATION else None)
    host.resultReady.connect(lambda ch, payload: pane.set_generation(payload) if ch == w.GENERATION else None)
    pane.forceRequested.connect(lambda token_id: host.submit("force", token_id=token_id))
    pane.stepRequested.connect(lambda: host.submit("gen_step"))
    pane.undoRequested.connect(lambda: host.submit("undo"))
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
