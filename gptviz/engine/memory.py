"""Will this model fit? An estimate of the memory a model needs, checked before anything is allocated.

Allocating a model that does not fit gets a process killed by the kernel (or a CUDA out-of-memory error)
after minutes of initialisation; estimating from the config takes microseconds. The estimate counts, in
fp32 bytes:

- weights: `count_params(cfg)` (a tied output head counted once);
- training only: gradients (one per weight) and AdamW's two moment buffers (exp_avg, exp_avg_sq);
- activations kept for backward (training) or the largest live tensors of one forward pass plus the KV cache
  (inference), from the shapes of GPTModel: per block about ACT_BTD x B*T*D values (layer-norm inputs and
  outputs, Q/K/V, the feed-forward's 4*D-wide pre- and post-GELU tensors, dropout masks) and ACT_BHTT x
  B*H*T^2 values (attention scores, softmax, dropout mask), plus ACT_BTV x B*T*V for the logits, the
  cross-entropy's log-softmax and the logits' gradient.

The coefficients were set so the estimate stays above the peak resident memory measured for GPTModel
training steps on the CPU (tests/reliability/test_memory.py measures one in a subprocess), without being
more than about twice it, so a refusal means the run would really not fit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from gptviz.config import GPTConfig, count_params
from gptviz.errors import ConfigError

if TYPE_CHECKING:  # the Get GPT-2 dialog imports this module at start-up, before torch has loaded
    import torch

BYTES_FP32 = 4
ACT_BTD = 34  # values of shape (B, T, D) kept per block for backward
ACT_BHTT = 3  # values of shape (B, H, T, T) kept per block (scores, softmax, dropout mask)
ACT_BTV = 5  # values of shape (B, T, V): logits, log-softmax, their gradients, the head's matmul
INFER_BTD = 12  # live (B, T, D) values during one inference block
INFER_BHTT = 2
INFER_BTV = 2
OVERHEAD = 256 * 2**20  # allocator, thread pools, temporary buffers of backward: measured 150-250 MiB
USABLE_FRACTION = 0.9  # keep a tenth of what is available for everything else (the GUI, the OS)
SKIP_ENV = "GPTVIZ_SKIP_MEMORY_CHECK"  # "1": estimate only, never refuse (for machines that swap happily)

GIB = 2**30


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes by part; `total` is what `check_fits` compares with the memory available."""

    weights: int
    gradients: int
    optimizer: int
    activations: int
    training: bool
    batch_size: int
    context: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations

    def describe(self) -> str:
        parts = [f"weights {_gib(self.weights)}"]
        if self.training:
            parts += [f"gradients {_gib(self.gradients)}", f"AdamW state {_gib(self.optimizer)}"]
        parts.append(f"activations {_gib(self.activations)}")
        return f"{_gib(self.total)} ({', '.join(parts)})"


def _gib(n: int | float) -> str:
    return f"{n / GIB:.2f} GiB" if n < 100 * GIB else f"{n / GIB:,.0f} GiB"


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def estimate_memory(cfg: GPTConfig, *, training: bool, batch_size: int, context: int) -> MemoryEstimate:
    """Bytes a model of `cfg` needs to train (or run) on batches of `batch_size` x `context` tokens."""
    _positive("batch_size", batch_size)
    _positive("context", context)
    if context > cfg.context_length:
        raise ConfigError(
            f"context {context} is longer than the model's context length {cfg.context_length}; "
            "use a shorter context (or build the model with a longer one)"
        )
    params = count_params(cfg)
    b, t, d, h, v, n = batch_size, context, cfg.emb_dim, cfg.n_heads, cfg.vocab_size, cfg.n_layers
    btd, bhtt, btv = b * t * d, b * h * t * t, b * t * v
    if training:
        values = n * (ACT_BTD * btd + ACT_BHTT * bhtt) + 4 * btd + ACT_BTV * btv
        grads, adam = params * BYTES_FP32, 2 * params * BYTES_FP32
    else:
        kv_cache = 2 * n * btd
        values = kv_cache + INFER_BTD * btd + INFER_BHTT * bhtt + INFER_BTV * btv
        grads = adam = 0
    overhead = OVERHEAD if training else OVERHEAD // 4
    return MemoryEstimate(
        weights=params * BYTES_FP32,
        gradients=grads,
        optimizer=adam,
        activations=values * BYTES_FP32 + overhead,
        training=training,
        batch_size=batch_size,
        context=context,
    )


def _cgroup_room() -> int | None:
    """Bytes the container's memory limit still allows (cgroup v2, then v1), or None when unlimited."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit_text = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit_text == "max":
            return None
        try:
            limit = int(limit_text)
        except ValueError:
            continue
        if limit >= 2**60:  # cgroup v1 writes "no limit" as a huge number
            return None
        return max(0, limit - usage)
    return None


def available_ram() -> int:
    """Bytes of RAM a new allocation can get: the OS's available memory (psutil: MemAvailable on Linux, the
    free and inactive pages on macOS, the available physical memory on Windows), capped by a container's
    memory limit, which psutil does not see."""
    available = int(psutil.virtual_memory().available)
    room = _cgroup_room()
    return min(available, room) if room is not None else available


def available_memory(device: str | torch.device = "cpu") -> int:
    """Free bytes on `device`: free GPU memory for CUDA, available RAM otherwise."""
    import torch

    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return available_ram()


def check_fits(
    cfg: GPTConfig,
    *,
    training: bool,
    batch_size: int,
    context: int,
    device: str | torch.device = "cpu",
    available: int | None = None,
    weights_allocated: bool = False,
) -> MemoryEstimate:
    """Refuse (ConfigError, with the numbers) a model that will not fit, before anything is allocated.

    Call it before building the model (`GPTModel(cfg)`), loading weights, or starting a training run.
    `weights_allocated=True` says the model already exists on `device` (e.g. a Trainer given a model): its
    weights are counted in the estimate but have already left the free memory, so they are added back.
    `available` overrides the measured free memory (tests). Setting GPTVIZ_SKIP_MEMORY_CHECK=1 turns the
    refusal off; the estimate is still returned.
    """
    estimate = estimate_memory(cfg, training=training, batch_size=batch_size, context=context)
    if os.environ.get(SKIP_ENV) == "1":
        return estimate
    room = available if available is not None else available_memory(device)
    if weights_allocated:
        room += estimate.weights
    if estimate.total > USABLE_FRACTION * room:
        what = "training" if training else "running"
        where = "GPU memory" if str(device).startswith("cuda") else "RAM"
        raise ConfigError(
            f"{what} {cfg.name} ({count_params(cfg) / 1e6:,.0f}M parameters) with batch {batch_size} x "
            f"context {context} needs about {estimate.describe()}, but only {_gib(room)} of {where} is "
            f"available; lower the batch size or the context, or choose a smaller model "
            f"(set {SKIP_ENV}=1 to try anyway)"
        )
    return estimate


def process_rss_bytes() -> int:
    """Resident memory of this process, on every OS psutil knows (the status bar's memory figure)."""
    return int(psutil.Process().memory_info().rss)
