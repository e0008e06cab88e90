"""Pane 1, Tokens (book ch. 2): text -> coloured token chips with ids, and the sliding-window data view.

The chips are painted by one widget (a few thousand QLabels would make typing slow); its tooltip finds the
chip under the mouse. The window table below shows the book's input/target pairs over the corpus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPoint, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from gptviz.qt.settings import AppSettings
from gptviz.qt.token_labels import sequence_labels
from gptviz.qt.widgets.table_cells import cell_data
from gptviz.tokenizer import END_OF_TEXT

# Pastel chip colours, cycled per token so neighbours always differ (as in the usual tokenizer demos).
CHIP_COLORS = ("#ffd6a5", "#caffbf", "#9bf6ff", "#bdb2ff", "#ffc6ff", "#fdffb6", "#a0c4ff", "#ffadad")
SPECIAL_COLOR = "#3a3a3a"
MAX_CHIPS = 4000  # beyond this the view says how many more there are instead of painting them


def chip_tooltip(token_id: int, data: bytes, start: int, end: int, text: str, special: bool) -> str:
    span = text[start:end]
    kind = "special token <|endoftext|>\n" if special else ""
    hex_bytes = " ".join(f"{b:02x}" for b in data)
    return f"{kind}id {token_id}\nbytes {hex_bytes} ({len(data)})\nspan [{start}, {end}) {span!r}"


# What the Tokens pane shows on a first launch: a special token, a long made-up word, a question.
DEFAULT_TEXT = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace."


@dataclass(frozen=True)
class _Chip:
    label: str
    token_id: int
    tooltip: str
    special: bool
    complete: bool
    rect: QRect


class ChipView(QWidget):
    """All tokens as chips: the piece on top, the id under it; wraps to the widget's width."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._view = None
        self._chips: list[_Chip] = []
        self._overflow = 0
        self._height = 40
        self.piece_font = QFont(self.font())
        self.piece_font.setStyleHint(QFont.StyleHint.Monospace)
        self.piece_font.setFamily("DejaVu Sans Mono")
        self.id_font = QFont(self.font())
        self.id_font.setPointSizeF(max(6.0, self.font().pointSizeF() * 0.8))

    # -- data
    def set_tokens(self, view) -> None:  # view: gptviz.engine.views.TokensView
        self._view = view
        self._layout_chips()
        self.update()

    def chip_count(self) -> int:
        return len(self._chips)

    def chip(self, index: int) -> _Chip:
        return self._chips[index]

    def chip_at(self, pos: QPoint) -> int:
        for index, chip in enumerate(self._chips):
            if chip.rect.contains(pos):
                return index
        return -1

    # -- layout
    def _layout_chips(self) -> None:
        self._chips = []
        view = self._view
        if view is None:
            self._height = 40
            self.setMinimumHeight(self._height)
            return
        pm, im = QFontMetrics(self.piece_font), QFontMetrics(self.id_font)
        width = max(200, self.width())
        x, y, pad, gap = 4, 4, 5, 4
        line_h = pm.height() + im.height() + 2 * pad
        count = min(view.n_tokens, MAX_CHIPS)
        labels = sequence_labels(view.data[:count])  # a character split over tokens reads whole: ’ ‹99›
        for i in range(count):
            token_id = int(view.ids[i])
            special = bool(view.special[i])
            label = END_OF_TEXT if special else labels[i]
            w = max(pm.horizontalAdvance(label), im.horizontalAdvance(str(token_id))) + 2 * pad
            if x + w > width - 4 and x > 4:
                x, y = 4, y + line_h + gap
            rect = QRect(x, y, w, line_h)
            tooltip = chip_tooltip(
                token_id, view.data[i], int(view.starts[i]), int(view.ends[i]), view.text, special
            )
            self._chips.append(_Chip(label, token_id, tooltip, special, bool(view.complete[i]), rect))
            x += w + gap
        self._overflow = view.n_tokens - count
        self._height = y + line_h + 8 + (im.height() + 4 if self._overflow else 0)
        if self.minimumHeight() != self._height:
            self.setMinimumHeight(self._height)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self._layout_chips()

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(400, self._height)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(200, self._height)

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return False

    # -- painting
    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pm, im = QFontMetrics(self.piece_font), QFontMetrics(self.id_font)
        text_color = QColor("#111111")
        exposed = event.rect()
        for index, chip in enumerate(self._chips):
            if not chip.rect.intersects(exposed):
                continue
            if chip.special:
                painter.setPen(QPen(QColor("#d62728"), 2))
                painter.setBrush(QColor(SPECIAL_COLOR))
            else:
                painter.setPen(QPen(QColor(0, 0, 0, 60), 1))
                painter.setBrush(QColor(CHIP_COLORS[index % len(CHIP_COLORS)]))
            painter.drawRoundedRect(chip.rect.adjusted(0, 0, -1, -1), 4, 4)
            piece_rect = QRect(chip.rect.x(), chip.rect.y() + 4, chip.rect.width(), pm.height())
            id_rect = QRect(chip.rect.x(), piece_rect.bottom() + 1, chip.rect.width(), im.height())
            font = QFont(self.piece_font)
            font.setItalic(not chip.complete)
            font.setBold(chip.special)
            painter.setFont(font)
            painter.setPen(QColor("white") if chip.special else text_color)
            painter.drawText(piece_rect, Qt.AlignmentFlag.AlignCenter, chip.label)
            painter.setFont(self.id_font)
            painter.setPen(QColor("#ffb3b3") if chip.special else QColor("#555555"))
            painter.drawText(id_rect, Qt.AlignmentFlag.AlignCenter, str(chip.token_id))
        if self._overflow:
            painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
            painter.setFont(self.id_font)
            painter.drawText(4, self._height - 6, f"… and {self._overflow:,} more tokens not drawn")
        painter.end()

    def event(self, event) -> bool:
        if event.type() == event.Type.ToolTip:
            index = self.chip_at(event.pos())
            if index >= 0:
                QToolTip.showText(
                    event.globalPos(), self._chips[index].tooltip, self, self._chips[index].rect
                )
            else:
                QToolTip.hideText()
                event.ignore()
            return True
        return super().event(event)


