"""Pane 5, Generation (book ch. 4-5): one token at a time, with the candidates of each step laid open.

The pane only shows the newest GenerationView and emits what the user asks for (step, play, undo, reset,
force a candidate, new sampling settings); the worker does the work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from gptviz.engine.sampling_settings import SamplingSettings
from gptviz.engine.views import DEFAULT_PROMPT
from gptviz.errors import ConfigError
from gptviz.qt.settings import AppSettings
from gptviz.qt.token_labels import quoted_token, sequence_labels, token_label
from gptviz.qt.widgets.fit import FlowLayout, labelled
from gptviz.qt.widgets.table_cells import cell_data

COLUMNS = ("", "token", "id", "p before", "p after", "p whole")
PLAIN_COLUMN = 5  # shown only while parts are switched off: the probability without the ablations
CHART_LABEL_CHARS = 12  # the bar chart's axis: a long token would squeeze the bars (the table keeps it all)
TEXT_POINT_SIZE = 12
LABEL_CONTEXT = 3  # a UTF-8 character has at most 4 bytes: a token's label depends on 3 tokens either side

_TokenKey = tuple[str, float | None, bool]  # how a token of the text is drawn: (label, p or None, forced)


@dataclass
class _ShownText:
    """What the text box shows, so a step changes only the tokens it changed: the ids it was drawn from,
    each token's (label, p, forced) and the document position where each token starts (prompt included)."""

    prompt_ids: np.ndarray  # (P,)
    new_ids: np.ndarray  # (N,)
    keys: list[_TokenKey]  # (P + N)
    starts: list[int]  # (P + N)


class _TextWithStatus(QWidget):
    """The generated text over its status line, one part of the pane's splitter.

    A splitter gives each part at least its minimumSizeHint, and a layout's hint counts a word-wrapped
    label as one line: at 1280x720 the status (three lines in a third of the screen) ran a line over the
    bottom of the text. Here the least height is what the layout needs at the present width, the status's
    wrapped lines included."""

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        hint = super().minimumSizeHint()
        layout = self.layout()
        if layout is not None and self.width() > 0 and layout.hasHeightForWidth():
            hint.setHeight(max(hint.height(), layout.totalMinimumHeightForWidth(self.width())))
        return hint


def probability_color(p: float) -> QColor:
    """Red for an unlikely choice through yellow to green for a confident one (hue 0 -> 120)."""
    p = float(np.clip(p, 0.0, 1.0))
    return QColor.fromHsl(int(120 * p**0.5), 200, 205)


