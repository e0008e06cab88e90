"""Issue 10, what a newcomer sees: one way to read a token everywhere (half a character, repeated ↵), an
embed row that is not black, a logit lens whose cells fit, an MLP heatmap that sorts and zooms."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QFontMetrics, QWheelEvent
from PySide6.QtWidgets import QApplication

from gptviz.config import GPTConfig
from gptviz.engine.inspection import inspect_tokens
from gptviz.model import GPTModel
from gptviz.qt.panes.activations import SORTED_NEURONS_SHOWN, ActivationsPane
from gptviz.qt.panes.attention import AttentionPane
from gptviz.qt.panes.tokens import TokensPane
from gptviz.qt.token_labels import axis_labels, sequence_labels, token_label
from gptviz.tokenizer import default_tokenizer

CFG = GPTConfig(context_length=32, emb_dim=32, n_heads=4, n_layers=3, drop_rate=0.0)
# "’" is split over two tokens (e2 80, then 99); three newlines and two " the" repeat.
TEXT = "you\u2019s new\nline\n the the\nend"


@pytest.fixture(scope="module")
def snapshot():
    torch.manual_seed(0)
    model = GPTModel(CFG).eval()
    ids = default_tokenizer().encode(TEXT)
    return inspect_tokens(model, default_tokenizer(), ids, mlp_layer=1, lens_position=2, lens_top_k=6)


def test_a_split_character_reads_whole_where_it_starts_and_as_bytes_alone():
    pieces = [default_tokenizer().piece(i) for i in default_tokenizer().encode("you\u2019s")]
    assert pieces == ["you", "\\xe2\\x80", "\\x99", "s"]  # how the tokenizer names half a character
    assert [token_label(p) for p in pieces] == ["you", "\u2039e2 80\u203a", "\u203999\u203a", "s"]
    assert sequence_labels(pieces) == ["you", "\u2019", "\u203999\u203a", "s"]
    assert sequence_labels(["\\xe2\\x80"]) == ["\u2039e2 80\u203a"]  # never completed: its bytes
    assert token_label(b" \xe2") == "\u00b7\u2039e2\u203a"  # a space, then half a character


def test_repeated_labels_carry_their_position():
    pieces = [default_tokenizer().piece(i) for i in default_tokenizer().encode(TEXT)]
    labels = axis_labels(pieces)
    assert len(set(labels)) == len(labels)
    newlines = [label for label in labels if label.endswith("\u21b5")]
    assert newlines == [f"{i}:\u21b5" for i, p in enumerate(pieces) if p == "\n"] and len(newlines) == 3
    assert "you" in labels and "\u00b7new" in labels  # a label seen once is left alone


def test_tokens_pane_chips_and_windows_use_the_convention(qtbot, session):
    pane = TokensPane()
    qtbot.addWidget(pane)
    pane.resize(600, 400)
    pane.set_tokens(session.tokenize("you\u2019s"))
    assert [pane.chips.chip(i).label for i in range(pane.chips.chip_count())] == [
        "you",
        "\u2019",
        "\u203999\u203a",
        "s",
    ]


def test_attention_axes_tell_repeated_newlines_apart(qtbot, snapshot):
    pane = AttentionPane()
    qtbot.addWidget(pane)
    pane.set_snapshot(snapshot)
    labels = pane.heatmap.col_labels
    assert len(set(labels)) == len(labels)
    assert labels[1] == "\u2019" and labels[2] == "\u203999\u203a"
    assert pane.heatmap.row_labels == labels
    assert "\\x" not in "".join(labels)


@pytest.fixture
def pane(qtbot, snapshot):
    widget = ActivationsPane()
    widget.resize(900, 600)
    qtbot.addWidget(widget)
    widget.set_snapshot(snapshot)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_logit_lens_cells_show_partial_bytes_in_the_convention(pane, snapshot):
    rows = [list(r) for r in snapshot.lens_pieces]
    rows[0][1] = "\\xe2\\x80"
    pane.set_snapshot(dataclasses.replace(snapshot, lens_pieces=tuple(tuple(r) for r in rows)))
    cell = pane.lens_table.item(0, 1).text()
    assert cell.split("\n")[0] == "\u2039e2 80\u203a"
    assert "\\x" not in "".join(
        pane.lens_table.item(r, c).text()
        for r in range(pane.lens_table.rowCount())
        for c in range(pane.lens_table.columnCount())
    )


def test_logit_lens_columns_fit_their_text_and_scroll_sideways(pane):
    table = pane.lens_table
    metrics = QFontMetrics(table.font())
    for c in range(table.columnCount()):
        widest = max(
            metrics.horizontalAdvance(line)
            for r in range(table.rowCount())
            for line in table.item(r, c).text().split("\n")
        )
        assert table.columnWidth(c) >= widest, c
        assert table.columnWidth(c) >= 48
    pane.resize(400, 600)  # narrower than the columns: they keep their width and the table scrolls
    QApplication.processEvents()
    assert table.horizontalScrollBar().maximum() > 0


def test_embed_row_of_the_residual_heatmap_is_not_one_colour(pane, snapshot):
    # The bundled demo's norms (measured): the embeddings about 1, the blocks 24 to 50. On one scale the
    # embed row was the colour map's bottom: black.
    T = snapshot.n_tokens
    rng = np.random.default_rng(0)
    norms = np.vstack([rng.uniform(0.6, 1.2, T), rng.uniform(24, 50, (snapshot.n_layers, T))])
    pane.set_snapshot(dataclasses.replace(snapshot, residual_norms=norms.astype(np.float32)))
    assert pane.row_scale_box.isChecked()
    shown = pane.residual.display_matrix
    assert shown[0].min() == pytest.approx(0.0) and shown[0].max() == pytest.approx(1.0)
    pane.row_scale_box.setChecked(False)  # one scale for all rows: the embed row sits at the bottom of it
    lo, hi = pane.residual.levels
    assert (pane.residual.display_matrix[0].max() - lo) / (hi - lo) < 0.1
    np.testing.assert_allclose(
        pane.residual.matrix, norms, rtol=1e-6
    )  # the readout reads the norms either way


def test_mlp_neurons_sort_by_activation_at_the_selected_token_and_zoom(pane, snapshot):
    position = pane.selected_position
    pane.sort_box.setChecked(True)
    order = np.argsort(-snapshot.mlp_post[position], kind="stable")
    assert pane.mlp.col_labels == [str(i) for i in order]
    shown = pane.mlp.matrix
    assert np.all(np.diff(shown[position]) <= 0)  # most active first
    (x0, x1), _ = pane.mlp.view_box.viewRange()
    assert x1 - x0 <= SORTED_NEURONS_SHOWN + 0.5 and x0 <= 0.5
    pane.position_spin.setValue(0)  # another token: the order follows it
    assert pane.mlp.col_labels == [str(i) for i in np.argsort(-snapshot.mlp_post[0], kind="stable")]
    pane.sort_box.setChecked(False)
    assert pane.mlp.col_labels[:3] == ["0", "1", "2"]
    np.testing.assert_array_equal(pane.mlp.matrix, snapshot.mlp_post)


def test_the_mouse_wheel_zooms_the_mlp_heatmap(pane, qtbot):
    view = pane.mlp.plot_widget
    (x0, x1), _ = pane.mlp.view_box.viewRange()
    centre = pane.mlp.view_box.mapViewToScene(QPointF((x0 + x1) / 2, 1.0))
    local = view.mapFromScene(centre)
    event = QWheelEvent(
        QPointF(local),
        QPointF(view.viewport().mapToGlobal(local)),
        QPoint(0, 0),
        QPoint(0, 120 * 3),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view.viewport(), event)
    (after0, after1), _ = pane.mlp.view_box.viewRange()
    assert after1 - after0 < 0.9 * (x1 - x0)


def _help_action(window, text: str):
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    return next(a for a in menu.actions() if a.text().replace("&", "") == text)


def test_start_here_strip_shows_on_first_run_in_one_line(main_window):
    strip = main_window.start_here
    assert strip.isVisible()
    buttons = [strip.widgetForAction(a) for a in strip.step_actions.values()]
    assert [b.text() for b in buttons] == [
        "ch. 2 Tokens",
        "ch. 3 Attention",
        "ch. 4 Layers",
        "ch. 5 Training",
        "Generate",
    ]
    assert len({b.y() for b in buttons if b.isVisible()}) == 1  # one line
    assert strip.height() <= 2 * strip.title.fontMetrics().height() + 8


def test_start_here_walks_the_book_in_order(main_window, qtbot):
    window = main_window
    strip = window.start_here
    qtbot.waitUntil(lambda: window.attention_pane.snapshot is not None, timeout=20_000)
    strip.step_actions["tokens"].trigger()
    assert window.current_pane_key() == "tokens"
    assert not window.docks["tokens"].visibleRegion().isEmpty()
    assert "each chip is one token" in window.statusBar().currentMessage()
    window.attention_pane.average_box.setChecked(True)
    strip.step_actions["attention"].trigger()
    assert window.current_pane_key() == "attention"
    assert window.attention_pane.selected_head is not None  # a head is open, not the average
    assert "context vector" in window.statusBar().currentMessage()
    strip.step_actions["layers"].trigger()
    assert window.current_pane_key() == "activations"
    strip.step_actions["training"].trigger()
    assert window.current_pane_key() == "training"
    assert not window.docks["training"].visibleRegion().isEmpty()
    before = window.generation_pane.view
    strip.step_actions["generation"].trigger()  # takes a step
    assert window.current_pane_key() == "generation"
    qtbot.waitUntil(
        lambda: (
            window.generation_pane.view is not before
            and len(window.generation_pane.view.new_ids) == (len(before.new_ids) if before else 0) + 1
        ),
        timeout=20_000,
    )
    assert strip.step_actions["generation"].isChecked()


def test_start_here_hints_fit_the_status_bar_at_1280(main_window):
    from gptviz.qt.start_here import STEPS

    window = main_window
    window.resize(1280, 720)
    QApplication.processEvents()
    bar = window.statusBar()
    window.memory_label.setText("RAM 1,475 MB")  # as wide as they get beside a hint
    window.device_label.setText("cpu")
    window.activity_label.setText("idle")
    permanent = sum(
        w.sizeHint().width() for w in (window.memory_label, window.device_label, window.activity_label)
    )
    room = bar.width() - permanent - 40
    for step in STEPS:
        assert bar.fontMetrics().horizontalAdvance(step.hint) <= room, step.key


def test_dismissing_start_here_is_remembered_and_help_brings_it_back(qtbot, session_factory):
    from gptviz.qt.main_window import MainWindow

    first = MainWindow(session_factory, start=False)
    qtbot.addWidget(first)
    first.show()
    assert first.start_here.isVisible()
    first.start_here.close_button.click()
    assert not first.start_here.isVisible()
    first.save_settings()
    second = MainWindow(session_factory, start=False)
    qtbot.addWidget(second)
    second.show()
    qtbot.wait(10)  # the strip applies the setting after the window restores its saved state
    assert not second.start_here.isVisible()
    _help_action(second, "Start here").trigger()
    assert second.start_here.isVisible()
    third = MainWindow(session_factory, start=False)
    qtbot.addWidget(third)
    third.show()
    qtbot.wait(10)
    assert third.start_here.isVisible()


def test_the_error_strip_is_one_line_with_the_details_a_click_away(main_window, qtbot):
    window = main_window
    window.resize(1280, 720)
    top_before = window.docks["attention"].mapTo(window, QPoint(0, 0)).y()
    long = "could not read /home/someone/models/a-checkpoint-with-a-long-name/model.safetensors: " + (
        "the file ends before its header says it should; " * 6
    )
    window._on_error("load_checkpoint", long)
    QApplication.processEvents()
    banner = window.banner
    assert banner.isVisible()
    line = banner.label.fontMetrics().height()
    assert banner.height() <= banner.details_button.sizeHint().height() + 12  # one line, not 55-110 px
    assert banner.label.height() <= 2 * line
    assert banner.label.text().endswith("\u2026") and len(banner.label.text()) < len(long)
    assert banner.label.full_text() == "load checkpoint: " + " ".join(long.split())
    moved = window.docks["attention"].mapTo(window, QPoint(0, 0)).y() - top_before
    assert moved <= banner.height() + 2
    box = banner.show_details()
    assert box.isVisible() and " ".join(box.text().split()) == banner.label.full_text()
    box.close()
    banner.dismiss_button.click()
    assert not banner.isVisible()


def _choose_in_dialog(monkeypatch, target):
    """Make the Open dialog, when shown, select `target` and press Open (no one is there to click)."""
    from gptviz.qt import open_model_dialog

    def exec_(dialog):
        dialog.setDirectory(str(target.parent))
        dialog.selectFile(str(target))
        dialog.accept()
        return dialog.result()

    monkeypatch.setattr(open_model_dialog.OpenModelDialog, "exec", exec_)


def test_open_dialog_takes_a_model_folder_a_weights_file_and_steps_into_other_folders(qtbot, tmp_path):
    from gptviz.qt.open_model_dialog import OpenModelDialog, model_target

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    (ckpt / "model.safetensors").write_bytes(b"x")
    (tmp_path / "model.pth").write_bytes(b"x")
    (tmp_path / "other").mkdir()
    for chosen, expected in ((ckpt, ckpt), (tmp_path / "model.pth", tmp_path / "model.pth")):
        dialog = OpenModelDialog(None, str(tmp_path))
        qtbot.addWidget(dialog)
        dialog.selectFile(str(chosen))
        dialog.accept()
        assert dialog.result() == dialog.DialogCode.Accepted and dialog.chosen == expected
    dialog = OpenModelDialog(None, str(tmp_path))
    qtbot.addWidget(dialog)
    dialog.selectFile(str(tmp_path / "other"))
    dialog.accept()  # not a model: Open steps into it, as a file dialog does
    assert dialog.chosen is None and dialog.result() != dialog.DialogCode.Accepted
    assert dialog.directory().absolutePath() == str(tmp_path / "other")
    # The files a user holds are offered, not greyed out: the filter takes them.
    from PySide6.QtCore import QDir

    names = QDir(str(ckpt)).entryList(
        dialog.nameFilters()[0].split("(")[1].rstrip(")").split(), QDir.Filter.Files
    )
    assert names == ["config.json", "model.safetensors"]
    assert model_target(ckpt / "model.safetensors") == ckpt  # a checkpoint's file opens its folder


def test_file_open_checkpoint_opens_a_chosen_model_safetensors(
    main_window, qtbot, session, tmp_path, monkeypatch
):
    window = main_window
    folder = session.save_checkpoint(tmp_path / "saved")
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=20_000)
    _choose_in_dialog(monkeypatch, folder / "model.safetensors")
    window.open_checkpoint_dialog()
    qtbot.waitUntil(
        lambda: window.model_info is not None and str(window.model_info.path) == str(folder), timeout=30_000
    )
    assert window.errors == []
    assert ("checkpoint", str(folder.resolve())) in window.settings.recent_files()


def test_recent_files_keep_only_what_opened(main_window, qtbot, session, tmp_path, small_corpus):
    window = main_window
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=20_000)
    good = session.save_checkpoint(tmp_path / "good")
    window.open_checkpoint(good)
    qtbot.waitUntil(lambda: str(window.model_info.path) == str(good), timeout=30_000)
    for bad in (tmp_path / "missing", tmp_path / "empty"):
        if bad.name == "empty":
            bad.mkdir()
        window.open_checkpoint(bad)
        qtbot.waitUntil(lambda b=bad: any(b.name in e for e in window.errors), timeout=30_000)
    window.open_corpus(tmp_path / "no-such-corpus.txt")
    qtbot.waitUntil(lambda: any("no-such-corpus" in e for e in window.errors), timeout=30_000)
    window.open_corpus(small_corpus)
    qtbot.waitUntil(lambda: "small" in window.training_pane.corpus_label.text(), timeout=30_000)
    recent = window.settings.recent_files()
    assert recent == [("corpus", str(Path(small_corpus).resolve())), ("checkpoint", str(good.resolve()))]
    shown = [a.text() for a in window.opener.recent_menu.actions() if a.text() and not a.isSeparator()]
    assert shown == [f"corpus: {Path(small_corpus).resolve()}", f"checkpoint: {good.resolve()}", "Clear list"]


def test_closing_during_training_says_stopping_before_it_waits(main_window, qtbot, train_settings):
    window = main_window
    pane = window.training_pane
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=20_000)
    pane.apply_settings(train_settings(steps=500, eval_freq=400))
    pane.model_choice.setCurrentIndex(0)
    pane._on_start()
    qtbot.waitUntil(lambda: pane.state == "running" and pane.latest is not None, timeout=60_000)
    seen = {}
    shutdown = window.host.shutdown

    def watched(timeout_ms=2000):
        seen["status"] = window.statusBar().currentMessage()
        seen["activity"] = window.activity_label.text()
        return shutdown(timeout_ms)

    window.host.shutdown = watched
    window.close()
    assert seen == {"status": "stopping after this step…", "activity": "stopping after this step…"}
    assert not window.host.is_running()


def test_model_menu_demo_model_brings_the_bundled_demo_back(main_window, qtbot):
    from gptviz.resources import DEMO_MODEL_DIR

    window = main_window
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=20_000)
    assert "demo" not in window.model_label.text()  # the tests' own tiny model
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Model")
    menu.aboutToShow.emit()
    next(a for a in menu.actions() if a.text().startswith("Demo model")).trigger()
    qtbot.waitUntil(
        lambda: Path(window.model_info.path or ".").resolve() == DEMO_MODEL_DIR.resolve(), timeout=60_000
    )
    assert window.model_label.text().startswith("<b>demo")
    menu.aboutToShow.emit()
    assert next(a for a in menu.actions() if a.text().startswith("Demo model")).isChecked()


def test_tooltips_speak_the_books_terms(qtbot, snapshot):
    attention = AttentionPane()
    activations = ActivationsPane()
    for widget in (attention, activations):
        qtbot.addWidget(widget)
    activations.set_snapshot(snapshot)
    assert "causal mask" in attention.mask_box.toolTip()
    assert "context vector" in attention.heatmap.toolTip()
    assert "shortcut connection" in activations.residual_title.toolTip()
    assert "logits" in activations.lens_title.toolTip()


def test_panes_fill_their_docks_instead_of_scrolling_at_1280x720(main_window, qtbot):
    """A pane with a wrapping row of controls was made as tall as its preferred size (Activations: 1,090 px
    in a 314 px dock), so every pane scrolled even where it fitted."""
    window = main_window
    window.resize(1280, 720)
    window.apply_layout("default")
    qtbot.waitUntil(lambda: window.activations_pane.snapshot is not None, timeout=20_000)
    for key in ("attention", "activations"):
        window.docks[key].raise_()
        QApplication.processEvents()
        qtbot.wait(20)
        scroll = window.docks[key].widget()
        assert scroll.pane.height() <= scroll.viewport().height() + 1, key
        assert scroll.verticalScrollBar().maximum() == 0, key
    window.resize(400, 300)  # too small for any pane: then it scrolls, keeping its controls usable
    QApplication.processEvents()
    qtbot.wait(20)
    scroll = window.docks["activations"].widget()
    assert scroll.pane.height() >= scroll.pane.minimumSizeHint().height()


@pytest.mark.parametrize("size", [(560, 200), (900, 600)])
def test_attention_overview_labels_are_not_cut_off(qtbot, snapshot, size):
    """At 1280x720 the thumbnails are small, and a margin of a third of a tile cut "H0".."H3" in half."""
    pane = AttentionPane()
    qtbot.addWidget(pane)
    pane.set_snapshot(snapshot)
    pane.resize(*size)
    pane.show()
    qtbot.waitExposed(pane)
    qtbot.wait(50)  # pyqtgraph maps the view after the layout settles
    overview = pane.overview
    shown = overview.view_box.sceneBoundingRect()
    labels = overview._labels
    assert {item.textItem.toPlainText() for item in labels} >= {"H0", "H3", "L0", "L2"}
    for item in labels:
        assert shown.adjusted(-1, -1, 1, 1).contains(item.sceneBoundingRect()), item.textItem.toPlainText()


def test_activation_titles_take_one_line_in_a_laptop_sized_dock(qtbot, snapshot):
    """The Activations dock at 1280x720 is about 630 x 310: titles of two or three lines took the
    heatmaps' room (the residual stream was about 60 px high)."""
    pane = ActivationsPane()
    qtbot.addWidget(pane)
    pane.set_snapshot(snapshot)
    pane.resize(630, 310)
    pane.show()
    qtbot.waitExposed(pane)
    QApplication.processEvents()
    for title in (pane.residual_title, pane.mlp_title, pane.lens_title):
        assert title.height() < 2 * title.fontMetrics().height(), title.text()


