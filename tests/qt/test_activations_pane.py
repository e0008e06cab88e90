"""ActivationsPane: the right layer's MLP data, the residual norms, the lens and LayerNorm tables, signals."""

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
from gptviz.qt.panes.activations import (  # noqa: E402
    LENS_LABEL_CHARS,
    ActivationsPane,
    format_probability,
    format_stat,
)
from gptviz.qt.token_labels import token_label  # noqa: E402
from gptviz.tokenizer import default_tokenizer  # noqa: E402

CFG = GPTConfig(context_length=32, emb_dim=32, n_heads=4, n_layers=3, drop_rate=0.0)
TEXT = "Every effort moves you forward, said the old man."


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPTModel(CFG).eval()


@pytest.fixture(scope="module")
def ids():
    return default_tokenizer().encode(TEXT)


@pytest.fixture(scope="module")
def snapshot(model, ids):
    return inspect_tokens(model, default_tokenizer(), ids, mlp_layer=2, lens_position=3, lens_top_k=5)


@pytest.fixture
def pane(qtbot, snapshot):
    widget = ActivationsPane()
    widget.resize(1200, 700)
    qtbot.addWidget(widget)
    widget.set_snapshot(snapshot)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_mlp_heatmap_and_histogram_show_the_chosen_layer(pane, snapshot, model, ids):
    with torch.no_grad(), capture(model, ["blocks.2.ff.hook_post"]) as taps:
        model(torch.tensor([ids]))  # (1, T, V)
    expected = taps["blocks.2.ff.hook_post"][0].numpy()  # (T, 4D)
    assert pane.layer_spin.value() == 2
    np.testing.assert_array_equal(pane.mlp.matrix, snapshot.mlp_post)
    np.testing.assert_allclose(pane.mlp.matrix, expected, rtol=1e-5, atol=1e-6)
    assert pane.mlp.matrix.shape == (len(ids), 4 * CFG.emb_dim)
    assert pane.histogram_counts.sum() == expected.size
    assert pane.histogram_edges[0] == pytest.approx(expected.min()) and pane.histogram_edges[
        -1
    ] == pytest.approx(expected.max())
    assert "block 2" in pane.mlp_title.text()


def test_residual_heatmap_shows_norms_per_layer_and_token(pane, snapshot):
    np.testing.assert_array_equal(pane.residual.matrix, snapshot.residual_norms)
    assert pane.residual.row_labels == ["embed", "block 0", "block 1", "block 2"]
    assert pane.residual.col_labels == [token_label(p) for p in snapshot.pieces]
    assert pane.residual.col_labels[1] == "\u00b7effort"  # a space shows as ·, as in the Tokens pane
    assert pane.residual.marked_column == 3


def test_lens_table_cells_show_the_top_tokens_and_their_probabilities(pane, snapshot):
    table = pane.lens_table
    assert (table.rowCount(), table.columnCount()) == (CFG.n_layers + 1, 5)
    for row in range(table.rowCount()):
        for col in range(table.columnCount()):
            text = table.item(row, col).text()
            assert text.split("\n")[0] == token_label(snapshot.lens_pieces[row][col], LENS_LABEL_CHARS)
            assert format_probability(float(snapshot.lens_probs[row, col])) in text
    assert table.verticalHeaderItem(CFG.n_layers).text() == "block 2 (output)"
    assert "token 3" in pane.lens_title.text()
    assert format_probability(0.3141) == "0.314" and format_probability(2.04e-5) == "2.0e-05"