class TokensPane(QWidget):
    """Text box, chips, counts; below, sliding windows (max_length, stride) over the corpus."""

    textChanged = Signal(str)  # debounced: ask the worker to tokenize
    windowsRequested = Signal(int, int, int, int)  # max_length, stride, first, count

    WINDOW_ROWS = 6

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor = QPlainTextEdit()
        self.editor.setPlaceholderText("Type text to see its GPT-2 tokens…")
        self.editor.setMaximumHeight(90)
        self.counts = QLabel("0 characters · 0 tokens")
        self.counts.setObjectName("counts")
        self.chips = ChipView()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.chips)
        scroll.setMinimumHeight(90)
        self.chip_scroll = scroll

        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.editor)
        top_layout.addWidget(self.counts)
        top_layout.addWidget(scroll, 1)

        # -- windows
        self.max_length = QSpinBox()
        self.max_length.setRange(1, 64)
        self.max_length.setValue(4)
        self.stride = QSpinBox()
        self.stride.setRange(1, 1024)
        self.stride.setValue(1)
        self.first = QSpinBox()
        self.first.setRange(0, 0)
        self.window_info = QLabel("no corpus")
        self.window_info.setWordWrap(True)
        controls = QFormLayout()
        row = QHBoxLayout()
        for label, widget in (
            ("max_length", self.max_length),
            ("stride", self.stride),
            ("first window", self.first),
        ):
            row.addWidget(QLabel(label))
            row.addWidget(widget)
        row.addStretch(1)
        controls.addRow(row)
        controls.addRow(self.window_info)
        self.table = QTableWidget()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        title = QLabel(
            "<b>Data view</b> — sliding windows over the corpus: inputs, and targets shifted by one"
        )
        title.setWordWrap(True)
        bottom_layout.addWidget(title)
        bottom_layout.addLayout(controls)
        bottom_layout.addWidget(self.table, 1)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(bottom)
        # The chips take the height they need; the window table gets the rest, so several input/target
        # pairs are readable at once instead of one pair under a half-empty chip area.
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setCollapsible(1, False)
        self.splitter = splitter
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(60)
        self._debounce.timeout.connect(lambda: self.textChanged.emit(self.editor.toPlainText()))
        self.editor.textChanged.connect(self._debounce.start)
        for box in (self.max_length, self.stride, self.first):
            box.valueChanged.connect(self.request_windows)
        self.tokens_view = None
        self.windows_view = None

    # -- remembered between launches
    def save_settings(self, settings: AppSettings) -> None:
        """The text and the windows' length and stride, under `tokens/`."""
        settings.set_value("tokens/text", self.text())
        settings.set_value("tokens/max_length", self.max_length.value())
        settings.set_value("tokens/stride", self.stride.value())

    def restore_settings(self, settings: AppSettings) -> None:
        self.set_text(str(settings.value("tokens/text", DEFAULT_TEXT)))
        self.max_length.setValue(settings.value("tokens/max_length", 4, int))
        self.stride.setValue(settings.value("tokens/stride", 1, int))

    # -- inputs
    def set_text(self, text: str) -> None:
        self.editor.setPlainText(text)

    def text(self) -> str:
        return self.editor.toPlainText()

    def request_windows(self) -> None:
        self.windowsRequested.emit(
            self.max_length.value(), self.stride.value(), self.first.value(), self.WINDOW_ROWS
        )

    # -- results
    def set_tokens(self, view) -> None:
        self.tokens_view = view
        shown = min(view.n_tokens, MAX_CHIPS)
        note = (
            f" (showing the first {shown:,} of {view.n_tokens:,} as chips)" if shown < view.n_tokens else ""
        )
        self.counts.setText(f"{view.n_chars:,} characters · {view.n_tokens:,} tokens{note}")
        self.chips.set_tokens(view)

    def set_windows(self, view) -> None:
        self.windows_view = view
        self.first.blockSignals(True)
        self.first.setMaximum(max(0, view.total - 1))
        self.first.setValue(view.first)
        self.first.blockSignals(False)
        self.window_info.setText(
            f"{view.corpus_name}: {view.total:,} windows of {view.max_length} tokens every {view.stride} "
            f"(showing {view.first:,}–{view.first + len(view.inputs) - 1:,})"
        )
        n, length = view.inputs.shape
        self.table.clear()
        self.table.setRowCount(2 * n)
        self.table.setColumnCount(length)
        self.table.setHorizontalHeaderLabels([str(i) for i in range(length)])
        labels = []
        for r in range(n):
            labels += [f"input {view.first + r}", f"target {view.first + r}"]
            shown = (sequence_labels(view.input_pieces[r]), sequence_labels(view.target_pieces[r]))
            for c in range(length):
                for kind, ids in ((0, view.inputs), (1, view.targets)):
                    token_id = int(ids[r, c])
                    item = QTableWidgetItem(f"{shown[kind][c]}\n{token_id}")
                    item.setData(Qt.ItemDataRole.UserRole, token_id)
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    item.setBackground(QColor("#e8f0fe") if kind == 0 else QColor("#fff4e0"))
                    item.setForeground(QColor("#111111"))
                    self.table.setItem(2 * r + kind, c, item)
        self.table.setVerticalHeaderLabels(labels)

    def table_ids(self) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, targets) as shown in the table, read back from the cells (tests, export)."""
        rows, cols = self.table.rowCount(), self.table.columnCount()
        grid = np.array(
            [[int(cell_data(self.table, r, c)) for c in range(cols)] for r in range(rows)],
            dtype=np.int64,
        ).reshape(rows, cols)  # (2n, L)
        return grid[0::2], grid[1::2]

    def export_data(self) -> dict[str, np.ndarray]:
        data: dict[str, np.ndarray] = {}
        if self.tokens_view is not None:
            data["token_ids"] = self.tokens_view.ids
            data["starts"] = self.tokens_view.starts
            data["ends"] = self.tokens_view.ends
        if self.windows_view is not None:
            data["window_inputs"] = self.windows_view.inputs
            data["window_targets"] = self.windows_view.targets
        return data

    def export_table(self) -> tuple[list[str], list[list[object]]]:
        view = self.tokens_view
        if view is None:
            return ["index", "id", "piece", "start", "end"], []
        rows = [
            [i, int(view.ids[i]), view.pieces[i], int(view.starts[i]), int(view.ends[i])]
            for i in range(view.n_tokens)
        ]
        return ["index", "id", "piece", "start", "end"], rows
