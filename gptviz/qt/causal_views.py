"""The windows that ask why (issue "a playground for causes"): attention step by step, Why this token?, and
activation patching. They ask the worker through the window's host and take its answers here, so the main
window only routes results and menu entries to them.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject

from gptviz.qt import worker as w
from gptviz.qt.attention_steps_view import AttentionStepsView
from gptviz.qt.patching_view import PatchingView
from gptviz.qt.why_view import WhyView

CHANNELS = frozenset(
    {w.ATTENTION_STEPS, w.WHY, w.INPUTS, w.INPUTS_PROGRESS, w.PATCH, w.PATCH_PROGRESS, w.PATCH_ENDED}
)


class CausalViews(QObject):
    """Owns the three views (made on first use, parented to the window) and their worker requests."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.steps_view: AttentionStepsView | None = None
        self.why_view: WhyView | None = None
        self.patching_view: PatchingView | None = None

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
        self.window.host.submit("attention_steps", w.ATTENTION_STEPS, layer=layer, head=head, query=query)

    def show_patching(self) -> PatchingView:
        """Model › Activation patching…: two prompts, an answer, a wrong token; the worker fills two maps."""
        if self.patching_view is None:
            view = self.patching_view = PatchingView(self.window)
            view.runRequested.connect(
                lambda clean, corrupt, answer, wrong: self.window.host.submit(
                    "patch",
                    clean=clean,
                    corrupt=corrupt,
                    answer=answer,
                    wrong=wrong,
                    cancel=view.cancel_event,
                )
            )
        self.patching_view.show()
        self.patching_view.raise_()
        return self.patching_view

    def show_why(self, token_id: int, against_id: int = -1) -> None:
        """Generation pane › right-click a candidate › Why…: its logit split into the model's parts."""
        self.window.host.submit("why", w.WHY, token_id=int(token_id), against_id=int(against_id))

    # ------------------------------------------------------------------ the worker's answers

    def handle(self, channel: str, payload: Any) -> bool:
        """Take a result meant for one of the views; False for any other channel."""
        if channel not in CHANNELS:
            return False
        if channel == w.ATTENTION_STEPS and self.steps_view is not None:
            self.steps_view.set_steps(*payload)
        elif channel == w.WHY:
            if self.why_view is None:
                view = self.why_view = WhyView(self.window)
                view.integratedRequested.connect(
                    lambda token: self.window.host.submit(
                        "integrated_gradients", w.INPUTS, token_id=token, cancel=view.cancel_event
                    )
                )
            self.why_view.set_result(*payload)
            self.why_view.show()
        elif channel == w.INPUTS and self.why_view is not None:
            self.why_view.set_inputs(*payload)
        elif channel == w.INPUTS_PROGRESS and self.why_view is not None:
            self.why_view.ig_progressed(payload)
        elif self.patching_view is not None:
            if channel == w.PATCH:
                self.patching_view.set_result(*payload)
            elif channel == w.PATCH_PROGRESS:
                self.patching_view.set_progress(*payload)
            elif channel == w.PATCH_ENDED:
                self.patching_view.finish(str(payload))
        return True


__all__ = ["CausalViews"]
