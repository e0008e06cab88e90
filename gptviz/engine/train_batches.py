"""Which windows each training step and each evaluation reads, gathered onto the training device.

Determinism: the order of an epoch is a pure function of (seed, epoch) and the position in it a pure function
of the step, so a resumed run reads what it would have read. Under the book's protocol the order of an epoch
is instead drawn from the trainer's generator (gptviz.engine.train_rng) when training enters the epoch, as
the book's shuffled DataLoader draws it from the global one; that order cannot be drawn again, so it goes into
the checkpoint (`order`, `order_epoch`).

Evaluations read either the same `eval_iter` batches of windows spread evenly over each split every time (the
fixed protocol: a smooth curve), or the first `eval_iter` batches of the book's loaders, drawn afresh.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import torch
from torch.utils.data import DataLoader, Dataset

from gptviz.data import SlidingWindows
from gptviz.engine.distributed import DistInfo, shard
from gptviz.engine.train_rng import PrivateRng
from gptviz.engine.train_settings import TrainSettings
from gptviz.errors import ConfigError, DataError

Batch = tuple[torch.Tensor, torch.Tensor]  # (inputs, targets), (b, T) each


def eval_indices(windows: int, eval_iter: int, batch_size: int) -> torch.Tensor:
    """eval_iter batches of window indices spread evenly over a split of `windows` windows: the same at every
    evaluation, so the curve moves only when the model does."""
    count = min(windows, eval_iter * batch_size)
    return torch.linspace(0, windows - 1, count).round().long().unique()  # (count,)


class TrainBatches:
    """The windows of each split (training windows every `stride` tokens; evaluation windows side by side),
    the training order, and the batches of each evaluation."""

    def __init__(
        self,
        train_ids: torch.Tensor,
        val_ids: torch.Tensor | None,
        context: int,
        stride: int,
        settings: TrainSettings,
        dist_info: DistInfo,
        device: torch.device,
        rng: PrivateRng,
    ) -> None:
        self.settings = settings
        self.dist = dist_info
        self.device = device
        self.rng = rng
        self.train_ids = train_ids.to(torch.long).cpu()  # (N_train,)
        self.val_ids = val_ids.to(torch.long).cpu() if val_ids is not None and val_ids.numel() else None
        self.train_windows = SlidingWindows(self.train_ids, context, stride)
        self.train_eval_windows = SlidingWindows(self.train_ids, context, context)
        self.val_windows = None
        if self.val_ids is not None:
            if self.val_ids.numel() < context + 1:
                raise DataError(
                    f"the validation split has {self.val_ids.numel()} tokens, fewer than one window of "
                    f"{context} + 1; raise the validation ratio, shorten the context or use more text"
                )
            self.val_windows = SlidingWindows(self.val_ids, context, context)
        size, processes = settings.batch_size, dist_info.world_size
        self.per_epoch = len(self.train_windows) // processes // size  # batches per epoch and process
        if self.per_epoch == 0:
            raise DataError(
                f"the training split has {len(self.train_windows)} windows of {context} tokens "
                f"(stride {stride}), fewer than one batch of {size}"
                + (f" per process ({processes} processes)" if dist_info.enabled else "")
                + "; lower the batch size, the context or the stride, or use more text"
            )
        self.order = torch.arange(0)  # this rank's window indices of the epoch `order_epoch`
        self.order_epoch: int | None = None

    @property
    def book_protocol(self) -> bool:
        return self.settings.eval_protocol == "book"

    def gather(self, windows: SlidingWindows, indices: torch.Tensor) -> Batch:
        """The windows at `indices` (b,) as (inputs, targets) on the device."""
        offsets = indices.unsqueeze(1) * windows.stride + torch.arange(windows.max_length + 1)  # (b, T + 1)
        chunk = windows.token_ids[offsets]  # (b, T + 1)
        inputs = chunk[:, :-1].to(self.device, non_blocking=True)  # (b, T)
        targets = chunk[:, 1:].to(self.device, non_blocking=True)  # (b, T)
        return inputs, targets

    # ------------------------------------------------------------------ training

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """This rank's window indices for an epoch: a permutation seeded by (seed, epoch), then sharded."""
        n = len(self.train_windows)
        if self.settings.shuffle:
            generator = torch.Generator().manual_seed((self.settings.seed * 1_000_003 + epoch) % (2**63))
            order = torch.randperm(n, generator=generator)  # (n,)
        else:
            order = torch.arange(n)  # (n,)
        return shard(order, self.dist)  # (n // world_size,)

    def book_batches(
        self, count: int, shuffle: bool, drop_last: bool, limit: int | None
    ) -> list[torch.Tensor]:
        """Window indices of the first `limit` batches of the book's DataLoader over `count` windows.

        The book's loaders have no generator of their own, so iterating one draws from the global RNG: a
        base seed for workers on every iteration, and for a shuffled loader a seed for its RandomSampler,
        which then permutes with a generator of its own. Iterating a DataLoader over range(count) here, under
        the trainer's generator, makes exactly those draws: the windows are gathered by index afterwards.
        """
        # A range is a map-style dataset (a length and indexing), all the loader reads of one.
        indices = cast("Dataset[int]", range(count))
        loader: DataLoader[int] = DataLoader(
            indices, batch_size=self.settings.batch_size, shuffle=shuffle, drop_last=drop_last
        )
        batches = []
        with self.rng.active():
            for i, indices in enumerate(loader):  # (b,) each
                if limit is not None and i >= limit:
                    break
                batches.append(indices)
        return batches

    def book_epoch_order(self) -> torch.Tensor:
        """The book's training order for the next epoch: one iteration of its shuffled drop_last loader."""
        batches = self.book_batches(len(self.train_windows), shuffle=True, drop_last=True, limit=None)
        return torch.cat(batches)  # (per_epoch * B,)

    def for_training_step(self, step: int) -> Batch:
        """The batch of the step training takes now; under the book protocol, the step that enters an epoch
        first draws that epoch's order."""
        epoch = step // self.per_epoch
        if self.book_protocol and epoch != self.order_epoch:
            self.order = self.book_epoch_order()  # (per_epoch * B,)
            self.order_epoch = epoch
        return self.for_step(step)

    def for_step(self, step: int) -> Batch:
        """The (inputs, targets) of the optimizer step with 0-based index `step`: position follows from step.

        Under the book protocol an epoch's order is drawn (from the generator dropout also uses) when
        training reaches the epoch, so only the current epoch's batches can be asked for.
        """
        epoch, index = divmod(step, self.per_epoch)
        if epoch != self.order_epoch:
            if self.book_protocol:
                raise ConfigError(
                    f"under the book protocol epoch {epoch}'s order is drawn when training reaches it "
                    f"(now in epoch {self.order_epoch})"
                )
            self.order = self.epoch_order(epoch)
            self.order_epoch = epoch
        size = self.settings.batch_size
        return self.gather(self.train_windows, self.order[index * size : (index + 1) * size])

    # ------------------------------------------------------------------ evaluation

    def fixed_eval(self, windows: SlidingWindows) -> Iterator[Batch]:
        """This rank's share of the evenly spread evaluation windows, a batch at a time."""
        size = self.settings.batch_size
        indices = eval_indices(len(windows), self.settings.eval_iter, size)  # (n,)
        mine = indices[self.dist.rank :: self.dist.world_size]  # (n_rank,)
        return (self.gather(windows, mine[i : i + size]) for i in range(0, mine.numel(), size))

    def book_eval(self, windows: SlidingWindows, shuffle: bool, drop_last: bool) -> Iterator[Batch]:
        """The first eval_iter batches of the book's loader over `windows` (its calc_loss_loader's
        num_batches); the generator draws are made now, before the first batch is read."""
        batches = self.book_batches(len(windows), shuffle, drop_last, limit=self.settings.eval_iter)
        return (self.gather(windows, indices) for indices in batches)

    def in_order(self, windows: SlidingWindows, drop_last: bool) -> Iterator[Batch]:
        """Every batch of `windows` in order, drawing nothing (the untrained model's evaluation)."""
        size = self.settings.batch_size
        batches = list(torch.arange(len(windows)).split(size))  # (b,) each
        if drop_last and batches and batches[-1].numel() < size:
            batches.pop()
        return (self.gather(windows, indices) for indices in batches)
