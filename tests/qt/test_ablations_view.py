"""Model › Ablations… (add a head, a neuron or a layer; switch each back on; undo), the MLP map's right-click
on a neuron, and Model › Embeddings… with a token chip's right-click: through the real worker, checked
against the engine's own numbers."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gptviz.engine.ablation_spec import Ablation  # noqa: E402
from gptviz.engine.embeddings import embedding_map, nearest_neighbours  # noqa: E402
from gptviz.model.hooks import hook_points  # noqa: E402
from gptviz.qt import commands as cmd  # noqa: E402


def _wait_ablations(qtbot, window, wanted):
    qtbot.waitUntil(lambda: window.causal.ablations == tuple(wanted), timeout=30_000)


def idle(qtbot, window):
    """Wait until the worker has answered everything asked (it owns the model; read it only then)."""
    done = []
    window.host.resultReady.connect(lambda ch, _p: done.append(ch) if ch == "tokens" else None)
    window.request_tokens("x")
    qtbot.waitUntil(lambda: bool(done), timeout=30_000)


def test_the_list_adds_removes_and_undoes_ablations(qtbot, main_window):
    window = main_window
    window.set_prompt("Every effort moves you")
    window.host.submit(cmd.GenStep())
    qtbot.waitUntil(
        lambda: window.generation_pane.view is not None and window.generation_pane.view.last, timeout=30_000
    )
    view = window.causal.show_ablations()
    assert view.layer.maximum() == 1 and view.isVisible()  # the qt-tiny model: 2 layers, 4 heads, 128 neurons
    view.kind.setCurrentIndex(1)  # MLP neuron
    assert view.index.maximum() == 127 and view.index_label.text() == "neuron"
    view.layer.setValue(1)
    view.index.setValue(5)
    view.add_button.click()
    neuron = Ablation("neuron", 1, 5)
    _wait_ablations(qtbot, window, [neuron])
    assert view.table.rowCount() == 1 and "neuron 5 of layer 1" in view.table.item(0, 0).text()
    view.kind.setCurrentIndex(0)  # head
    view.layer.setValue(0)
    view.index.setValue(3)
    view.mode.setCurrentIndex(1)  # its mean over the text
    view.add_button.click()
    head = Ablation("head", 0, 3, "mean")
    _wait_ablations(qtbot, window, [neuron, head])
    # The Generation pane compares with the whole model while anything is off.
    pane = window.generation_pane
    qtbot.waitUntil(lambda: "0.3 (mean)" in pane.ablation_label.text(), timeout=30_000)
    assert pane.ablation_label.isVisibleTo(pane) and "1.mlp.5" in pane.ablation_label.text()
    idle(qtbot, window)  # the worker computes the whole model's logits with the edits set aside
    session = window.host.worker.session
    points = hook_points(session.model)
    assert points["blocks.1.ff.hook_post"].edit is not None and points["blocks.0.attn.hook_head_out"].edit

    view.table.cellWidget(0, 2).click()  # switch the neuron back on
    _wait_ablations(qtbot, window, [head])
    idle(qtbot, window)
    assert points["blocks.1.ff.hook_post"].edit is None
    view.undo()  # the neuron is off again
    _wait_ablations(qtbot, window, [neuron, head])
    view.clear_button.click()
    _wait_ablations(qtbot, window, [])
    qtbot.waitUntil(lambda: not pane.ablation_label.isVisibleTo(pane), timeout=30_000)
    idle(qtbot, window)
    assert all(p.edit is None for p in points.values())
    assert view.empty.isVisibleTo(view)
    assert window.attention_pane.ablation_bar.layout().indexOf(window.causal.strip_button) >= 0


def test_a_right_click_on_an_mlp_neuron_switches_it_off(qtbot, main_window):
    from PySide6.QtCore import QPointF, Qt

    window = main_window
    acts = window.activations_pane
    qtbot.waitUntil(lambda: acts.mlp.matrix.size > 0, timeout=30_000)
    acts.resize(900, 700)
    qtbot.wait(50)
    column = 7
    neuron = int(acts.mlp.col_labels[column])
    centre = acts.mlp.view_box.mapViewToScene(QPointF(column + 0.5, 0.5))

    class Click:
        def button(self):
            return Qt.MouseButton.RightButton

        def scenePos(self):  # noqa: N802 (pyqtgraph's name)
            return centre

        def screenPos(self):  # noqa: N802
            return QPointF(10, 10)

        def accept(self):
            pass

    window.causal._mlp_click(Click())
    texts = [a.text() for a in window.causal._menu.actions()]
    assert texts[0] == f"Switch off neuron {neuron} of layer {acts.layer_spin.value()}'s MLP (zero)"
    window.causal._menu.actions()[0].trigger()
    _wait_ablations(qtbot, window, [Ablation("neuron", acts.layer_spin.value(), neuron)])
    assert window.causal.neuron_actions(acts.layer_spin.value(), neuron)[0][0].startswith("Switch neuron")


def test_embeddings_window_shows_the_engines_neighbours_and_map(qtbot, main_window):
    window = main_window
    session = window.host.worker.session
    view = window.causal.show_embeddings(262)
    qtbot.waitUntil(lambda: view.neighbours is not None, timeout=30_000)
    want = nearest_neighbours(session.model, session.tokenizer, 262, 10)
    np.testing.assert_array_equal(view.neighbours.ids, want.ids)
    assert view.table.rowCount() == 10 and view.table.item(0, 1).text() == str(int(want.ids[0]))
    found = embedding_map(session.model, session.tokenizer, session.current_ids(), 5)
    np.testing.assert_allclose(view.map.coords, found.coords, atol=1e-5)
    assert len(view.labels) == len(found.ids)

    view.token.setText(" the cat")  # two tokens: a one-line error in the view, nothing else changes
    view._ask()
    qtbot.waitUntil(lambda: "exactly one" in view.summary.text(), timeout=30_000)

    # A token chip's right-click asks about that token, with the Tokens pane's text as the map.
    tokens = window.tokens_pane
    tokens.set_text("cats and dogs")
    qtbot.waitUntil(lambda: tokens.chips.chip_count() == 3, timeout=30_000)
    chip = tokens.chips.chip(2)
    window.causal._chip_menu(chip.rect.center())
    window.causal._menu.actions()[0].trigger()
    qtbot.waitUntil(lambda: view.neighbours.token_id == chip.token_id, timeout=30_000)
    assert view.ids_for_map == tuple(tokens.tokens_view.ids.tolist())
    assert view.map.ids[:3].tolist() == tokens.tokens_view.ids.tolist()
    torch.testing.assert_close(
        torch.from_numpy(view.neighbours.cosine),
        torch.from_numpy(nearest_neighbours(session.model, session.tokenizer, chip.token_id, 10).cosine),
    )
