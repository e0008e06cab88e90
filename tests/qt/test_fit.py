"""The window fits a laptop screen: every visible control lies inside what shows it (its dock, its scroll
area's content, its table), no two visible labels overlap, and the Training settings never scroll sideways.
Checked at 1280x720, 1366x768 and 1920x1080, in each View › Layout preset, with each tabbed pane in front."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractScrollArea,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDockWidget,
    QHeaderView,
    QLabel,
    QProgressBar,
    QWidget,
)

from gptviz.qt.window_layout import LAYOUTS

CHECKED = (QAbstractButton, QLabel, QAbstractSpinBox, QComboBox, QHeaderView)


def _global_rect(widget: QWidget) -> QRect:
    return QRect(widget.mapToGlobal(QPoint(0, 0)), widget.size())


def _clip_owner(widget: QWidget) -> QWidget:
    """The widget whose area shows `widget`: a scroll area's viewport holds content that scrolls into
    view, so the content (not the viewport) bounds what must fit; otherwise the top-level window."""
    w = widget
    while w.parentWidget() is not None:
        parent = w.parentWidget()
        grand = parent.parentWidget()
        if isinstance(grand, QAbstractScrollArea) and parent is grand.viewport():
            return w  # w is the scrolled content: the user reaches all of it by scrolling
        w = parent
    return w


def _behind_a_tab(widget: QWidget) -> bool:
    """A dock tabbed behind another is out of sight (Qt moves it away, still 'visible')."""
    w = widget
    while w is not None and not isinstance(w, QDockWidget):
        w = w.parentWidget()
    return w is not None and w.visibleRegion().isEmpty()


def _problems(window) -> list[str]:
    out = []
    labels, others = [], []
    for widget in window.findChildren(QWidget):
        if isinstance(widget, QProgressBar) and widget.isVisible() and not _behind_a_tab(widget):
            others.append((_clip_owner(widget), widget, _global_rect(widget)))
            continue
        if not isinstance(widget, CHECKED) or not widget.isVisible() or _behind_a_tab(widget):
            continue
        name = f"{type(widget).__name__} {getattr(widget, 'text', lambda: '')()!r}"
        if widget.width() <= 0 or widget.height() <= 0:
            out.append(f"{name} has no room")
            continue
        # Inside every ancestor up to the one that shows it (a widget outside its parent is cut off).
        w, rect = widget, _global_rect(widget)
        owner = _clip_owner(widget)
        while w is not owner and w.parentWidget() is not None:
            w = w.parentWidget()
            if not _global_rect(w).adjusted(-1, -1, 1, 1).contains(rect):
                out.append(f"{name} at {rect} sticks out of {type(w).__name__} at {_global_rect(w)}")
                break
        if isinstance(widget, QLabel) and widget.text().strip():
            labels.append((owner, widget, rect))
        elif isinstance(widget, (QAbstractButton, QAbstractSpinBox, QComboBox, QProgressBar)):
            others.append((owner, widget, rect))
    for i, (owner_a, a, ra) in enumerate(labels):
        for owner_b, b, rb in labels[i + 1 :] + others:
            if owner_a is owner_b and ra.adjusted(1, 1, -1, -1).intersects(rb.adjusted(1, 1, -1, -1)):
                if a.isAncestorOf(b) or b.isAncestorOf(a):
                    continue
                text_b = b.text() if hasattr(b, "text") else type(b).__name__
                out.append(f"label {a.text()[:30]!r} overlaps {str(text_b)[:30]!r}")
    return out


@pytest.mark.parametrize("size", [(1280, 720), (1366, 768), (1920, 1080)])
def test_every_control_fits_in_every_layout(main_window, qtbot, size):
    window = main_window
    qtbot.waitUntil(lambda: window.generation_pane.view is not None, timeout=20_000)
    window.resize(*size)
    for name in LAYOUTS:
        window.apply_layout(name)
        for key in window.docks:  # each pane in front once (tabs hide the others)
            window.docks[key].raise_()
            QApplication.processEvents()
            qtbot.wait(20)
            window.redraw()
            problems = _problems(window)
            assert not problems, f"{size} {name} with {key} in front: " + "; ".join(problems[:8])
            scroll = window.training_pane.settings_scroll
            if scroll.isVisible():
                assert scroll.horizontalScrollBar().maximum() == 0
                assert scroll.widget().width() <= scroll.viewport().width()


def test_training_buttons_in_view_at_1280x720(main_window, qtbot):
    window = main_window
    window.resize(1280, 720)
    window.apply_layout("default")
    window.docks["training"].raise_()
    qtbot.wait(50)
    scroll = window.docks["training"].widget()
    for button in (
        window.training_pane.start_button,
        window.training_pane.pause_button,
        window.training_pane.stop_button,
        window.training_pane.save_button,
    ):
        top_left = button.mapTo(scroll.viewport(), QPoint(0, 0))
        assert scroll.viewport().rect().contains(QRect(top_left, button.size())), button.text()


def test_window_opens_within_the_screen(qtbot, session_factory):
    from gptviz.qt.main_window import MainWindow

    window = MainWindow(session_factory, start=False)
    qtbot.addWidget(window)
    window.show()
    available = window.screen().availableGeometry()
    assert window.frameGeometry().width() <= available.width()
    assert window.frameGeometry().height() <= available.height()
    assert available.contains(window.geometry())
    assert window.minimumSizeHint().width() <= 1280 and window.minimumSizeHint().height() <= 720


def test_layout_presets_from_the_view_menu(main_window):
    window = main_window
    window.resize(1280, 720)
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    layout_menu = next(a.menu() for a in menu.actions() if a.menu() is not None and "Layout" in a.text())
    texts = [a.text().replace("&", "") for a in layout_menu.actions() if a.text()]
    assert texts == ["Explore", "Generate", "Train", "Reset"]
    next(a for a in layout_menu.actions() if a.text() == "&Train").trigger()
    QApplication.processEvents()
    training = window.docks["training"]
    assert training.width() > window.width() * 0.55  # the curves large
    assert not window.tabifiedDockWidgets(training)
    next(a for a in layout_menu.actions() if a.text() == "&Explore").trigger()
    QApplication.processEvents()
    for key in ("tokens", "attention", "activations"):
        assert not window.docks[key].visibleRegion().isEmpty(), key


def test_a_layout_saved_on_another_screen_opens_fitted_to_this_one(qtbot, session_factory):
    """Qt shrinks a geometry saved on a bigger screen to two thirds of this one; gptviz fits it instead."""
    from gptviz.qt.main_window import MainWindow
    from gptviz.qt.settings import AppSettings

    first = MainWindow(session_factory, start=False)
    qtbot.addWidget(first)
    first.resize(200, 150)  # small, as a geometry Qt shrank would be
    first.save_settings()
    AppSettings().set_value("window/screen", "2560x1440")  # as if saved on a larger monitor
    second = MainWindow(session_factory, start=False)
    qtbot.addWidget(second)
    available = second.screen().availableGeometry()
    assert second.width() == min(available.width(), 1500) and second.height() == min(available.height(), 950)


def test_train_layout_at_1280x720_never_scrolls_the_training_pane_sideways(main_window, qtbot):
    """View › Layout › Train gives the Training pane about two thirds of a 1280-pixel window: every tab
    (curves, diagnostics, histograms, the run comparison, kept checkpoints) fits that width."""
    window = main_window
    qtbot.waitUntil(lambda: window.generation_pane.view is not None, timeout=20_000)
    window.resize(1280, 720)
    window.apply_layout("train")
    scroll = window.docks["training"].widget()
    views = window.training_pane.views
    for index in range(views.count()):
        views.setCurrentIndex(index)
        QApplication.processEvents()
        qtbot.wait(20)
        assert scroll.horizontalScrollBar().maximum() == 0, views.tabText(index)
