"""Generation one token at a time (book ch. 4-5), with every step's choice laid open.

`Generator.step()` runs the model on the tokens it has not seen yet (the KV cache keeps the rest), turns the
last position's logits into the raw and the filtered distribution, picks a token (or takes the one the
caller forces), and returns a frozen `GenStep` of plain Python values that can cross a thread boundary.

Context: the model has learned positions 0..context_length-1 only, so once the sequence is longer than
that, each step sees only the last context_length tokens, exactly like the book's
`idx[:, -context_size:]`. The number of tokens cut off is reported in `GenStep.cropped`. Because positions
shift with the window, cached keys cannot be reused after a crop: the cache is rebuilt over the window,
which is the same computation the uncached path does, so both paths give the same ids.

Randomness comes from the generator's own seeded `torch.Generator` on the CPU (sampling always runs on the
CPU copy of the logits), so a seed gives the same text with or without the cache, on any device, and
`undo()` rewinds the random stream too: undo then step replays the same choice.

`feed()` runs the model over the chosen token right away instead of at the start of the next step, and
hands back what chosen taps saw (`FedTokens`): the panes then follow each token at the cost of that one
forward pass, which the next `step()` would have paid anyway (it reuses the logits `feed()` kept).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from gptviz.engine.sampling import kept_distribution
from gptviz.engine.sampling_settings import SamplingSettings
from gptviz.errors import ConfigError
from gptviz.model import native_decode
from gptviz.model.gpt import GPTModel, KVCache
from gptviz.model.hooks import capture
from gptviz.tokenizer import END_OF_TEXT_ID, Tokenizer


@dataclass(frozen=True)
class Candidate:
    """One possible next token: raw probability (softmax of the logits at T=1) and final one (after
    temperature and filters; 0 when filtered out)."""

    id: int
    piece: str
    prob_raw: float
    prob_final: float
    logit: float


@dataclass(frozen=True)
class GenStep:
    """What happened in one generation step. Plain values only (no tensors), safe to hand to a GUI thread.

    index: 0-based number of the new token; position: its index in the whole sequence (prompt included);
    candidates: the n_candidates most probable tokens by raw probability, plus the chosen one if it is not
    among them, most probable first; cropped: tokens cut from the front of the sequence so the model saw at
    most context_length tokens; kept_count: vocabulary entries that survived temperature 0 / top-k / top-p;
    chosen_rank: 0 when the chosen token was the most probable one.
    """

    index: int
    position: int
    candidates: tuple[Candidate, ...]
    chosen_id: int
    chosen_piece: str
    chosen_prob_raw: float
    chosen_prob_final: float
    chosen_rank: int
    forced: bool
    greedy: bool
    cropped: int
    stopped: bool
    kept_count: int


@dataclass(frozen=True)
class FedTokens:
    """What one `Generator.feed()` ran: window positions first..first+len(taps' T)-1 of the window that starts
    at sequence index `start` (the tokens cropped from the front), the taps asked for, and, with the KV cache,
    the cached keys of every layer after the pass (each (1, H, S, hd), S = first + new tokens; views into the
    cache, valid until the generator runs again)."""

    start: int
    first: int
    window_ids: tuple[int, ...]
    taps: dict[str, torch.Tensor]
    keys: tuple[torch.Tensor, ...] | None
    logits: torch.Tensor  # (V,) at the last position: what the next step samples from
    # (k + 1, V): the output head applied to the caller's extra rows and then the last position, in one
    # pass over the head's weights (the logit lens); None when no extra rows were asked for.
    head_logits: torch.Tensor | None = None


class Generator:
    """Stateful token-by-token generation over one sequence: step, force, undo, reset.

    The KV cache is on by default; `use_cache=False` recomputes the whole window every step (the book's loop)
    and exists for comparison and tests. An empty prompt is refused (ConfigError): the model needs at least one
    token to predict from; pass `[tokenizer.eot_id]` (the text "<|endoftext|>") to generate from nothing.
    A step that stops at <|endoftext|> only reports it (`GenStep.stopped`, `Generator.stopped`); `generate()`
    ends there, while `step()` keeps going if the caller asks for another token.
    """

    def __init__(
        self,
        model: GPTModel,
        tokenizer: Tokenizer,
        prompt_ids: Sequence[int],
        settings: SamplingSettings | None = None,
        use_cache: bool = True,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.use_cache = use_cache
        self._settings = settings if settings is not None else SamplingSettings()
        self._rng = torch.Generator(device="cpu")
        self._cache: KVCache | None = None
        self._cache_made_for: tuple[torch.device, torch.dtype] | None = None
        self._piece_memo: dict[int, str] = {}
        # Logits for the token after `_ids`, when a feed() already computed them: (len(_ids), logits, start).
        self._ready: tuple[int, torch.Tensor, int] | None = None
        self._ids: list[int] = []
        self._prompt_len = 0
        self.reset(prompt_ids)

    # ----------------------------------------------------------------------------------------------- state

    @property
    def settings(self) -> SamplingSettings:
        return self._settings

    @settings.setter
    def settings(self, value: SamplingSettings) -> None:
        """New temperature / filters apply from the next step; the sequence and random stream are kept."""
        if not isinstance(value, SamplingSettings):
            raise ConfigError(f"settings must be SamplingSettings, got {type(value).__name__}")
        self._settings = value

    @property
    def ids(self) -> list[int]:
        """Prompt plus generated ids (a copy)."""
        return list(self._ids)

    @property
    def prompt_ids(self) -> list[int]:
        return self._ids[: self._prompt_len]

    @property
    def new_ids(self) -> list[int]:
        return self._ids[self._prompt_len :]

    @property
    def text(self) -> str:
        """The generated continuation, decoded (without the prompt)."""
        return self._decode(self.new_ids)

    @property
    def full_text(self) -> str:
        """Prompt and continuation decoded together (a token split across the join decodes correctly)."""
        return self._decode(self._ids)

    @property
    def history(self) -> list[GenStep]:
        return list(self._history)

    @property
    def stopped(self) -> bool:
        """True when the last step chose <|endoftext|> with stop_at_eot set."""
        return bool(self._history) and self._history[-1].stopped

    @property
    def seed(self) -> int:
        """The seed in use (drawn at reset when the settings give none), so a run can be replayed."""
        return self._seed

    def reset(self, prompt_ids: Sequence[int] | None = None) -> None:
        """Forget the generated tokens (and optionally take a new prompt); reseed the random stream.

        The seed is the settings' seed, or a freshly drawn one when that is None.
        """
        ids = list(self._ids[: self._prompt_len]) if prompt_ids is None else [int(i) for i in prompt_ids]
        if not ids:
            raise ConfigError(
                "the prompt is empty: the model needs at least one token to continue "
                "(use <|endoftext|> to generate from nothing)"
            )
        for token_id in ids:
            self._check_id(token_id, "prompt token")
        self._ids = ids
        self._prompt_len = len(ids)
        self._history: list[GenStep] = []
        self._rng_states: list[torch.Tensor] = []
        seed = self._settings.seed
        self._seed = int(seed) if seed is not None else int(torch.randint(0, 2**62, (1,)).item())
        self._rng.manual_seed(self._seed)
        self._cache_start = 0  # index in self._ids of the first token held in the cache
        self._ready = None
        if self._cache is not None:
            self._cache.reset()

    def invalidate_cache(self) -> None:
        """The model's weights changed in place (a training step, weights loaded): cached keys and values are
        stale, so the next step recomputes the whole window. The sequence and history are kept."""
        self._ready = None
        if self._cache is not None:
            self._cache.reset()

    # ----------------------------------------------------------------------------------------------- steps

    def step(self, force_id: int | None = None) -> GenStep:
        """Choose the next token (sample, or take `force_id`), append it, and describe the choice."""
        if force_id is not None:
            force_id = self._check_id(force_id, "forced token")
        s = self._settings
        logits, cropped = self._next_logits()  # (V,) float32 on the CPU
        raw_probs = torch.softmax(logits, dim=-1)  # (V,)
        kept_ids, kept_probs = kept_distribution(logits, s.temperature, s.top_k, s.top_p)  # (m,), (m,)
        rng_before = self._rng.get_state()
        if force_id is not None:
            chosen = force_id
        elif s.greedy:
            chosen = int(kept_ids[torch.argmax(kept_probs)])
        else:
            chosen = int(kept_ids[torch.multinomial(kept_probs, 1, generator=self._rng)])
        final_probs = torch.zeros_like(raw_probs)  # (V,)
        final_probs[kept_ids] = kept_probs  # (V,)

        n = min(s.n_candidates, logits.shape[0])
        top_probs, top_ids = torch.topk(raw_probs, n)  # (n,), (n,)
        cand_ids = top_ids.tolist()
        if chosen not in cand_ids:
            cand_ids.append(chosen)
        index = torch.tensor(cand_ids)  # (c,)
        raw_list = raw_probs[index].tolist()
        final_list = final_probs[index].tolist()
        logit_list = logits[index].tolist()
        candidates = tuple(
            Candidate(id=i, piece=self._piece(i), prob_raw=r, prob_final=f, logit=g)
            for i, r, f, g in zip(cand_ids, raw_list, final_list, logit_list, strict=True)
        )
        chosen_raw = float(raw_probs[chosen])
        result = GenStep(
            index=len(self._ids) - self._prompt_len,
            position=len(self._ids),
            candidates=candidates,
            chosen_id=chosen,
            chosen_piece=self._piece(chosen),
            chosen_prob_raw=chosen_raw,
            chosen_prob_final=float(final_probs[chosen]),
            chosen_rank=int((raw_probs > chosen_raw).sum()),
            forced=force_id is not None,
            greedy=s.greedy and force_id is None,
            cropped=cropped,
            stopped=chosen == END_OF_TEXT_ID and s.stop_at_eot,
            kept_count=int(kept_ids.shape[0]),
        )
        self._ids.append(chosen)
        self._history.append(result)
        self._rng_states.append(rng_before)
        return result

    def generate(self, max_new_tokens: int) -> list[GenStep]:
        """Up to max_new_tokens steps, ending early when a step stops at <|endoftext|>."""
        if max_new_tokens < 0:
            raise ConfigError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        steps: list[GenStep] = []
        for _ in range(max_new_tokens):
            steps.append(self.step())
            if steps[-1].stopped:
                break
        return steps

    def undo(self) -> GenStep | None:
        """Remove the last generated token (never the prompt); the cache and random stream go back with it."""
        if not self._history:
            return None
        last = self._history.pop()
        self._rng.set_state(self._rng_states.pop())
        self._ids.pop()
        self._ready = None
        if self._cache is not None:
            keep = max(0, min(self._cache.length, len(self._ids) - self._cache_start))
            self._cache.truncate(keep)
        return last

    # -------------------------------------------------------------------------------------------- internals

    def _check_id(self, token_id: object, what: str) -> int:
        vocab = self.model.cfg.vocab_size
        if isinstance(token_id, bool) or not isinstance(token_id, int) or not 0 <= token_id < vocab:
            raise ConfigError(f"{what} {token_id!r} is not a token id of this model (0..{vocab - 1})")
        return token_id

    def _decode(self, ids: Sequence[int]) -> str:
        """Decode, showing ids beyond the tokenizer's vocabulary (a padded model vocabulary) as <id>."""
        vocab = self.tokenizer.vocab_size
        if all(i < vocab for i in ids):
            return self.tokenizer.decode(ids)
        parts: list[str] = []
        run: list[int] = []
        for token_id in ids:
            if token_id < vocab:
                run.append(token_id)
                continue
            parts.append(self.tokenizer.decode(run))
            parts.append(f"<{token_id}>")
            run = []
        parts.append(self.tokenizer.decode(run))
        return "".join(parts)

    def _piece(self, token_id: int) -> str:
        piece = self._piece_memo.get(token_id)
        if piece is None:
            piece = self.tokenizer.piece_or_id(token_id)  # "<id>" past the tokenizer's vocabulary
            self._piece_memo[token_id] = piece
        return piece

    def feed(
        self,
        tap_names: set[str] | frozenset[str] = frozenset(),
        extra_rows: Callable[[dict[str, torch.Tensor]], torch.Tensor | None] | None = None,
    ) -> FedTokens | None:
        """Run the model now over the tokens it has not seen (usually the one just chosen), keep the logits
        for the next `step()`, and return what the taps in `tap_names` saw. None when everything was fed
        already (the logits are ready): nothing ran, nothing new to show.

        `extra_rows(taps)` may return residual-stream rows (k, D) to put through the output head together
        with the last position (`FedTokens.head_logits`): the head's weights are read once for both."""
        if self._ready is not None and self._ready[0] == len(self._ids):
            return None
        fed = self._run(tap_names, extra_rows)
        assert fed is not None
        return fed

    def _next_logits(self) -> tuple[torch.Tensor, int]:
        """Logits (V,) for the token after self._ids, and how many tokens were cropped from the front."""
        ready = self._ready
        if ready is None or ready[0] != len(self._ids):
            self._run(frozenset())
            ready = self._ready
        assert ready is not None
        return ready[1], ready[2]

    def _run(
        self,
        tap_names: set[str] | frozenset[str],
        extra_rows: Callable[[dict[str, torch.Tensor]], torch.Tensor | None] | None = None,
    ) -> FedTokens | None:
        """Run the model over what the cache lacks (at least the last token: its logits are what a step needs)
        and keep the last position's logits as `_ready`. With tap names, also return the taps."""
        model = self.model
        if model.training:
            model.eval()  # dropout off: generation must be deterministic given the seed
        ctx = model.cfg.context_length
        start = max(0, len(self._ids) - ctx)
        weight = model.tok_emb.weight
        device = weight.device
        if self._cache is not None and self._cache_made_for != (device, weight.dtype):
            self._cache = None  # the model moved to another device or dtype since the cache was made
        with torch.inference_mode():
            first = self._prepare_cache(start) if self.use_cache else 0
            cache = self._cache
            fed = None
            if cache is not None and first == len(self._ids) - start - 1:
                # One new token: the step in C when it applies (native_decode says when), the head too
                # unless the caller's extra rows go through it with this token's.
                fed = native_decode.step(model, cache, self._ids[-1], tap_names, head=extra_rows is None)
            if fed is not None:
                hidden, taps, logits = fed.hidden, fed.taps, fed.logits  # (1, 1, D), ..., (V,) or None
            else:
                with capture(model, tap_names) as taps:
                    new = torch.tensor([self._ids[start + first :]], device=device)  # (1, T_new)
                    hidden = model.hidden(new, cache)  # (1, T_new, D)
                logits = None
            keys = (
                tuple(k[:, :, : cache.length] for k in cache.keys)
                if tap_names and cache is not None
                else None
            )
            extra = head = None
            if logits is None:
                rows = hidden[0, -1:]  # (1, D): only the last position's logits are needed
                extra = extra_rows(taps) if extra_rows is not None else None  # (k, D) or None
                if extra is not None:
                    rows = torch.cat([extra.to(rows.dtype), rows])  # (k + 1, D)
                head = model.head(rows)  # (k + 1, V)
                logits = head[-1]  # (V,)
        self._ready = (len(self._ids), logits.float().cpu(), start)
        if not tap_names:
            return None
        head_logits = head if extra is not None else None
        return FedTokens(start, first, tuple(self._ids[start:]), dict(taps), keys, logits, head_logits)

    def _prepare_cache(self, start: int) -> int:
        """Make the KV cache fit the window starting at `start`; return how many of its tokens it already
        holds (at most all but the last, whose logits a step needs)."""
        weight = self.model.tok_emb.weight
        if self._cache is None:
            self._cache = self.model.new_cache(1)
            self._cache_made_for = (weight.device, weight.dtype)
            self._cache_start = start
        cache = self._cache
        if start != self._cache_start:  # the window moved: positions shift, cached keys are stale
            cache.reset()
            self._cache_start = start
        first = min(cache.length, len(self._ids) - start - 1)
        cache.truncate(first)
        return first
