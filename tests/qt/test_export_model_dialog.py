"""File › Export model… and nanoGPT files in the window: the dialog's choices, the export run by the model
worker (checked against transformers and the book's model), errors in the red strip, a dropped ckpt.pt."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from nanogpt_ckpt import hf_model, write_nanogpt_ckpt
from PySide6.QtWidgets import QDialogButtonBox

from gptviz.engine.export import book_config
from gptviz.model.book_reference import GPTModel as BookGPT
from gptviz.qt import commands as ch
from gptviz.qt.export_model_dialog import ExportModelDialog, request_export

transformers = pytest.importorskip("transformers")


def _ids() -> torch.Tensor:
    return torch.randint(0, 50257, (1, 9), generator=torch.Generator().manual_seed(2))  # (1, 9)


def test_dialog_suggests_a_path_per_format_and_keeps_a_typed_one(qtbot, tmp_path) -> None:
    dialog = ExportModelDialog(None, str(tmp_path), "demo (untrained)")
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert dialog.fmt() == "hf" and dialog.path() == str(tmp_path / "demo-untrained-hf")
    dialog.set_format("book")
    assert dialog.fmt() == "book" and dialog.path() == str(tmp_path / "demo-untrained.pth")
    dialog.path_edit.setText(str(tmp_path / "mine.pth"))
    dialog.set_format("hf")
    assert dialog.path() == str(tmp_path / "mine.pth")  # what the user typed is not overwritten
    dialog.path_edit.setText("  ")
    assert not ok.isEnabled()


def test_menu_has_export_model(main_window) -> None:
    file_menu = main_window.menuBar().actions()[0].menu()
    assert any(a.text().startswith("Export &model") for a in file_menu.actions())


def _export(qtbot, window, fmt: str, path: Path) -> str:
    with qtbot.waitSignal(
        window.host.resultReady, timeout=30_000, check_params_cb=lambda channel, _p: channel == ch.EXPORTED
    ) as blocker:
        request_export(window, fmt, str(path))
    return str(blocker.args[1])


def test_export_runs_in_the_worker_and_loads_in_transformers_and_the_book(
    main_window, qtbot, tmp_path
) -> None:
    window = main_window
    model = window.host.worker.session.model  # the worker is idle between commands
    with torch.no_grad():
        expected = model(_ids())  # (1, 9, V)
    assert _export(qtbot, window, "hf", tmp_path / "hf") == str(tmp_path / "hf")
    assert "exported the model to" in window.statusBar().currentMessage()
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()
    with torch.no_grad():
        assert (hf(_ids()).logits - expected).abs().max().item() <= 1e-4
    _export(qtbot, window, "book", tmp_path / "model.pth")
    book = BookGPT(book_config(model.cfg))
    book.load_state_dict(torch.load(tmp_path / "model.pth", weights_only=True))
    with torch.no_grad():
        assert (book.eval()(_ids()) - expected).abs().max().item() <= 1e-4


def test_a_refused_export_shows_in_the_red_strip(main_window, qtbot, tmp_path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with qtbot.waitSignal(main_window.host.errorRaised, timeout=30_000):
        request_export(main_window, "hf", str(tmp_path))
    assert main_window.banner.isVisible() and "holds other files (keep.txt)" in main_window.last_error
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_opening_a_nanogpt_ckpt_loads_it(main_window, qtbot, tmp_path) -> None:
    path = write_nanogpt_ckpt(tmp_path / "out" / "ckpt.pt", hf_model(bias=False), bias=False, compiled=True)
    main_window.open_path(path.parent)  # the out_dir, as dropped on the window
    qtbot.waitUntil(
        lambda: main_window.model_info is not None and main_window.model_info.emb_dim == 64, timeout=30_000
    )
    info = main_window.model_info
    assert (info.n_layers, info.n_heads, info.context_length) == (2, 4, 32)
    assert "GELU" in info.note
