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
    """Identity that hands its input to a sink while a capture is active, and that an intervention (an
    ablation, a patch) may replace: `edit` maps the tensor to the one that flows on, and the sink sees the
    edited tensor, so a capture shows what the model actually computed."""

    def __init__(self) -> None:
        super().__init__()
        self.name = ""  # set by GPTModel from named_modules(), so names are stable module paths
        self.sink: Callable[[str, torch.Tensor], None] | None = None
        self.edit: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def active(self) -> bool:
        return self.sink is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.edit is not None:
            x = self.edit(x)
        if self.sink is not None:
            self.sink(self.name, x)
        return x


def name_hook_points(model: nn.Module) -> None:
    """Name every hook point after its path, and keep the name -> point map on the model: a generation step
    opens a capture, and walking 12 blocks' modules for it took 0.9 ms of a 34 ms step at 124M."""
    points = {}
    for name, module in model.named_modules():
        if isinstance(module, HookPoint):
            module.name = name
            points[name] = module
    model.__dict__["_hook_points"] = points  # a plain attribute: not a submodule, not in the state dict


def hook_points(model: nn.Module) -> dict[str, HookPoint]:
    named = model.__dict__.get("_hook_points")
    if named is not None:
        return dict(named)
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


@contextmanager
def intervene(model: nn.Module, edits: dict[str, Callable[[torch.Tensor], torch.Tensor]]) -> Iterator[None]:
    """Replace what flows through the named hook points for the forward passes inside the `with` block.

    Each edit gets the tensor and returns the one that flows on (it must not change the shape). Edits
    already installed (a lasting ablation) run first; the old ones come back in `finally`."""
    points = hook_points(model)
    unknown = [name for name in edits if name not in points]
    if unknown:
        raise KeyError(f"no hook point named {unknown[0]!r}")
    saved = {name: points[name].edit for name in edits}
    try:
        for name, fn in edits.items():
            before = saved[name]
            points[name].edit = fn if before is None else _chain(before, fn)
        yield
    finally:
        for name, before in saved.items():
            points[name].edit = before


def _chain(
    first: Callable[[torch.Tensor], torch.Tensor], then: Callable[[torch.Tensor], torch.Tensor]
) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: then(first(x))
