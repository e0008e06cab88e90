"""The red strip under the menu bar that says what went wrong, in one line.

An error a user caused (a missing file, a bad setting) must reach them in the window, and the app keeps
working. A word-wrapped label made the strip 55 to 110 px high for a one-line message and pushed every pane
down; on a 1280×720 laptop that is a sixth of the screen. So the strip is one line: the message elided to
the width there is, the whole of it (and the earlier ones) a click away in Details…, and Dismiss.
"""

from __future__ import annotations

import html
import re

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QMouseEvent, QResizeEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QToolBar,
    QWidget,
)

_TAGS = re.compile(r"<[^>]+>")
MAX_KEPT = 20  # the Details dialog lists this many of the latest messages


def plain_text(rich: str) -> str:
    """The words of a message given as HTML ("<b>open</b>: no such file" -> "open: no such file")."""
    return html.unescape(_TAGS.sub("", rich))


class ElidedLabel(QLabel):
    """A one-line label that shows as much of its text as fits and ends in … (the tooltip has it all).

    A QLabel's minimum width is its whole text; this one can be narrower, so a long message never holds
    the window wider than the screen."""

    clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setTextFormat(Qt.TextFormat.PlainText)

    def full_text(self) -> str:
        return self._full

    def set_full_text(self, text: str) -> None:
        self._full = " ".join(text.split())  # one line: newlines in a message become spaces
        self.setToolTip(text)
        self._elide()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._elide()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit()
        super().mousePressEvent(event)

    def _elide(self) -> None:
        width = max(self.width(), 20)
        self.setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, width))


class ErrorBanner(QToolBar):
    """A non-modal strip under the menu bar: the worker's last error, one line high, with Details… and
    Dismiss; the app keeps working."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Messages", parent)
        self.setObjectName("errorBanner")
        self.setMovable(False)
        self.setFloatable(False)
        self.messages: list[str] = []  # plain text, oldest first
        box = QWidget()
        layout = QHBoxLayout(box)
        layout.setContentsMargins(8, 0, 4, 0)
        layout.setSpacing(6)
        self.label = ElidedLabel()
        self.label.setCursor(Qt.CursorShape.PointingHandCursor)
        self.label.clicked.connect(self.show_details)
        self.details_button = QPushButton("Details…")
        self.details_button.setToolTip("The whole message, and the ones before it")
        self.details_button.clicked.connect(self.show_details)
        close = QPushButton("Dismiss")
        close.clicked.connect(self.hide)
        self.dismiss_button = close
        layout.addWidget(self.label, 1)
        layout.addWidget(self.details_button)
        layout.addWidget(close)
        self.addWidget(box)
        self.setStyleSheet("QToolBar#errorBanner { background: #fde7e9; border-bottom: 1px solid #e0a0a8; }")
        self.toggleViewAction().setVisible(False)
        self.details: QMessageBox | None = None
        self.hide()

    def show_message(self, text: str) -> None:
        """Show `text` (plain, or HTML such as "<b>open</b>: …") elided to one line."""
        plain = plain_text(text)
        self.messages = (self.messages + [plain])[-MAX_KEPT:]
        self.label.set_full_text(plain)
        self.show()

    def show_details(self) -> QMessageBox:
        """A non-modal box with the whole last message and, below, the earlier ones."""
        if self.details is None:
            self.details = QMessageBox(self)
            self.details.setWindowTitle("What went wrong")
            self.details.setIcon(QMessageBox.Icon.Warning)
            self.details.setModal(False)
        last = self.messages[-1] if self.messages else ""
        self.details.setText(last)
        earlier = self.messages[:-1]
        self.details.setDetailedText("\n\n".join(reversed(earlier)) if earlier else "")
        self.details.show()
        self.details.raise_()
        return self.details


__all__ = ["ElidedLabel", "ErrorBanner", "plain_text"]
