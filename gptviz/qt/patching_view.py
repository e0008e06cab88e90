"""Model › Activation patching…: where does the answer live? (gptviz.engine.patching)

Two prompts of the same number of tokens, an answer and a wrong token; the worker runs the corrupted prompt
with one clean activation put back at a time and sends two maps of the normalised logit difference (1: that
activation alone restores the clean answer; 0: it changes nothing): layer x position for the residual stream
entering each block, and layer x head for each head's output. Progress and Cancel while it runs.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from gptviz.qt.widgets.heatmap import HeatmapView
from gptviz.qt.widgets.labels import display_token

if TYPE_CHECKING:  # annotations only: importing it at run time would load torch before the window paints
    from gptviz.engine.patching import PatchResult

EXAMPLE = ("x = 1\ny = x", "z = 1\ny = x", " +", ")")  # the README's worked example on the demo model


class PatchingView(QDialog):
    runRequested = Signal(str, str, str, str)  # clean, corrupted, answer, wrong

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Activation patching")
        self.resize(900, 560)
        self.cancel_event = threading.Event()  # the worker checks it between batches
        self.patch_result: PatchResult | None = None  # (not `result`: that would hide QDialog.result())
        self.clean = QLineEdit(EXAMPLE[0].replace("\n", "\\n"))
        self.corrupt = QLineEdit(EXAMPLE[1].replace("\n", "\\n"))
        self.answer = QLineEdit(EXAMPLE[2])
        self.wrong = QLineEdit(EXAMPLE[3])
        self.clean.setToolTip("the prompt the model gets right (\\n for a new line)")
        self.corrupt.setToolTip("the same number of tokens with a detail changed")
        self.answer.setToolTip("one token the clean prompt should lead to (mind the leading space)")
        self.wrong.setToolTip("one token the corrupted prompt leads to instead")
        form = QFormLayout()
        form.addRow("Clean prompt", self.clean)
        form.addRow("Corrupted prompt", self.corrupt)
        pair = QHBoxLayout()
        pair.addWidget(self.answer)
        pair.addWidget(QLabel("wrong token"))
        pair.addWidget(self.wrong)
        form.addRow("Answer token", pair)
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = QLabel(
            "LD = logit(answer) − logit(wrong) at the last token; each cell: "
            "(LD_patched − LD_corrupt) / (LD_clean − LD_corrupt)"
        )
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.progress, 1)
        self.resid = HeatmapView(
            row_name="layer",
            col_name="position",
            value_name="restored",
            levels=(-1.0, 1.0),
            colormap="CET-D1",
        )
        self.heads = HeatmapView(
            row_name="layer", col_name="head", value_name="restored", levels=(-1.0, 1.0), colormap="CET-D1"
        )
        maps = QSplitter(Qt.Orientation.Horizontal)
        for title, view in (
            ("Residual stream entering each block", self.resid),
            ("Each head's output", self.heads),
        ):
            box = QWidget()
            box_layout = QVBoxLayout(box)
            box_layout.setContentsMargins(0, 0, 0, 0)
            box_layout.addWidget(QLabel(f"<b>{title}</b>"))
            box_layout.addWidget(view, 1)
            maps.addWidget(box)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(maps, 1)
        self.run_button.clicked.connect(self._run)
        self.cancel_button.clicked.connect(self.cancel_event.set)

    def texts(self) -> tuple[str, str, str, str]:
        unescape = lambda t: t.replace("\\n", "\n")  # noqa: E731 - one line, read where used
        return (
            unescape(self.clean.text()),
            unescape(self.corrupt.text()),
            self.answer.text(),
            self.wrong.text(),
        )

    def _run(self) -> None:
        self.cancel_event.clear()
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.status.setText("patching…")
        self.runRequested.emit(*self.texts())

    def set_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def finish(self, message: str = "") -> None:
        """The run ended (with a result, an error or a cancel): the controls come back."""
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setVisible(False)
        if message:
            self.status.setText(message)

    def set_result(self, result: PatchResult, pieces: tuple[str, ...]) -> None:
        self.patch_result = result
        L, T = result.resid.shape
        layers = [f"block {i}" for i in range(L)]
        self.resid.set_matrix(result.resid, layers, [display_token(p) for p in pieces])
        self.heads.set_matrix(result.heads, layers, [f"H{h}" for h in range(result.heads.shape[1])])
        layer, head = divmod(int(result.heads.argmax()), result.heads.shape[1])
        self.finish(
            f"logit difference: clean {result.ld_clean:+.3f}, corrupted {result.ld_corrupt:+.3f}; "
            f"head L{layer}.H{head} alone restores {result.heads[layer, head]:.2f} of it"
        )


__all__ = ["PatchingView"]
