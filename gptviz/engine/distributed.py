"""Several processes training one model with PyTorch DistributedDataParallel, started by torchrun.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; `init_distributed` reads them and
joins the process group (gloo on CPU, nccl on CUDA). Without them everything here is a no-op, so the same
trainer code runs in one process. Every rank trains on its own shard of the windows; gradients are averaged
by DDP during backward; rank 0 alone writes metrics, probes and checkpoints.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from gptviz.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistInfo()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group torchrun describes in the environment; one process without it."""
    if not launched_by_torchrun():
        return SINGLE
    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed; run without torchrun")
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but PyTorch sees no CUDA device")
    backend = "nccl" if use_cuda else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, backend)


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(values: Sequence[float], info: DistInfo, device: torch.device) -> list[float]:
    """Sum a few numbers over all ranks (one small collective); identity in one process."""
    if not info.enabled:
        return [float(v) for v in values]
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)  # (n,)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return [float(v) for v in tensor.tolist()]


def all_reduce_mean(values: Sequence[float], info: DistInfo, device: torch.device) -> list[float]:
    return [v / info.world_size for v in all_reduce_sum(values, info, device)]


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when any rank says so: all ranks stop at the same step (or none hangs)."""
    return all_reduce_sum([1.0 if flag else 0.0], info, device)[0] > 0


def shard(indices: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's share of a permutation: equal lengths on every rank (the remainder is dropped this epoch)."""
    per_rank = indices.numel() // info.world_size
    return indices[: per_rank * info.world_size][info.rank :: info.world_size]  # (per_rank,)
