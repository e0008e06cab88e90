"""Taps in the style of TransformerLens hook points: identity modules that can record what flows through.

A HookPoint costs one attribute check when nothing captures. `capture()` switches on only the names asked
for and switches them off again in `finally`, so nothing is kept once a view has what it needs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

NamesFilter = None | str | Iterable[str] | Callable[[str], bool]


class HookPoint(nn.Module):
    """Identity that hands its input to a sink while a capture is active."""

    def __init__(self) -> None:
        super().__init__()
        self.name = ""  # set by GPTModel from named_modules(), so names are stable module paths
        self.sink: Callable[[str, torch.Tensor], None] | None = None

    @property
    def active(self) -> bool:
        return self.sink is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sink is not None:
            self.sink(self.name, x)
        return x


def name_hook_points(model: nn.Module) -> None:
    for name, module in model.named_modules():
        if isinstance(module, HookPoint):
            module.name = name


def hook_points(model: nn.Module) -> dict[str, HookPoint]:
    return {m.name: m for m in model.modules() if isinstance(m, HookPoint)}


def hook_names(model: nn.Module) -> list[str]:
    return list(hook_points(model))


def _as_predicate(names: NamesFilter) -> Callable[[str], bool]:
    if names is None:
        return lambda _name: True
    if callable(names):
        return names
    if isinstance(names, str):
        pattern = re.compile(names)
        return lambda name: pattern.fullmatch(name) is not None
    wanted = set(names)
    return lambda name: name in wanted


@contextmanager
def capture(
    model: nn.Module, names: NamesFilter = None, *, detach: bool = True
) -> Iterator[dict[str, torch.Tensor]]:
    """Record the tensors at the chosen hook points during the forward passes inside the `with` block.

    `names` is None (all), a regex matched against the whole name, a collection of names, or a predicate.
    A name seen twice (two forward passes) keeps the latest tensor.
    """
    keep = _as_predicate(names)
    store: dict[str, torch.Tensor] = {}

    def sink(name: str, x: torch.Tensor) -> None:
        store[name] = x.detach() if detach else x

    chosen = [hp for name, hp in hook_points(model).items() if keep(name)]
    try:
        for hp in chosen:
            hp.sink = sink
        yield store
    finally:
        for hp in chosen:
            hp.sink = None
