"""Why this token: the candidate's logit split into what each part of the model wrote (direct logit
attribution, gptviz.engine.attribution), and which input tokens moved it (input x gradient, or integrated
gradients on demand), opened by right-clicking a candidate in the Generation pane.

A bar chart of the largest parts (positive: pushed the logit up; negative: held it down) and the whole list
in a table. The parts add up to the logit exactly: the final LayerNorm's scale is frozen at this position's
value (TransformerLens's convention), and every part is centred like the stream it is part of.
"""

from __future__ import annotations

import html
import threading
from typing import TYPE_CHECKING

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gptviz.qt.widgets.labels import display_token

if TYPE_CHECKING:  # annotations only: importing these at run time would load torch before the window paints
    from gptviz.engine.attribution import InputAttribution, LogitAttribution

BARS = 15  # the largest parts drawn as bars; the table has all of them


def token_colours(pieces: tuple[str, ...], scores: tuple[float, ...]) -> str:
    """HTML: each token on a background from red (pushed the logit down) to green (up), by |score|."""
    top = max((abs(v) for v in scores), default=0.0) or 1.0
    spans = []
    for piece, score in zip(pieces, scores, strict=True):
        strength = min(1.0, abs(score) / top)
        r, g, b = (214, 39, 40) if score < 0 else (44, 160, 44)
        colour = f"rgba({r},{g},{b},{0.15 + 0.85 * strength:.2f})"
        text = html.escape(display_token(piece))
        spans.append(f"<span style='background-color:{colour}' title='{score:+.4f}'>{text}</span>")
    return " ".join(spans)


class WhyView(QDialog):
    integratedRequested = Signal(int)  # the target token: run integrated gradients for it

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Why this token?")
        self.resize(760, 600)
        self.attribution: LogitAttribution | None = None  # (not `result`: that would hide QDialog.result())
        self.inputs: InputAttribution | None = None
        self.cancel_event = threading.Event()
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.inputs_title = QLabel()
        self.inputs_title.setWordWrap(True)
        self.tokens = QLabel()
        self.tokens.setWordWrap(True)
        self.tokens.setTextFormat(Qt.TextFormat.RichText)
        self.ig_button = QPushButton("Integrated gradients (32 steps)")
        self.ig_button.setToolTip(
            "Average the gradient along the path from token embeddings of zero to the real ones: slower, and "
            "the scores add up to the logit minus the baseline's"
        )
        self.ig_cancel = QPushButton("Cancel")
        self.ig_cancel.setEnabled(False)
        self.ig_progress = QProgressBar()
        self.ig_progress.setVisible(False)
        self.ig_button.clicked.connect(self._run_ig)
        self.ig_cancel.clicked.connect(self.cancel_event.set)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("bottom", "contribution to the logit")
        self.bars = pg.BarGraphItem(x0=[], y=[], height=0.7, width=[], brushes=[])
        self.plot.addItem(self.bars)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["part", "contribution"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)  # the rank is the order; the value column must show
        self.table.setMinimumWidth(240)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.plot)
        split.addWidget(self.table)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([460, 260])
        ig_row = QHBoxLayout()
        ig_row.addWidget(self.ig_button)
        ig_row.addWidget(self.ig_cancel)
        ig_row.addWidget(self.ig_progress, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(split, 1)
        layout.addWidget(self.inputs_title)
        layout.addWidget(self.tokens)
        layout.addLayout(ig_row)

    def set_inputs(self, inputs: InputAttribution, pieces: tuple[str, ...]) -> None:
        """Colour the input tokens by how much each moved the target's logit."""
        self.inputs = inputs
        how = {"ixg": "input × gradient", "ig": f"integrated gradients, {inputs.steps} steps"}[inputs.method]
        extra = ""
        if inputs.baseline_logit is not None:
            extra = (
                f"; the scores add up to {sum(inputs.scores):+.3f}, the logit {inputs.target_logit:+.3f} minus "
                f"the baseline's {inputs.baseline_logit:+.3f}"
            )
        self.inputs_title.setText(f"<b>Which input tokens moved it</b> ({how}; green up, red down{extra})")
        self.tokens.setText(token_colours(pieces, inputs.scores))
        self.ig_done("")

    def _run_ig(self) -> None:
        if self.attribution is None:
            return
        self.cancel_event.clear()
        self.ig_button.setEnabled(False)
        self.ig_cancel.setEnabled(True)
        self.ig_progress.setRange(0, 0)
        self.ig_progress.setVisible(True)
        self.integratedRequested.emit(self.attribution.target_id)

    def ig_progressed(self, payload: object) -> None:
        if isinstance(payload, tuple):
            self.ig_progress.setRange(0, int(payload[1]))
            self.ig_progress.setValue(int(payload[0]))
        else:
            self.ig_done(str(payload))

    def ig_done(self, message: str) -> None:
        self.ig_button.setEnabled(True)
        self.ig_cancel.setEnabled(False)
        self.ig_progress.setVisible(False)
        if message:
            self.inputs_title.setText(f"<b>Which input tokens moved it</b> — integrated gradients {message}")

    def set_result(
        self,
        result: LogitAttribution,
        target_piece: str,
        against_piece: str | None,
        inputs: InputAttribution | None = None,
        pieces: tuple[str, ...] = (),
    ) -> None:
        self.attribution = result
        if inputs is not None:
            self.set_inputs(inputs, pieces)
        what = f"'{display_token(target_piece)}'"
        if against_piece is not None:
            what += f" minus '{display_token(against_piece)}'"
        total = sum(v for _, v in result.components)
        self.summary.setText(
            f"<b>Logit of {what}</b> at token {result.position}: {result.logit:+.4f} "
            f"(the parts below add up to {total:+.4f}). Positive parts pushed it up, negative ones held it "
            "down; L3.H7 is head 7 of layer 3, L3.mlp layer 3's MLP, embed the token and position embeddings."
        )
        ranked = sorted(result.components, key=lambda c: -abs(c[1]))
        shown = ranked[:BARS]
        self.bars.setOpts(
            x0=[min(0.0, v) for _, v in shown],
            width=[abs(v) for _, v in shown],
            y=list(range(len(shown))),
            brushes=[pg.mkBrush("#2ca02c" if v >= 0 else "#d62728") for _, v in shown],
        )
        axis = self.plot.getAxis("left")
        axis.setTicks([[(i, name) for i, (name, _) in enumerate(shown)]])
        self.plot.getViewBox().invertY(True)
        self.plot.autoRange()
        self.table.setRowCount(len(ranked))
        for row, (name, value) in enumerate(ranked):
            self.table.setItem(row, 0, QTableWidgetItem(name))
            self.table.setItem(row, 1, QTableWidgetItem(f"{value:+.4f}"))


__all__ = ["WhyView"]
