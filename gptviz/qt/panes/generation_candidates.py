"""The Generation pane's candidates for the last token: a bar chart of their probabilities (before and
after the filters, the chosen one, the whole model's while parts are switched off) beside a table of them.

A mixin of GenerationPane (gptviz.qt.panes.generation), apart from its controls and its text
(gptviz.qt.panes.generation_text): `_build_candidates` makes the chart, the table and the ablation line,
`_show_candidates` draws a GenerationView's candidates into them, and a click or right-click on a row asks
the pane to force that token or to say why (`forceRequested`, `whyRequested`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QMenu,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gptviz.qt.panes.mixin_base import PaneMixin
from gptviz.qt.token_labels import quoted_token, token_label
from gptviz.qt.widgets.table_cells import cell_data

if TYPE_CHECKING:
    from PySide6.QtCore import SignalInstance

COLUMNS = ("", "token", "id", "p before", "p after", "p whole")
PLAIN_COLUMN = 5  # shown only while parts are switched off: the probability without the ablations
CHART_LABEL_CHARS = 12  # the bar chart's axis: a long token would squeeze the bars (the table keeps it all)


class CandidatesMixin(PaneMixin):
    """Builds and draws the candidates' chart and table (part of GenerationPane)."""

    if TYPE_CHECKING:  # the pane's state and signals this uses (set in GenerationPane)
        view: Any  # the newest GenerationView, or None
        forceRequested: SignalInstance
        whyRequested: SignalInstance

    def _build_candidates(self) -> QWidget:
        """The chart beside the table, under a title and the ablation line, over the legend."""
        self.plot = pg.PlotWidget()
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "probability")
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.getViewBox().invertY(True)
        self.plot.setXRange(0, 1, padding=0.02)
        self.plot.setMinimumHeight(160)
        self.bars_raw = pg.BarGraphItem(x0=[], y=[], height=0.8, width=[], brush="#c8c8c8", pen=None)
        self.bars_final = pg.BarGraphItem(x0=[], y=[], height=0.45, width=[], brush="#1f77b4", pen=None)
        self.bars_chosen = pg.BarGraphItem(x0=[], y=[], height=0.45, width=[], brush="#ff7f0e", pen=None)
        # While parts are switched off: an outline at the whole model's probability (before filters).
        self.bars_plain = pg.BarGraphItem(
            x0=[], y=[], height=0.8, width=[], brush=None, pen=pg.mkPen("#b00020", width=1.5)
        )
        for item in (self.bars_raw, self.bars_final, self.bars_chosen, self.bars_plain):
            self.plot.addItem(item)
        legend = QLabel(
            "<span style='color:#999'>■</span> before filters &nbsp; <span style='color:#1f77b4'>■</span> after "
            "temperature / top-k / top-p &nbsp; <span style='color:#ff7f0e'>■</span> chosen"
        )
        legend.setWordWrap(True)
        self.legend = legend
        # While parts are switched off (Model › Ablations…): what they changed at this step.
        self.ablation_label = QLabel()
        self.ablation_label.setWordWrap(True)
        self.ablation_label.setStyleSheet("color: #b00020")
        self.ablation_label.setTextFormat(Qt.TextFormat.PlainText)  # a token may look like a tag
        self.ablation_label.setVisible(False)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.setColumnHidden(PLAIN_COLUMN, True)
        for column, tip in (
            (
                3,
                "p before: the model's own probability of the token, softmax of its logits at temperature 1, "
                "before temperature, top-k and top-p",
            ),
            (
                4,
                "p after: the probability the token was drawn with, softmax of logits / temperature over the "
                "tokens top-k and top-p kept (0 for the tokens they dropped)",
            ),
            (
                PLAIN_COLUMN,
                "the probability the whole model gives, with nothing switched off (same tokens, temperature 1)",
            ),
        ):
            title = self.table.horizontalHeaderItem(column)
            if title is not None:  # always: the labels were set above
                title.setToolTip(tip)
        header = self.table.horizontalHeader()
        header.moveSection(PLAIN_COLUMN, 4)  # beside "p before": one step with and without the ablations
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(40)
        self.table.setMinimumWidth(220)
        self.table.setToolTip(
            "Click a candidate to take it instead of the chosen token; right-click to ask why the model gave it "
            "its probability"
        )
        self.table.cellClicked.connect(self._on_cell_clicked)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._candidate_menu)

        candidates = QWidget()
        cand_layout = QVBoxLayout(candidates)
        cand_layout.setContentsMargins(0, 0, 0, 0)
        cand_title = QLabel("<b>Candidates for the last token</b> (click one to take it instead)")
        cand_title.setWordWrap(True)
        cand_layout.addWidget(cand_title)
        cand_layout.addWidget(self.ablation_label)
        charts = QSplitter(Qt.Orientation.Horizontal)
        charts.addWidget(self.plot)
        charts.addWidget(self.table)
        charts.setStretchFactor(0, 2)
        charts.setStretchFactor(1, 3)
        cand_layout.addWidget(charts, 1)
        cand_layout.addWidget(legend)
        return candidates

    def why_actions(self, row: int) -> list[tuple[str, int, int]]:
        """(menu text, candidate id, id to compare with or -1) for a right-click on a candidate row."""
        item = self.table.item(row, 2)
        if item is None or self.view is None or self.view.last is None:
            return []
        token = int(item.data(Qt.ItemDataRole.UserRole))
        name = self.table.item(row, 1)
        assert name is not None  # _fill_table sets every cell of a row
        piece = name.text()
        chosen = int(self.view.last.chosen_id)
        actions = [(f"Why '{piece}'? (its logit split into the model's parts)", token, -1)]
        if token != chosen:
            actions.append(
                (f"Why '{piece}' and not the chosen '{self.view.last.chosen_piece}'?", token, chosen)
            )
        return actions

    def _candidate_menu(self, where) -> None:
        row = self.table.rowAt(where.y())
        actions = self.why_actions(row) if row >= 0 else []
        if not actions:
            return
        menu = QMenu(self)
        for text, token, against in actions:
            menu.addAction(text).triggered.connect(
                lambda _=False, t=token, a=against: self.whyRequested.emit(t, a)
            )
        menu.popup(self.table.viewport().mapToGlobal(where))
        self._menu = menu

    def _on_cell_clicked(self, row: int, _column: int) -> None:
        item = self.table.item(row, 2)
        if item is not None:
            self.forceRequested.emit(int(item.data(Qt.ItemDataRole.UserRole)))

    def _show_candidates(self, view) -> None:
        rows = view.candidates
        effect = getattr(view, "ablation_effect", None)
        plain_p = self._show_ablation_effect(effect, rows)  # (n,) or None
        self.table.clearSelection()  # a row clicked (forced) on an earlier step is not this step's choice
        # A column sized to its contents measures all its cells again after every cell that changes (60
        # cells: ~15 ms a step); the columns are fitted once, after the fill.
        header = self.table.horizontalHeader()
        fitted = [
            c
            for c in range(len(COLUMNS))
            if header.sectionResizeMode(c) == QHeaderView.ResizeMode.ResizeToContents
        ]
        for c in fitted:
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.Interactive)
        try:
            self._fill_table(rows, plain_p)
        finally:
            for c in fitted:
                header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        y = np.arange(len(rows), dtype=float)  # (n,)
        raw = np.array([c.prob_raw for c in rows], dtype=float)  # (n,)
        final = np.array([c.prob_final for c in rows], dtype=float)  # (n,)
        chosen = np.array([c.chosen for c in rows], dtype=bool)  # (n,)
        zeros = np.zeros_like(y)
        self.bars_raw.setOpts(x0=zeros, y=y, width=raw, height=0.8)
        self.bars_final.setOpts(x0=zeros, y=y, width=np.where(chosen, 0.0, final), height=0.45)
        self.bars_chosen.setOpts(x0=zeros, y=y, width=np.where(chosen, final, 0.0), height=0.45)
        plain = plain_p if plain_p is not None else np.zeros_like(y)  # (n,)
        self.bars_plain.setOpts(x0=zeros, y=y, width=plain, height=0.8)
        self.bars_plain.setVisible(plain_p is not None)
        labels = [(i, token_label(c.piece, CHART_LABEL_CHARS)) for i, c in enumerate(rows)]
        self.plot.getAxis("left").setTicks([labels])
        top = float(max(raw.max(initial=0.0), final.max(initial=0.0), plain.max(initial=0.0)))
        self.plot.setXRange(0, max(0.05, min(1.0, top * 1.1)), padding=0.02)
        self.plot.setYRange(-0.6, max(len(rows), 1) - 0.4, padding=0)

    def _fill_table(self, rows, plain_p: np.ndarray | None) -> None:
        """One row per candidate: rank (▶ for the chosen), token, id, p before, p after, p whole; the
        numbers also as data, so tests and exports read what the cell shows without parsing it."""
        self.table.setRowCount(len(rows))
        bold = QFont(self.table.font())
        bold.setBold(True)
        for r, cand in enumerate(rows):
            cells = (
                "▶" if cand.chosen else str(r + 1),
                token_label(cand.piece),
                str(cand.id),
                f"{cand.prob_raw:.4f}",
                f"{cand.prob_final:.4f}",
                f"{plain_p[r]:.4f}" if plain_p is not None else "",
            )
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 2:
                    item.setData(Qt.ItemDataRole.UserRole, cand.id)
                if c == 3:
                    item.setData(Qt.ItemDataRole.UserRole, cand.prob_raw)
                if c == 4:
                    item.setData(Qt.ItemDataRole.UserRole, cand.prob_final)
                if c == PLAIN_COLUMN and plain_p is not None:
                    item.setData(Qt.ItemDataRole.UserRole, float(plain_p[r]))
                if c >= 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if cand.chosen:
                    item.setFont(bold)
                    item.setBackground(QColor("#ffe0bf"))
                    item.setForeground(QColor("#111111"))
                self.table.setItem(r, c, item)

    def _show_ablation_effect(self, effect, rows) -> np.ndarray | None:
        """The label and column of an ablation's effect at this step; the whole model's probability of each
        row (n,), or None when nothing is switched off."""
        shown = effect is not None and [int(i) for i in effect.ids] == [c.id for c in rows]
        self.table.setColumnHidden(PLAIN_COLUMN, not shown)
        self.ablation_label.setVisible(shown)
        base = (
            "<span style='color:#999'>■</span> before filters &nbsp; <span style='color:#1f77b4'>■</span> after "
            "temperature / top-k / top-p &nbsp; <span style='color:#ff7f0e'>■</span> chosen"
        )
        if not shown:
            self.legend.setText(base)
            return None
        self.legend.setText(base + " &nbsp; <span style='color:#b00020'>□</span> whole model (nothing off)")
        self.ablation_label.setText(self.ablation_text(effect))
        return np.asarray(effect.probs_plain, dtype=float)  # (n,)

    @staticmethod
    def ablation_text(effect) -> str:
        """e.g. "Switched off: 1.2 · Δ logit('·the') = −1.23 (3.10 off, 4.33 whole model) · whole model's
        first: '·a' 0.41" (kept short: the pane is a third of a laptop screen)."""
        delta = effect.delta_logit
        sign = "−" if delta < 0 else "+"
        text = (
            f"Switched off: {', '.join(effect.labels)} · Δ logit({quoted_token(effect.chosen_piece)}) = "
            f"{sign}{abs(delta):.2f} ({effect.chosen_logit_ablated:.2f} off, "
            f"{effect.chosen_logit_plain:.2f} whole model)"
        )
        if effect.plain_top:
            _, top_piece, top_p = effect.plain_top[0]
            text += f" · whole model's first: {quoted_token(top_piece)} {top_p:.2f}"
        if effect.recomputed:
            text += " · chosen before the parts went off"
        return text

    def table_probabilities(self) -> list[tuple[int, float, float]]:
        """(id, p before, p after) per table row, read back from the cells (tests, export)."""
        out = []
        for r in range(self.table.rowCount()):
            out.append(
                (
                    int(cell_data(self.table, r, 2)),
                    float(cell_data(self.table, r, 3)),
                    float(cell_data(self.table, r, 4)),
                )
            )
        return out
