"""The trainer's own random number generator: dropout and the book's loader draws come from it.

It is a saved generator state swapped in around each use and swapped out after, so a GUI sampling text
between two steps (which draws from the process-wide generator) does not change what training sees, and
training does not change what sampling sees. The state goes into the checkpoint, which is what lets a resumed
run draw the dropout masks it would have drawn.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


class PrivateRng:
    """The CPU generator state, and the GPU's when training on one."""

    def __init__(self, device: torch.device, seed: int) -> None:
        self.device = device
        self.cpu, self.cuda = self._seeded(seed)

    def reseed(self, seed: int) -> None:
        self.cpu, self.cuda = self._seeded(seed)

    def _seeded(self, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """States seeded with `seed`, made without disturbing the process-wide generator."""
        on_gpu = self.device.type == "cuda"
        with torch.random.fork_rng(devices=[self.device] if on_gpu else []):
            torch.manual_seed(seed)
            cpu = torch.get_rng_state()
            cuda = torch.cuda.get_rng_state(self.device) if on_gpu else None
        return cpu, cuda

    @contextmanager
    def active(self) -> Iterator[None]:
        """Draw from this generator inside the block; the process-wide state is put back after, and this
        one keeps where the block left it."""
        saved_cpu = torch.get_rng_state()
        saved_cuda = None
        if self.cuda is not None:
            saved_cuda = torch.cuda.get_rng_state(self.device)
            torch.cuda.set_rng_state(self.cuda, self.device)
        torch.set_rng_state(self.cpu)
        try:
            yield
        finally:
            self.cpu = torch.get_rng_state()
            torch.set_rng_state(saved_cpu)
            if saved_cuda is not None:
                self.cuda = torch.cuda.get_rng_state(self.device)
                torch.cuda.set_rng_state(saved_cuda, self.device)
