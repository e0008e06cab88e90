"""Why this token: the candidate's logit split into what each part of the model wrote (direct logit
attribution, gptviz.engine.attribution), opened by right-clicking a candidate in the Generation pane.

A bar chart of the largest parts (positive: pushed the logit up; negative: held it down) and the whole list
in a table. The parts add up to the logit exactly: the final LayerNorm's scale is frozen at this position's
value (TransformerLens's convention), and every part is centred like the stream it is part of.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gptviz.engine.attribution import LogitAttribution
from gptviz.qt.widgets.labels import display_token

BARS = 15  # the largest parts drawn as bars; the table has all of them


class WhyView(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Why this token?")
        self.resize(760, 520)
        self.result: LogitAttribution | None = None
        self.summary = QLabel()
        self.summary.setWordWrap(True)
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
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.plot)
        split.addWidget(self.table)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(split, 1)

    def set_result(self, result: LogitAttribution, target_piece: str, against_piece: str | None) -> None:
        self.result = result
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
