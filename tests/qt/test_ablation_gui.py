"""Switching heads off from the attention overview: the menu, the worker, every pane follows, and back on."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402

from gptviz.engine.ablation_spec import Ablation  # noqa: E402
from gptviz.engine.inspection import inspect_tokens  # noqa: E402


def _settled(qtbot, window, predicate):
    qtbot.waitUntil(lambda: window.attention_pane.snapshot is not None and predicate(), timeout=30_000)


def test_right_click_menu_switches_a_head_off_and_every_pane_follows(qtbot, main_window):
    window = main_window
    pane = window.attention_pane
    window.set_prompt("Every effort moves you forward")
    _settled(qtbot, window, lambda: pane.snapshot.n_tokens == 5)
    before = pane.snapshot
    texts = [text for text, _ in pane.ablation_actions(1, 2)]
    assert texts == [
        "Switch off head 1.2 (output zero)",
        "Switch off head 1.2 (its mean over this text)",
        "Switch off all of layer 1's attention",
    ]
    pane._tile_menu(1, 2, pane.mapToGlobal(pane.rect().center()))
    pane._menu.actions()[0].trigger()  # what a user's click on the first entry does
    _settled(
        qtbot, window, lambda: pane.ablations == (Ablation("head", 1, 2),) and pane.snapshot is not before
    )
    qtbot.waitUntil(
        lambda: not np.allclose(pane.snapshot.residual_norms, before.residual_norms), timeout=30_000
    )
    assert pane.ablation_bar.isVisibleTo(pane) and "1.2" in pane.ablation_label.text()
    assert pane.overview.crossed == {(1, 2)}
    session = window.host.worker.session
    oracle = inspect_tokens(session.model, session.tokenizer, session.current_ids())  # ablated model
    np.testing.assert_allclose(pane.snapshot.residual_norms, oracle.residual_norms, rtol=1e-5, atol=1e-5)
    assert window.activations_pane.snapshot is pane.snapshot  # the Activations pane shows the same run

    assert [t for t, _ in pane.ablation_actions(1, 2)][0] == "Switch head 1.2 back on"
    pane.restore_button.click()
    qtbot.waitUntil(lambda: pane.ablations == () and not pane.ablation_bar.isVisibleTo(pane), timeout=30_000)
    qtbot.waitUntil(
        lambda: np.allclose(pane.snapshot.residual_norms, before.residual_norms, atol=1e-5), timeout=30_000
    )
    assert pane.overview.crossed == set()


def test_a_right_click_on_a_tile_asks_for_its_menu(qtbot, main_window):
    from PySide6.QtCore import QPointF, Qt

    pane = main_window.attention_pane
    _settled(qtbot, main_window, lambda: pane.snapshot.n_tokens > 0)
    overview = pane.overview
    overview.resize(400, 400)
    qtbot.wait(50)
    centre = overview.view_box.mapViewToScene(QPointF(2.5, 1.5))  # head 2 of layer 1

    class Click:
        def __init__(self, button):
            self._button = button
            self.accepted = False

        def button(self):
            return self._button

        def scenePos(self):  # noqa: N802 (pyqtgraph's name)
            return centre

        def screenPos(self):  # noqa: N802
            return QPointF(10, 10)

        def accept(self):
            self.accepted = True

    asked, opened = [], []
    overview.tileMenuRequested.connect(lambda layer, head, _where: asked.append((layer, head)))
    overview.tileClicked.connect(lambda layer, head: opened.append((layer, head)))
    overview._on_click(Click(Qt.MouseButton.RightButton))
    overview._on_click(Click(Qt.MouseButton.LeftButton))
    assert asked == [(1, 2)] and opened == [(1, 2)]