def test_heatmap_hint_is_one_line_in_a_narrow_view(qtbot):
    """The hint under each heatmap wrapped to two lines in a 280 px view, taking the map's room."""
    from gptviz.qt.widgets.heatmap import HeatmapView

    view = HeatmapView()
    qtbot.addWidget(view)
    view.set_matrix(np.zeros((4, 4), dtype=np.float32))
    view.resize(280, 200)
    view.show()
    qtbot.waitExposed(view)
    assert view.readout.height() < 2 * view.readout.fontMetrics().height()


def test_how_a_chosen_model_opens(tmp_path):
    from gptviz.qt.open_model_dialog import how_to_open
    from gptviz.resources import DEMO_MODEL_DIR

    assert how_to_open(DEMO_MODEL_DIR) == "checkpoint"  # gptviz's own (also a run directory)
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text('{"model_type": "gpt2"}')
    (tmp_path / "model.pth").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "empty").mkdir()
    assert how_to_open(hf) == "import"
    assert how_to_open(tmp_path / "model.pth") == "import"
    assert how_to_open(tmp_path / "notes.txt") is None
    assert how_to_open(tmp_path / "empty") is None


def test_open_checkpoint_on_the_demo_folder_loads_it_instead_of_following_it(main_window, qtbot, monkeypatch):
    from gptviz.resources import DEMO_MODEL_DIR

    window = main_window
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=20_000)
    _choose_in_dialog(monkeypatch, DEMO_MODEL_DIR)
    window.open_checkpoint_dialog()
    qtbot.waitUntil(
        lambda: Path(window.model_info.path or ".").resolve() == DEMO_MODEL_DIR.resolve(), timeout=60_000
    )
    assert window.opener.follow_dir is None and window.errors == []
