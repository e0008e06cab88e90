"""A generation step of one token in C (decode_step.c), built on first use with the machine's C compiler.

Why: a batch-1 step reads every weight once, so the time to read them is its floor. Through PyTorch a 124M
step took ~20.7 ms where that read took 10-14 ms: the products ran at MKL's two-column rate, and ~400 small
operations with their Python calls added ~6 ms (docs/benchmarks.md, "Where decoding's time goes"). The C
step does the same arithmetic (gpt.py) in one call, each product split over the cores at the rate of a
plain sum over its bytes.

When it runs: `Generator` feeds one new token through the KV cache, on the CPU, in float32, the model is a
plain GPTModel in eval mode, no edit (ablation, patch) sits on any hook point, and the taps asked for are
ones the step copies out (LAYER_TAPS and the embedding: what the live panes read at each Step). Everything
else (a prompt, the attention weights' taps, interventions, other dtypes and devices) takes the PyTorch
path, which stays the reference. Values agree with it to float32 rounding (the sums add in another order).
When the caller puts extra rows through the output head with the token's own (the logit lens), the step
stops before the head and the caller runs it, so the head is read once.

The library is compiled once per machine (`cc -O3 -march=native -fopenmp`, without OpenMP or -march if the
compiler refuses them) into the cache folder: $GPTVIZ_CACHE_DIR, else platformdirs' user cache dir, under a
name that hashes the source, the compiler and the flags, written to a temporary name and renamed into place.
No compiler, or a failed build: the PyTorch path, and `status()` says why. GPTVIZ_NATIVE_DECODE=0 turns it
off. The library links the OpenMP runtime PyTorch already loaded (the same soname), so the two share one
team of threads instead of fighting over the cores.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import torch

from gptviz.model.gpt import (
    GELU,
    FeedForward,
    GPTModel,
    KVCache,
    LayerNorm,
    MultiHeadAttention,
    TransformerBlock,
)
from gptviz.model.hooks import hook_points

SOURCE = Path(__file__).with_name("decode_step.c")
CACHE_DIR_ENV = "GPTVIZ_CACHE_DIR"
SWITCH_ENV = "GPTVIZ_NATIVE_DECODE"  # "0" turns the C step off
BUILD_TIMEOUT_S = 120
# Tried in order: the first the compiler accepts is kept (OpenMP splits each product over the cores).
FLAG_SETS = (
    ("-O3", "-march=native", "-fopenmp"),
    ("-O3", "-fopenmp"),
    ("-O3", "-march=native"),
    ("-O3",),
)
N_DIMS = 6  # decode_step.c: D_LAYERS, D_EMB, D_HEADS, D_CONTEXT, D_VOCAB, D_THREADS
LAYER_EPS = 1e-5  # decode_step.c LAYER_NORM_EPS


class _Library:
    """The loaded library, or why there is none. Built once per process, on first use."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tried = False
        self.handle: ctypes.CDLL | None = None
        self.path: Path | None = None
        self.reason = "not built yet"


_LIB = _Library()


def cache_dir() -> Path:
    """Where built libraries go: $GPTVIZ_CACHE_DIR/native, else the user cache dir's native/."""
    root = os.environ.get(CACHE_DIR_ENV)
    base = Path(root) if root else Path(platformdirs.user_cache_dir("gptviz", appauthor=False))
    return base / "native"


def enabled() -> bool:
    return os.environ.get(SWITCH_ENV, "1").strip() != "0"


def status() -> str:
    """One line for the report and the CLI: whether steps run in C, and if not, why."""
    if not enabled():
        return f"off ({SWITCH_ENV}=0)"
    lib = library()
    return f"on ({_LIB.path})" if lib is not None else f"off ({_LIB.reason})"


def library() -> ctypes.CDLL | None:
    """The compiled step, building it the first time; None (and `status()` says why) when it cannot be."""
    if _LIB.tried:
        return _LIB.handle
    with _LIB.lock:
        if not _LIB.tried:
            try:
                _LIB.path = _build()
                _LIB.handle = _load(_LIB.path)
                _LIB.reason = ""
            except (OSError, RuntimeError, subprocess.SubprocessError) as err:
                _LIB.handle, _LIB.reason = None, str(err).splitlines()[0] if str(err) else type(err).__name__
            _LIB.tried = True
    return _LIB.handle


def forget_library() -> None:
    """Build or load again on next use (tests switch compilers and cache folders)."""
    with _LIB.lock:
        _LIB.tried, _LIB.handle, _LIB.path, _LIB.reason = False, None, None, "not built yet"


def _compiler() -> str:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    raise RuntimeError("no C compiler (cc, gcc or clang) on PATH")


