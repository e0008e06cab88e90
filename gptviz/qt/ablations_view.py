"""Model › Ablations…: the list of parts switched off, where a user adds a head, an MLP neuron or a whole
layer's attention or MLP, and switches each one back on.

The view keeps no state of its own beyond what the worker last said is off (`set_ablations`): every change
asks for the whole new set (`ablationsRequested`), the worker installs it and answers on the ablations
channel, and the list redraws from that answer. Removing a row asks for the set without it, which restores
that part; **Undo** asks for the set before the last change the user made here.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gptviz.engine.ablation_spec import Ablation

KINDS = (
    ("head", "attention head"),
    ("neuron", "MLP neuron (after GELU)"),
    ("attn", "a layer's whole attention"),
    ("mlp", "a layer's whole MLP"),
)
MODES = (("zero", "set to zero"), ("mean", "set to its mean over the text"))


def describe(ab: Ablation) -> str:
    """ "head 7 of layer 3", "neuron 42 of layer 1's MLP", "all of layer 2's attention"."""
    return {
        "head": f"head {ab.index} of layer {ab.layer}",
        "neuron": f"neuron {ab.index} of layer {ab.layer}'s MLP",
        "attn": f"all of layer {ab.layer}'s attention",
        "mlp": f"all of layer {ab.layer}'s MLP",
    }[ab.kind]


class AblationsView(QDialog):
    ablationsRequested = Signal(object)  # tuple of Ablation: what should be off from now on

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Ablations — parts switched off")
        self.resize(560, 380)
        self.ablations: tuple[Ablation, ...] = ()  # what the worker says is off
        self.undo_stack: list[tuple[Ablation, ...]] = []  # the sets before each change asked for here
        self.shape = (1, 1, 4)  # layers, heads, MLP neurons of the loaded model

        self.kind = QComboBox()
        for key, text in KINDS:
            self.kind.addItem(text, key)
        self.layer = QSpinBox()
        self.index = QSpinBox()
        self.mode = QComboBox()
        for key, text in MODES:
            self.mode.addItem(text, key)
        self.mode.setToolTip(
            "zero: the part adds nothing; mean: it adds its average over the current text, so only what depends "
            "on the position is removed"
        )
        self.add_button = QPushButton("Switch off")
        self.add_button.clicked.connect(self._add)
        self.kind.currentIndexChanged.connect(lambda _i: self._update_ranges())

        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["part", "set to", ""])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.empty = QLabel("Nothing is switched off: the model computes as it was trained.")
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("back to the parts switched off before the last change made here")
        self.undo_button.clicked.connect(self.undo)
        self.clear_button = QPushButton("Switch all back on")
        self.clear_button.clicked.connect(lambda: self.request(()))

        add_row = QHBoxLayout()
        add_row.addWidget(self.kind, 1)
        add_row.addWidget(QLabel("layer"))
        add_row.addWidget(self.layer)
        self.index_label = QLabel("head")
        add_row.addWidget(self.index_label)
        add_row.addWidget(self.index)
        add_row.addWidget(self.mode)
        add_row.addWidget(self.add_button)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.undo_button)
        bottom.addWidget(self.clear_button)
        note = QLabel(
            "Every pane and the generator use the model without these parts; the Generation pane shows the "
            "next-token probabilities with and without them. Also: right-click a head in the Attention "
            "overview, or a neuron in the Activations pane's MLP map."
        )
        note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(add_row)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty)
        layout.addWidget(note)
        layout.addLayout(bottom)
        self._update_ranges()
        self.set_ablations(())

    # ------------------------------------------------------------------ the model and the worker

    def set_model_shape(self, n_layers: int, n_heads: int, emb_dim: int) -> None:
        self.shape = (max(1, int(n_layers)), max(1, int(n_heads)), max(1, 4 * int(emb_dim)))
        self._update_ranges()

    def set_ablations(self, ablations: tuple) -> None:
        """The worker's answer: what is off now."""
        self.ablations = tuple(ablations)
        self.table.setRowCount(len(self.ablations))
        for r, ab in enumerate(self.ablations):
            self.table.setItem(r, 0, QTableWidgetItem(f"{describe(ab)}   ({ab.label.split(' ')[0]})"))
            self.table.setItem(r, 1, QTableWidgetItem("its mean" if ab.mode == "mean" else "zero"))
            button = QPushButton("Switch back on")
            button.clicked.connect(lambda _=False, a=ab: self.remove(a))
            self.table.setCellWidget(r, 2, button)
        self.empty.setVisible(not self.ablations)
        self.clear_button.setEnabled(bool(self.ablations))
        self.undo_button.setEnabled(bool(self.undo_stack))

    def request(self, wanted: tuple) -> None:
        """Ask for a new set (remembering the one before, for Undo)."""
        wanted = tuple(wanted)
        if wanted == self.ablations:
            return
        self.undo_stack.append(self.ablations)
        self.undo_button.setEnabled(True)
        self.ablationsRequested.emit(wanted)

    # ------------------------------------------------------------------ what a user does

    def current(self) -> Ablation:
        """The part the add row describes."""
        kind = self.kind.currentData()
        index = self.index.value() if kind in ("head", "neuron") else None
        return Ablation(kind, self.layer.value(), index, self.mode.currentData())

    def _add(self) -> None:
        new = self.current()
        same_part = [
            a for a in self.ablations if (a.kind, a.layer, a.index) == (new.kind, new.layer, new.index)
        ]
        others = tuple(a for a in self.ablations if a not in same_part)
        self.request((*others, new))  # the same part again with another mode replaces it

    def remove(self, ab: Ablation) -> None:
        """Switch one part back on (the rest stay off)."""
        self.request(tuple(a for a in self.ablations if a != ab))

    def undo(self) -> None:
        if self.undo_stack:
            before = self.undo_stack.pop()
            self.undo_button.setEnabled(bool(self.undo_stack))
            self.ablationsRequested.emit(before)

    def _update_ranges(self) -> None:
        n_layers, n_heads, n_neurons = self.shape
        kind = self.kind.currentData()
        self.layer.setRange(0, n_layers - 1)
        has_index = kind in ("head", "neuron")
        self.index.setEnabled(has_index)
        self.index_label.setText("neuron" if kind == "neuron" else "head")
        self.index.setRange(0, (n_neurons if kind == "neuron" else n_heads) - 1)
        self.layer.setToolTip(f"0..{n_layers - 1}")
        self.index.setToolTip(f"0..{self.index.maximum()}")


__all__ = ["AblationsView", "describe"]
