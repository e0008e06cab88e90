"""The project's own checkpoint: a directory holding model.safetensors + config.json (+ trainer_state.pt),
and importers for GPT-2 weights from elsewhere (Hugging Face GPT-2, the book's .pth state dict).

Writes are atomic at the directory level: everything goes to a hidden sibling first, then two renames swap
it in. A process killed between the renames leaves `.NAME.old`, which `resolve_checkpoint_dir` falls back to,
so a reader always finds one complete checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shutil
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gptviz.config import GPTConfig, count_params
from gptviz.engine.memory import check_fits
from gptviz.errors import ConfigError, WeightsError
from gptviz.model.gpt import GPTModel

FORMAT_NAME = "gptviz-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TRAINER_STATE_FILE = "trainer_state.pt"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, but belongs to someone else
    return True


def _remove_stale_staging(parent: Path, name: str) -> None:
    """Delete staging folders left by saves whose process died (SIGKILL, power cut): each is a full-size copy
    of the model that nobody will finish, and a run killed often would fill the disk with them."""
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return
    prefix = f".{name}.tmp-"
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for stale in entries:
        pid = stale.name[len(prefix) :]
        if stale.name.startswith(prefix) and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def model_state_for_saving(model: GPTModel, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The model's tensors, a tied output head stored once (safetensors refuses shared storage)."""
    state = model.state_dict()
    if model.cfg.tie_weights:
        state.pop("out_head.weight", None)
    out = {}
    for key, tensor in state.items():
        tensor = tensor.detach().cpu()
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        out[key] = tensor.contiguous()
    return out


@contextmanager
def staged_directory(directory: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden sibling of `directory` to fill; when the block ends without an error, swap it in.

    Two renames replace the old directory, so a reader sees the old one or the new one, never a mix; a
    process killed between them leaves `.NAME.old`, which `resolve_checkpoint_dir` falls back to. On an
    error the staging folder is removed and the old directory is left as it was.
    """
    target = Path(directory)
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".{target.name}.tmp-{os.getpid()}"
    backup = parent / f".{target.name}.old"
    _remove_stale_staging(parent, target.name)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        yield staging
        _fsync_dir(staging)
        if target.exists():
            if backup.exists():
                shutil.rmtree(backup)
            os.replace(target, backup)
        os.replace(staging, target)
        _fsync_dir(parent)
        if backup.exists():
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not target.exists() and backup.exists():
            os.replace(backup, target)
        raise


@contextmanager
def staged_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden sibling path to write; when the block ends without an error, fsync it and rename it
    over `path`, so a reader never sees half a file. On an error the sibling is deleted."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.tmp-{os.getpid()}"
    try:
        yield staging
        _fsync_file(staging)
        os.replace(staging, target)
        _fsync_dir(target.parent)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def save_checkpoint(
    model: GPTModel,
    directory: str | os.PathLike,
    *,
    trainer_state: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write the checkpoint directory atomically; the previous one stays loadable until the swap."""
    target = Path(directory)
    with staged_directory(target) as staging:
        save_file(
            model_state_for_saving(model, dtype), str(staging / WEIGHTS_FILE), metadata={"format": "pt"}
        )
        _fsync_file(staging / WEIGHTS_FILE)
        if trainer_state is not None:
            torch.save(trainer_state, staging / TRAINER_STATE_FILE)
            _fsync_file(staging / TRAINER_STATE_FILE)
        config = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "config": model.cfg.to_dict(),
            "dtype": str(dtype or model.tok_emb.weight.dtype).replace("torch.", ""),
            "meta": meta or {},
        }
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        _fsync_file(staging / CONFIG_FILE)
    return target


def resolve_checkpoint_dir(directory: str | os.PathLike) -> Path:
    """The directory to read: the checkpoint itself, or its backup if a save was killed mid-swap."""
    target = Path(directory)
    if (target / CONFIG_FILE).is_file():
        return target
    backup = target.parent / f".{target.name}.old"
    if not target.exists() and (backup / CONFIG_FILE).is_file():
        return backup
    if not target.exists():
        raise WeightsError(f"checkpoint not found: {target}")
    if not target.is_dir():
        raise WeightsError(f"{target} is not a gptviz checkpoint directory")
    raise WeightsError(f"{target} is not a gptviz checkpoint (no {CONFIG_FILE})")


