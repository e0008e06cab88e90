"""Main window: every pane fed on start, docks toggle, errors shown without stopping the app, settings kept,
exports written, dropped files opened."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from gptviz.qt.main_window import MainWindow
from gptviz.qt.settings import AppSettings


def _wait_for_panes(qtbot, window):
    qtbot.waitUntil(lambda: window.tokens_pane.chips.chip_count() > 0, timeout=20_000)
    qtbot.waitUntil(lambda: window.tokens_pane.table.rowCount() > 0, timeout=20_000)
    qtbot.waitUntil(lambda: window.generation_pane.view is not None, timeout=20_000)


def test_window_opens_with_every_pane_showing_something(main_window, qtbot):
    window = main_window
    _wait_for_panes(qtbot, window)
    assert "qt-tiny" in window.model_label.text() and "2 layers × 4 heads" in window.model_label.text()
    assert window.device_label.text() == "cpu"
    assert window.tokens_pane.chips.chip(0).token_id == 15496  # "Hello" of the default text
    view = window.generation_pane.view
    assert view.prompt_ids.tolist() == [6109, 3626, 6100, 345]
    assert set(window.docks) == {"tokens", "generation", "attention", "activations", "training"}
    attention = window.attention_pane
    if hasattr(attention, "snapshot"):
        qtbot.waitUntil(lambda: attention.snapshot is not None, timeout=20_000)
        assert attention.snapshot.token_ids.tolist() == [6109, 3626, 6100, 345]


def test_view_menu_hides_and_shows_docks(main_window):
    dock = main_window.docks["tokens"]
    toggle = dock.toggleViewAction()
    toggle.trigger()
    assert not dock.isVisible()
    toggle.trigger()
    assert dock.isVisible()


def test_worker_error_shows_a_banner_and_the_app_keeps_working(main_window, qtbot, tmp_path):
    window = main_window
    _wait_for_panes(qtbot, window)
    with qtbot.waitSignal(window.host.errorRaised, timeout=20_000):
        window.open_corpus(tmp_path / "missing.txt")
    assert window.banner.isVisible()
    assert "corpus file not found" in window.last_error
    window.generation_pane.step_button.click()
    qtbot.waitUntil(lambda: len(window.generation_pane.view.new_ids) == 1, timeout=20_000)


def test_tokens_typed_reach_the_chips_through_the_worker(main_window, qtbot):
    window = main_window
    _wait_for_panes(qtbot, window)
    window.tokens_pane.set_text("Every effort moves you")
    qtbot.waitUntil(lambda: window.tokens_pane.tokens_view.text == "Every effort moves you", timeout=20_000)
    chips = window.tokens_pane.chips
    assert [chips.chip(i).token_id for i in range(chips.chip_count())] == [6109, 3626, 6100, 345]


def test_settings_are_remembered(qtbot, session_factory):
    first = MainWindow(session_factory, start=False)
    qtbot.addWidget(first)
    first.generation_pane.prompt.setText("Once upon a time")
    first.generation_pane.temperature.setValue(1.3)
    first.tokens_pane.max_length.setValue(7)
    first.settings.add_recent("corpus", "/tmp/a.txt")
    first.close()
    second = MainWindow(session_factory, start=False)
    qtbot.addWidget(second)
    assert second.generation_pane.prompt.text() == "Once upon a time"
    assert second.generation_pane.temperature.value() == 1.3
    assert second.tokens_pane.max_length.value() == 7
    assert AppSettings().recent_files()[0] == ("corpus", "/tmp/a.txt")
    assert "/tmp/a.txt" in second.opener.recent_menu.actions()[0].text()
    second.close()


def test_export_png_csv_and_npz(main_window, qtbot, tmp_path):
    window = main_window
    _wait_for_panes(qtbot, window)
    png = window.export_png(tmp_path / "gen.png", "generation")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    npz = window.export_data(tmp_path / "tokens.npz", "tokens")
    with np.load(npz) as data:
        np.testing.assert_array_equal(data["token_ids"], window.tokens_pane.tokens_view.ids)
    csv_path = window.export_data(tmp_path / "tokens.csv", "tokens")
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "index,id,piece,start,end" and lines[1].startswith("0,15496,Hello,0,5")


def test_dropping_a_corpus_file_opens_it(main_window, qtbot, tmp_path):
    window = main_window
    _wait_for_panes(qtbot, window)
    corpus = tmp_path / "dropped.txt"
    corpus.write_text("one two three four five six seven eight nine ten " * 20, encoding="utf-8")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(corpus))])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)
    qtbot.waitUntil(lambda: "dropped.txt" in window.training_pane.corpus_label.text(), timeout=20_000)
    qtbot.waitUntil(lambda: window.tokens_pane.windows_view.corpus_name == "dropped.txt", timeout=20_000)
    view = window.tokens_pane.windows_view
    np.testing.assert_array_equal(
        view.inputs[0, 1:], view.targets[0, :-1]
    )  # targets are inputs shifted by one


def test_default_layout_shows_several_window_pairs_in_the_data_view(main_window, qtbot):
    window = main_window
    _wait_for_panes(qtbot, window)
    window.resize(1500, 950)  # the first window's size where the screen has room for it
    window.apply_layout("default")
    qtbot.wait(50)
    window.redraw()
    table = window.tokens_pane.table
    qtbot.waitUntil(lambda: table.rowCount() == 12, timeout=20_000)  # 6 windows: input + target rows
    height = table.viewport().height()
    fully_visible = sum(
        1 for r in range(table.rowCount()) if table.rowViewportPosition(r) + table.rowHeight(r) <= height
    )
    assert fully_visible >= 6  # at least three input/target pairs without scrolling