def test_layernorm_table_shows_output_mean_zero_and_variance_near_one(pane, snapshot):
    table = pane.ln_table
    assert (table.rowCount(), table.columnCount()) == (CFG.n_layers, 8)
    headers = [table.horizontalHeaderItem(c).text() for c in range(8)]
    assert headers[:4] == ["norm1\nin \u03bc", "\nin \u03c3\u00b2", "\nout \u03bc", "\nout \u03c3\u00b2"]
    assert headers[4] == "norm2\nin \u03bc" and table.horizontalHeaderItem(7).toolTip() == (
        "norm2 output: var over the features"
    )
    for layer in range(CFG.n_layers):
        for col in (2, 6):  # norm1 / norm2 output mean
            assert table.item(layer, col).text() == "0.00"
        for col in (3, 7):  # output variance: var / (var + eps), near 1 even at random init
            value = float(snapshot.ln_stats[layer, col // 4, 1, 1, 3])
            assert table.item(layer, col).text() == f"{value:.2f}"
            assert float(table.item(layer, col).text()) > 0.9
            assert table.item(layer, col).toolTip().endswith(f"{value:.6g}")
    assert table.item(1, 1).text() == f"{float(snapshot.ln_stats[1, 0, 0, 1, 3]):.2f}"


def test_layernorm_table_fits_the_default_dock_without_scrolling(qtbot, snapshot):
    """797 x 592 is the Activations dock in the default 1600 x 1000 window: all eight columns show."""
    widget = ActivationsPane()
    widget.resize(797, 592)
    qtbot.addWidget(widget)
    widget.set_snapshot(snapshot)
    widget.show()
    qtbot.waitExposed(widget)
    table = widget.ln_table
    assert table.horizontalHeader().length() <= table.viewport().width()
    assert not table.horizontalScrollBar().isVisible()


def test_format_stat_is_short():
    assert [format_stat(v) for v in (0.0, -0.0004, -0.0377, 1.9223, 15.97, 153.4, 2.1e5)] == [
        "0.00",
        "0.00",
        "-0.04",
        "1.92",
        "15.97",
        "153",
        "2.1e+05",
    ]


def test_a_newline_token_reads_as_the_tokens_pane_shows_it(qtbot, model):
    """Axis labels, the lens cells and the titles use the shared convention: a newline is ↵, never \\n."""
    tokenizer = default_tokenizer()
    ids = tokenizer.encode("one\ntwo\tthree")
    snap = inspect_tokens(model, tokenizer, ids, mlp_layer=0, lens_position=1, lens_top_k=3)
    widget = ActivationsPane()
    qtbot.addWidget(widget)
    widget.set_snapshot(snap)
    assert list(snap.pieces)[1] == "\n"
    assert widget.residual.col_labels[1] == "\u21b5" == widget.mlp.row_labels[1]
    assert "\u2192" in "".join(widget.residual.col_labels)  # the tab
    assert "'\u21b5'" in widget.lens_title.text() and "\\n" not in widget.lens_title.text()
    assert widget.residual._col_axis.labels[1] == "\u21b5"  # what the axis draws


def test_layer_spin_box_asks_for_another_mlp_layer(qtbot, pane):
    with qtbot.waitSignal(pane.mlpLayerRequested) as blocker:
        pane.layer_spin.setValue(0)
    assert blocker.args == [0]


def test_position_selector_and_residual_click_ask_for_another_lens_position(qtbot, pane, snapshot):
    with qtbot.waitSignal(pane.lensPositionRequested) as blocker:
        pane.position_spin.setValue(5)
    assert blocker.args == [5]
    assert pane.residual.marked_column == 5 and snapshot.pieces[5] in pane.position_label.text()
    assert (
        "token 5" in pane.ln_title.text()
    )  # LayerNorm stats follow at once: every position is in the snapshot
    view = pane.residual
    qtbot.wait(10)
    scene = view.view_box.mapViewToScene(QPointF(7.5, 1.5))
    with qtbot.waitSignal(pane.lensPositionRequested) as blocker:
        qtbot.mouseClick(
            view.plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=view.plot_widget.mapFromScene(scene)
        )
    assert blocker.args == [7]
    assert pane.selected_position == 7


def test_a_new_snapshot_emits_no_requests(qtbot, pane, model, ids):
    other = inspect_tokens(model, default_tokenizer(), ids[:4], mlp_layer=0, lens_position=-1)
    with qtbot.assertNotEmitted(pane.mlpLayerRequested), qtbot.assertNotEmitted(pane.lensPositionRequested):
        pane.set_snapshot(other)
    assert pane.layer_spin.value() == 0 and pane.position_spin.value() == 3
    assert pane.position_spin.maximum() == 3


def test_export_data(pane, snapshot):
    data = pane.export_data()
    np.testing.assert_array_equal(data["mlp_post"], snapshot.mlp_post)
    np.testing.assert_array_equal(data["lens_probs"], snapshot.lens_probs)
    np.testing.assert_array_equal(data["residual_norms"], snapshot.residual_norms)
    assert int(data["mlp_layer"]) == 2 and int(data["lens_position"]) == 3
    assert all(isinstance(v, np.ndarray) for v in data.values())
    header, rows = pane.export_table()
    assert header == ["position", "layer", "rank", "token_id", "token", "probability"]
    assert len(rows) == (CFG.n_layers + 1) * 5
    assert rows[-5] == [
        3,
        "block 2",
        1,
        int(snapshot.lens_ids[-1, 0]),
        snapshot.lens_pieces[-1][0],
        float(snapshot.lens_probs[-1, 0]),
    ]


def test_histogram_bins_every_finite_value_like_numpy():
    from gptviz.qt.panes.mlp_histogram import histogram

    rng = np.random.default_rng(0)
    values = rng.standard_normal((300, 512)).astype(np.float32)  # (T, 4D)
    counts, edges = histogram(values, 80)
    ref_counts, ref_edges = np.histogram(values, bins=80)
    np.testing.assert_allclose(edges, ref_edges, rtol=1e-6, atol=1e-6)
    assert counts.sum() == values.size
    assert np.abs(counts - ref_counts).max() <= 2  # a value on an edge may fall in the neighbouring bin
    values[0, 0], values[1, 1] = np.nan, np.inf
    counts, edges = histogram(values, 80)
    assert counts.sum() == values.size - 2 and np.isfinite(edges).all()
    counts, edges = histogram(np.full((3, 4), 2.0, dtype=np.float32), 10)
    assert counts.sum() == 12 and edges[0] == 2.0


def test_a_long_token_beside_the_position_box_is_shortened_and_moves_nothing(qtbot, model):
    """Play shows a new token at every redraw: the label beside the position box keeps its width (a long
    token is shortened with …, whole in the tooltip), so the controls never reflow and the views never jump."""
    tokenizer = default_tokenizer()
    long_ids = tokenizer.encode("a rawdownloadcloneembedreportprint")  # one 32-character token at the end
    short = inspect_tokens(model, tokenizer, tokenizer.encode("a b"), lens_position=-1)
    long = inspect_tokens(model, tokenizer, long_ids, lens_position=-1)
    widget = ActivationsPane()
    widget.resize(520, 700)  # narrow: the controls wrap onto two rows, where a reflow would show
    qtbot.addWidget(widget)
    widget.set_snapshot(short)
    widget.show()
    qtbot.waitExposed(widget)
    width, top = (
        widget.position_label.width(),
        widget.residual_title.mapTo(widget, widget.rect().topLeft()).y(),
    )
    widget.set_snapshot(long)
    qtbot.wait(20)
    piece = long.pieces[-1]
    assert len(token_label(piece)) > 14  # a long token indeed
    label = widget.position_label
    assert label.text().endswith("\u2026")  # shortened to fit
    assert label.fontMetrics().horizontalAdvance(label.text()) <= label.width()
    assert token_label(piece) in widget.position_label.toolTip()
    assert widget.position_label.width() == width
    assert widget.residual_title.mapTo(widget, widget.rect().topLeft()).y() == top


def test_the_controls_keep_one_row_at_the_width_the_pane_gets_at_1280x720(qtbot, model):
    """At 1280 x 720 the default layout gives the pane about 636 pixels: its controls fit on one row, so
    the views below get every other pixel, whatever token the lens looks at."""
    tokenizer = default_tokenizer()
    widget = ActivationsPane()
    widget.resize(636, 380)
    qtbot.addWidget(widget)
    widget.set_snapshot(
        inspect_tokens(model, tokenizer, tokenizer.encode("a rawdownloadcloneembedreportprint"))
    )
    widget.show()
    qtbot.waitExposed(widget)
    qtbot.wait(20)
    assert widget.sort_box.geometry().top() == widget.layer_spin.geometry().top()
