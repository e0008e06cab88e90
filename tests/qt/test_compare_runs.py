"""The Training training_pane's Compare tab: each run's curves hold its own metrics.jsonl numbers in its own colour,
the legend toggles a run, the table lists exactly the settings that differ, several run folders dropped
on the curves go side by side, and a folder that is no run says so."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent

from gptviz.engine.rundir import JsonlWriter, metrics_path, read_metrics, write_settings


def _run(path, lr, batch_size, scale):
    write_settings(path, {"model": {"emb_dim": 32}, "train": {"lr": lr, "batch_size": batch_size, "seed": 1}})
    writer = JsonlWriter(metrics_path(path))
    writer.write({"step": 0, "tokens_seen": 0, "val_loss": 10.0 * scale, "train_eval_loss": 10.2 * scale})
    for step in range(1, 9):
        record = {"step": step, "tokens_seen": 16 * batch_size * step, "train_loss": scale * (9 - 0.4 * step)}
        if step % 4 == 0:
            record.update(val_loss=scale * (8 - 0.3 * step), train_eval_loss=scale * (7.9 - 0.35 * step))
        writer.write(record)
    writer.close()
    return str(path)


def _curve_data(view, index, key):
    x, y = view.curves[index][key].getData()
    return np.c_[x, y]


def test_each_run_is_drawn_with_its_own_numbers_and_colour(training_pane, tmp_path):
    paths = [
        _run(tmp_path / "a", 4e-4, 8, 1.0),
        _run(tmp_path / "b", 1e-3, 8, 0.9),
        _run(tmp_path / "c", 4e-4, 2, 1.1),
    ]
    assert training_pane.compare_runs(paths) == []
    view = training_pane.compare_view
    assert training_pane.views.currentWidget() is view
    assert [str(p) for p in view.paths()] == paths and len(set(view.colours)) == 3
    for index, path in enumerate(paths):
        records = read_metrics(path)
        for key, name in (("val", "val_loss"), ("train_eval", "train_eval_loss"), ("train", "train_loss")):
            expected = [(r["step"], r[name]) for r in records if name in r]
            np.testing.assert_array_equal(_curve_data(view, index, key), expected)
        pen = view.curves[index]["val"].opts["pen"]
        assert pen.color().name() == view.colours[index]
        assert view.legend.item(index).foreground().color().name() == view.colours[index]
    # The table: exactly the keys that differ, a column per run.
    assert [d.key for d in view.differences] == ["train.lr", "train.batch_size"]
    assert view.table.rowCount() == 2 and view.table.columnCount() == 3
    assert view.table.verticalHeaderItem(0).text() == "lr"
    assert [view.table.item(0, c).text() for c in range(3)] == ["4e-4", "1e-3", "4e-4"]
    assert (
        "lr 4e-4 vs 1e-3 vs 4e-4" in view.summary.text() and "batch_size 8 vs 8 vs 2" in view.summary.text()
    )
    # The legend toggles a run: its curves hide, the others stay.
    view.legend.item(1).setCheckState(Qt.CheckState.Unchecked)
    assert not view.curves[1]["val"].isVisible() and view.curves[0]["val"].isVisible()
    view.legend.item(1).setCheckState(Qt.CheckState.Checked)
    assert view.curves[1]["val"].isVisible()
    assert not view.curves[0]["train"].isVisible()  # every batch's loss only when asked for
    view.show_train.setChecked(True)
    assert view.curves[0]["train"].isVisible()
    # Tokens seen on x: run c's batch of 2 puts its evaluations at a quarter of the tokens of a's.
    view.x_axis.setCurrentIndex(view.x_axis.findData("tokens"))
    np.testing.assert_array_equal(view.curves[0]["val"].getData()[0], [0, 512, 1024])
    np.testing.assert_array_equal(view.curves[2]["val"].getData()[0], [0, 128, 256])
    view.legend.setCurrentRow(1)
    view.remove_selected()
    assert [str(p) for p in view.paths()] == [paths[0], paths[2]]
    assert [d.key for d in view.differences] == ["train.batch_size"]


_KEEP: list[QMimeData] = []  # a QDropEvent does not own its mime data: keep it alive while the event is


def _drop(widget, paths):
    mime = QMimeData()
    _KEEP.append(mime)
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)  # fmt: skip
    return event


def test_several_run_folders_dropped_on_the_curves_go_side_by_side(training_pane, tmp_path):
    a, b = _run(tmp_path / "a", 4e-4, 8, 1.0), _run(tmp_path / "b", 1e-3, 8, 1.0)
    viewport = training_pane.plot.viewport()
    one = _drop(viewport, [a])
    assert not training_pane._drop_filter.eventFilter(
        viewport, one
    )  # one folder: the window follows or opens it
    assert training_pane.compare_view.runs == []
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(p) for p in (a, b)])
    enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)  # fmt: skip
    assert training_pane._drop_filter.eventFilter(viewport, enter) and enter.isAccepted()
    # (QApplication.sendEvent delivers no drop without a drag in progress: the filter is called as Qt would.)
    assert training_pane._drop_filter.eventFilter(
        viewport, _drop(viewport, [a, b, tmp_path])
    )  # tmp_path: no run
    assert [str(p) for p in training_pane.compare_view.paths()] == [a, b]
    assert training_pane.views.currentWidget() is training_pane.compare_view
    c = _run(tmp_path / "c", 4e-4, 4, 1.0)  # on the Compare tab itself, one folder is enough
    compare_viewport = training_pane.compare_view.plot.viewport()
    assert training_pane._drop_filter.eventFilter(compare_viewport, _drop(compare_viewport, [c]))
    assert len(training_pane.compare_view.runs) == 3


def test_the_shown_run_joins_and_a_folder_that_is_no_run_says_so(training_pane, tmp_path):
    own, other = _run(tmp_path / "own", 4e-4, 8, 1.0), _run(tmp_path / "other", 2e-3, 8, 1.0)
    training_pane.set_run_dir(own)  # the run the training_pane shows (a history or a followed run)
    training_pane.compare_runs([other])
    assert [str(p) for p in training_pane.compare_view.paths()] == [own, other]
    problems = training_pane.compare_runs([str(tmp_path / "nothing")])
    assert len(problems) == 1 and "not found" in training_pane.compare_view.message.text()
    assert len(training_pane.compare_view.runs) == 2
    training_pane.compare_view.clear()
    assert training_pane.compare_view.table.rowCount() == 0 and training_pane.compare_view.legend.count() == 0
