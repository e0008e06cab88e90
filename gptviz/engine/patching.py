"""Activation patching (causal tracing): which activations carry the answer from a clean prompt.

Two prompts of equal token length differ in a detail (clean: "The Eiffel Tower is in", corrupted: "The
Colosseum is in"); the logit difference LD = logit(answer) - logit(wrong) at the last position separates
them. Put one activation of the clean run into the corrupted run: the normalised effect

    (LD_patched - LD_corrupt) / (LD_clean - LD_corrupt)

is 1 when that activation alone restores the clean answer and 0 when it changes nothing. Two maps:

* layer x position: the residual stream entering block L at position t taken from the clean run;
* layer x head: head H's output before out_proj (at every position) taken from the clean run.

Speed: the corrupted run's residual stream entering each block is kept, so a patched run starts at the
patched block instead of the embeddings, and all the patches of one layer run as one batch (T positions, or
H heads, one per batch row).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from gptviz.errors import ConfigError, GptvizError
from gptviz.model.gpt import GPTModel
from gptviz.model.hooks import capture, intervene
from gptviz.tokenizer import Tokenizer


class Cancelled(GptvizError):
    """The user cancelled a long computation; nothing was changed."""


@dataclass(frozen=True)
class PatchResult:
    clean_ids: np.ndarray  # (T,) int64
    corrupt_ids: np.ndarray  # (T,) int64
    answer_id: int
    wrong_id: int
    ld_clean: float
    ld_corrupt: float
    resid: np.ndarray  # (L, T) float32: normalised effect of the clean residual entering block L at t
    heads: np.ndarray  # (L, H) float32: normalised effect of the clean output of head H in layer L


def _block_inputs(
    model: GPTModel, ids: Sequence[int]
) -> tuple[list[torch.Tensor], dict[int, torch.Tensor], torch.Tensor]:
    """One run: the residual stream entering each block ((T, D) each), each layer's head outputs, and the
    last position's logits (V,)."""
    L = model.cfg.n_layers
    names = {"hook_embed"} | {f"blocks.{i}.hook_resid_post" for i in range(L - 1)}
    names |= {f"blocks.{i}.attn.hook_head_out" for i in range(L)}
    device = next(model.parameters()).device
    with capture(model, names) as taps:
        logits = model(torch.tensor([list(ids)], device=device))[0, -1]  # (V,)
    inputs = [taps["hook_embed"][0]] + [taps[f"blocks.{i}.hook_resid_post"][0] for i in range(L - 1)]
    heads = {i: taps[f"blocks.{i}.attn.hook_head_out"][0] for i in range(L)}  # (H, T, hd) each
    return inputs, heads, logits


def _run_from(model: GPTModel, x: torch.Tensor, layer: int) -> torch.Tensor:
    """Blocks layer.. and the head on a batch of residual streams entering `layer`: (B, T, D) -> (B, V) logits
    at the last position."""
    for block in model.blocks[layer:]:
        x = block(x)  # (B, T, D)
    return model.head(x[:, -1])  # (B, V)


def patch(
    model: GPTModel,
    clean_ids: Sequence[int],
    corrupt_ids: Sequence[int],
    answer_id: int,
    wrong_id: int,
    *,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> PatchResult:
    """Both maps for one pair of prompts. `progress(done, total)` after each layer's batch; setting `cancel`
    stops between batches with `Cancelled`."""
    clean_ids, corrupt_ids = [int(i) for i in clean_ids], [int(i) for i in corrupt_ids]
    if len(clean_ids) != len(corrupt_ids):
        raise ConfigError(
            f"the clean and corrupted prompts must have the same number of tokens "
            f"({len(clean_ids)} and {len(corrupt_ids)})"
        )
    if not clean_ids:
        raise ConfigError("the prompts are empty")
    cfg = model.cfg
    if len(clean_ids) > cfg.context_length:
        raise ConfigError(f"the prompts are longer than the model's context of {cfg.context_length} tokens")
    for token in (answer_id, wrong_id, *clean_ids, *corrupt_ids):
        if not 0 <= token < cfg.vocab_size:
            raise ConfigError(f"token id {token} is outside the model's vocabulary of {cfg.vocab_size}")
    L, H, T = cfg.n_layers, cfg.n_heads, len(clean_ids)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            clean_in, clean_heads, clean_logits = _block_inputs(model, clean_ids)
            corrupt_in, _, corrupt_logits = _block_inputs(model, corrupt_ids)
            ld_clean = float(clean_logits[answer_id] - clean_logits[wrong_id])
            ld_corrupt = float(corrupt_logits[answer_id] - corrupt_logits[wrong_id])
            span = ld_clean - ld_corrupt
            if abs(span) < 1e-6:
                raise ConfigError(
                    "the clean and corrupted prompts give the same logit difference between the answer and "
                    "the wrong token: there is nothing to restore"
                )
            resid = np.zeros((L, T), dtype=np.float32)
            heads = np.zeros((L, H), dtype=np.float32)
            total, done = 2 * L, 0
            positions = torch.arange(T)
            for layer in range(L):
                _check(cancel)
                x = corrupt_in[layer].unsqueeze(0).repeat(T, 1, 1)  # (T, T, D): row b patches position b
                x[positions, positions] = clean_in[layer]  # (T, D)
                logits = _run_from(model, x, layer)  # (T, V)
                resid[layer] = (
                    ((logits[:, answer_id] - logits[:, wrong_id] - ld_corrupt) / span).cpu().numpy()
                )
                done += 1
                if progress is not None:
                    progress(done, total)

                _check(cancel)
                source = clean_heads[layer]  # (H, T, hd)

                def put_heads(out: torch.Tensor, source: torch.Tensor = source) -> torch.Tensor:
                    out = out.clone()  # (H, H, T, hd): batch row b takes head b from the clean run
                    out[torch.arange(H), torch.arange(H)] = source
                    return out

                x = corrupt_in[layer].unsqueeze(0).repeat(H, 1, 1)  # (H, T, D)
                with intervene(model, {f"blocks.{layer}.attn.hook_head_out": put_heads}):
                    logits = _run_from(model, x, layer)  # (H, V)
                heads[layer] = (
                    ((logits[:, answer_id] - logits[:, wrong_id] - ld_corrupt) / span).cpu().numpy()
                )
                done += 1
                if progress is not None:
                    progress(done, total)
    finally:
        model.train(was_training)
    return PatchResult(
        clean_ids=np.asarray(clean_ids, dtype=np.int64),
        corrupt_ids=np.asarray(corrupt_ids, dtype=np.int64),
        answer_id=int(answer_id),
        wrong_id=int(wrong_id),
        ld_clean=ld_clean,
        ld_corrupt=ld_corrupt,
        resid=resid,
        heads=heads,
    )


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("patching cancelled")


def single_token(tokenizer: Tokenizer, text: str, what: str) -> int:
    """The id of `text` when it is exactly one token (" Paris"); otherwise a one-line error."""
    ids = tokenizer.encode(text)
    if len(ids) != 1:
        raise ConfigError(
            f"the {what} {text!r} is {len(ids)} tokens; it must be exactly one (mind the space)"
        )
    return int(ids[0])


__all__ = ["Cancelled", "PatchResult", "patch", "single_token"]