def _read_config_json(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / CONFIG_FILE).read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: a huge int
        raise WeightsError(f"{directory / CONFIG_FILE} is unreadable: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise WeightsError(f"{directory / CONFIG_FILE} is not a gptviz checkpoint config")
    return data


def read_checkpoint_config(directory: str | os.PathLike) -> GPTConfig:
    data = _read_config_json(resolve_checkpoint_dir(directory))
    try:
        return GPTConfig.from_dict(data["config"])
    except (KeyError, TypeError, ConfigError) as exc:
        reason = str(exc).replace("\r", "\\r").replace("\n", "\\n")  # a key may hold a newline: one line
        raise WeightsError(f"checkpoint config is invalid: {reason}") from None


def read_checkpoint_meta(directory: str | os.PathLike) -> dict[str, Any]:
    path = resolve_checkpoint_dir(directory)
    meta = _read_config_json(path).get("meta", {})
    if not isinstance(meta, dict):
        raise WeightsError(f"{path / CONFIG_FILE} is damaged: its meta is not a JSON object")
    return dict(meta)


def check_state_dict(model: GPTModel, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise a WeightsError that names every missing, unexpected or wrongly shaped tensor."""
    expected = model_state_for_saving(model)
    expected_shapes = {k: tuple(v.shape) for k, v in expected.items()}
    missing = sorted(set(expected_shapes) - set(state))
    unexpected = sorted(set(state) - set(expected_shapes))
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} (expected {expected_shapes[k]})"
        for k in set(state) & set(expected_shapes)
        if tuple(state[k].shape) != expected_shapes[k]
    )
    problems = []
    if missing:
        problems.append("missing: " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected: " + ", ".join(unexpected))
    if wrong:
        problems.append("wrong shape: " + ", ".join(wrong))
    if problems:
        raise WeightsError(f"{source} does not fit the model: " + "; ".join(problems))


JUSTIFIED_SLACK = 2**20  # parameters a model may have beyond twice the file's numbers before it is refused


def check_tensors_cover(cfg: GPTConfig, state: dict[str, torch.Tensor], source: object) -> None:
    """Refuse, before the model is allocated, a config (config.json, model_args) that describes far more
    parameters than the file's tensors hold (the load would refuse it anyway, after allocating the model).
    A small shortfall is left to `check_state_dict`, whose error names each missing tensor."""
    held = sum(t.numel() for t in state.values())
    needed = count_params(cfg)
    if needed > 2 * held + JUSTIFIED_SLACK:
        raise WeightsError(
            f"{source} does not fit the model: its config describes {needed:,} parameters but the file "
            f"holds {held:,} numbers"
        )


def load_state_into(model: GPTModel, state: dict[str, torch.Tensor], source: str) -> GPTModel:
    check_state_dict(model, state, source)
    with torch.no_grad():
        params = dict(model.named_parameters(remove_duplicate=False))
        buffers = dict(model.named_buffers())
        for key, tensor in state.items():
            slot = params.get(key, buffers.get(key))
            slot.copy_(tensor.to(slot.dtype))
    return model


META_INIT_MIN_PARAMS = 50_000_000


def empty_model(cfg: GPTConfig) -> GPTModel:
    """A GPTModel with uninitialised storage, for weights that will be loaded over it anyway.

    Random initialisation of a model that is overwritten costs seconds (124M) to a minute (1558M). Every
    parameter is filled by `load_state_into`, which refuses a state dict that misses one. A model with
    buffers (not in a state dict if non-persistent) gets the normal initialisation instead.
    """
    if count_params(cfg) < META_INIT_MIN_PARAMS:
        # Small models initialise in milliseconds; the meta device's first use imports hundreds of torch
        # modules (2.3 s of the demo model's 3.1 s load at start-up), so build them plainly.
        return GPTModel(cfg)
    with torch.device("meta"):
        model = GPTModel(cfg)
    if any(True for _ in model.buffers()):
        return GPTModel(cfg)
    model.to_empty(device="cpu")
    if cfg.tie_weights:
        model.out_head.weight = model.tok_emb.weight  # to_empty made two tensors of the shared one
    return model


def load_checkpoint(
    directory: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[GPTModel, dict[str, Any]]:
    """Load a checkpoint directory as an fp32 model in eval mode, plus its meta dict."""
    path = resolve_checkpoint_dir(directory)
    cfg = read_checkpoint_config(path)
    check_fits(cfg, training=False, batch_size=1, context=cfg.context_length, device=device)
    try:
        state = load_file(str(path / WEIGHTS_FILE))
    except FileNotFoundError:
        raise WeightsError(f"{path} has no {WEIGHTS_FILE}") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path / WEIGHTS_FILE} is damaged or not safetensors: {exc}") from None
    check_tensors_cover(cfg, state, path / WEIGHTS_FILE)
    model = empty_model(cfg)
    load_state_into(model, state, str(path / WEIGHTS_FILE))
    model.to(device).eval()
    meta = read_checkpoint_meta(path)
    notes: list[str] = []
    # Check the fp32 model, not the (maybe fp16) file tensors: isfinite on fp16 is slow on CPUs.
    loaded = {k: v for k, v in model.state_dict().items() if k in state}
    _check_finite(loaded, path / WEIGHTS_FILE, notes)
    for note in notes:  # loaded, but the user should know: NaN weights give NaN logits
        log.warning(note)
    if notes:
        meta["warnings"] = notes
    return model, meta


def load_trainer_state(directory: str | os.PathLike) -> dict[str, Any] | None:
    """Optimizer, schedule, step, RNG saved beside the weights; read with weights_only=True (no code runs)."""
    path = resolve_checkpoint_dir(directory) / TRAINER_STATE_FILE
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a damaged or unsafe file
        raise WeightsError(f"{path} cannot be read safely: {exc}") from None


# ---------------------------------------------------------------------------------------------------------
# Import: Hugging Face GPT-2 (folder or file, safetensors or .bin), the book's .pth, our own checkpoints.
# ---------------------------------------------------------------------------------------------------------

HF_CONFIG_FILE = "config.json"
HF_SAFETENSORS = "model.safetensors"
HF_SAFETENSORS_INDEX = "model.safetensors.index.json"
HF_TORCH_BIN = "pytorch_model.bin"
HF_TORCH_BIN_INDEX = "pytorch_model.bin.index.json"

# The head counts OpenAI used for each GPT-2 width; the tensors alone cannot tell how a width was split.
STANDARD_GPT2_HEADS = {768: 12, 1024: 16, 1280: 20, 1600: 25}

# HF GPT-2 stores these with Conv1D, whose weight is (in, out): the transpose of nn.Linear's (out, in).
_HF_CONV1D = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
_HF_BLOCK_MAP = {
    "ln_1.weight": "norm1.scale",
    "ln_1.bias": "norm1.shift",
    "attn.c_attn.weight": "attn.W_qkv.weight",
    "attn.c_attn.bias": "attn.W_qkv.bias",
    "attn.c_proj.weight": "attn.out_proj.weight",
    "attn.c_proj.bias": "attn.out_proj.bias",
    "ln_2.weight": "norm2.scale",
    "ln_2.bias": "norm2.shift",
    "mlp.c_fc.weight": "ff.fc1.weight",
    "mlp.c_fc.bias": "ff.fc1.bias",
    "mlp.c_proj.weight": "ff.fc2.weight",
    "mlp.c_proj.bias": "ff.fc2.bias",
}
_HF_TOP_MAP = {
    "wte.weight": "tok_emb.weight",
    "wpe.weight": "pos_emb.weight",
    "ln_f.weight": "final_norm.scale",
    "ln_f.bias": "final_norm.shift",
    "lm_head.weight": "out_head.weight",
}
_HF_IGNORED_BLOCK = ("attn.bias", "attn.masked_bias")  # causal-mask buffers, not weights
_BOOK_BLOCK_MAP = {
    "att.out_proj.weight": "attn.out_proj.weight",
    "att.out_proj.bias": "attn.out_proj.bias",
    "ff.layers.0.weight": "ff.fc1.weight",
    "ff.layers.0.bias": "ff.fc1.bias",
    "ff.layers.2.weight": "ff.fc2.weight",
    "ff.layers.2.bias": "ff.fc2.bias",
    "norm1.scale": "norm1.scale",
    "norm1.shift": "norm1.shift",
    "norm2.scale": "norm2.scale",
    "norm2.shift": "norm2.shift",
}
_BLOCK_KEY = re.compile(r"^(?P<prefix>h|trf_blocks|blocks)\.(?P<index>\d+)\.(?P<rest>.+)$")

log = logging.getLogger(__name__)


@dataclass
class ImportedWeights:
    """A model read by `read_weights`, with where it came from (recorded in the checkpoint's meta)."""

    model: GPTModel
    source: Path
    file_format: str  # "gptviz-checkpoint", "safetensors" or "torch-pickle"
    key_style: str  # "gptviz", "hf-transformers" (transformer.h.0...), "hf-hub" (h.0...), "book"
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def import_weights(
    src: str | os.PathLike, n_heads: int | None = None, *, warnings: list[str] | None = None
) -> GPTModel:
    """Read GPT-2 weights from any supported source as an fp32 gptviz model in eval mode (on the CPU).

    Sources: a Hugging Face GPT-2 folder or a single `.safetensors` / `.bin` file of it, the book's `.pth`
    state dict, nanoGPT's `ckpt.pt` (read by gptviz.engine.nanogpt), or a gptviz checkpoint directory.
    Pickled files are read with `weights_only=True`, so a file that would run code is refused, never
    executed. Problems that do not stop the import (NaN weights, an unusual config) are appended to
    `warnings` and logged.
    """
    return read_weights(src, n_heads, warnings=warnings).model


def read_weights(
    src: str | os.PathLike, n_heads: int | None = None, *, warnings: list[str] | None = None
) -> ImportedWeights:
    """Like `import_weights`, but also says which format and key style were found."""
    path = Path(src).expanduser()
    notes: list[str] = []
    if n_heads is not None and (not isinstance(n_heads, int) or n_heads <= 0):
        raise WeightsError(f"--heads must be a positive integer, got {n_heads!r}")
    if _is_own_checkpoint(path):
        model, _meta = load_checkpoint(path)
        if n_heads is not None and n_heads != model.cfg.n_heads:
            raise WeightsError(f"{path} is a gptviz checkpoint with {model.cfg.n_heads} heads, not {n_heads}")
        _check_finite(model_state_for_saving(model), path, notes)
        result = ImportedWeights(model, path, "gptviz-checkpoint", "gptviz", [resolve_checkpoint_dir(path)])
    elif (nanogpt_file := _nanogpt_file(path)) is not None:
        from gptviz.engine.nanogpt import read_nanogpt  # it builds on this module's helpers

        result = read_nanogpt(nanogpt_file, n_heads, notes)
    else:
        files, hf_config = _locate_weight_files(path)
        raw: dict[str, torch.Tensor] = {}
        file_format = ""
        for file in files:
            part, file_format = _read_tensor_file(file)
            raw.update(part)
        state, key_style = _to_gptviz_names(raw, path)
        cfg = _build_config(state, hf_config, n_heads, path, notes)
        check_tensors_cover(cfg, state, path)
        _check_finite(state, path, notes)
        model = empty_model(cfg)
        load_state_into(model, state, str(path))
        model.eval()
        result = ImportedWeights(model, path, file_format, key_style, files)
    for note in notes:
        log.warning(note)
    result.warnings = notes
    if warnings is not None:
        warnings.extend(notes)
    return result


def _nanogpt_file(path: Path) -> Path | None:
    """The nanoGPT train.py checkpoint at `path` (a ckpt.pt, or an out_dir holding one), else None."""
    from gptviz.engine.nanogpt import find_nanogpt_checkpoint

    return find_nanogpt_checkpoint(path)


def _is_own_checkpoint(path: Path) -> bool:
    backup = path.parent / f".{path.name}.old"
    candidate = path if path.exists() else backup
    config = candidate / CONFIG_FILE
    if not config.is_file():
        return False
    try:
        data = json.loads(config.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT_NAME


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: a huge int
        raise WeightsError(f"{path} is unreadable: {exc}") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path} is not a JSON object")
    return data


def _read_hf_config(path: Path) -> dict[str, Any] | None:
    """The HF GPT-2 config.json beside the weights, or None if there is none."""
    if not path.is_file():
        return None
    data = _read_json(path)
    model_type = data.get("model_type", "gpt2")
    if model_type != "gpt2":
        raise WeightsError(f"{path} describes a {model_type!r} model; only GPT-2 weights can be imported")
    if "n_embd" not in data:
        return None  # some other config.json: shapes decide
    return data


def _locate_weight_files(path: Path) -> tuple[list[Path], dict[str, Any] | None]:
    """The weight file(s) to read and the HF config.json that describes them (if any)."""
    if not path.exists():
        raise WeightsError(f"weights not found: {path}")
    if path.is_file():
        return [path], _read_hf_config(path.parent / HF_CONFIG_FILE)
    if not path.is_dir():
        raise WeightsError(f"{path} is neither a file nor a folder")
    hf_config = _read_hf_config(path / HF_CONFIG_FILE)
    for index_name in (HF_SAFETENSORS_INDEX, HF_TORCH_BIN_INDEX):
        index = path / index_name
        if index.is_file():
            weight_map = _read_json(index).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise WeightsError(f"{index} has no weight_map")
            if not all(isinstance(n, str) and n and Path(n).name == n for n in weight_map.values()):
                raise WeightsError(f"{index} names shards that are not file names in {path}")
            names = sorted(set(weight_map.values()))
            files = [path / name for name in names]
            absent = [str(f) for f in files if not f.is_file()]
            if absent:
                raise WeightsError(f"{index} lists shards that are missing: {', '.join(absent)}")
            return files, hf_config
    for name in (HF_SAFETENSORS, HF_TORCH_BIN):
        if (path / name).is_file():
            return [path / name], hf_config
    candidates = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".pth", ".pt"))
    if len(candidates) == 1:
        return candidates, hf_config
    if candidates:
        listed = ", ".join(p.name for p in candidates)
        raise WeightsError(f"{path} holds several weight files ({listed}); name the one to import")
    raise WeightsError(
        f"{path} holds no weights: expected {HF_SAFETENSORS} or {HF_TORCH_BIN} (Hugging Face GPT-2), "
        f"a .pth file, or a gptviz checkpoint ({CONFIG_FILE} + {WEIGHTS_FILE})"
    )


def _sniff(path: Path) -> str:
    """'safetensors', 'zip' (torch.save), 'pickle' (legacy torch.save) or 'unknown', from the first bytes."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
    except OSError as exc:
        raise WeightsError(f"{path} cannot be read: {exc.strerror}") from None
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"  # 8-byte little-endian header length, then the JSON header
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"  # pickle protocol 2-5 opcode
    return "unknown"


def _read_tensor_file(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    kind = _sniff(path)
    if kind == "safetensors":
        try:
            return load_file(str(path)), "safetensors"
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path} is damaged or truncated safetensors: {exc}") from None
    if kind in ("zip", "pickle"):
        return _torch_load_safely(path), "torch-pickle"
    raise WeightsError(
        f"{path} is not a model file: expected safetensors or a PyTorch .bin/.pth (torch.save) file"
    )


def _torch_load_safely(path: Path) -> dict[str, torch.Tensor]:
    return _tensors_from_object(torch_load_safely(path), path)


# Bytes an element of each storage type a legacy torch.save names ('torch FloatStorage'); a name not here
# counts 1 byte, so an unknown type can only make the check below more lenient, never refuse a good file.
_STORAGE_ELEMENT_BYTES = {
    "DoubleStorage": 8,
    "FloatStorage": 4,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
    "ComplexFloatStorage": 8,
    "ComplexDoubleStorage": 16,
}
_LEGACY_PICKLES_BEFORE_DATA = 3  # a legacy file: magic number, protocol version, sys_info, then the data
_LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER, the first pickle


class _Stub:
    """What a global in a pickle becomes while its storages are counted: a name, never the real object.
    It takes whatever a state dict's pickle does to its objects (calls, setstate, items, appends)."""

    gptviz_name = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _BoundedReader:
    """A file handle whose reads never ask for more than the file has left: pickle's length prefixes
    (BINUNICODE, BINBYTES8, FRAME) become short reads, never allocations of what they claim."""

    def __init__(self, handle: Any, size: int) -> None:
        self.handle = handle
        self.size = size

    def read(self, n: int = -1) -> bytes:
        left = max(0, self.size - self.handle.tell())
        return self.handle.read(left if n is None or n < 0 else min(n, left))

    def readline(self) -> bytes:
        return self.handle.readline()

    def readinto(self, buffer: Any) -> int:
        return self.handle.readinto(buffer)


class _StorageCounter(pickle._Unpickler):  # the pure-Python unpickler: every read goes through the file
    """Reads a legacy torch.save pickle without importing or calling anything of its own: every global is a
    `_Stub`, and each storage's persistent id ('storage', type, key, location, numel, ...) is counted."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, handle: _BoundedReader) -> None:
        super().__init__(handle)
        self.reader = handle
        self.storage_bytes: dict[str, int] = {}

    def find_class(self, module: str, name: str) -> Any:
        return type(name, (_Stub,), {"gptviz_name": f"{module}.{name}"})

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            kind, key, numel = pid[1], pid[2], pid[4]
            if isinstance(numel, int) and not isinstance(numel, bool) and numel > 0:
                name = str(getattr(kind, "gptviz_name", "")).rpartition(".")[2]
                size = numel * _STORAGE_ELEMENT_BYTES.get(name, 1)
                self.storage_bytes[str(key)] = max(size, self.storage_bytes.get(str(key), 0))
        return None

    def load_bytearray8(self) -> None:
        """BYTEARRAY8 would allocate (and zero) its claimed length before reading: check it first."""
        (length,) = struct.unpack("<Q", self.read(8))
        if length > self.reader.size:
            raise pickle.UnpicklingError(f"a bytearray of {length:,} bytes in a file of {self.reader.size:,}")
        self.append(bytearray(self.read(length)))

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8


def check_legacy_storage_sizes(path: Path) -> None:
    """Refuse a legacy (not zip) torch.save file whose pickle declares more tensor bytes than the file holds.

    torch.load allocates each storage of a legacy file at the size its pickle declares, before it reads the
    storage's bytes and finds them missing: a 400-byte file declaring (2**31 - 1) floats made it ask for
    8 GiB. A legacy file stores every storage's bytes after its pickles, so the declared total can never
    exceed the file's size. This reads the pickles first with `_StorageCounter` (nothing imported, nothing
    called, no read longer than the file) and compares. A pickle it cannot read is refused too: torch's
    own reader would allocate a length prefix's claim while failing on it. A plain pickle (no torch magic
    number first) is read through once the same way, then left to torch.load, which names what it refuses. Zip files need none of this:
    torch reads data.pkl whole and compares each record's size with the declared one before allocating."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            reader = _BoundedReader(handle, size)
            if _StorageCounter(reader).load() != _LEGACY_MAGIC_NUMBER:
                return  # a plain pickle, read through once: torch.load names what it refuses in it
            for _ in range(_LEGACY_PICKLES_BEFORE_DATA - 1):
                _StorageCounter(reader).load()
            counter = _StorageCounter(reader)
            counter.load()
            _StorageCounter(reader).load()  # the storage keys, in the order their bytes follow
    except Exception as exc:  # noqa: BLE001 - any failure of a damaged pickle means the same to the user
        first = (str(exc).splitlines() or [""])[0]
        raise WeightsError(
            f"{path} is damaged or not a PyTorch file: {type(exc).__name__}: {first}"
        ) from None
    declared = sum(counter.storage_bytes.values())
    if declared > size:
        raise WeightsError(
            f"{path} is damaged or crafted: its pickle declares {declared:,} bytes of tensors but the file "
            f"holds {size:,} bytes; refused before loading"
        )


