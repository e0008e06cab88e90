"""Where the main window's docks go and how big the window is: View › Layout's arrangements, the window
fitted to the screen it opens on, and its geometry saved and restored across screens.

Why a room of its own: none of this knows what a pane shows or what the worker does; it is geometry (the
two columns of docks, their shares of the window, a laptop's short screen, a layout saved on a larger
monitor), and it was a third of the window's code. The functions take the window and its docks; the
window keeps `apply_layout` and `fit_to_screen` as the names menus and tests call.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDockWidget, QMainWindow, QWidget

from gptviz.qt.settings import AppSettings
from gptviz.qt.widgets.fit import PaneScroll

DEFAULT_SIZE = (1500, 950)  # the first window, when the screen's available geometry has room for it
COMPACT_HEIGHT = 860  # below this window height, the default layout tabs Tokens behind Generation
SCREEN_KEY = "window/screen"  # the available size of the screen the geometry was saved on, "WxH"

# View › Layout: (left column, right column, left column's share of the width, each column's height shares).
# A column is a list of cells from top to bottom; a cell is a list of panes tabbed together, the first in front.
LAYOUTS: dict[str, tuple[list[list[str]], list[list[str]], float, tuple[tuple[float, ...], ...]]] = {
    "default": (
        [["tokens"], ["generation"]],
        [["attention"], ["activations", "training"]],
        0.46,
        ((0.57, 0.43), (0.45, 0.55)),
    ),
    "explore": (
        [["tokens", "generation"]],
        [["attention"], ["activations", "training"]],
        0.4,
        ((1.0,), (0.5, 0.5)),
    ),
    "generate": (
        [["generation", "tokens"]],
        [["attention"], ["activations", "training"]],
        0.5,
        ((1.0,), (0.45, 0.55)),
    ),
    "train": (
        [["training"]],
        [["generation", "tokens"], ["activations", "attention"]],
        0.66,
        ((1.0,), (0.5, 0.5)),
    ),
}


def make_dock(window: QMainWindow, key: str, title: str, pane: QWidget) -> QDockWidget:
    """A movable, floatable, closable dock holding `pane` (scrolled when the dock is smaller than it)."""
    dock = QDockWidget(title, window)
    dock.setObjectName(f"dock_{key}")
    dock.setWidget(PaneScroll(pane))  # a dock smaller than its pane scrolls instead of clipping
    dock.setFeatures(
        QDockWidget.DockWidgetFeature.DockWidgetMovable
        | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        | QDockWidget.DockWidgetFeature.DockWidgetClosable
    )
    return dock


def arrange(window: QMainWindow, docks: dict[str, QDockWidget], name: str) -> str:
    """Arrange the docks by one of LAYOUTS: two columns, each a list of cells, each cell a list of panes
    tabbed together (the first one in front). Every pane stays reachable: none is hidden. Returns the
    layout applied ("default" on a short window is "generate")."""
    if name == "default" and window.height() < COMPACT_HEIGHT:
        name = "generate"  # two panes a column leave each too short on a laptop: tab the left one
    left, right, width_share, heights = LAYOUTS[name]
    d = docks
    for dock in d.values():
        dock.setFloating(False)
        window.removeDockWidget(dock)
    for column, area in (
        (left, Qt.DockWidgetArea.LeftDockWidgetArea),
        (right, Qt.DockWidgetArea.RightDockWidgetArea),
    ):
        first = column[0][0]
        window.addDockWidget(area, d[first])
        previous = first
        for cell in column[1:]:
            window.splitDockWidget(d[previous], d[cell[0]], Qt.Orientation.Vertical)
            previous = cell[0]
        for cell in column:
            for key in cell[1:]:
                window.tabifyDockWidget(d[cell[0]], d[key])
    for dock in d.values():
        dock.show()
    for column in (left, right):
        for cell in column:
            d[cell[0]].raise_()
    width = max(window.width(), 400)
    height = max(window.height() - 60, 200)  # less the menu and status bars
    window.resizeDocks(
        [d[left[0][0]], d[right[0][0]]],
        [int(width * width_share), int(width * (1 - width_share))],
        Qt.Orientation.Horizontal,
    )
    for column, shares in zip((left, right), heights, strict=True):
        if len(column) > 1:
            window.resizeDocks(
                [d[cell[0]] for cell in column],
                [int(height * f) for f in shares],
                Qt.Orientation.Vertical,
            )
    return name


def fit_to_screen(window: QMainWindow, width: int = DEFAULT_SIZE[0], height: int = DEFAULT_SIZE[1]) -> None:
    """Size the window to (width, height) or to the screen's available geometry, whichever is smaller,
    and place it inside that geometry (without a window manager, showMaximized does nothing)."""
    screen = window.screen() or QGuiApplication.primaryScreen()
    if screen is None:
        window.resize(width, height)
        return
    available = screen.availableGeometry()
    frame = window.frameGeometry().size() - window.geometry().size()  # the title bar, once shown
    w = min(width, available.width() - frame.width())
    h = min(height, available.height() - frame.height())
    window.resize(w, h)
    window.move(
        available.x() + (available.width() - w - frame.width()) // 2,
        available.y() + (available.height() - h - frame.height()) // 2,
    )
    if (w < width or h < height) and QGuiApplication.platformName() not in ("offscreen", "minimal"):
        # A window manager then fits the window and its title bar to the screen itself.
        window.setWindowState(window.windowState() | Qt.WindowState.WindowMaximized)


def available_size(window: QWidget) -> QSize | None:
    screen = window.screen() or QGuiApplication.primaryScreen()
    return screen.availableGeometry().size() if screen is not None else None


def _screen_text(size: QSize | None) -> str:
    return f"{size.width()}x{size.height()}" if size is not None else ""


def restore_geometry(window: QMainWindow, docks: dict[str, QDockWidget], settings: AppSettings) -> None:
    """The saved geometry and dock state; a first launch, or a geometry saved on a screen of another size
    (or larger than this one), fits this screen and takes the default layout instead of the saved size."""
    geometry, state = settings.geometry()
    if geometry is not None:
        window.restoreGeometry(geometry)
    available = available_size(window)
    # Qt shrinks a geometry saved on a larger screen to two thirds of this one: a laptop after an
    # external monitor would open in a small window. Saved on another screen size: fit this one.
    if (
        geometry is None
        or settings.value(SCREEN_KEY, "") != _screen_text(available)
        or (
            available is not None
            and (window.width() > available.width() or window.height() > available.height())
        )
    ):
        fit_to_screen(window)  # a first launch, or a layout saved on a larger screen
        arrange(window, docks, "default")  # the dock sizes follow the window's
    if state is not None:
        window.restoreState(state)


def save_geometry(window: QMainWindow, settings: AppSettings) -> None:
    settings.set_geometry(window.saveGeometry(), window.saveState())
    available = available_size(window)
    if available is not None:
        settings.set_value(SCREEN_KEY, _screen_text(available))


def refit_if_off_screen(window: QMainWindow) -> None:
    """On the first show the frame (title bar, borders) is known: refit when it pushes the window off the
    screen's available geometry."""
    screen = window.screen()
    if screen is None:
        return
    available = screen.availableGeometry()
    frame = window.frameGeometry()
    if frame.width() > available.width() or frame.height() > available.height():
        fit_to_screen(window, window.width(), window.height())
