"""The step-by-step view opens from a click on a query row and shows the model's own numbers for that row."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from gptviz.qt import commands as cmd  # noqa: E402


def test_clicking_a_query_row_opens_its_steps_and_they_follow_a_step(qtbot, main_window):
    window = main_window
    pane = window.attention_pane
    window.set_prompt("Every effort moves you forward")
    qtbot.waitUntil(lambda: pane.snapshot is not None and pane.snapshot.n_tokens == 5, timeout=30_000)
    pane.select(1, 3, average=False)
    pane.heatmap.cellClicked.emit(2, 0)  # what a click on row 2 of the map sends
    view = window.steps_view
    qtbot.waitUntil(lambda: view.steps is not None, timeout=30_000)
    steps = view.steps
    assert (steps.layer, steps.head, steps.query_position) == (1, 3, 2)
    np.testing.assert_allclose(
        steps.weights[:3], pane.displayed_matrix[2, :3], atol=1e-3
    )  # the map's own row
    assert view.table.rowCount() == 5
    assert view.table.item(3, 3).text() == "−∞ (future)" and view.table.item(1, 3).text() == "visible"
    assert float(view.table.item(1, 4).text()) == pytest.approx(steps.weights[1], abs=1e-4)
    assert "Layer 1, head 3, query token 2" in view.summary.text()

    pane.heatmap.cellClicked.emit(4, 0)  # the last token: the view follows the last token from now on
    qtbot.waitUntil(lambda: view.steps.query_position == 4, timeout=30_000)
    window.host.submit(cmd.GenStep())
    qtbot.waitUntil(lambda: view.steps.query_position == 5 and view.table.rowCount() == 6, timeout=30_000)
    view.close()
