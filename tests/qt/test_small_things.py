"""Issue 10's small things, each as a user would see it: spaces in the generated text, colour and mean p
from the model's own probability, no stale selection or hover readout, the zoom kept across steps, one
"cut" count, partial UTF-8 bytes as ‹e2 80›."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QRectF

from gptviz.engine.sampling_settings import SamplingSettings
from gptviz.qt.panes.generation import GenerationPane
from gptviz.qt.panes.generation_text import probability_color
from gptviz.qt.widgets.heatmap import HINT, HeatmapView
from gptviz.qt.widgets.labels import display_token


@pytest.fixture
def pane(qtbot):
    widget = GenerationPane()
    widget.resize(900, 600)
    qtbot.addWidget(widget)
    widget.show()
    return widget


def _with_last(view, **changes):
    return dataclasses.replace(view, last=dataclasses.replace(view.last, **changes))


def test_generated_spaces_show_as_dots(pane, session):
    view = session.gen_step()
    view = dataclasses.replace(view, new_pieces=(" ",))
    pane.set_generation(view)
    text = pane.text.toPlainText()
    assert text.endswith("·"), text  # the prompt, then the space token made visible


def test_colour_and_mean_p_follow_the_probability_before_the_filters(pane, session):
    session.set_sampling(SamplingSettings(temperature=0.0))  # greedy: p after the filters is 1.00
    view = session.gen_step()
    assert float(view.new_probs[0]) == pytest.approx(1.0)
    raw = view.last.chosen_prob_raw
    assert raw < 0.9
    pane.set_generation(view)
    assert f"mean p of the chosen tokens {raw:.2f}" in pane.status.text()
    assert probability_color(raw).name() in pane.text.toHtml()
    assert probability_color(1.0).name() not in pane.text.toHtml()
    rows = pane.table_probabilities()  # the table keeps both columns
    assert any(before == pytest.approx(raw) and after == pytest.approx(1.0) for _, before, after in rows)


def test_a_forced_rows_selection_does_not_stay_on_the_next_step(pane, session):
    view = session.gen_step()
    pane.set_generation(view)
    pane.table.selectRow(3)
    assert pane.table.selectedItems()
    pane.set_generation(session.gen_step())
    assert not pane.table.selectedItems()


def test_cut_count_is_the_text_less_the_context_as_in_the_attention_pane(pane, session):
    context = session.model.cfg.context_length
    session.set_prompt("x " * (context + 5))
    view = session.gen_step()
    pane.context_length = context
    pane.set_generation(view)
    total = len(view.prompt_ids) + len(view.new_ids)
    assert total > context
    assert f"(first {total - context} cut to fit the context)" in pane.status.text()


def test_partial_utf8_bytes_read_as_hex_in_brackets(pane, session):
    assert display_token("\\xe2\\x80") == "\u2039e2 80\u203a"
    assert display_token("\\x99") == "\u2039" + "99\u203a"
    assert display_token(" the") == "\u00b7the"
    view = session.gen_step()
    rows = list(view.candidates)
    rows[1] = dataclasses.replace(rows[1], piece="\\xe2\\x80")
    pane.set_generation(dataclasses.replace(view, candidates=tuple(rows)))
    assert pane.table.item(1, 1).text() == "\u2039e2 80\u203a"


@pytest.fixture
def heatmap(qtbot):
    view = HeatmapView(row_name="query", col_name="key")
    view.resize(500, 400)
    qtbot.addWidget(view)
    view.show()
    return view


def test_zoom_is_kept_when_a_step_adds_a_row(heatmap, qtbot):
    heatmap.set_matrix(np.random.default_rng(0).random((20, 20)).astype(np.float32))
    heatmap.view_box.setRange(QRectF(0, 0, 5, 5), padding=0)
    qtbot.wait(10)
    heatmap.set_matrix(np.random.default_rng(1).random((21, 21)).astype(np.float32))
    (x0, x1), _ = heatmap.view_box.viewRange()
    assert x1 - x0 < 8  # still zoomed in, not the whole 21 columns
    heatmap.view_box.setRange(QRectF(0, 0, 21, 21), padding=0)
    heatmap.set_matrix(np.zeros((22, 22), dtype=np.float32))
    (x0, x1), _ = heatmap.view_box.viewRange()
    assert x1 - x0 >= 21.5  # showing everything: the new column comes into view


def test_hover_readout_follows_new_values_and_resets_when_the_cell_is_gone(heatmap, qtbot):
    heatmap.set_matrix(np.full((4, 4), 29.84, dtype=np.float32))
    qtbot.wait(10)
    scene = heatmap.view_box.mapViewToScene(QPointF(3.5, 3.5))
    heatmap._on_mouse_moved(scene)
    assert "29.8" in heatmap.readout.text()
    heatmap.set_matrix(np.full((4, 4), 1.5, dtype=np.float32))  # another model, same shape
    assert "1.5" in heatmap.readout.text() and "29.8" not in heatmap.readout.text()
    heatmap.set_matrix(np.zeros((2, 2), dtype=np.float32))
    assert heatmap.readout.text() == HINT
