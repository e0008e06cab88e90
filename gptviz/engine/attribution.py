"""Why this token: the logit split into what each part of the model wrote, and what each input token did.

Direct logit attribution (DLA). The residual stream at the last block's output is a sum: the embeddings,
each head's output through its slice of out_proj, each attention output bias, each MLP's output. The final
LayerNorm is linear once its scale 1/std is frozen at this position's value (TransformerLens's convention),
and centring is linear, so the logit of a token is exactly

    sum over parts c of  W_U[token] . (gamma * (c - mean(c)) / std)   +   W_U[token] . beta

one number per part (and the last term, the norm's shift). "Why this token and not that one" uses
W_U[token] - W_U[other] instead.

Input attribution. Input x gradient: the gradient of the target logit with respect to each input token's
embedding, dotted with that embedding (one backward pass). Integrated gradients: the same gradient averaged
along the straight path from a baseline (token embeddings zero, position embeddings kept) to the input; the
scores then add up to logit(input) - logit(baseline), up to the Riemann sum's error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from gptviz.engine.patching import Cancelled
from gptviz.errors import ConfigError
from gptviz.model.gpt import GPTModel
from gptviz.model.hooks import capture, intervene


@dataclass(frozen=True)
class LogitAttribution:
    target_id: int
    against_id: int | None
    position: int
    logit: float  # the target's logit (minus the other's) at `position`, as the model computed it
    components: tuple[tuple[str, float], ...]  # (name, value); the values add up to `logit`


@dataclass(frozen=True)
class InputAttribution:
    method: str  # "ixg" or "ig"
    target_id: int
    position: int
    token_ids: tuple[int, ...]
    scores: tuple[float, ...]  # one per input token
    target_logit: float
    baseline_logit: float | None  # integrated gradients: the logit with token embeddings zero
    steps: int = 0


def _check_ids(model: GPTModel, ids: Sequence[int], position: int, *tokens: int | None) -> int:
    cfg = model.cfg
    if not ids:
        raise ConfigError("the prompt has no tokens")
    if len(ids) > cfg.context_length:
        raise ConfigError(f"the prompt is longer than the model's context of {cfg.context_length} tokens")
    for token in (*ids, *(t for t in tokens if t is not None)):
        if not 0 <= int(token) < cfg.vocab_size:
            raise ConfigError(f"token id {token} is outside the model's vocabulary of {cfg.vocab_size}")
    if not -len(ids) <= position < len(ids):
        raise ConfigError(f"position {position} is outside the {len(ids)} tokens of the prompt")
    return position % len(ids)


def direct_logit_attribution(
    model: GPTModel,
    ids: Sequence[int],
    target_id: int,
    *,
    position: int = -1,
    against_id: int | None = None,
) -> LogitAttribution:
    """The target's logit at `position` split into embed, L{l}.H{h}, L{l}.attn_bias, L{l}.mlp, final_norm_shift."""
    ids = [int(i) for i in ids]
    p = _check_ids(model, ids, position, target_id, against_id)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    names = {"hook_embed", f"blocks.{L - 1}.hook_resid_post"}
    for i in range(L):
        names |= {f"blocks.{i}.attn.hook_head_out", f"blocks.{i}.ff.hook_out"}
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), capture(model, names) as taps:
            logits = model(torch.tensor([ids], device=device))[0, p].double()  # (V,)
            norm, head = model.final_norm, model.out_head
            direction = head.weight[target_id].double()  # (D,)
            logit = logits[target_id]
            if against_id is not None:
                direction = direction - head.weight[against_id].double()
                logit = logit - logits[against_id]
            final = taps[f"blocks.{L - 1}.hook_resid_post"][0, p].double()  # (D,)
            std = torch.sqrt(final.var(unbiased=False) + norm.eps)
            readout = norm.scale.double() * direction / std  # (D,): what a centred part's D numbers are worth

            def worth(part: torch.Tensor) -> float:
                return float((part - part.mean(dim=-1, keepdim=True)) @ readout)

            parts: list[tuple[str, float]] = [("embed", worth(taps["hook_embed"][0, p].double()))]
            for i, block in enumerate(model.blocks):
                z = taps[f"blocks.{i}.attn.hook_head_out"][0, :, p].double()  # (H, hd)
                w_o = block.attn.out_proj.weight.double().view(-1, H, z.shape[-1])  # (D, H, hd)
                per_head = torch.einsum("hk,dhk->hd", z, w_o)  # (H, D): each head through its out_proj slice
                centred = per_head - per_head.mean(dim=-1, keepdim=True)  # (H, D)
                parts += [(f"L{i}.H{h}", float(v)) for h, v in enumerate((centred @ readout).tolist())]
                parts.append((f"L{i}.attn_bias", worth(block.attn.out_proj.bias.double())))
                parts.append((f"L{i}.mlp", worth(taps[f"blocks.{i}.ff.hook_out"][0, p].double())))
            parts.append(("final_norm_shift", float(norm.shift.double() @ direction)))
    finally:
        model.train(was_training)
    return LogitAttribution(int(target_id), against_id, p, float(logit), tuple(parts))


