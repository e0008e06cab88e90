"""HeatmapView: the data it draws, its colour range, log scale, mask, hover text and token labels."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import QPointF, QRectF, Qt  # noqa: E402

from gptviz.qt.widgets.heatmap import LOG_FLOOR, HeatmapView, display_label, mask_runs, nice_step  # noqa: E402


@pytest.fixture
def view(qtbot):
    widget = HeatmapView()
    widget.resize(500, 400)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def causal(T: int, seed: int = 0) -> np.ndarray:
    weights = np.tril(np.random.default_rng(seed).random((T, T))).astype(np.float32)  # (T, T)
    return weights / weights.sum(axis=1, keepdims=True)


def click_cell(qtbot, view: HeatmapView, row: int, col: int) -> None:
    scene = view.view_box.mapViewToScene(QPointF(col + 0.5, row + 0.5))
    qtbot.mouseClick(
        view.plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=view.plot_widget.mapFromScene(scene)
    )


def test_set_matrix_keeps_float32_data_and_draws_it_with_fixed_levels(view):
    matrix = causal(6).astype(np.float64)
    view.set_matrix(matrix, list("abcdef"), list("ABCDEF"))
    assert view.matrix.dtype == np.float32 and view.matrix.flags.c_contiguous
    np.testing.assert_allclose(view.matrix, matrix, rtol=1e-7)
    np.testing.assert_array_equal(view.image.image, view.matrix)
    assert view.levels == (0.0, 1.0)
    assert view.image.getLevels() == pytest.approx((0.0, 1.0))
    assert view.row_labels == list("abcdef") and view.col_labels == list("ABCDEF")
    assert view.lut.shape == (256, 3)


def test_autoscale_and_explicit_levels(qtbot):
    view = HeatmapView(levels=None)
    qtbot.addWidget(view)
    view.set_matrix(np.array([[2.0, 5.0], [3.0, 4.0]]))
    assert view.levels == (2.0, 5.0)
    assert view.row_labels == ["0", "1"]
    view.set_matrix(np.array([[2.0, 5.0], [3.0, 4.0]]), levels=(0.0, 10.0))
    assert view.levels == (0.0, 10.0)


def test_log_scale_draws_log10_clamped_at_the_floor_and_keeps_the_data(view):
    matrix = causal(5)
    view.set_matrix(matrix)
    view.set_log_scale(True)
    assert view.log_scale
    np.testing.assert_array_equal(view.matrix, matrix)
    np.testing.assert_allclose(view.display_matrix, np.log10(np.maximum(matrix, LOG_FLOOR)), rtol=1e-6)
    assert view.levels == pytest.approx((np.log10(LOG_FLOOR), 0.0))
    view.set_log_scale(False)
    np.testing.assert_array_equal(view.display_matrix, matrix)


def test_masked_cells_are_hatched_over_the_image_without_touching_the_data(view):
    matrix = causal(4)
    mask = np.triu(np.ones((4, 4), dtype=bool), k=1)
    view.set_matrix(matrix, mask=mask)
    np.testing.assert_array_equal(view.hatch_mask, mask)
    np.testing.assert_array_equal(view.display_matrix, matrix)  # no NaN copy: the hatch covers the cells
    path = view._hatch.path()
    assert view._hatch.isVisible() and view._mask_fill.isVisible()
    assert path.boundingRect() == QRectF(1, 0, 3, 3)
    assert path.contains(QPointF(3.5, 0.5)) and path.contains(QPointF(2.5, 1.5))
    assert not path.contains(QPointF(0.5, 3.5)) and not path.contains(QPointF(1.5, 1.5))
    view.set_mask(None)
    assert view.hatch_mask is None and not view._hatch.isVisible()
    with pytest.raises(ValueError):
        view.set_mask(np.zeros((3, 3), dtype=bool))


def test_hover_text_names_both_tokens_and_the_weight(view):
    matrix = np.zeros((4, 4), dtype=np.float32)
    matrix[3, 0] = 0.41
    view.set_matrix(matrix, ["Every", " effort", " moves", " you"], ["Every", " effort", " moves", " you"])
    assert view.readout_text(3, 0) == "query ' you' -> key 'Every': 0.41"
    view.set_mask(np.triu(np.ones((4, 4), dtype=bool), k=1))
    assert view.readout_text(0, 2).endswith(": masked")


def test_a_click_reports_the_cell_and_shows_its_readout(qtbot, view):
    view.set_matrix(causal(8), [f"q{i}" for i in range(8)], [f"k{i}" for i in range(8)])
    qtbot.wait(10)
    with qtbot.waitSignal(view.cellClicked) as blocker:
        click_cell(qtbot, view, 5, 2)
    assert blocker.args == [5, 2]
    assert view.readout.text().startswith("query 'q5' -> key 'k2'")


def test_labels_thin_out_to_fit_and_come_back_when_zoomed(view):
    T = 1024
    labels = [f" tok{i}" for i in range(T)]
    view.set_matrix(np.zeros((T, T), dtype=np.float32), labels, labels)
    axis = view._row_axis
    size = 400.0
    step = axis.label_step(0, T, size)
    assert step > 1
    assert (T / step) * (axis._line_height + 2) <= size * 1.05  # the labels fit the axis
    ticks = axis.tickValues(0, T, size)[0][1]
    assert axis.tickStrings(ticks[:2], 1.0, 1.0) == [" tok0", f" tok{step}"]
    assert axis.label_step(100, 110, size) == 1  # zoomed to ten rows: every token labelled
    view.view_box.setRange(QRectF(100, 100, 10, 10), padding=0)
    assert view.matrix.shape == (T, T)


def test_same_shape_or_a_step_keeps_the_zoom_and_a_shorter_text_resets_it(view):
    view.set_matrix(causal(20))
    view.view_box.setRange(QRectF(5, 5, 4, 4), padding=0)
    view.set_matrix(causal(20, seed=1))
    (x0, x1), _ = view.view_box.viewRange()
    assert x1 - x0 < 10
    view.set_matrix(causal(21))  # a generation step adds a row and a column: the zoom stays
    (x0, x1), _ = view.view_box.viewRange()
    assert x1 - x0 < 10
    view.set_matrix(causal(12))
    (x0, x1), _ = view.view_box.viewRange()
    assert x1 - x0 == pytest.approx(12, abs=1)


def test_helpers():
    assert [nice_step(x) for x in (0.2, 1.0, 2.5, 4.1, 6, 11, 30, 70)] == [1, 1, 3, 5, 10, 20, 50, 100]
    assert display_label("a\nb") == "a\u21b5b"  # ↵, as the Tokens pane shows a newline
    assert display_label("block 0") == "block 0"  # a plain label keeps its spaces
    assert display_label("  ") == "\u00b7\u00b7"
    assert len(display_label("x" * 40)) == 14


def test_marked_column(view):
    view.set_matrix(causal(6))
    view.mark_column(3)
    assert view.marked_column == 3 and view._marker.rect() == QRectF(3, 0, 1, 6)
    view.mark_column(None)
    assert view.marked_column is None and not view._marker.isVisible()


def test_hovering_a_cell_shows_both_labels_and_the_value(qtbot, view):
    matrix = causal(6)
    view.set_matrix(matrix, [f"q{i}" for i in range(6)], [f"k{i}" for i in range(6)])
    qtbot.wait(10)
    scene = view.view_box.mapViewToScene(QPointF(1.5, 4.5))
    with qtbot.waitSignal(view.cellHovered) as blocker:
        qtbot.mouseMove(view.plot_widget.viewport(), pos=view.plot_widget.mapFromScene(scene))
    assert blocker.args == [4, 1]
    assert view.readout.text() == f"query 'q4' -> key 'k1': {matrix[4, 1]:.2f}"


def test_mask_runs_match_a_cell_by_cell_walk_and_the_hatch_covers_exactly_the_masked_cells(view):
    rng = np.random.default_rng(3)
    masks = [rng.random((7, 9)) < p for p in (0.2, 0.5, 0.9)]
    masks += [np.ones((3, 5), dtype=bool), np.triu(np.ones((6, 6), dtype=bool), k=1)]
    skip = np.triu(np.ones((6, 6), dtype=bool), k=1)
    skip[:, 0] = True  # the attention pane's mask with the first token skipped: two runs a row
    masks.append(skip)
    for mask in masks:
        expected = []
        for r, row in enumerate(mask):
            c = 0
            while c < len(row):
                if row[c]:
                    begin = c
                    while c < len(row) and row[c]:
                        c += 1
                    expected.append((r, begin, c))
                else:
                    c += 1
        rows, begins, ends = mask_runs(mask)
        assert list(zip(rows.tolist(), begins.tolist(), ends.tolist(), strict=True)) == expected
        view.set_matrix(np.zeros(mask.shape, dtype=np.float32), mask=mask)
        path = view._hatch.path()
        for (r, c), masked in np.ndenumerate(mask):
            assert path.contains(QPointF(c + 0.5, r + 0.5)) == bool(masked), (r, c)
