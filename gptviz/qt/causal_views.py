"""The windows that ask why (issue "a playground for causes"): attention step by step, Why this token?,
activation patching, the list of ablations and the embeddings. They ask the worker through the window's host
and take its answers here, so the main window only routes results and menu entries to them.

`add_entries(model_menu)` puts Ablations… and Embeddings… in the Model menu and hooks the right-clicks
that reach them from the panes (a token chip, an MLP neuron) and the Attention pane's ablation strip,
through the panes' public widgets, so the panes themselves need not know about these windows.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QPoint, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QMenu, QPushButton

from gptviz.engine.ablation_spec import Ablation
from gptviz.qt import commands as cmd
from gptviz.qt.ablations_view import AblationsView
from gptviz.qt.attention_steps_view import AttentionStepsView
from gptviz.qt.embeddings_view import EmbeddingsView
from gptviz.qt.patching_view import PatchingView
from gptviz.qt.why_view import WhyView

ABLATIONS_KEY = "Ctrl+Shift+A"  # Model › Ablations…
EMBEDDINGS_KEY = "Ctrl+Shift+N"  # Model › Embeddings… (N: nearest tokens)

CHANNELS = frozenset(
    {
        cmd.ATTENTION_STEPS,
        cmd.WHY,
        cmd.INPUTS,
        cmd.INPUTS_PROGRESS,
        cmd.PATCH,
        cmd.PATCH_PROGRESS,
        cmd.PATCH_ENDED,
        cmd.EMBEDDINGS,
    }
)
OBSERVED = frozenset({cmd.ABLATIONS, cmd.MODEL})  # seen here too, and still handled by the window


class CausalViews(QObject):
    """Owns the three views (made on first use, parented to the window) and their worker requests."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.steps_view: AttentionStepsView | None = None
        self.why_view: WhyView | None = None
        self.patching_view: PatchingView | None = None
        self.ablations_view: AblationsView | None = None
        self.embeddings_view: EmbeddingsView | None = None
        self.ablations: tuple[Ablation, ...] = ()  # what the worker last said is switched off
        self._menu: QMenu | None = None

    # ------------------------------------------------------------------ hooking into the window

    def add_entries(self, model_menu: QMenu) -> None:
        """Model › Ablations… and Embeddings…, an "Ablations…" button on the Attention pane's strip, and the
        right-click menus on token chips and on the MLP map's neurons."""
        ablations = model_menu.addAction("&Ablations… (switch parts off)")
        ablations.setShortcut(QKeySequence(ABLATIONS_KEY))
        ablations.triggered.connect(self.show_ablations)
        embeddings = model_menu.addAction("&Embeddings… (nearest tokens)")
        embeddings.setShortcut(QKeySequence(EMBEDDINGS_KEY))
        embeddings.triggered.connect(lambda: self.show_embeddings(None))
        window = self.window
        strip = getattr(getattr(window, "attention_pane", None), "ablation_bar", None)
        if strip is not None and strip.layout() is not None:
            button = QPushButton("Ablations…")
            button.setToolTip(
                "the list of parts switched off: add heads, neurons or layers, or switch one back on"
            )
            button.clicked.connect(self.show_ablations)
            strip.layout().addWidget(button)
            self.strip_button = button
        chips = getattr(getattr(window, "tokens_pane", None), "chips", None)
        if chips is not None and hasattr(chips, "chip_at"):
            chips.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
            chips.customContextMenuRequested.connect(self._chip_menu)
        mlp = getattr(getattr(window, "activations_pane", None), "mlp", None)
        if mlp is not None and hasattr(mlp, "cell_at") and hasattr(mlp, "plot_widget"):
            mlp.plot_widget.scene().sigMouseClicked.connect(self._mlp_click)

    def _chip_menu(self, where: QPoint) -> None:
        chips = self.window.tokens_pane.chips
        index = chips.chip_at(where)
        if index < 0:
            return
        chip = chips.chip(index)
        tokens = getattr(self.window.tokens_pane, "tokens_view", None)
        ids = tokens.ids.tolist() if tokens is not None else None
        menu = QMenu(chips)
        menu.addAction(f"Nearest tokens to {chip.label!r} in the embeddings…").triggered.connect(
            lambda _=False, t=chip.token_id: self.show_embeddings(t, ids)
        )
        menu.popup(chips.mapToGlobal(where))
        self._menu = menu

    def neuron_actions(self, layer: int, neuron: int) -> list[tuple[str, tuple]]:
        """(menu text, the ablations it asks for) for a right-click on neuron `neuron` of layer `layer`."""
        others = tuple(
            a for a in self.ablations if not (a.kind == "neuron" and (a.layer, a.index) == (layer, neuron))
        )
        if len(others) != len(self.ablations):
            return [(f"Switch neuron {layer}.mlp.{neuron} back on", others)]
        return [
            (
                f"Switch off neuron {neuron} of layer {layer}'s MLP (zero)",
                (*others, Ablation("neuron", layer, neuron)),
            ),
            (
                f"Switch off neuron {neuron} of layer {layer}'s MLP (its mean over this text)",
                (*others, Ablation("neuron", layer, neuron, "mean")),
            ),
        ]

    def _mlp_click(self, event: Any) -> None:
        if event.button() != Qt.MouseButton.RightButton:
            return
        pane = self.window.activations_pane
        cell = pane.mlp.cell_at(event.scenePos())
        layer_spin = getattr(pane, "layer_spin", None)
        if cell is None or layer_spin is None:
            return
        try:
            neuron = int(pane.mlp.col_labels[cell[1]])
        except (IndexError, ValueError):
            return
        event.accept()
        menu = QMenu(pane)
        for text, wanted in self.neuron_actions(int(layer_spin.value()), neuron):
            menu.addAction(text).triggered.connect(lambda _=False, x=wanted: self.request_ablations(x))
        menu.addAction("Ablations…").triggered.connect(self.show_ablations)
        screen = event.screenPos()
        menu.popup(QPoint(int(screen.x()), int(screen.y())))
        self._menu = menu

    def request_ablations(self, wanted: tuple) -> None:
        self.window.host.submit(cmd.SetAblations(tuple(wanted)))

    # ------------------------------------------------------------------ opening

    def show_attention_steps(self, layer: int, head: int, query: int) -> AttentionStepsView:
        """Open (or update) the step-by-step view of one head for one query token; a query on the last
        token follows the last token as generation goes on."""
        if self.steps_view is None:
            self.steps_view = AttentionStepsView(self.window)
        snap = self.window.attention_pane.snapshot
        follow_last = snap is not None and query == snap.n_tokens - 1
        self.steps_view.request = (layer, head, -1 if follow_last else query)
        self.steps_view.show()
        self.refresh_attention_steps(playing=False)
        return self.steps_view

    def refresh_attention_steps(self, playing: bool) -> None:
        """Ask again after a new inspection (a Step). Not during Play: each answer is a pass over the whole
        text, which would slow Play down; the view catches up when Play pauses."""
        view = self.steps_view
        if playing or view is None or not view.isVisible() or view.request is None:
            return
        layer, head, query = view.request
        self.window.host.submit(cmd.AttentionSteps(layer, head, query))

    def show_patching(self) -> PatchingView:
        """Model › Activation patching…: two prompts, an answer, a wrong token; the worker fills two maps."""
        if self.patching_view is None:
            view = self.patching_view = PatchingView(self.window)
            view.runRequested.connect(
                lambda clean, corrupt, answer, wrong: self.window.host.submit(
                    cmd.Patch(clean, corrupt, answer, wrong, cancel=view.cancel_event)
                )
            )
        self.patching_view.show()
        self.patching_view.raise_()
        return self.patching_view

    def show_ablations(self) -> AblationsView:
        """Model › Ablations…: the parts switched off, to add to or switch back on one by one."""
        if self.ablations_view is None:
            view = self.ablations_view = AblationsView(self.window)
            view.ablationsRequested.connect(self.request_ablations)
            self._model_shape(getattr(self.window, "model_info", None))
            view.set_ablations(self.ablations)
        self.ablations_view.show()
        self.ablations_view.raise_()
        return self.ablations_view

    def _model_shape(self, info: Any) -> None:
        """The add row's ranges follow the loaded model (ModelInfo)."""
        if info is not None and self.ablations_view is not None and hasattr(info, "n_layers"):
            self.ablations_view.set_model_shape(info.n_layers, info.n_heads, info.emb_dim)

    def show_embeddings(self, token: int | str | None, ids: Any = None) -> EmbeddingsView:
        """Model › Embeddings… (the current text, its last token) or a token chip's right-click (that
        token, the Tokens pane's text)."""
        if self.embeddings_view is None:
            view = self.embeddings_view = EmbeddingsView(self.window)
            view.tokenRequested.connect(
                lambda t, k: self.window.host.submit(cmd.Embeddings(t, k, self.embeddings_view.ids_for_map))
            )
        view = self.embeddings_view
        view.ids_for_map = tuple(int(i) for i in ids) if ids is not None else None
        if token is None:
            snap = getattr(self.window.attention_pane, "snapshot", None)
            token = int(snap.token_ids[-1]) if snap is not None and hasattr(snap, "token_ids") else " the"
        view.tokenRequested.emit(token, view.k.value())
        view.show()
        view.raise_()
        return view

    def show_why(self, token_id: int, against_id: int = -1) -> None:
        """Generation pane › right-click a candidate › Why…: its logit split into the model's parts."""
        self.window.host.submit(cmd.Why(int(token_id), int(against_id)))

    # ------------------------------------------------------------------ the worker's answers

    def handle(self, channel: str, payload: Any) -> bool:
        """Take a result meant for one of the views; False for any other channel (the ablations and the
        model are noted here and left to the window too)."""
        if channel in OBSERVED:
            if channel == cmd.ABLATIONS:
                self.ablations = tuple(payload)
                if self.ablations_view is not None:
                    self.ablations_view.set_ablations(self.ablations)
            else:
                self._model_shape(payload)
                if self.ablations_view is not None:
                    self.ablations_view.undo_stack.clear()  # parts of the old model: not this one's to undo
            return False
        if channel not in CHANNELS:
            return False
        if channel == cmd.EMBEDDINGS:
            if self.embeddings_view is not None:
                if isinstance(payload, str):
                    self.embeddings_view.show_error(payload)
                else:
                    self.embeddings_view.set_result(*payload)
            return True
        if channel == cmd.ATTENTION_STEPS and self.steps_view is not None:
            self.steps_view.set_steps(*payload)
        elif channel == cmd.WHY:
            if self.why_view is None:
                view = self.why_view = WhyView(self.window)
                view.integratedRequested.connect(
                    lambda token: self.window.host.submit(
                        cmd.IntegratedGradients(token, cancel=view.cancel_event)
                    )
                )
            self.why_view.set_result(*payload)
            self.why_view.show()
        elif channel == cmd.INPUTS and self.why_view is not None:
            self.why_view.set_inputs(*payload)
        elif channel == cmd.INPUTS_PROGRESS and self.why_view is not None:
            self.why_view.ig_progressed(payload)
        elif self.patching_view is not None:
            if channel == cmd.PATCH:
                self.patching_view.set_result(*payload)
            elif channel == cmd.PATCH_PROGRESS:
                self.patching_view.set_progress(*payload)
            elif channel == cmd.PATCH_ENDED:
                self.patching_view.finish(str(payload))
        return True


__all__ = ["CausalViews"]
