"""The Session's questions of why (issue "a playground for causes"): parts switched off, one head step by
step, activation patching, and why the last step chose what it chose. A mixin of Session, apart from the
generation, training and file plumbing; every method works on the session's model as it is now.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gptviz.errors import ConfigError


class CausalTools:
    """Mixed into gptviz.engine.session.Session (which provides model, tokenizer, current_ids,
    _ensure_generator and _weights_changed)."""

    ablations: tuple

    def set_ablations(self, ablations: Sequence[Any]) -> tuple:
        """Switch parts of the model off (gptviz.engine.ablation), replacing the ones before; () restores the
        model. Mean ablations take their means over the current text, from the model with nothing ablated.
        Every later pass (generation, the panes) sees the ablated model."""
        from gptviz.engine import ablation

        parts = tuple(ablations)
        ablation.check(self.model, parts)
        ablation.remove(self.model)
        self.ablations = ()
        if parts:
            means = ablation.reference_means(
                self.model, self.current_ids()[-self.model.cfg.context_length :], parts
            )
            ablation.install(self.model, parts, means)
            self.ablations = parts
        self._weights_changed()
        return self.ablations

    def attention_steps(self, layer: int, head: int, query: int = -1) -> tuple[Any, tuple[str, ...]]:
        """One head's computation for one query token of the current text (gptviz.engine.attention_steps),
        and the tokens' pieces; the model as it is now (switched-off parts included)."""
        from gptviz.engine.attention_steps import attention_steps

        ids = self.current_ids()[-self.model.cfg.context_length :]
        steps = attention_steps(self.model, ids, int(layer), int(head), int(query))
        return steps, tuple(self.tokenizer.piece(i) for i in ids)

    def patch(
        self, clean: str, corrupt: str, answer: str, wrong: str, *, progress: Any = None, cancel: Any = None
    ) -> tuple[Any, tuple[str, ...]]:
        """Activation patching between two prompts (gptviz.engine.patching) on the model as it is now; the
        result and the clean prompt's pieces."""
        from gptviz.engine.patching import patch, single_token

        clean_ids, corrupt_ids = self.tokenizer.encode(clean), self.tokenizer.encode(corrupt)
        answer_id = single_token(self.tokenizer, answer, "answer")
        wrong_id = single_token(self.tokenizer, wrong, "wrong token")
        result = patch(
            self.model, clean_ids, corrupt_ids, answer_id, wrong_id, progress=progress, cancel=cancel
        )
        return result, tuple(self.tokenizer.piece(i) for i in clean_ids)

    def _last_choice_ids(self) -> list[int]:
        """What the model read when it chose the last generated token (cropped to the context)."""
        gen = self._ensure_generator()
        if not gen.history:
            raise ConfigError("no step yet: press Step, then ask why about a candidate")
        return gen.ids[:-1][-self.model.cfg.context_length :]

    def explain_last_choice(
        self, token_id: int, against_id: int | None = None
    ) -> tuple[Any, str, str | None, Any, tuple[str, ...]]:
        """Why a candidate of the last step: its logit (minus `against_id`'s) where the last generated token
        was predicted, split into the model's parts (direct logit attribution), and each input token's
        input x gradient score for it; with the pieces."""
        from gptviz.engine.attribution import direct_logit_attribution, input_attribution

        ids = self._last_choice_ids()
        result = direct_logit_attribution(self.model, ids, int(token_id), position=-1, against_id=against_id)
        inputs = input_attribution(self.model, ids, int(token_id), method="ixg")
        piece = self.tokenizer.piece
        other = piece(int(against_id)) if against_id is not None else None
        return result, piece(int(token_id)), other, inputs, tuple(piece(i) for i in ids)

    def input_attribution_of_last_choice(
        self, token_id: int, *, steps: int = 32, progress: Any = None, cancel: Any = None
    ) -> tuple[Any, tuple[str, ...]]:
        """Integrated gradients for a candidate of the last step (slower: `steps` points on the path)."""
        from gptviz.engine.attribution import input_attribution

        ids = self._last_choice_ids()
        result = input_attribution(
            self.model, ids, int(token_id), method="ig", steps=steps, progress=progress, cancel=cancel
        )
        return result, tuple(self.tokenizer.piece(i) for i in ids)
