"""One answer to "which device did the user mean": `auto`, `cpu`, `cuda`, `cuda:N`, with one-line errors.

The window, `gptviz generate`, `gptviz train` and the trainer each used to resolve the name themselves,
with three wordings of the same errors."""

from __future__ import annotations

import torch

from gptviz.engine.distributed import DistInfo
from gptviz.errors import ConfigError


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """`auto` is the GPU when PyTorch sees one, else the CPU. A plain `cuda` is the current GPU, or this
    process's own GPU (`local_rank`) in a distributed run. A GPU asked for on a machine without one, or a
    name torch does not know, is a ConfigError."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for, but PyTorch sees no CUDA GPU; use --device cpu")
        if device.index is None:
            return torch.device("cuda", local_rank if local_rank is not None else torch.cuda.current_device())
    return device


def process_device(name: str, dist_info: DistInfo) -> torch.device:
    """The device this process trains on: under torchrun a plain `cuda` is the rank's own GPU (LOCAL_RANK),
    in one process the current one."""
    return resolve_device(name, dist_info.local_rank if dist_info.enabled else None)