class GenerationPane(QWidget):
    promptSubmitted = Signal(str)
    stepRequested = Signal()
    playToggled = Signal(bool)
    undoRequested = Signal()
    resetRequested = Signal()
    forceRequested = Signal(int)
    whyRequested = Signal(int, int)  # (candidate id, id to compare with or -1): split its logit into parts
    samplingChanged = Signal(object)  # SamplingSettings

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = None
        self.context_length: int | None = None  # the model's context (the window sets it), for the cut count
        self._raw_by_index: dict[int, tuple[int, float]] = {}  # new token index -> (id, p before filters)
        self._raw_prompt: tuple[int, ...] = ()
        self._text_shown: _ShownText | None = None
        # -- prompt and buttons
        self.prompt = QLineEdit()
        self.prompt.setPlaceholderText("Prompt (Enter to start over from it)")
        self.prompt.returnPressed.connect(lambda: self.promptSubmitted.emit(self.prompt.text()))
        self.step_button = QPushButton("Step ▶")
        self.step_button.setToolTip("Generate one token (Ctrl+Right)")
        self.play_button = QPushButton("Play")
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("Keep generating until paused, <|endoftext|> or the limit (Ctrl+P)")
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("Take back the last token (Ctrl+Left)")
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("Back to the prompt (Ctrl+Shift+R)")
        # The keys are the window's Generate menu actions, which work from any focus, the prompt included
        # (a button's own shortcut was dropped when Play was relabelled Pause).
        self.step_button.clicked.connect(self.stepRequested)
        self.play_button.toggled.connect(self._on_play)
        self.undo_button.clicked.connect(self.undoRequested)
        self.reset_button.clicked.connect(self.resetRequested)
        top = QHBoxLayout()
        top.addWidget(QLabel("Prompt"))
        top.addWidget(self.prompt, 1)

        # -- sampling controls
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 5.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setDecimals(2)
        self.temperature.setToolTip(
            "Temperature scaling (book ch. 5): divides the logits by this number before softmax. Below 1 the "
            "distribution gets sharper (the likely tokens more likely), above 1 flatter (more varied, more "
            "mistakes); 0 = greedy, always the most likely token (argmax)"
        )
        self.top_k = QSpinBox()
        self.top_k.setRange(0, 50257)
        self.top_k.setSpecialValueText("off")
        self.top_k.setToolTip(
            "Top-k sampling (book ch. 5): keep only the k largest logits and set the others to -inf, so after "
            "softmax they get probability 0 and can never be drawn (0 = off)"
        )
        self.top_p = QDoubleSpinBox()
        self.top_p.setRange(0.01, 1.0)
        self.top_p.setSingleStep(0.05)
        self.top_p.setDecimals(2)
        self.top_p.setToolTip(
            "Top-p (nucleus) sampling: after temperature and top-k, keep the smallest set of most likely "
            "tokens whose probabilities add up to p, the others set to -inf like top-k's; the kept ones are "
            "renormalised to sum to 1 (1 = off)"
        )
        self.seed = QSpinBox()
        self.seed.setRange(-1, 2**31 - 1)
        self.seed.setSpecialValueText("random")
        self.seed.setToolTip("seed of the random choice (applies from the next Reset)")
        self.stop_at_eot = QCheckBox("stop at <|endoftext|>")
        # Buttons and sampling controls in one row that wraps when the pane is narrow (a laptop screen).
        controls = FlowLayout()
        for button in (self.step_button, self.play_button, self.undo_button, self.reset_button):
            controls.addWidget(button)
        for label, widget in (
            ("temperature", self.temperature),
            ("top-k", self.top_k),
            ("top-p", self.top_p),
            ("seed", self.seed),
        ):
            controls.addWidget(labelled(label, widget))
        controls.addWidget(self.stop_at_eot)
        self.set_sampling(SamplingSettings(temperature=0.8, top_k=50, top_p=0.95, seed=0))
        for box in (self.temperature, self.top_k, self.top_p, self.seed):
            box.valueChanged.connect(self._emit_sampling)
        self.stop_at_eot.toggled.connect(self._emit_sampling)

        # -- generated text
        self.text = QTextBrowser()
        self.text.setOpenLinks(False)
        self.text.setMinimumHeight(70)
        self.text.setToolTip(
            "The prompt (grey), then each generated token on the colour of the model's own probability of it, "
            "before temperature and filters: red unlikely, green confident; a forced token is underlined. "
            "Spaces show as ·, newlines as ↵, and a character split over tokens (’) whole on its first token "
            "with the bytes the next add as ‹99›"
        )
        self.status = QLabel("")
        self.status.setWordWrap(True)

        # -- candidates: bar chart + table
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

        text_box = _TextWithStatus()
        text_layout = QVBoxLayout(text_box)
        text_layout.setContentsMargins(0, 0, 0, 0)
        text_layout.addWidget(self.text, 1)
        text_layout.addWidget(self.status)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(text_box)
        splitter.addWidget(candidates)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 2)
        splitter.setChildrenCollapsible(False)  # a part dragged below its least size would hide the status

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addLayout(controls)
        layout.addWidget(splitter, 1)

    # ------------------------------------------------------------------------------------------ controls

    def sampling(self) -> SamplingSettings:
        seed = self.seed.value()
        return SamplingSettings(
            temperature=float(self.temperature.value()),
            top_k=int(self.top_k.value()) or None,
            top_p=float(self.top_p.value()),
            seed=None if seed < 0 else seed,
            stop_at_eot=self.stop_at_eot.isChecked(),
        )

    def set_sampling(self, settings: SamplingSettings) -> None:
        widgets = (self.temperature, self.top_k, self.top_p, self.seed, self.stop_at_eot)
        for w in widgets:
            w.blockSignals(True)
        self.temperature.setValue(settings.temperature)
        self.top_k.setValue(settings.top_k or 0)
        self.top_p.setValue(settings.top_p)
        self.seed.setValue(-1 if settings.seed is None else settings.seed)
        self.stop_at_eot.setChecked(settings.stop_at_eot)
        for w in widgets:
            w.blockSignals(False)

    def save_settings(self, settings: AppSettings) -> None:
        """The prompt and the sampling controls, under `generation/`."""
        settings.set_value("generation/prompt", self.prompt.text())
        settings.set_value("generation/temperature", self.temperature.value())
        settings.set_value("generation/top_k", self.top_k.value())
        settings.set_value("generation/top_p", self.top_p.value())
        settings.set_value("generation/seed", self.seed.value())
        settings.set_value("generation/stop_at_eot", self.stop_at_eot.isChecked())

    def restore_settings(self, settings: AppSettings) -> None:
        """What save_settings wrote; a set of values that no longer validates keeps the pane's defaults."""
        self.prompt.setText(str(settings.value("generation/prompt", DEFAULT_PROMPT)))
        seed = settings.value("generation/seed", 0, int)
        try:
            sampling = SamplingSettings(
                temperature=settings.value("generation/temperature", 0.8, float),
                top_k=settings.value("generation/top_k", 50, int) or None,
                top_p=settings.value("generation/top_p", 0.95, float),
                seed=None if seed < 0 else seed,
                stop_at_eot=settings.value("generation/stop_at_eot", True, bool),
            )
        except ConfigError:
            return
        self.set_sampling(sampling)

    def _emit_sampling(self) -> None:
        try:
            self.samplingChanged.emit(self.sampling())
        except ConfigError as exc:
            self.status.setText(str(exc))

    def _on_play(self, checked: bool) -> None:
        self.play_button.setText("Pause" if checked else "Play")
        self.playToggled.emit(checked)

    def set_playing(self, playing: bool) -> None:
        """The worker's word on whether Play runs (it stops on its own at <|endoftext|> or the limit)."""
        self.play_button.blockSignals(True)
        self.play_button.setChecked(playing)
        self.play_button.setText("Pause" if playing else "Play")
        self.play_button.blockSignals(False)

    def why_actions(self, row: int) -> list[tuple[str, int, int]]:
        """(menu text, candidate id, id to compare with or -1) for a right-click on a candidate row."""
        item = self.table.item(row, 2)
        if item is None or self.view is None or self.view.last is None:
            return []
        token = int(item.data(Qt.ItemDataRole.UserRole))
        piece = self.table.item(row, 1).text()
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

    # ------------------------------------------------------------------------------------------ results

    def set_generation(self, view) -> None:  # view: gptviz.engine.views.GenerationView
        self.view = view
        self._remember_raw(view)
        self._show_text(view)
        self._show_candidates(view)
        self.undo_button.setEnabled(len(view.new_ids) > 0)

    def _remember_raw(self, view) -> None:
        """Keep each chosen token's probability before temperature and filters (the model's own), from the
        step that chose it; a new prompt starts over."""
        prompt = tuple(int(i) for i in view.prompt_ids)
        if prompt != self._raw_prompt:
            self._raw_prompt = prompt
            self._raw_by_index = {}
        if view.last is not None:
            self._raw_by_index[int(view.last.index)] = (
                int(view.last.chosen_id),
                float(view.last.chosen_prob_raw),
            )

    def chosen_raw_probs(self, view=None) -> np.ndarray:
        """(N,) the model's own probability of each generated token (before temperature / top-k / top-p),
        which colours the text and gives mean p. Where a step was not seen (Play skips views while it
        runs), the probability after the filters stands in."""
        view = self.view if view is None else view
        raw = getattr(view, "new_probs_raw", None)  # when the engine reports it for every token
        if raw is not None:
            return np.asarray(raw, dtype=np.float32)
        out = np.asarray(view.new_probs, dtype=np.float32).copy()  # (N,)
        for i, token in enumerate(view.new_ids.tolist()):
            known = self._raw_by_index.get(i)
            if known is not None and known[0] == token:
                out[i] = known[1]
        return out

    # ------------------------------------------------------------------------------------------ the text

    @staticmethod
    def _token_format(p: float | None, forced: bool) -> QTextCharFormat:
        """How one token of the text is drawn: a prompt token (p None) grey; a generated one on the colour of
        the model's own probability of it, underlined where the user forced it."""
        fmt = QTextCharFormat()
        fmt.setFontPointSize(TEXT_POINT_SIZE)
        if p is None:
            fmt.setForeground(QColor("#666666"))
            return fmt
        fmt.setBackground(probability_color(p))
        fmt.setForeground(QColor("#111111"))
        fmt.setFontUnderline(forced)
        return fmt

    @staticmethod
    def _text_keys(view, raw: np.ndarray, start: int) -> list[_TokenKey]:
        """How tokens `start`... of the text (prompt, then generated) are drawn: (label, colour, forced).

        The labels follow the one convention (gptviz.qt.token_labels), so a space reads ·, a newline ↵ and
        a character split over tokens (’ = e2 80 | 99) reads whole on the token that starts it. A token's
        label depends on at most LABEL_CONTEXT tokens either side of it (a character has at most 4 bytes),
        so labelling from LABEL_CONTEXT tokens earlier gives the labels the whole text would; a step labels
        a handful of tokens, not the whole text."""
        n_prompt = len(view.prompt_pieces)
        lo = max(0, start - LABEL_CONTEXT)
        pieces = tuple(view.prompt_pieces[lo:n_prompt]) + tuple(view.new_pieces[max(0, lo - n_prompt) :])
        labels = sequence_labels(pieces)[start - lo :]
        keys: list[_TokenKey] = []
        for i, label in enumerate(labels, start):
            if i < n_prompt:
                keys.append((label, None, False))
            else:
                j = i - n_prompt
                keys.append((label, float(raw[j]), bool(view.new_forced[j])))
        return keys

    def _insert_tokens(self, keys: list[_TokenKey], starts: list[int]) -> None:
        """Append tokens at the end of the text, each with its own character format (no HTML to parse);
        a newline token shows ↵ and breaks the line there. Records where each token starts."""
        cursor = QTextCursor(self.text.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        for label, p, forced in keys:
            starts.append(cursor.position())
            cursor.insertText(label.replace("\u21b5", "\u21b5\n"), self._token_format(p, forced))

    def _draw_text(self, view, raw: np.ndarray) -> None:
        """Show the prompt and the generated tokens, changing only what the last step changed.

        A step appends one token: its span is added at the end, and at most the 3 tokens before it are
        drawn again where their label changed (the new token completed a character they started). An undo
        removes the tail; a forced token replaces the last one. Only a new prompt (or a change reaching into
        it) draws the whole text again. Before, every step built the HTML span of every token to find the new
        one (15 ms at 1,000 tokens) and inserted it as HTML."""
        n_prompt = len(view.prompt_ids)
        total = n_prompt + len(view.new_ids)
        bar = self.text.verticalScrollBar()
        follow = bar.value() >= bar.maximum() - 4  # at the end: keep showing the newest token
        shown = self._text_shown
        redraw = True
        if shown is not None and np.array_equal(shown.prompt_ids, view.prompt_ids):
            m = min(len(shown.new_ids), len(view.new_ids))
            differ = np.flatnonzero(shown.new_ids[:m] != view.new_ids[:m])
            same_ids = n_prompt + (int(differ[0]) if differ.size else m)  # tokens whose id stayed
            first = max(0, same_ids - LABEL_CONTEXT)
            keys = self._text_keys(view, raw, first)
            changed = next(
                (i for i, key in enumerate(keys, first) if i >= len(shown.keys) or shown.keys[i] != key),
                total,
            )
            if changed == total == len(shown.keys):
                shown.new_ids = view.new_ids
                return
            redraw = changed < n_prompt  # a character completed across the prompt's end
        if redraw or shown is None:  # a new prompt, or a change inside it: draw it all
            self.text.clear()
            shown = self._text_shown = _ShownText(view.prompt_ids, view.new_ids, [], [])
            keys, first, changed, follow = self._text_keys(view, raw, 0), 0, 0, True
        else:
            if changed < len(shown.keys):  # remove the tokens from the first changed one on
                cursor = QTextCursor(self.text.document())
                cursor.setPosition(shown.starts[changed])
                cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
                cursor.removeSelectedText()
                del shown.keys[changed:], shown.starts[changed:]
            shown.new_ids = view.new_ids
        new_keys = keys[changed - first :]
        self._insert_tokens(new_keys, shown.starts)
        shown.keys.extend(new_keys)
        if follow:
            bar.setValue(bar.maximum())

    def _show_text(self, view) -> None:
        raw = self.chosen_raw_probs(view)  # (N,)
        self._draw_text(view, raw)
        n = len(view.new_ids)
        status = [f"{len(view.prompt_ids)} prompt tokens + {n} generated"]
        if n:
            status.append(f"mean p of the chosen tokens {float(np.mean(raw)):.2f} (before the filters)")
        if view.last is not None:
            last = view.last
            kind = "forced" if last.forced else ("greedy" if last.greedy else "sampled")
            status.append(
                f"last: {quoted_token(last.chosen_piece)} ({kind}, rank {last.chosen_rank + 1}, "
                f"{last.kept_count:,} tokens survived the filters)"
            )
        total = len(view.prompt_ids) + n
        cut = max(0, total - self.context_length) if self.context_length else view.cropped
        if cut:
            # The same count as the Attention pane: the text now, less the context the model sees.
            status.append(
                f"context full: the model sees the last tokens only (first {cut} cut to fit the context)"
            )
        if view.stopped:
            status.append("stopped at <|endoftext|>")
        self.status.setText(
            " · ".join(status)
            + "   — colour: the model's probability of each chosen token, before temperature and filters "
            "(red low, green high)"
        )

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

    def export_data(self) -> dict[str, np.ndarray]:
        if self.view is None:
            return {}
        v = self.view
        out = {
            "prompt_ids": v.prompt_ids,
            "new_ids": v.new_ids,
            "new_probs": v.new_probs,
            "candidate_ids": np.array([c.id for c in v.candidates], dtype=np.int64),
            "candidate_prob_before": np.array([c.prob_raw for c in v.candidates], dtype=np.float32),
            "candidate_prob_after": np.array([c.prob_final for c in v.candidates], dtype=np.float32),
        }
        effect = getattr(v, "ablation_effect", None)
        if effect is not None:
            out["candidate_prob_whole_model"] = effect.probs_plain
            out["candidate_logit_ablated"] = effect.logits_ablated
            out["candidate_logit_whole_model"] = effect.logits_plain
        return out

    def export_table(self) -> tuple[list[str], list[list[object]]]:
        rows: list[list[object]] = []
        if self.view is not None:
            for c in self.view.candidates:
                rows.append([c.id, c.piece, c.prob_raw, c.prob_final, int(c.chosen)])
        return ["id", "piece", "p_before", "p_after", "chosen"], rows