def input_attribution(
    model: GPTModel,
    ids: Sequence[int],
    target_id: int,
    *,
    position: int = -1,
    method: str = "ixg",
    steps: int = 32,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> InputAttribution:
    """Scores per input token for the target's logit at `position` (see the module docstring)."""
    if method not in ("ixg", "ig"):
        raise ConfigError(f"method must be ixg or ig, got {method!r}")
    if method == "ig" and steps < 32:
        raise ConfigError(f"integrated gradients needs at least 32 steps, got {steps}")
    ids = [int(i) for i in ids]
    p = _check_ids(model, ids, position, target_id)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            embedded = model.tok_emb(torch.tensor(ids, device=device)).detach()  # (T, D)
        if method == "ixg":
            scores, logit = _gradient_times_input(
                model, ids, embedded, torch.ones(1, device=device), p, target_id
            )
            return InputAttribution(
                "ixg", int(target_id), p, tuple(ids), tuple(scores[0].tolist()), logit, None
            )
        total = torch.zeros(len(ids), dtype=torch.float64)
        chunk = 8  # path points a pass: the batch stays small at 124M and 1,024 tokens
        alphas = (torch.arange(steps, dtype=torch.float32, device=device) + 0.5) / steps  # midpoint rule
        for start in range(0, steps, chunk):
            if cancel is not None and cancel.is_set():
                raise Cancelled("integrated gradients cancelled")
            part, _ = _gradient_times_input(model, ids, embedded, alphas[start : start + chunk], p, target_id)
            total += part.sum(dim=0).double()  # (T,)
            if progress is not None:
                progress(min(start + chunk, steps), steps)
        mean_scores = (total / steps).tolist()  # (T,) the path's mean gradient x input
        _, logit = _gradient_times_input(model, ids, embedded, torch.ones(1, device=device), p, target_id)
        _, baseline = _gradient_times_input(model, ids, embedded, torch.zeros(1, device=device), p, target_id)
        return InputAttribution(
            "ig", int(target_id), p, tuple(ids), tuple(mean_scores), logit, baseline, steps
        )
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)


def _gradient_times_input(
    model: GPTModel,
    ids: list[int],
    embedded: torch.Tensor,
    alphas: torch.Tensor,
    position: int,
    target_id: int,
) -> tuple[torch.Tensor, float]:
    """For each alpha: (gradient of the target logit w.r.t. the token embeddings at alpha * embedded) .
    embedded, per token -> (A, T); and the logit of the last alpha."""
    A, T = alphas.shape[0], len(ids)
    scaled = (alphas.view(A, 1, 1) * embedded.unsqueeze(0)).requires_grad_(True)  # (A, T, D)
    idx = torch.tensor([ids], device=embedded.device).expand(A, T)  # (A, T)
    with torch.enable_grad(), intervene(model, {"hook_tok_emb": lambda _x: scaled}):
        logits = model(idx)[:, position, target_id]  # (A,)
        (grad,) = torch.autograd.grad(logits.sum(), scaled)  # (A, T, D)
    return (grad * embedded.unsqueeze(0)).sum(dim=-1).detach().cpu(), float(logits[-1].detach())


__all__ = ["InputAttribution", "LogitAttribution", "direct_logit_attribution", "input_attribution"]
