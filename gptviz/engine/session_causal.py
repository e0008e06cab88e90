"""The Session's questions of why (issue "a playground for causes"): parts switched off, one head step by
step, activation patching, and why the last step chose what it chose. A mixin of Session, apart from the
generation, training and file plumbing; every method works on the session's model as it is now.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from gptviz.errors import ConfigError

if TYPE_CHECKING:  # what the mixin reads of Session; the engine modules themselves load when first asked
    from gptviz.engine.ablation import PlainLogits
    from gptviz.engine.ablation_spec import Ablation
    from gptviz.engine.attention_steps import AttentionSteps
    from gptviz.engine.attribution import InputAttribution, LogitAttribution
    from gptviz.engine.embeddings import EmbeddingMap, Neighbours
    from gptviz.engine.generator import Generator, GenStep
    from gptviz.engine.patching import PatchResult
    from gptviz.model.gpt import GPTModel
    from gptviz.tokenizer import Tokenizer

N_PLAIN_TOP = 5  # the whole model's most probable tokens an AblationEffect names


@dataclass(frozen=True)
class AblationEffect:
    """What the parts switched off changed at the last generation step: the next-token distribution of the
    model as it runs (ablated) and of the whole model, on the same tokens, for the step's candidates (the
    Generation pane's rows, in their order), and the change in the chosen token's logit."""

    labels: tuple[str, ...]  # the ablations, as the command line writes them
    ids: np.ndarray  # (c,) int64: the step's candidates
    logits_ablated: np.ndarray  # (c,) float32
    logits_plain: np.ndarray  # (c,) float32: nothing switched off
    probs_ablated: np.ndarray  # (c,) float32: softmax of the logits (temperature 1, no filters)
    probs_plain: np.ndarray  # (c,) float32
    chosen_id: int
    chosen_piece: str
    chosen_logit_ablated: float
    chosen_logit_plain: float
    plain_top: tuple[tuple[int, str, float], ...]  # the whole model's most probable tokens: (id, piece, p)
    recomputed: bool  # the step was chosen before these ablations: the ablated side was computed again

    @property
    def delta_logit(self) -> float:
        """logit(chosen) with the ablations minus without: negative when they took support away."""
        return self.chosen_logit_ablated - self.chosen_logit_plain


class CausalTools:
    """Mixed into gptviz.engine.session.Session (which provides model, tokenizer, current_ids,
    _ensure_generator and _weights_changed)."""

    model: GPTModel
    tokenizer: Tokenizer
    generator: Generator | None
    ablations: tuple[Ablation, ...]
    # Made on first use; the class-level None and () stand until then.
    _plain_logits: PlainLogits | None = None
    _effect_memo: tuple[GenStep, tuple[Ablation, ...], GPTModel, AblationEffect] | None = None
    _steps_before_ablation: tuple[GenStep, ...] = ()

    if TYPE_CHECKING:  # Session's own methods

        def current_ids(self) -> list[int]: ...
        def _ensure_generator(self) -> Generator: ...
        def _weights_changed(self) -> None: ...

    def set_ablations(self, ablations: Sequence[Ablation]) -> tuple[Ablation, ...]:
        """Switch parts of the model off (gptviz.engine.ablation), replacing the ones before; () restores the
        model. Mean ablations take their means over the current text, from the model with nothing ablated.
        Every later pass (generation, the panes) sees the ablated model."""
        from gptviz.engine import ablation

        parts = tuple(ablations)
        ablation.check(self.model, parts)
        ablation.remove(self.model)
        self.ablations = ()
        # The steps chosen so far were chosen by the model as it was: their logits are not this ablation's.
        self._steps_before_ablation = tuple(self.generator.history) if self.generator is not None else ()
        if parts:
            means = ablation.reference_means(
                self.model, self.current_ids()[-self.model.cfg.context_length :], parts
            )
            ablation.install(self.model, parts, means)
            self.ablations = parts
        else:
            self._plain_logits = None  # nothing to compare with: drop the second KV cache (75 MB at 124M)
        self._weights_changed()
        return self.ablations

    def ablation_effect(self) -> AblationEffect | None:
        """While parts are switched off: the last step's distribution with and without them (None when
        nothing is off or no step was taken yet).

        The whole model's logits come from `ablation.PlainLogits`, a KV cache of the un-ablated model kept
        beside the generator's, so asking after every Step costs one token's forward pass, not a pass over
        the window. The ablated side is the step's own logits; for a step chosen before the ablations were
        set, one pass of the ablated model over the same tokens stands in. Remembered per step."""
        from gptviz.engine import ablation

        gen = self.generator
        if not self.ablations or gen is None or not gen.history:
            return None
        last = gen.history[-1]
        memo = self._effect_memo
        if memo is not None and memo[0] is last and memo[1] == self.ablations and memo[2] is self.model:
            return memo[3]
        context = gen.ids[:-1][-self.model.cfg.context_length :]
        plain_of = self._plain_logits
        if plain_of is None or plain_of.model is not self.model:
            plain_of = self._plain_logits = ablation.PlainLogits(self.model)
        plain = plain_of(context)  # (V,)
        ids = torch.tensor([c.id for c in last.candidates])  # (c,)
        stale = any(last is s for s in self._steps_before_ablation)
        if stale:
            with torch.inference_mode():
                device = self.model.tok_emb.weight.device
                hidden = self.model.hidden(torch.tensor([context], device=device))  # (1, T, D)
                full = self.model.head(hidden[0, -1]).float().cpu()  # (V,)
            logits_ablated = full[ids]  # (c,)
            probs_ablated = torch.softmax(full, dim=-1)[ids]  # (c,)
            chosen_ablated = float(full[last.chosen_id])
        else:
            logits_ablated = torch.tensor([c.logit for c in last.candidates])  # (c,)
            probs_ablated = torch.tensor([c.prob_raw for c in last.candidates])  # (c,)
            chosen_ablated = float(next(c.logit for c in last.candidates if c.id == last.chosen_id))
        plain_probs = torch.softmax(plain, dim=-1)  # (V,)
        top_p, top_i = torch.topk(plain_probs, min(N_PLAIN_TOP, plain_probs.shape[0]))  # (k,), (k,)
        effect = AblationEffect(
            labels=tuple(a.label for a in self.ablations),
            ids=ids.numpy().astype(np.int64),
            logits_ablated=logits_ablated.numpy().astype(np.float32),
            logits_plain=plain[ids].numpy().astype(np.float32),
            probs_ablated=probs_ablated.numpy().astype(np.float32),
            probs_plain=plain_probs[ids].numpy().astype(np.float32),
            chosen_id=int(last.chosen_id),
            chosen_piece=last.chosen_piece,
            chosen_logit_ablated=chosen_ablated,
            chosen_logit_plain=float(plain[last.chosen_id]),
            plain_top=tuple(
                (int(i), self.tokenizer.piece(int(i)), float(p))
                for i, p in zip(top_i.tolist(), top_p.tolist(), strict=True)
            ),
            recomputed=stale,
        )
        self._effect_memo = (last, self.ablations, self.model, effect)
        return effect

    def _forget_plain_logits(self) -> None:
        """The weights changed (training): the whole model's cached keys and the remembered effect are stale."""
        if self._plain_logits is not None:
            self._plain_logits.reset()
        self._effect_memo = None

    def embeddings(
        self, token: int | str, k: int = 10, ids: Sequence[int] | None = None, map_k: int = 5
    ) -> tuple[Neighbours, EmbeddingMap]:
        """A token's k nearest neighbours in the token-embedding matrix (cosine), and the 2-D PCA map of a
        text's tokens with `map_k` neighbours each: `ids`, or the current text when None
        (gptviz.engine.embeddings). `token` is an id or a text that is exactly one token."""
        from gptviz.engine.embeddings import embedding_map, nearest_neighbours
        from gptviz.engine.patching import single_token

        token_id = single_token(self.tokenizer, token, "token") if isinstance(token, str) else int(token)
        text = [int(i) for i in ids] if ids is not None else self.current_ids()
        found = nearest_neighbours(self.model, self.tokenizer, int(token_id), int(k))
        return found, embedding_map(self.model, self.tokenizer, text, int(map_k))

    def attention_steps(
        self, layer: int, head: int, query: int = -1
    ) -> tuple[AttentionSteps, tuple[str, ...]]:
        """One head's computation for one query token of the current text (gptviz.engine.attention_steps),
        and the tokens' pieces; the model as it is now (switched-off parts included)."""
        from gptviz.engine.attention_steps import attention_steps

        ids = self.current_ids()[-self.model.cfg.context_length :]
        steps = attention_steps(self.model, ids, int(layer), int(head), int(query))
        return steps, tuple(self.tokenizer.piece(i) for i in ids)

    def patch(
        self,
        clean: str,
        corrupt: str,
        answer: str,
        wrong: str,
        *,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> tuple[PatchResult, tuple[str, ...]]:
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
    ) -> tuple[LogitAttribution, str, str | None, InputAttribution, tuple[str, ...]]:
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
        self,
        token_id: int,
        *,
        steps: int = 32,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> tuple[InputAttribution, tuple[str, ...]]:
        """Integrated gradients for a candidate of the last step (slower: `steps` points on the path)."""
        from gptviz.engine.attribution import input_attribution

        ids = self._last_choice_ids()
        result = input_attribution(
            self.model, ids, int(token_id), method="ig", steps=steps, progress=progress, cancel=cancel
        )
        return result, tuple(self.tokenizer.piece(i) for i in ids)
