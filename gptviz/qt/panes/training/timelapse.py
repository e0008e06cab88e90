"""The Training pane's time-lapse: the probe recorded at each evaluation, replayed with a slider.

A mixin of TrainingPane: `_build_probe` makes `self.probe_box` (slider, greedy sample, top next tokens and a
layer/head's attention on the probe prompt) and `_show_probe` draws one recorded probe.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from gptviz.engine.future_keys import future_keys_square
from gptviz.qt.panes.mixin_base import PaneMixin
from gptviz.qt.panes.training.curves import _short
from gptviz.qt.widgets.heatmap import HeatmapView
from gptviz.qt.widgets.labels import display_token as token_label

if TYPE_CHECKING:
    from gptviz.engine.probe import ProbeRecord


class TimeLapseMixin(PaneMixin):
    """Builds and draws the probe time-lapse (part of TrainingPane)."""

    if TYPE_CHECKING:  # the pane's state this reads (set in TrainingPane.__init__)
        probes: list[ProbeRecord]
        _probe_shown: int

    def _build_probe(self) -> None:
        self.probe_box = QWidget()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setToolTip("Time-lapse: what the model said about the probe prompt at each evaluation")
        self.slider.valueChanged.connect(self._show_probe)
        self.follow_latest = QCheckBox("follow newest")
        self.follow_latest.setChecked(True)
        self.probe_label = QLabel("no probes yet: start training")
        self.layer = QSpinBox()
        self.layer.setPrefix("layer ")
        self.head = QSpinBox()
        self.head.setPrefix("head ")
        self.layer.valueChanged.connect(lambda _v: self._show_probe(self.slider.value(), force=True))
        self.head.valueChanged.connect(lambda _v: self._show_probe(self.slider.value(), force=True))
        row = QHBoxLayout()
        row.addWidget(QLabel("Probe"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.follow_latest)
        row.addWidget(self.layer)
        row.addWidget(self.head)
        self.sample = QTextBrowser()
        self.sample.setMinimumHeight(60)
        self.heatmap = HeatmapView(row_name="query", col_name="key")
        self.heatmap.setMinimumHeight(110)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.sample)
        bottom.addWidget(self.heatmap)
        bottom.setStretchFactor(0, 3)
        bottom.setStretchFactor(1, 2)
        layout = QVBoxLayout(self.probe_box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.probe_label)
        layout.addWidget(bottom, 1)

    def _show_probe(self, index: int, force: bool = False) -> None:
        if not self.probes:
            self.probe_label.setText(
                "no probes yet: start training (a probe is recorded at every evaluation)"
            )
            self.sample.setHtml("")
            return
        index = max(0, min(index, len(self.probes) - 1))
        if index == self._probe_shown and not force:
            return
        self._probe_shown = index
        if index != len(self.probes) - 1:
            self.follow_latest.setChecked(False)
        probe = self.probes[index]
        self.probe_label.setText(
            f"probe {index + 1} of {len(self.probes)} · step {probe.step:,} · {_short(probe.tokens_seen)} tokens seen"
        )
        tops = ", ".join(
            f"{html.escape(token_label(p))} {q:.2f}"
            for p, q in zip(probe.top_pieces[:10], probe.top_probs[:10], strict=False)
        )
        self.sample.setHtml(
            f"<p><span style='color:#666'>{html.escape(probe.prompt)}</span>"
            f"<b>{sample_html(probe.sample_text)}</b></p>"
            f"<p style='color:#444'>next token: {tops}</p>"
        )
        attention = probe.attention
        if attention is not None and attention.ndim == 4 and attention.size:
            n_layers, n_heads = attention.shape[:2]
            self.layer.blockSignals(True)
            self.head.blockSignals(True)
            self.layer.setRange(0, n_layers - 1)
            self.head.setRange(0, n_heads - 1)
            self.layer.blockSignals(False)
            self.head.blockSignals(False)
            labels = [token_label(p) for p in probe.prompt_pieces]
            matrix = np.ascontiguousarray(
                attention[self.layer.value(), self.head.value()], dtype=np.float32
            )  # (T, T)
            self.heatmap.set_matrix(matrix, labels, labels, mask=future_keys_square(matrix.shape[0]))


def sample_html(text: str) -> str:
    """A probe's continuation as HTML that keeps its layout: an untrained model often writes only newlines
    and spaces, which HTML would collapse to nothing; newlines show as ↵, and a run of them breaks the line once."""
    escaped = re.sub(r"\n+", lambda m: "↵" * len(m.group()) + "<br>", html.escape(text))
    return f"<span style='white-space: pre-wrap'>{escaped}</span>"
