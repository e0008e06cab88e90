"""AttentionPane: the detail heatmap shows the engine's weights for the clicked head, and the options work."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import QPointF, Qt  # noqa: E402

from gptviz.config import GPTConfig  # noqa: E402
from gptviz.engine.inspection import inspect_tokens  # noqa: E402
from gptviz.model import GPTModel  # noqa: E402
from gptviz.model.hooks import capture  # noqa: E402
from gptviz.qt.panes.attention import (  # noqa: E402
    AttentionPane,
    causal_display_mask,
    causal_mask_runs,
    renormalise_without_first,
    tile_thumbnails,
)
from gptviz.qt.token_labels import token_label  # noqa: E402
from gptviz.qt.widgets.heatmap import LOG_FLOOR, mask_runs  # noqa: E402
from gptviz.tokenizer import default_tokenizer  # noqa: E402

CFG = GPTConfig(context_length=32, emb_dim=32, n_heads=4, n_layers=3, drop_rate=0.0)
TEXT = "Every effort moves you forward, said the old man."


@pytest.fixture(scope="module")
def engine():
    """(snapshot, oracle) where the oracle is the (L, H, T, T) weights from a direct capture() run."""
    torch.manual_seed(0)
    model = GPTModel(CFG).eval()
    tokenizer = default_tokenizer()
    ids = tokenizer.encode(TEXT)
    with torch.no_grad(), capture(model, r"blocks\.\d+\.attn\.hook_weights") as taps:
        model(torch.tensor([ids]))  # (1, T, V)
    oracle = torch.stack([taps[f"blocks.{i}.attn.hook_weights"][0] for i in range(CFG.n_layers)]).numpy()
    return inspect_tokens(model, tokenizer, ids), oracle


@pytest.fixture
def pane(qtbot, engine):
    widget = AttentionPane()
    widget.resize(1000, 500)
    qtbot.addWidget(widget)
    widget.set_snapshot(engine[0])
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def click_tile(qtbot, pane: AttentionPane, layer: int, head: int) -> None:
    overview = pane.overview
    scene = overview.view_box.mapViewToScene(QPointF(head + 0.5, layer + 0.5))
    qtbot.mouseClick(overview.viewport(), Qt.MouseButton.LeftButton, pos=overview.mapFromScene(scene))


def test_clicking_a_thumbnail_opens_that_heads_weights(qtbot, pane, engine):
    snapshot, oracle = engine
    with qtbot.waitSignal(pane.selectionChanged) as blocker:
        click_tile(qtbot, pane, 2, 1)
    assert blocker.args == [2, 1]
    assert (pane.selected_layer, pane.selected_head) == (2, 1)
    assert (pane.layer_spin.value(), pane.head_spin.value()) == (2, 1)
    np.testing.assert_array_equal(pane.displayed_matrix, snapshot.attention[2, 1])
    np.testing.assert_allclose(pane.displayed_matrix, oracle[2, 1], rtol=1e-3, atol=1e-7)
    assert pane.heatmap.row_labels == [token_label(p) for p in snapshot.pieces] == pane.heatmap.col_labels
    assert pane.overview.highlight.rect().topLeft() == QPointF(1, 2)


def test_a_newline_token_reads_as_in_the_tokens_pane(qtbot):
    """The heatmap's axes show a newline as ↵ and a leading space as ·, as the Tokens pane's chips do."""
    torch.manual_seed(0)
    model = GPTModel(CFG).eval()
    tokenizer = default_tokenizer()
    snap = inspect_tokens(model, tokenizer, tokenizer.encode("Hi\n there"))
    widget = AttentionPane()
    qtbot.addWidget(widget)
    widget.set_snapshot(snap)
    assert list(snap.pieces) == ["Hi", "\n", " there"]
    assert widget.heatmap.row_labels == ["Hi", "\u21b5", "\u00b7there"] == widget.heatmap.col_labels
    assert widget.heatmap._row_axis.labels == ["Hi", "\u21b5", "\u00b7there"]


def test_spin_boxes_select_layer_and_head(pane, engine):
    snapshot, oracle = engine
    pane.layer_spin.setValue(1)
    pane.head_spin.setValue(3)
    assert (pane.selected_layer, pane.selected_head) == (1, 3)
    np.testing.assert_allclose(pane.displayed_matrix, oracle[1, 3], rtol=1e-3, atol=1e-7)
    assert pane.layer_spin.maximum() == CFG.n_layers - 1 and pane.head_spin.maximum() == CFG.n_heads - 1
    assert "Layer 1, head 3" in pane.title.text()


def test_average_of_heads(pane, engine):
    _, oracle = engine
    pane.select(2, 0)
    pane.average_box.setChecked(True)
    assert pane.selected_head is None and not pane.head_spin.isEnabled()
    np.testing.assert_allclose(pane.displayed_matrix, oracle[2].mean(axis=0), rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(pane.displayed_matrix.sum(axis=1), 1.0, atol=1e-3)
    pane.layer_spin.setValue(0)  # the average follows the layer
    np.testing.assert_allclose(pane.displayed_matrix, oracle[0].mean(axis=0), rtol=1e-3, atol=1e-7)
    assert pane.overview.highlight.rect().width() == CFG.n_heads


def test_skip_first_token_renormalises_rows_over_keys_one_to_t(pane, engine):
    _, oracle = engine
    pane.select(1, 2, average=False)
    pane.skip_first_box.setChecked(True)
    shown = pane.displayed_matrix
    T = shown.shape[0]
    assert np.all(shown[:, 0] == 0.0) and np.all(shown[0] == 0.0)
    np.testing.assert_allclose(shown[1:].sum(axis=1), 1.0, atol=1e-5)
    rest = oracle[1, 2][1:, 1:]  # (T-1, T-1): queries 1.., keys 1..
    np.testing.assert_allclose(shown[1:, 1:], rest / rest.sum(axis=1, keepdims=True), rtol=2e-3, atol=1e-6)
    mask = pane.heatmap.hatch_mask
    assert mask[:, 0].all() and mask[np.triu_indices(T, k=1)].all()  # the skipped key is hatched too
    assert not mask[1:, 1:][np.tril_indices(T - 1)].any()
    np.testing.assert_array_equal(
        pane.overview.image.image, tile_thumbnails(pane.snapshot.attention.thumbnails_skip_first)
    )


def test_log_colour_scale(pane):
    pane.select(0, 1, average=False)
    pane.log_box.setChecked(True)
    assert pane.heatmap.log_scale
    shown = pane.displayed_matrix
    drawn = pane.heatmap.display_matrix
    lower = np.tril(np.ones(shown.shape, dtype=bool))
    np.testing.assert_allclose(drawn[lower], np.log10(np.maximum(shown[lower], LOG_FLOOR)), rtol=1e-6)
    np.testing.assert_allclose(
        pane.overview.image.image,
        np.log10(np.maximum(tile_thumbnails(pane.snapshot.attention.thumbnails), LOG_FLOOR)),
    )


def test_mask_on_hatches_future_keys_and_off_shows_the_zero_weights(pane):
    pane.select(0, 0, average=False)
    T = pane.displayed_matrix.shape[0]
    upper = np.triu(np.ones((T, T), dtype=bool), k=1)
    assert pane.mask_box.isChecked()
    np.testing.assert_array_equal(pane.heatmap.hatch_mask, upper)
    pane.mask_box.setChecked(False)
    assert pane.heatmap.hatch_mask is None
    assert (pane.heatmap.display_matrix[upper] == 0.0).all()


def test_overview_draws_every_head_once(pane, engine):
    snapshot, _ = engine
    tiles = pane.overview.image.image
    S = snapshot.attention.thumbnails.shape[-1]
    assert tiles.shape == (CFG.n_layers * S, CFG.n_heads * S)
    np.testing.assert_array_equal(tiles[2 * S : 3 * S, 1 * S : 2 * S], snapshot.attention.thumbnails[2, 1])


def test_export_data_and_a_smaller_snapshot_clamps_the_selection(qtbot, pane, engine):
    snapshot, _ = engine
    pane.select(2, 3, average=False)
    data = pane.export_data()
    np.testing.assert_array_equal(data["attention"], snapshot.attention[2, 3])
    assert int(data["layer"]) == 2 and int(data["head"]) == 3
    np.testing.assert_array_equal(data["token_ids"], snapshot.token_ids)
    header, rows = pane.export_table()
    assert header[1] == f"0:{snapshot.pieces[0]}" and len(rows) == snapshot.n_tokens
    assert rows[4][0] == f"4:{snapshot.pieces[4]}" and rows[4][1:] == snapshot.attention[2, 3][4].tolist()
    torch.manual_seed(1)
    small = GPTModel(CFG.replace(n_layers=1, n_heads=2))
    pane.set_snapshot(inspect_tokens(small, default_tokenizer(), [1, 2, 3]))
    assert (pane.selected_layer, pane.selected_head) == (0, 1)
    assert pane.displayed_matrix.shape == (3, 3)


def test_renormalise_without_first_handles_all_weight_on_the_first_token():
    weights = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.25, 0.25]], dtype=np.float32)
    out = renormalise_without_first(weights)
    np.testing.assert_array_equal(out, [[0, 0, 0], [0, 0, 0], [0, 0.5, 0.5]])


@pytest.mark.parametrize("skip_first", [False, True])
def test_the_detail_maps_mask_runs_are_the_runs_its_mask_holds(skip_first):
    """The pane hands the heatmap the causal mask's runs without scanning the cells; they must be
    exactly what scanning finds, at every size (one token, two, and larger)."""
    for n_tokens in (1, 2, 3, 8, 33):
        found = mask_runs(causal_display_mask(n_tokens, skip_first))
        given = causal_mask_runs(n_tokens, skip_first)
        for a, b in zip(found, given, strict=True):
            np.testing.assert_array_equal(a, b)
