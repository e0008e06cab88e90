"""Widgets keep Qt's own methods: attributes named `thread`, `result`, `window` or `mask` used to hide
QObject.thread(), QDialog.result(), QWidget.window() and QWidget.mask() on these classes (mypy found them),
so calling the Qt method raised "object is not callable"."""

from __future__ import annotations

from PySide6.QtCore import QThread
from PySide6.QtGui import QRegion
from PySide6.QtWidgets import QApplication, QDialog

from gptviz.qt.download_dialog import DownloadDialog, DownloadJob
from gptviz.qt.patching_view import PatchingView
from gptviz.qt.why_view import WhyView
from gptviz.qt.widgets.heatmap import HeatmapView


def test_dialogs_keep_result_and_the_download_job_keeps_thread(qtbot) -> None:
    for dialog in (DownloadDialog(), PatchingView(), WhyView()):
        qtbot.addWidget(dialog)
        assert dialog.result() == QDialog.DialogCode.Rejected  # not yet accepted
    job = DownloadJob("gpt2")
    assert isinstance(job.thread(), QThread) and job.thread() is QApplication.instance().thread()
    assert job.download_thread is not job.thread()  # its download runs elsewhere


def test_heatmap_keeps_mask_beside_its_hatch_mask(qtbot) -> None:
    view = HeatmapView()
    qtbot.addWidget(view)
    assert isinstance(view.mask(), QRegion) and view.hatch_mask is None


def test_the_strips_keep_window(main_window) -> None:
    assert main_window.start_here.window() is main_window
    assert main_window.reopen_offer.window() is main_window