def _build() -> Path:
    """Compile decode_step.c unless a library built from the same source, compiler and machine exists."""
    cc = _compiler()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    built_for = b"\0".join([SOURCE.read_bytes(), cc.encode(), version.encode(), _machine().encode()])
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    errors = []
    for flags in FLAG_SETS:
        key = hashlib.sha256(built_for + b"\0" + " ".join(flags).encode()).hexdigest()[:16]
        target = folder / f"decode_step-{key}.so"
        if target.exists():
            return target
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
        os.close(fd)
        cmd = [cc, *flags, "-shared", "-fPIC", "-std=c11", str(SOURCE), "-o", tmp, "-lm"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
            if done.returncode == 0:
                os.replace(tmp, target)
                return target
            errors.append(
                done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
            )
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise RuntimeError(f"{cc} could not build decode_step.c: {errors[-1]}")


def _machine() -> str:
    """What -march=native depends on: a library built for one CPU may not run on another (a shared home)."""
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            flags = next((line for line in info if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()} {flags}"


def _load(path: Path) -> ctypes.CDLL:
    handle = ctypes.CDLL(str(path))  # ctypes lets go of the GIL during the call: the window keeps painting
    step = handle.gptviz_decode_step
    step.argtypes = [
        ctypes.c_void_p,  # the model's tensors (_Table)
        ctypes.c_void_p,  # sizes
        ctypes.c_int64,  # token
        ctypes.c_int64,  # position
        ctypes.c_void_p,  # logits (V,) or NULL
        ctypes.c_void_p,  # hidden (D,) or NULL
        ctypes.c_void_p,  # the taps' table or NULL
        ctypes.c_void_p,  # scratch
    ]
    step.restype = ctypes.c_int
    handle.gptviz_scratch_floats.argtypes = [ctypes.c_void_p]
    handle.gptviz_scratch_floats.restype = ctypes.c_int64
    return handle


def _tensors(model: GPTModel, cache: KVCache) -> list[torch.Tensor | None] | None:
    """Every tensor decode_step.c reads, in its table's order; None when the model is not the plain GPT the
    C step computes (a subclass, another norm, another activation)."""
    if type(model) is not GPTModel or type(model.final_norm) is not LayerNorm:
        return None
    if model.out_head.bias is not None or model.final_norm.eps != LAYER_EPS:
        return None
    table: list[torch.Tensor | None] = [
        model.tok_emb.weight,
        model.pos_emb.weight,
        model.final_norm.scale,
        model.final_norm.shift,
        model.out_head.weight,
    ]
    for layer, block in enumerate(model.blocks):
        attn, ff = block.attn, block.ff
        if (
            type(block) is not TransformerBlock
            or type(attn) is not MultiHeadAttention
            or type(ff) is not FeedForward
            or type(ff.gelu) is not GELU
            or type(block.norm1) is not LayerNorm
            or type(block.norm2) is not LayerNorm
            or block.norm1.eps != LAYER_EPS
            or block.norm2.eps != LAYER_EPS
        ):
            return None
        table += [
            block.norm1.scale,
            block.norm1.shift,
            attn.W_qkv.weight,
            attn.W_qkv.bias,
            attn.out_proj.weight,
            attn.out_proj.bias,
            block.norm2.scale,
            block.norm2.shift,
            ff.fc1.weight,
            ff.fc1.bias,
            ff.fc2.weight,
            ff.fc2.bias,
            cache.keys[layer][0],
            cache.values[layer][0],
        ]
    return table


class _Registrations:
    """Counts parameters and modules registered anywhere (a weight replaced, a head tied, a block swapped):
    the pointer table below is kept while this count and every tensor's address stay the same. Walking the
    modules for it took 0.3 ms a token, 2 % of a 124M step."""

    count = 0

    @classmethod
    def bump(cls, *_args: object) -> None:
        cls.count += 1


torch.nn.modules.module.register_module_parameter_registration_hook(_Registrations.bump)
torch.nn.modules.module.register_module_module_registration_hook(_Registrations.bump)


class _Table:
    """The pointer table of the last (model, cache) a step ran for, and what it was built from."""

    def __init__(self) -> None:
        self.model: weakref.ref[GPTModel] | None = None
        self.cache: weakref.ref[KVCache] | None = None
        self.registrations = -1
        self.tensors: list[torch.Tensor | None] = []
        self.addresses: list[int] = []
        self.pointers: ctypes.Array[ctypes.c_void_p] | None = None

    def for_step(self, model: GPTModel, cache: KVCache) -> ctypes.Array[ctypes.c_void_p] | None:
        """The table for decode_step.c, or None when the model is not what it computes (see _tensors)."""
        same = (
            self.model is not None
            and self.model() is model
            and self.cache is not None
            and self.cache() is cache
            and self.registrations == _Registrations.count
        )
        if same and self._addresses() == self.addresses:
            return self.pointers
        tensors = _tensors(model, cache)
        if tensors is None or any(
            t is not None and (t.dtype != torch.float32 or not t.is_contiguous()) for t in tensors
        ):
            self.model = None
            return None
        self.model, self.cache = weakref.ref(model), weakref.ref(cache)
        self.registrations = _Registrations.count
        self.tensors = tensors
        self.addresses = self._addresses()
        self.pointers = (ctypes.c_void_p * len(tensors))(
            *(t.data_ptr() if t is not None else None for t in tensors)
        )
        return self.pointers

    def _addresses(self) -> list[int]:
        """Each tensor's address, and -1 where it is no longer contiguous (`p.data = p.data.t()` keeps it)."""
        return [-1 if t is None else t.data_ptr() if t.is_contiguous() else -1 for t in self.tensors]


_TABLE = _Table()
_TABLE_LOCK = threading.Lock()


# The hook points a C step can fill, per layer, in decode_step.c's TAP_* order (the embedding is its own).
LAYER_TAPS = (
    "attn.hook_q",
    "attn.hook_k",
    "attn.hook_v",
    "hook_ln1",
    "hook_resid_mid",
    "hook_ln2",
    "ff.hook_post",
    "hook_resid_post",
)
EMBED_TAP = "hook_embed"


@dataclass(frozen=True)
class Fed:
    """What one token fed through the C step gives: the next token's logits (None when the head was left to
    the caller), the residual stream after the last block, and the taps asked for, each shaped as the
    PyTorch path's hook point shapes it for one position (B = T = 1)."""

    logits: torch.Tensor | None  # (V,)
    hidden: torch.Tensor  # (1, 1, D)
    taps: dict[str, torch.Tensor]


def step(
    model: GPTModel,
    cache: KVCache,
    token: int,
    tap_names: frozenset[str] | set[str] = frozenset(),
    head: bool = True,
) -> Fed | None:
    """Feed `token` at the cache's next position: its keys and values go into the cache (its length grows
    by one), and the next token's logits come back (`head`; else the caller runs the head, e.g. with the
    logit lens's rows), with the taps in `tap_names` (hook point names; see LAYER_TAPS). None, with nothing
    changed, when the C step does not apply (module docstring), a tap is one it cannot fill, or it is not
    built; the caller then takes the PyTorch path."""
    if not enabled() or model.training or cache.keys[0].shape[0] != 1:
        return None
    weight = model.tok_emb.weight
    if weight.device.type != "cpu" or weight.dtype != torch.float32 or cache.keys[0].dtype != torch.float32:
        return None
    if any(point.sink is not None or point.edit is not None for point in hook_points(model).values()):
        return None
    if any(method in vars(model) for method in ("forward", "hidden", "head")):
        return None  # replaced on this model (a test counting head passes, a wrapper): it must run
    pos = cache.length
    if pos >= cache.capacity or not 0 <= token < weight.shape[0]:
        return None
    cfg = model.cfg
    slots = _tap_slots(tap_names, cfg.n_layers)
    if slots is None:
        return None
    lib = library()
    if lib is None:
        return None
    with _TABLE_LOCK:  # one table for the last model: two threads' generators take turns building it
        pointers = _TABLE.for_step(model, cache)
    if pointers is None:
        return None
    dims = (ctypes.c_int64 * N_DIMS)(
        cfg.n_layers, cfg.emb_dim, cfg.n_heads, cache.capacity, weight.shape[0], torch.get_num_threads()
    )
    D = cfg.emb_dim
    scratch = torch.empty(lib.gptviz_scratch_floats(dims), dtype=torch.float32)  # see decode_step.c
    logits = torch.empty(weight.shape[0], dtype=torch.float32) if head else None  # (V,)
    hidden = torch.empty(1, 1, D, dtype=torch.float32)  # (1, 1, D)
    taps: dict[str, torch.Tensor] = {}
    table = None
    if slots:
        sizes = {name: (4 * D if name.endswith("ff.hook_post") else D) for name in slots}
        room = torch.empty(sum(sizes.values()), dtype=torch.float32)  # every tap's values, one after another
        table = (ctypes.c_void_p * (1 + cfg.n_layers * len(LAYER_TAPS)))()
        offset = 0
        for name, slot in slots.items():
            part = room[offset : offset + sizes[name]]
            offset += sizes[name]
            table[slot] = part.data_ptr()
            taps[name] = _shaped(name, part, cfg.n_heads)
    done = lib.gptviz_decode_step(
        pointers,
        dims,
        token,
        pos,
        logits.data_ptr() if logits is not None else None,
        hidden.data_ptr(),
        table,
        scratch.data_ptr(),
    )
    if done != 0:
        return None
    cache.length = pos + 1
    return Fed(logits, hidden, taps)


def _tap_slots(names: frozenset[str] | set[str], n_layers: int) -> dict[str, int] | None:
    """Each tap name's entry in decode_step.c's tap table; None when one is not a tap the C step fills."""
    slots = {}
    for name in names:
        if name == EMBED_TAP:
            slots[name] = 0
            continue
        layer, _, rest = name.removeprefix("blocks.").partition(".")
        if not name.startswith("blocks.") or not layer.isdigit() or rest not in LAYER_TAPS:
            return None
        if int(layer) >= n_layers:
            return None
        slots[name] = 1 + int(layer) * len(LAYER_TAPS) + LAYER_TAPS.index(rest)
    return slots


def _shaped(name: str, values: torch.Tensor, n_heads: int) -> torch.Tensor:
    """One position's values as the hook point holds them: (1, H, 1, hd) for Q, K and V, else (1, 1, n)."""
    if name.endswith(("attn.hook_q", "attn.hook_k", "attn.hook_v")):
        return values.view(1, n_heads, 1, -1)  # (B, H, T, hd)
    return values.view(1, 1, -1)  # (B, T, D) or (B, T, 4D)
