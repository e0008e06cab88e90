"""What an ablation names: a head, an MLP neuron, or a whole layer's attention or MLP, zeroed or set to its mean.

Apart from `gptviz.engine.ablation` (which applies them with torch) because the window builds and shows these
before torch is loaded: the Attention pane's context menu and the Ablations list construct them at start-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gptviz.errors import ConfigError

KINDS = ("head", "neuron", "attn", "mlp")
MODES = ("zero", "mean")


@dataclass(frozen=True)
class Ablation:
    """One part switched off. `index` is the head or the neuron; None for a whole attn or mlp."""

    kind: str
    layer: int
    index: int | None = None
    mode: str = "zero"

    @property
    def hook(self) -> str:
        return {
            "head": f"blocks.{self.layer}.attn.hook_head_out",
            "neuron": f"blocks.{self.layer}.ff.hook_post",
            "attn": f"blocks.{self.layer}.attn.hook_out",
            "mlp": f"blocks.{self.layer}.ff.hook_out",
        }[self.kind]

    @property
    def label(self) -> str:
        """As the command line writes it: 3.7 (head 7 of layer 3), 3.mlp.42, 3.attn, 3.mlp; '(mean)' after."""
        part = {
            "head": f"{self.layer}.{self.index}",
            "neuron": f"{self.layer}.mlp.{self.index}",
            "attn": f"{self.layer}.attn",
            "mlp": f"{self.layer}.mlp",
        }[self.kind]
        return part + (" (mean)" if self.mode == "mean" else "")


_SPEC = re.compile(r"^(\d+)\.(?:(\d+)|attn|mlp(?:\.(\d+))?)$")


def parse_ablations(text: str, mode: str = "zero") -> list[Ablation]:
    """`3.7,5.1,2.mlp,4.attn,2.mlp.100` -> Ablations (head 7 of layer 3, ..., neuron 100 of layer 2's MLP)."""
    if mode not in MODES:
        raise ConfigError(f"ablation mode must be one of {', '.join(MODES)}, got {mode!r}")
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        match = _SPEC.match(part)
        if match is None:
            raise ConfigError(
                f"cannot read the ablation {part!r}: write L.H for head H of layer L, L.attn or L.mlp for a "
                "whole layer's attention or MLP, L.mlp.N for neuron N"
            )
        layer, head, neuron = match.group(1), match.group(2), match.group(3)
        if head is not None:
            out.append(Ablation("head", int(layer), int(head), mode))
        elif neuron is not None:
            out.append(Ablation("neuron", int(layer), int(neuron), mode))
        else:
            out.append(Ablation("attn" if part.endswith("attn") else "mlp", int(layer), None, mode))
    if not out:
        raise ConfigError("no ablation given: write for example 3.7 or 3.7,5.1")
    return out


__all__ = ["KINDS", "MODES", "Ablation", "parse_ablations"]
