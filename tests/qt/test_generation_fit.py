"""The Generation pane on a laptop screen: at 1280x720 its status line (three or four wrapped lines in a
third of the window) sits under the generated text, not over its last line, and both show inside the dock.

Before, the pane's splitter gave the text and its status the height of a one-line status, so the wrapped
status covered the bottom line of the text."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QApplication

from gptviz.qt import commands as cmd


def _rect_in(widget, ancestor) -> QRect:
    return QRect(widget.mapTo(ancestor, QPoint(0, 0)), widget.size())


def _generate(window, qtbot, n: int) -> None:
    for _ in range(n):
        before = len(window.generation_pane.view.new_ids)
        window.host.submit(cmd.GenStep())
        qtbot.waitUntil(lambda b=before: len(window.generation_pane.view.new_ids) > b, timeout=20_000)


def test_status_under_the_text_and_both_in_view_at_1280x720(main_window, qtbot):
    window = main_window
    pane = window.generation_pane
    qtbot.waitUntil(lambda: pane.view is not None, timeout=20_000)
    window.resize(1280, 720)
    for layout in ("default", "generate"):
        window.apply_layout(layout)
        window.docks["generation"].raise_()
        _generate(window, qtbot, 3)
        QApplication.processEvents()
        qtbot.wait(50)  # the scroll area fits the pane once its layout has settled
        QApplication.processEvents()
        status, text = pane.status, pane.text
        assert status.isVisible() and text.isVisible()
        lines = status.fontMetrics().lineSpacing()
        assert status.height() >= status.heightForWidth(status.width()), layout  # every wrapped line shown
        assert status.heightForWidth(status.width()) >= 2 * lines, layout  # the case that overlapped
        text_rect, status_rect = _rect_in(text, pane), _rect_in(status, pane)
        assert not text_rect.intersects(status_rect), f"{layout}: text {text_rect} status {status_rect}"
        assert status_rect.top() >= text_rect.bottom(), layout
        assert text.viewport().height() >= lines, layout  # at least a line of the text itself shows
        scroll = window.docks["generation"].widget()  # PaneScroll: what of the pane the dock shows
        viewport = scroll.viewport()
        for widget in (text, status):
            rect = _rect_in(widget, viewport)
            assert viewport.rect().contains(rect), (
                f"{layout}: {type(widget).__name__} {rect} outside {viewport.rect()}"
            )
