"""The Session's inspection: what the Attention and Activations panes show, for given tokens or for the
generation as it goes (kept live, one token a step), and the one plain pass a pane's changed choice of MLP layer
or lens position costs. A mixin of Session, apart from the generation, training and file plumbing (like
gptviz.engine.session_causal), so the facade stays one job: keep the state and delegate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from gptviz.errors import ConfigError

if TYPE_CHECKING:  # what the mixin reads of Session; the inspection modules themselves load when first asked
    from gptviz.engine.generator import Generator
    from gptviz.engine.inspection import InspectionSnapshot
    from gptviz.engine.live_inspection import LiveInspection
    from gptviz.model.gpt import GPTModel
    from gptviz.tokenizer import Tokenizer


class InspectionTools:
    """Mixed into gptviz.engine.session.Session (which provides model, tokenizer, device, current_ids and
    _ensure_generator, and sets `_live` back to None whenever the model changes)."""

    model: GPTModel
    tokenizer: Tokenizer
    device: torch.device
    _live: LiveInspection | None  # made on the first inspect()

    if TYPE_CHECKING:  # Session's own methods

        def current_ids(self) -> list[int]: ...
        def _ensure_generator(self) -> Generator: ...

    def inspect(
        self, ids: Sequence[int] | None = None, *, mlp_layer: int = 0, lens_position: int = -1
    ) -> InspectionSnapshot:
        """What the Attention and Activations panes show (gptviz.engine.inspection.InspectionSnapshot).

        With `ids`, one pass over them with every tap. Without, the current generation sequence, kept live:
        the generator's own forward pass for each new token carries the taps, so a step costs one token
        at any context length (see gptviz.engine.live_inspection)."""
        from gptviz.engine.inspection import inspect_tokens

        if ids is not None:
            ids = [int(i) for i in ids]
            if not ids:
                raise ConfigError("nothing to inspect: the text has no tokens")
        n = len(ids) if ids is not None else len(self.current_ids())
        # A pane's choices may outlive the sequence or model they were made for: clamp them, don't fail.
        mlp_layer = max(0, min(int(mlp_layer), self.model.cfg.n_layers - 1))
        shown = min(n, self.model.cfg.context_length)
        if not -shown <= lens_position < shown:
            lens_position = -1
        if ids is None:
            return self._live_snapshot(mlp_layer, lens_position)
        return inspect_tokens(
            self.model, self.tokenizer, ids, mlp_layer=mlp_layer, lens_position=lens_position
        )

    def follow_generation(self, *, mlp_layer: int = 0, lens_position: int = -1) -> None:
        """Bring the live inspection up to the generated tokens without making a snapshot: for a token the
        window will not draw (Play, between redraws). The next `inspect()` still shows every token; the
        logit lens of this one is computed only if a snapshot shows it."""
        mlp_layer = max(0, min(int(mlp_layer), self.model.cfg.n_layers - 1))
        shown = min(len(self.current_ids()), self.model.cfg.context_length)
        if not -shown <= lens_position < shown:
            lens_position = -1
        self._live_update(mlp_layer, lens_position, defer=True)

    def _live_snapshot(self, mlp_layer: int, lens_position: int) -> InspectionSnapshot:
        """Bring the live inspection up to the generator's sequence (usually: the one new token) and return
        its snapshot. A pane's new choice of MLP layer or lens position costs one pass over the window."""
        live = self._live_update(mlp_layer, lens_position, defer=False)
        if not live.lens_ready():
            at = live.lens_position % live.n
            live.set_lens(live.lens_position, self._lens_pass(live.ids[: at + 1]))
        return live.snapshot()

    def _live_update(self, mlp_layer: int, lens_position: int, defer: bool) -> LiveInspection:
        """The live inspection, brought up to the generator's sequence (usually: the one new token)."""
        from gptviz.engine.live_inspection import LiveInspection

        gen = self._ensure_generator()
        live = self._live
        if live is None or live.model is not self.model:
            live = self._live = LiveInspection(self.model, self.tokenizer, mlp_layer=mlp_layer)
        if mlp_layer != live.mlp_layer and live.n:
            live.set_mlp_layer(mlp_layer, self._mlp_pass(live.ids, mlp_layer))
        live.mlp_layer = mlp_layer
        window = min(len(gen.ids), self.model.cfg.context_length)  # tokens the snapshot will hold
        live.set_lens(lens_position % window if lens_position < -1 else lens_position)  # -1: follow the last
        names = live.tap_names(with_keys=not gen.use_cache)
        fed = gen.feed(names, None if defer else live.lens_rows)
        if fed is not None and not live.update(fed, defer) or live.n == 0:
            gen.invalidate_cache()  # the rows held do not continue into this feed: take the whole window
            live.clear()
            fed = gen.feed(names, live.lens_rows)
            assert fed is not None and live.update(fed)
        return live

    def _mlp_pass(self, ids: Sequence[int], mlp_layer: int) -> np.ndarray:
        """One block's MLP activations (n, 4D) over `ids`: a plain pass with only that tap, when the pane
        picks another layer."""
        name = f"blocks.{mlp_layer}.ff.hook_post"
        taps = self._tapped_pass(ids, {name})
        return taps[name][0].float().cpu().numpy()  # (n, 4D)

    def _lens_pass(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The logit lens at the last of `ids`: (L+1, k) ids and probabilities, from a plain pass with the
        residual-stream taps."""
        from gptviz.engine.inspection import logit_lens

        L = self.model.cfg.n_layers
        names = {"hook_embed", "hook_logits"} | {f"blocks.{i}.hook_resid_post" for i in range(L - 1)}
        taps = self._tapped_pass(ids, names)
        rows = [taps["hook_embed"][0, -1]] + [
            taps[f"blocks.{i}.hook_resid_post"][0, -1] for i in range(L - 1)
        ]
        with torch.no_grad():
            return logit_lens(self.model, torch.stack(rows).float(), taps["hook_logits"][0, -1], 8)

    def _tapped_pass(self, ids: Sequence[int], names: set[str]) -> dict[str, torch.Tensor]:
        """One forward pass over `ids` in eval mode (the training flag put back after), with only `names`
        tapped: what a pane's changed choice needs, without the inspection's every tap."""
        from gptviz.model.hooks import capture

        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), capture(self.model, names) as taps:
                self.model(torch.tensor([list(ids)], device=self.device))  # (1, n, V)
            return taps
        finally:
            self.model.train(was_training)
