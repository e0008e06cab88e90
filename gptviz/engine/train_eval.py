"""Measuring the model between training steps: evaluation losses, the attention path they run on, and the
attention entropy of a probe.

Which windows an evaluation reads is gptviz.engine.train_batches' business; here its batches become one
number, of either kind the trainer reports: the mean over every target token (the fixed protocol, exact
however the windows are shared out over the ranks) or the book's `calc_loss_loader`, the mean of the
batches' means. The model runs in eval mode, so no dropout is drawn: the only random numbers an evaluation
uses are the book's loader draws, which the book makes too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from gptviz.data import SlidingWindows
from gptviz.engine.distributed import DistInfo, all_reduce_sum
from gptviz.engine.probe import ProbeRecord
from gptviz.engine.train_batches import Batch, TrainBatches
from gptviz.engine.training_diagnostics import attention_entropy
from gptviz.model.gpt import GPTModel

Autocast = Callable[[], AbstractContextManager[object]]  # the trainer's precision for forward and loss


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """The model in eval mode (no dropout) inside the block; the mode it had is put back after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@contextmanager
def written_out_attention(model: GPTModel, enabled: bool) -> Iterator[None]:
    """When `enabled` (the book's protocol), the written-out attention inside the block: dropout on the
    (B, H, T, T) weights, drawn as the book draws it; PyTorch's fused attention otherwise. Each block's own
    setting is put back after."""
    if not enabled:
        yield
        return
    attentions = [block.attn for block in model.blocks]
    saved = [attn.use_fused for attn in attentions]
    model.set_fused_attention(False)
    try:
        yield
    finally:
        for attn, fused in zip(attentions, saved, strict=True):
            attn.use_fused = fused


@torch.no_grad()
def token_mean_loss(
    model: nn.Module,
    batches: Iterable[Batch],
    autocast: Autocast,
    dist_info: DistInfo,
    device: torch.device,
) -> float | None:
    """Mean cross-entropy over every target token of this rank's batches and every other rank's (None when
    there were none): each rank sums, the sums are added over the ranks, then divided once."""
    total = 0.0
    count = 0
    for inputs, targets in batches:  # (b, T), (b, T)
        with autocast():
            logits = model(inputs)  # (b, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum")  # ()
        total += float(loss)
        count += targets.numel()
    all_total, all_count = all_reduce_sum([total, float(count)], dist_info, device)
    return all_total / all_count if all_count else None


@torch.no_grad()
def batch_mean_loss(model: nn.Module, batches: Iterable[Batch], autocast: Autocast) -> float:
    """The mean of the batches' mean cross-entropies (the book's calc_loss_loader): a shorter last batch
    weighs as much as a full one, as in the book."""
    total = 0.0
    count = 0
    for inputs, targets in batches:  # (b, T), (b, T)
        with autocast():
            logits = model(inputs)  # (b, T, V)
        total += F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten()).item()
        count += 1
    return total / count


def evaluation_losses(
    model: GPTModel, batches: TrainBatches, autocast: Autocast
) -> tuple[float | None, float | None]:
    """(train loss, validation loss) over eval_iter batches each, in eval mode (no dropout).

    Under the book protocol, the book's evaluate_model: the training loader shuffled afresh (drop_last),
    the validation loader in order (keeping its last, shorter batch); both iterations draw from the
    trainer's generator as the book's loaders draw from the global one.
    """
    with eval_mode(model):
        if not batches.book_protocol:
            return _fixed_loss(model, batches, batches.train_eval_windows, autocast), _fixed_loss(
                model, batches, batches.val_windows, autocast
            )
        with written_out_attention(model, True):
            train = batch_mean_loss(model, batches.book_eval(batches.train_windows, True, True), autocast)
            val = None
            if batches.val_windows is not None:
                val = batch_mean_loss(model, batches.book_eval(batches.val_windows, False, False), autocast)
        return train, val


def initial_losses(
    model: GPTModel, batches: TrainBatches, autocast: Autocast
) -> tuple[float | None, float | None]:
    """(train, validation) loss of the untrained model: the usual evaluation (fixed windows, no random
    numbers), or under the book's protocol the mean over every batch of each loader, read in order."""
    if not batches.book_protocol:
        return evaluation_losses(model, batches, autocast)
    with eval_mode(model), written_out_attention(model, True):
        train = batch_mean_loss(model, batches.in_order(batches.train_windows, drop_last=True), autocast)
        val = None
        if batches.val_windows is not None:
            val = batch_mean_loss(model, batches.in_order(batches.val_windows, drop_last=False), autocast)
    return train, val


def _fixed_loss(
    model: GPTModel, batches: TrainBatches, windows: SlidingWindows | None, autocast: Autocast
) -> float | None:
    if windows is None:
        return None
    return token_mean_loss(model, batches.fixed_eval(windows), autocast, batches.dist, batches.device)


def probe_entropy(probe: ProbeRecord | None) -> list[list[float]] | None:
    """Each head's attention entropy on the probe prompt, [layer][head] (gptviz.engine.training_diagnostics);
    None without a probe or its attention."""
    if probe is None or probe.attention is None or probe.attention.ndim != 4 or not probe.attention.size:
        return None
    return attention_entropy(probe.attention).tolist()  # (L, H)