def torch_load_safely(path: Path) -> Any:
    """torch.load with weights_only=True: plain tensors and containers only, no code runs while unpickling.
    A legacy (not zip) file is first checked not to declare more tensor bytes than it holds."""
    path = Path(path)
    if _sniff(path) == "pickle":
        check_legacy_storage_sizes(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Weights only load failed" in text:
            found = re.search(r"GLOBAL ([\w.]+)", text)
            what = f" (it references {found.group(1)})" if found else ""
            raise WeightsError(
                f"{path} refused: it needs code execution to unpickle{what}; only plain tensors are read. "
                "If you trust the file, re-save its state_dict with safetensors and import that."
            ) from None
        raise WeightsError(f"{path} is damaged or not a PyTorch file: {text.splitlines()[0]}") from None
    except Exception as exc:  # noqa: BLE001 - a broken zip/pickle raises many kinds; all mean "damaged"
        first = (str(exc).splitlines() or [""])[0]  # torch's argument errors run over many lines
        raise WeightsError(
            f"{path} is damaged or not a PyTorch file: {type(exc).__name__}: {first}"
        ) from None
    return obj


def _tensors_from_object(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The state dict in a loaded object: plain, or the book's ch. 5 {"model_state_dict": ...}."""
    if isinstance(obj, dict):
        for key in ("model_state_dict", "state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, dict) and any(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise WeightsError(f"{path} holds no state dict (no named tensors found)")


def _to_gptviz_names(raw: dict[str, torch.Tensor], source: Path) -> tuple[dict[str, torch.Tensor], str]:
    """Rename (and reshape) tensors from any known key style to GPTModel's state_dict names."""
    keys = list(raw)
    if any(k.startswith("transformer.") for k in keys):
        return _from_hf(raw, "transformer."), "hf-transformers"
    if "wte.weight" in raw or any(k.startswith("h.") for k in keys):
        return _from_hf(raw, ""), "hf-hub"
    if any(k.startswith("trf_blocks.") for k in keys):
        return _from_book(raw), "book"
    if "tok_emb.weight" in raw or any(k.startswith("blocks.") for k in keys):
        return dict(raw), "gptviz"
    shown = ", ".join(sorted(keys)[:5]) + (", ..." if len(keys) > 5 else "")
    raise WeightsError(f"{source} does not look like GPT-2 weights (tensors: {shown})")


def _from_hf(raw: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for key, tensor in raw.items():
        name = key[len(prefix) :] if prefix and key.startswith(prefix) else key
        match = _BLOCK_KEY.match(name)
        if match and match["prefix"] == "h":
            rest = match["rest"]
            if rest in _HF_IGNORED_BLOCK:
                continue
            if rest not in _HF_BLOCK_MAP:
                state[key] = tensor  # reported as unexpected under its own name
                continue
            if rest.rsplit(".", 1)[0] in _HF_CONV1D and rest.endswith(".weight") and tensor.dim() == 2:
                tensor = tensor.t()  # Conv1D (in, out) -> Linear (out, in)
            state[f"blocks.{match['index']}.{_HF_BLOCK_MAP[rest]}"] = tensor  # copy_ accepts views
        elif name in _HF_TOP_MAP:
            state[_HF_TOP_MAP[name]] = tensor
        else:
            state[key] = tensor
    # c_attn's output is [q | k | v] along its last dim, each split into heads: exactly W_qkv's layout.
    head = state.get("out_head.weight")
    emb = state.get("tok_emb.weight")
    if head is not None and emb is not None and head.shape == emb.shape and torch.equal(head, emb):
        del state["out_head.weight"]  # tied to the token embedding
    return state


def _from_book(raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, dict[str, torch.Tensor]]] = {}  # block -> weight/bias -> query/key/value
    for key, tensor in raw.items():
        match = _BLOCK_KEY.match(key)
        if match and match["prefix"] == "trf_blocks":
            index, rest = match["index"], match["rest"]
            if rest == "att.mask":
                continue  # the book's causal-mask buffer
            proj = re.fullmatch(r"att\.W_(query|key|value)\.(weight|bias)", rest)
            if proj:
                qkv.setdefault(index, {}).setdefault(proj[2], {})[proj[1]] = tensor
            elif rest in _BOOK_BLOCK_MAP:
                state[f"blocks.{index}.{_BOOK_BLOCK_MAP[rest]}"] = tensor
            else:
                state[key] = tensor
        else:
            state[key] = tensor  # tok_emb, pos_emb, final_norm, out_head keep their names
    for index, kinds in qkv.items():
        for kind, parts in kinds.items():
            ranks, widths = {t.dim() for t in parts.values()}, {tuple(t.shape[1:]) for t in parts.values()}
            if set(parts) == {"query", "key", "value"} and ranks in ({1}, {2}) and len(widths) == 1:
                fused = torch.cat([parts["query"], parts["key"], parts["value"]], dim=0)  # (3D, D) or (3D,)
                state[f"blocks.{index}.attn.W_qkv.{kind}"] = fused
            else:
                for part, tensor in parts.items():  # incomplete: leave them to be reported by name
                    state[f"trf_blocks.{index}.att.W_{part}.{kind}"] = tensor
    head = state.get("out_head.weight")
    emb = state.get("tok_emb.weight")
    if head is not None and emb is not None and head.shape == emb.shape and torch.equal(head, emb):
        del state["out_head.weight"]
    return state


def _infer_heads(emb_dim: int, n_heads: int | None, source: Path) -> int:
    if n_heads is not None:
        return n_heads
    if emb_dim in STANDARD_GPT2_HEADS:
        return STANDARD_GPT2_HEADS[emb_dim]
    raise WeightsError(
        f"cannot tell the number of attention heads of {source} (width {emb_dim} is not a standard GPT-2 "
        "size and there is no config.json); give it with --heads N"
    )


def _build_config(
    state: dict[str, torch.Tensor],
    hf_config: dict[str, Any] | None,
    n_heads: int | None,
    source: Path,
    notes: list[str],
) -> GPTConfig:
    """The model's shape: from an HF config.json if there is one, else read off the tensors."""
    for key in ("tok_emb.weight", "pos_emb.weight"):
        if key not in state or state[key].dim() != 2:
            raise WeightsError(f"{source} does not fit the model: missing: {key}")
    vocab_size, emb_dim = state["tok_emb.weight"].shape
    context_length = state["pos_emb.weight"].shape[0]
    layers = {int(m["index"]) for k in state if (m := _BLOCK_KEY.match(k)) and m["prefix"] == "blocks"}
    n_layers = max(layers) + 1 if layers else 0
    if hf_config is not None:
        try:
            from_config = {
                "vocab_size": int(hf_config["vocab_size"]),
                "context_length": int(hf_config.get("n_positions", hf_config.get("n_ctx"))),
                "emb_dim": int(hf_config["n_embd"]),
                "n_heads": int(hf_config["n_head"]),
                "n_layers": int(hf_config["n_layer"]),
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"{source}: config.json lacks or garbles {exc}") from None
        if n_heads is not None and n_heads != from_config["n_heads"]:
            raise WeightsError(f"config.json says {from_config['n_heads']} heads but --heads gave {n_heads}")
        vocab_size, context_length = from_config["vocab_size"], from_config["context_length"]
        emb_dim, n_layers, heads = from_config["emb_dim"], from_config["n_layers"], from_config["n_heads"]
        _note_unsupported_hf_options(hf_config, notes)
    else:
        heads = _infer_heads(emb_dim, n_heads, source)
    if n_layers == 0:
        raise WeightsError(f"{source} holds no transformer blocks")
    try:
        return GPTConfig(
            vocab_size=vocab_size,
            context_length=context_length,
            emb_dim=emb_dim,
            n_heads=heads,
            n_layers=n_layers,
            drop_rate=0.0,
            qkv_bias="blocks.0.attn.W_qkv.bias" in state,
            tie_weights="out_head.weight" not in state,
            name=(source.stem if source.is_file() else source.name) or "imported",
        )
    except ConfigError as exc:
        raise WeightsError(f"{source}: {exc}") from None


def _note_unsupported_hf_options(hf_config: dict[str, Any], notes: list[str]) -> None:
    """GPT-2 variants whose arithmetic differs from the book's model import, but will not match exactly."""
    activation = hf_config.get("activation_function", "gelu_new")
    if activation not in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        notes.append(f"config.json uses activation {activation!r}; gptviz computes the tanh GELU")
    eps = hf_config.get("layer_norm_epsilon", 1e-5)
    if eps != 1e-5:
        notes.append(f"config.json uses layer_norm_epsilon {eps}; gptviz uses 1e-5")
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
        if hf_config.get(flag):
            notes.append(f"config.json sets {flag}, which gptviz does not implement")
    if hf_config.get("scale_attn_weights") is False:
        notes.append("config.json turns off attention scaling, which gptviz always applies")


def _check_finite(state: dict[str, torch.Tensor], source: Path, notes: list[str]) -> None:
    bad = sorted(k for k, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all()))
    if bad:
        notes.append(f"{source} has NaN or infinite values in: {', '.join(bad)}")
