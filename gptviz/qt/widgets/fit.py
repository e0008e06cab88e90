"""Layouts that keep a pane usable on a small screen: a row of controls that wraps, and a scroll area that
holds a whole pane, so a dock smaller than its pane scrolls instead of clipping the pane's controls."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPoint, QRect, QSize, Qt, QTimer
from PySide6.QtWidgets import QFrame, QLayout, QLayoutItem, QScrollArea, QSizePolicy, QWidget


class FlowLayout(QLayout):
    """Widgets left to right, wrapping onto the next line when the row is too narrow (Qt's flow layout
    example). Its minimum width is its widest item, so a row of spin boxes and check boxes no longer
    holds a dock as wide as all of them together."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 6) -> None:
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._spacing = spacing
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item: QLayoutItem) -> None:  # noqa: N802
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:  # noqa: N802
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:  # noqa: N802
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:  # noqa: N802
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        return self._place(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:  # noqa: N802
        super().setGeometry(rect)
        self._place(rect, move=True)

    def sizeHint(self) -> QSize:  # noqa: N802
        width = sum(i.sizeHint().width() for i in self._visible()) + self._spacing * max(
            0, len(self._visible()) - 1
        )
        height = max((i.sizeHint().height() for i in self._visible()), default=0)
        m = self.contentsMargins()
        return QSize(width + m.left() + m.right(), height + m.top() + m.bottom())

    def minimumSize(self) -> QSize:  # noqa: N802
        size = QSize()
        for item in self._visible():
            size = size.expandedTo(item.minimumSize())
        m = self.contentsMargins()
        size += QSize(m.left() + m.right(), m.top() + m.bottom())
        width = self.geometry().width()
        if width > 0:  # wrapped onto several lines at the present width: ask for all of them
            size.setHeight(max(size.height(), self.heightForWidth(width)))
        return size

    def _visible(self) -> list[QLayoutItem]:
        return [i for i in self._items if not ((w := i.widget()) is not None and w.isHidden())]

    def _place(self, rect: QRect, move: bool) -> int:
        m = self.contentsMargins()
        area = rect.adjusted(m.left(), m.top(), -m.right(), -m.bottom())
        x, y, line = area.x(), area.y(), 0
        for item in self._visible():
            hint = item.sizeHint()
            if x > area.x() and x + hint.width() > area.right() + 1:
                x, y, line = area.x(), y + line + self._spacing, 0
            if move:
                item.setGeometry(QRect(QPoint(x, y), hint))
            x += hint.width() + self._spacing
            line = max(line, hint.height())
        return y + line - rect.y() + m.bottom()


class PaneScroll(QScrollArea):
    """Holds one pane in a dock. The pane fills the dock when the dock is large enough, and keeps its own
    minimum size when the dock is smaller, with scroll bars, so no control is squeezed out of sight. The dock
    itself can then be made as small as a laptop screen needs.

    The pane is sized here, not by QScrollArea's resizable mode: for a pane whose layout has a height for
    its width (a wrapping row of controls, a word-wrapped label) that mode makes the pane as tall as its
    preferred size (the Activations pane 1,090 px high in a 314 px dock at 1280x720), so every pane scrolled
    even where it fitted. Here the pane gets the dock's size, or the least height its layout needs at that
    width where that is more."""

    def __init__(self, pane: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pane = pane
        self.setObjectName(f"scroll_{pane.objectName() or type(pane).__name__}")
        self.setWidgetResizable(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidget(pane)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        pane.installEventFilter(self)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(120, 80)

    def sizeHint(self) -> QSize:  # noqa: N802
        return self.pane.sizeHint()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.fit_pane()

    def eventFilter(self, watched, event) -> bool:  # noqa: N802
        if watched is self.pane and event.type() == QEvent.Type.LayoutRequest:
            QTimer.singleShot(0, self, self.fit_pane)  # once the pane's layout has its new minimum
        return False

    def _least_height(self, width: int) -> int:
        """The least height the pane needs at `width` (its wrapped rows and labels included)."""
        layout = self.pane.layout()
        least = self.pane.minimumSizeHint().expandedTo(self.pane.minimumSize()).height()
        if layout is not None and layout.hasHeightForWidth():
            least = max(least, layout.totalMinimumHeightForWidth(width))
        return least

    def fit_pane(self) -> None:
        """Give the pane the viewport's size, or more where it needs more (then the area scrolls)."""
        room = self.maximumViewportSize()  # the viewport without scroll bars
        bar = self.verticalScrollBar().sizeHint().width()
        least_width = self.pane.minimumSizeHint().expandedTo(self.pane.minimumSize()).width()
        width = max(room.width(), least_width)
        height = self._least_height(width)
        if height > room.height() and width == room.width():  # a vertical scroll bar takes some width
            width = max(room.width() - bar, least_width)
            height = self._least_height(width)
        if width > room.width():  # a horizontal scroll bar takes some height
            room.setHeight(room.height() - self.horizontalScrollBar().sizeHint().height())
        size = QSize(width, max(height, room.height()))
        if self.pane.size() != size:
            self.pane.resize(size)


def labelled(text: str, widget: QWidget, tooltip: str | None = None) -> QWidget:
    """A label and its control kept together on one line of a FlowLayout."""
    from PySide6.QtWidgets import QHBoxLayout, QLabel

    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.setSpacing(4)
    label = QLabel(text)
    label.setBuddy(widget)
    if tooltip or widget.toolTip():
        label.setToolTip(tooltip or widget.toolTip())
    row.addWidget(label)
    row.addWidget(widget)
    return box
