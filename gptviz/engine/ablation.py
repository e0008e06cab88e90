"""Switching parts of the model off: an attention head, an MLP neuron, or a whole layer's attention or MLP.

An ablation replaces what one part adds to the computation, through the hook points' `edit`:

* head H of layer L: its output before out_proj (`blocks.L.attn.hook_head_out`, (B, H, T, hd)), at every
  position, so out_proj sees nothing of it (only out_proj's bias remains, which belongs to no head);
* neuron N of layer L's MLP: its activation after GELU (`blocks.L.ff.hook_post`);
* a layer's attention or MLP: the whole output added to the residual stream (`attn.hook_out`,
  `ff.hook_out`), biases included.

"zero" sets the part to 0; "mean" to its mean over the positions of a reference text (the current text in
the window), which keeps the part's average contribution and removes only what depends on the position.
`install()` leaves the edits on the model until `remove()`: every pass then sees the ablated model, the
generator's and the panes' alike. Whoever owns cached activations (a KV cache, a live inspection) must drop
them when the set of ablations changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch

from gptviz.engine.ablation_spec import KINDS, MODES, Ablation
from gptviz.errors import ConfigError
from gptviz.model.gpt import GPTModel, KVCache
from gptviz.model.hooks import capture, hook_points


def check(model: GPTModel, ablations: Iterable[Ablation]) -> None:
    """A one-line error for a part the model does not have."""
    cfg = model.cfg
    for ab in ablations:
        if ab.kind not in KINDS or ab.mode not in MODES:
            raise ConfigError(f"unknown ablation {ab!r}")
        if not 0 <= ab.layer < cfg.n_layers:
            raise ConfigError(f"ablation {ab.label}: the model has layers 0..{cfg.n_layers - 1}")
        if ab.kind == "head" and not 0 <= (ab.index or 0) < cfg.n_heads:
            raise ConfigError(f"ablation {ab.label}: the model has heads 0..{cfg.n_heads - 1}")
        if ab.kind == "neuron" and not 0 <= (ab.index or 0) < 4 * cfg.emb_dim:
            raise ConfigError(f"ablation {ab.label}: the MLP has neurons 0..{4 * cfg.emb_dim - 1}")


def reference_means(
    model: GPTModel, ids: Sequence[int], ablations: Iterable[Ablation]
) -> dict[Ablation, torch.Tensor]:
    """For mean ablations: each part's mean over the positions of `ids`, from one pass of the model as it is
    now (other lasting edits included). Head: (hd,), neuron: scalar, attn/mlp: (D,)."""
    wanted = [ab for ab in ablations if ab.mode == "mean"]
    if not wanted:
        return {}
    device = next(model.parameters()).device
    with torch.no_grad(), capture(model, {ab.hook for ab in wanted}) as taps:
        model(torch.tensor([list(ids)], device=device))  # (1, T, V)
    means = {}
    for ab in wanted:
        x = taps[ab.hook][0]  # head: (H, T, hd); neuron/attn/mlp: (T, C)
        if ab.kind == "head":
            means[ab] = x[ab.index].mean(dim=0)  # (hd,)
        elif ab.kind == "neuron":
            means[ab] = x[:, ab.index].mean()  # ()
        else:
            means[ab] = x.mean(dim=0)  # (D,)
    return means


def edits_for(
    ablations: Sequence[Ablation], means: dict[Ablation, torch.Tensor] | None = None
) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """One edit per hook point, applying every ablation that lands there (on a copy: the tensor may be a
    view the model still reads)."""
    by_hook: dict[str, list[Ablation]] = {}
    for ab in ablations:
        by_hook.setdefault(ab.hook, []).append(ab)
    means = means or {}

    def make(parts: list[Ablation]) -> Callable[[torch.Tensor], torch.Tensor]:
        def edit(x: torch.Tensor) -> torch.Tensor:
            x = x.clone()
            for ab in parts:
                value = means.get(ab)
                fill = 0.0 if value is None else value.to(x.dtype)
                if ab.kind == "head":
                    x[:, ab.index] = fill  # (B, T, hd) of head `index`
                elif ab.kind == "neuron":
                    x[..., ab.index] = fill  # (B, T)
                else:
                    x[...] = fill  # (B, T, D)
            return x

        return edit

    return {hook: make(parts) for hook, parts in by_hook.items()}


def install(
    model: GPTModel,
    ablations: Sequence[Ablation],
    means: dict[Ablation, torch.Tensor] | None = None,
) -> None:
    """Put the ablations on the model until `remove()` (replacing any installed before)."""
    check(model, ablations)
    remove(model)
    points = hook_points(model)
    for hook, fn in edits_for(ablations, means).items():
        points[hook].edit = fn


def remove(model: GPTModel) -> None:
    for point in hook_points(model).values():
        point.edit = None


@contextmanager
def suspended(model: GPTModel) -> Iterator[None]:
    """The model with nothing switched off for the passes inside the block: every hook point's lasting edit
    is set aside and put back in `finally` (an ablated session asks what the whole model would have said)."""
    saved = [(point, point.edit) for point in hook_points(model).values()]
    try:
        for point, _ in saved:
            point.edit = None
        yield
    finally:
        for point, edit in saved:
            point.edit = edit


class PlainLogits:
    """The next-token logits of the model with nothing switched off, for a generation that runs ablated.

    It keeps a KV cache of its own for the un-ablated model (the generator's cache holds keys and values
    computed with the ablations, which every later position reads, so it cannot be reused): each call feeds
    only the tokens this cache has not seen, usually the one just generated, so asking after every Step
    costs one token's forward pass at any context length instead of a pass over the whole window. The ids
    kept beside the cache find the common prefix after an undo, a forced token or a new prompt; a window
    that slides (a text longer than the context) shifts every position and starts the cache again.
    `reset()` after the weights change (a training step)."""

    def __init__(self, model: GPTModel) -> None:
        self.model = model
        self._cache: KVCache | None = None
        self._start = 0  # index in the caller's ids of the cache's first token
        self._ids: list[int] = []  # the tokens in the cache

    def reset(self) -> None:
        self._cache = None
        self._ids = []

    def __call__(self, ids: Sequence[int]) -> torch.Tensor:
        """Logits (V,) float32 on the CPU for the token after `ids` (cropped to the last context_length)."""
        model = self.model
        ids = [int(i) for i in ids]
        if not ids:
            raise ConfigError("no tokens to predict from")
        start = max(0, len(ids) - model.cfg.context_length)
        window = ids[start:]
        if self._cache is None or start != self._start:
            self._cache = model.new_cache(1)
            self._start, self._ids = start, []
        cache = self._cache
        common = 0
        limit = min(len(self._ids), len(window) - 1)  # feed at least the last token: its logits are wanted
        while common < limit and self._ids[common] == window[common]:
            common += 1
        cache.truncate(min(common, cache.length))
        device = model.tok_emb.weight.device
        was_training = model.training
        model.eval()  # no dropout: the same numbers the generator's step saw
        try:
            with torch.inference_mode(), suspended(model):
                new = torch.tensor([window[cache.length :]], device=device)  # (1, T_new)
                hidden = model.hidden(new, cache)  # (1, T_new, D)
                logits = model.head(hidden[0, -1:])[0]  # (V,)
        except BaseException:
            self.reset()  # the cache may hold part of this pass
            raise
        finally:
            model.train(was_training)
        self._ids = window
        return logits.float().cpu()


__all__ = [
    "PlainLogits",
    "check",
    "edits_for",
    "install",
    "reference_means",
    "remove",
    "suspended",
]
