"""Why this token: a right-click on a candidate opens its logit split into parts that add up to it."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
import torch  # noqa: E402

from gptviz.qt import commands as cmd  # noqa: E402


def test_why_splits_a_candidates_logit_and_the_parts_add_up(qtbot, main_window):
    window = main_window
    pane = window.generation_pane
    window.set_prompt("Every effort moves you")
    qtbot.waitUntil(lambda: pane.view is not None, timeout=30_000)
    window.host.submit(cmd.GenStep())
    qtbot.waitUntil(
        lambda: pane.view is not None and pane.view.last is not None and pane.table.rowCount() > 2,
        timeout=30_000,
    )
    chosen = int(pane.view.last.chosen_id)
    row = next(r for r in range(pane.table.rowCount()) if int(pane.table.item(r, 2).text()) != chosen)
    actions = pane.why_actions(row)
    assert actions[0][0].startswith("Why '") and actions[0][2] == -1
    assert (
        actions[1][0].endswith(f"and not the chosen '{pane.view.last.chosen_piece}'?")
        and actions[1][2] == chosen
    )
    _, token, against = actions[1]
    pane.whyRequested.emit(token, against)  # what the menu entry sends
    qtbot.waitUntil(
        lambda: window.why_view is not None and window.why_view.attribution is not None, timeout=30_000
    )
    result = window.why_view.attribution
    assert result.target_id == token and result.against_id == chosen
    assert sum(v for _, v in result.components) == pytest.approx(result.logit, abs=1e-3)
    session = window.host.worker.session
    with torch.no_grad():
        logits = session.model(torch.tensor([session.current_ids()[:-1]]))[0, -1]  # what chose the last token
    assert result.logit == pytest.approx(float(logits[token] - logits[chosen]), abs=1e-4)
    assert window.why_view.table.rowCount() == len(result.components)
    assert f"{result.logit:+.4f}" in window.why_view.summary.text()
    window.why_view.close()


def test_why_colours_the_input_tokens_and_runs_integrated_gradients_on_demand(qtbot, main_window):
    from gptviz.engine.attribution import input_attribution

    window = main_window
    pane = window.generation_pane
    window.set_prompt("Every effort moves you")
    qtbot.waitUntil(lambda: pane.view is not None, timeout=30_000)
    window.host.submit(cmd.GenStep())
    qtbot.waitUntil(lambda: pane.view is not None and pane.view.last is not None, timeout=30_000)
    token = int(pane.view.last.chosen_id)
    window.show_why(token)
    qtbot.waitUntil(
        lambda: window.why_view is not None and window.why_view.inputs is not None, timeout=30_000
    )
    view = window.why_view
    session = window.host.worker.session
    ids = session.current_ids()[:-1]
    want = input_attribution(session.model, ids, token, method="ixg")
    assert view.inputs.method == "ixg"
    assert view.inputs.scores == pytest.approx(want.scores, abs=1e-5)
    assert view.tokens.text().count("<span") == len(ids)
    view.ig_button.click()
    qtbot.waitUntil(lambda: view.inputs.method == "ig", timeout=60_000)
    gap = view.inputs.target_logit - view.inputs.baseline_logit
    assert sum(view.inputs.scores) == pytest.approx(gap, rel=0.01)
    assert "add up to" in view.inputs_title.text() and view.ig_button.isEnabled()
    view.close()
