"""Attention, step by step (the book's chapter 3), for one head and one query token, in a window of its own.

Opened by clicking a row (a query token) of the Attention pane's heatmap. One row per key token the query
may see: the attention score q . k, the score scaled by 1/sqrt(d_head), the causal mask (keys after the query
are -inf and get no weight), the softmax weight, and the length of weight x value; above, the query vector,
the context vector (the weighted sum of the values) and the size of this head's share of out_proj. The
numbers are this model's on this text (gptviz.engine.attention_steps), and the view follows each generation
step (the window asks again after every new inspection).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gptviz.qt.widgets.labels import display_token

if TYPE_CHECKING:  # annotations only: importing these at run time would load torch before the window paints
    from gptviz.engine.attention_steps import AttentionSteps

COLUMNS = ("key token", "q · k", "÷ √d_head", "causal mask", "softmax weight", "‖weight × v‖")
VECTOR_SHOWN = 8  # leading numbers of a vector shown in the header


def _vector(values: np.ndarray) -> str:
    head = ", ".join(f"{v:+.3f}" for v in values[:VECTOR_SHOWN])
    more = f", … ({values.shape[0]} numbers)" if values.shape[0] > VECTOR_SHOWN else ""
    return f"[{head}{more}]"


class AttentionStepsView(QDialog):
    """Shows one AttentionSteps; `request` (layer, head, query position) says what to ask the worker for."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Attention, step by step")
        self.resize(720, 520)
        self.request: tuple[int, int, int] | None = None
        self.steps: AttentionSteps | None = None
        self.pieces: tuple[str, ...] = ()
        self.summary = QLabel(
            "Click a row of the attention map to see how that query token's weights come about."
        )
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        tips = (
            "the key's token",
            "attention score: the query vector dotted with the key vector",
            "the score divided by the square root of the head's width, so softmax is not too peaked",
            "the causal mask: a query never sees keys after it (their score becomes -inf)",
            "softmax over the visible keys: the attention weights, which add up to 1",
            "how much this key's value adds to the context vector",
        )
        for col, tip in enumerate(tips):
            header = self.table.horizontalHeaderItem(col)
            if header is not None:  # always: the labels were set above
                header.setToolTip(tip)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)

    def set_steps(self, steps: AttentionSteps, pieces: tuple[str, ...]) -> None:
        self.steps, self.pieces = steps, pieces
        i = steps.query_position
        T = steps.scores.shape[0]
        query = display_token(pieces[i]) if i < len(pieces) else str(i)
        self.summary.setText(
            f"<b>Layer {steps.layer}, head {steps.head}, query token {i} '{query}'</b> — "
            f"d_head = {steps.query.shape[0]}, scale 1/√d_head = {steps.scale:.4f}<br>"
            f"query vector q = {_vector(steps.query)}<br>"
            f"context vector z = Σ weight × v = {_vector(steps.context)}<br>"
            f"this head's share of out_proj: a vector of length {np.linalg.norm(steps.head_output):.4f}"
        )
        self.table.setRowCount(T)
        weighted = np.linalg.norm(steps.weighted_values, axis=1)  # (T,)
        for j in range(T):
            hidden = j > i
            cells = (
                f"{j}: {display_token(pieces[j]) if j < len(pieces) else j}",
                f"{steps.scores[j]:+.4f}",
                f"{steps.scaled[j]:+.4f}",
                "−∞ (future)" if hidden else "visible",
                f"{steps.weights[j]:.4f}",
                f"{weighted[j]:.4f}",
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if hidden:
                    item.setForeground(Qt.GlobalColor.gray)
                self.table.setItem(j, col, item)


__all__ = ["AttentionStepsView"]
