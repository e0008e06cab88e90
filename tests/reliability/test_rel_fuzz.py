"""Fuzzed readers (issue 15, item 3): hypothesis throws damaged bytes and strange structures at every reader
of a user's file and checks three promises on each example:

1. the reader returns, or raises a `GptvizError` (the one-line errors of docs/reliability.md); any other
   exception fails the test with its traceback;
2. the message is one line;
3. nothing is allocated that the file does not justify: each call runs with the process's address space
   capped at what it uses plus `HEADROOM` (far more than any of these files needs, far less than a header
   claiming a terabyte, or a config.json describing a 40-billion-parameter model beside 60 numbers, would
   make a reader allocate), so such an allocation fails and shows up as a non-GptvizError.

Readers: the safetensors header (bytes and structure), our checkpoint's config.json, Hugging Face folders
(config.json, index, shards), the book's .pth, nanoGPT's ckpt.pt (model_args, state dict, pickle bytes),
metrics.jsonl followed live while lines are half-written, cut back and replaced, settings.json, probes
(index lines and .npz headers) and corpora (both readers).

Examples per test: GPTVIZ_FUZZ_EXAMPLES (default 80, about 15 s for the file). Set GPTVIZ_FUZZ_REPORT=FILE
to write how many examples each test tried (docs/reliability.md records a long run).
"""

from __future__ import annotations

import io
import json
import math
import os
import resource
import struct
import sys
import tempfile
import zipfile
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relhelpers import make_model
from safetensors.torch import save, save_file

from gptviz.config import GPT2_VOCAB_SIZE, GPTConfig
from gptviz.data import load_corpus, read_corpus_ids
from gptviz.engine import checkpoint, importers, probe, rundir, safe_load
from gptviz.engine.export import book_state_dict, hf_config, hf_state_dict
from gptviz.errors import GptvizError
from gptviz.model.gpt import GPTModel
from gptviz.tokenizer import default_tokenizer

EXAMPLES = int(os.environ.get("GPTVIZ_FUZZ_EXAMPLES", "80"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
HEADROOM = 1 << 30  # 1 GiB of address space over what the process holds when a reader starts
TRIED: Counter[str] = Counter()
TOK = default_tokenizer()


@pytest.fixture(scope="module", autouse=True)
def _report_tried() -> Iterator[None]:
    yield
    report = os.environ.get("GPTVIZ_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps(dict(TRIED), indent=1))


@contextmanager
def bounded_address_space() -> Iterator[None]:
    """Cap the address space (RLIMIT_AS) at what the process uses now plus HEADROOM, for one reader call."""
    if not sys.platform.startswith("linux"):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    used = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    limit = used + HEADROOM if hard == resource.RLIM_INFINITY else min(used + HEADROOM, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def read_or_refuse(
    reader: Callable[..., Any], *args: Any, late_refusal_ok: bool = False, **kwargs: Any
) -> Any:
    """The reader's result, or the GptvizError it raised (checked: one line, no failed allocation inside).
    Any other exception propagates and fails the test. `late_refusal_ok`: the one known case where a claimed
    size is allocated before it is refused (legacy torch.save files, see test_book_pth)."""
    try:
        with bounded_address_space():
            return reader(*args, **kwargs)
    except GptvizError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"not a one-line error: {message!r}"
        for sign in ("MemoryError", "can't allocate", "Unable to allocate", "DefaultCPUAllocator"):
            assert late_refusal_ok or sign not in message, f"the reader tried a large allocation: {message}"
        return exc


# ----------------------------------------------------------------------------------------- byte mutations

# One edit of a file's bytes: flip a byte, cut the file, insert or overwrite a few bytes. Positions are
# fractions of the file, drawn more often near its start (headers live there).
POSITION = st.one_of(st.integers(0, 64), st.integers(0, 4096), st.floats(0, 1))
EDIT = st.one_of(
    st.tuples(st.just("flip"), POSITION, st.integers(1, 255)),
    st.tuples(st.just("cut"), POSITION),
    st.tuples(st.just("insert"), POSITION, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("write"), POSITION, st.binary(min_size=1, max_size=16)),
)
EDITS = st.lists(EDIT, min_size=1, max_size=4)


def mutate(data: bytes, edits: list[tuple]) -> bytes:
    out = bytearray(data)
    for edit in edits:
        kind, where = edit[0], edit[1]
        pos = int(where * len(out)) if isinstance(where, float) else where
        pos = min(pos, len(out))
        if kind == "flip" and pos < len(out):
            out[pos] ^= edit[2]
        elif kind == "cut":
            del out[pos:]
        elif kind == "insert":
            out[pos:pos] = edit[2]
        elif kind == "write":
            out[pos : pos + len(edit[2])] = edit[2]
    return bytes(out)


# Any JSON value; numbers include the ones that break readers (2**63, 1e400 = inf, NaN); NASTY_JSON adds the
# texts json.loads itself chokes on (a 5,000-digit int, nesting 100,000 deep, a lone surrogate).
JSON_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 70),
    st.sampled_from([0, 2**31, 2**40, 2**63, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
JSON_VALUE = st.recursive(
    JSON_SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
SIZE = st.one_of(st.integers(-2, 80), st.sampled_from([0, 2**31, 2**40, 2**62, 10**20]), JSON_SCALAR)
NASTY_JSON = st.sampled_from(
    ["", "{", "[" * 100_000 + "]" * 100_000, '{"a": ' + "9" * 5000 + "}", "1e400", "NaN", '"\\ud800"', "[]"]
)


def json_text(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


# ------------------------------------------------------------------------------------------- base files

HF_CFG = GPTConfig(
    vocab_size=300, context_length=16, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.0, qkv_bias=True
)


def _checkpoint_files() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint.save_checkpoint(make_model(), Path(tmp) / "ck")
        return {name: (Path(tmp) / "ck" / name).read_bytes() for name in ("model.safetensors", "config.json")}


CHECKPOINT = _checkpoint_files()
torch.manual_seed(0)
HF_MODEL = GPTModel(HF_CFG).eval()
HF_STATE = {k: v.contiguous() for k, v in hf_state_dict(HF_MODEL).items()}
HF_CONFIG = hf_config(HF_CFG)


def _torch_bytes(obj: Any, zip_format: bool = True) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, _use_new_zipfile_serialization=zip_format)
    return buffer.getvalue()


BOOK_PTH = _torch_bytes(book_state_dict(make_model()))
BOOK_PTH_LEGACY = _torch_bytes(book_state_dict(make_model()), zip_format=False)

# A nanoGPT train.py checkpoint of a 1-layer, 8-wide model over GPT-2's vocabulary padded to 50304.
NANO_ARGS = {"n_layer": 1, "n_head": 2, "n_embd": 8, "block_size": 8, "bias": True, "vocab_size": 50304}


def _nano_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    cfg = GPTConfig(vocab_size=GPT2_VOCAB_SIZE, context_length=8, emb_dim=8, n_heads=2, n_layers=1)
    hub = hf_state_dict(GPTModel(dataclass_replace(cfg, qkv_bias=True)))
    state = {}
    for key, tensor in hub.items():
        if key.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):
            tensor = tensor.t()  # Conv1D (in, out) -> nanoGPT's nn.Linear (out, in)
        state[key] = tensor.contiguous()  # already transformer.-prefixed, as nanoGPT names them
    wte = state["transformer.wte.weight"]
    state["transformer.wte.weight"] = torch.cat([wte, torch.zeros(50304 - GPT2_VOCAB_SIZE, 8)])  # padded
    state["lm_head.weight"] = state["transformer.wte.weight"]
    return state


def dataclass_replace(cfg: GPTConfig, **changes: Any) -> GPTConfig:
    import dataclasses

    return dataclasses.replace(cfg, **changes)


NANO_STATE = _nano_state()
NANO_CKPT = _torch_bytes({"model": NANO_STATE, "model_args": NANO_ARGS, "iter_num": 5, "config": {}})


def replace_member(archive: bytes, suffix: str, edit: Callable[[bytes], bytes]) -> bytes:
    """The zip `archive` with the member whose name ends with `suffix` passed through `edit`."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, edit(data) if info.filename.endswith(suffix) else data)
    return out.getvalue()


@contextmanager
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


# ------------------------------------------------------------------------------------ safetensors, config


@FUZZ
@given(target=st.sampled_from(["model.safetensors", "config.json"]), edits=EDITS)
def test_checkpoint_bytes(target: str, edits: list) -> None:
    """Our checkpoint folder with its weights or its config.json damaged byte by byte."""
    TRIED["checkpoint bytes"] += 1
    with folder() as tmp:
        ck = tmp / "ck"
        ck.mkdir()
        for name, data in CHECKPOINT.items():
            (ck / name).write_bytes(mutate(data, edits) if name == target else data)
        read_or_refuse(checkpoint.load_checkpoint, ck)
        read_or_refuse(importers.read_weights, ck)
        read_or_refuse(importers.read_weights, ck / "model.safetensors")


DTYPES = st.sampled_from(["F32", "F16", "BF16", "I64", "U8", "BOOL", "F8_E4M3", "F64", "X9", ""])
TENSOR_NAMES = st.one_of(
    st.sampled_from(sorted(HF_STATE)),
    st.sampled_from(sorted(checkpoint.model_state_for_saving(make_model()))),
)


@st.composite
def safetensors_files(draw) -> bytes:
    """A safetensors file built from parts: tensors with shapes up to 10**20 elements, offsets that fit or
    not, a header length that is right or not, a header that is not JSON, and a few bytes of data."""
    entries: dict[str, Any] = {}
    offset = 0
    for _ in range(draw(st.integers(0, 5))):
        name = draw(st.one_of(TENSOR_NAMES, st.text(max_size=10)))
        dtype = draw(DTYPES)
        shape = draw(st.lists(SIZE, max_size=4))
        if draw(st.booleans()) and all(isinstance(d, int) and d >= 0 for d in shape):
            size = math.prod(shape) * {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "F64": 8}.get(dtype, 1)
            offsets: Any = [offset, offset + size]  # consistent with the shape: the size the header claims
            offset += size
        else:
            offsets = draw(st.one_of(st.lists(SIZE, max_size=3), JSON_SCALAR))
        entries[name] = draw(
            st.one_of(st.just({"dtype": dtype, "shape": shape, "data_offsets": offsets}), JSON_VALUE)
        )
    if draw(st.booleans()):
        entries["__metadata__"] = draw(st.one_of(st.just({"format": "pt"}), JSON_VALUE))
    header = draw(st.one_of(st.just(json_text(entries)), NASTY_JSON)).encode("utf-8", "surrogatepass")
    header += b" " * draw(st.integers(0, 8))
    length = draw(st.one_of(st.just(len(header)), st.integers(0, 2**64 - 1), st.integers(0, len(header) + 9)))
    data = draw(st.one_of(st.binary(max_size=64), st.just(b"\0" * min(offset, 4096))))
    return struct.pack("<Q", length) + header + data


@FUZZ
@given(safetensors_files())
def test_safetensors_header_structure(data: bytes) -> None:
    """A safetensors file as a Hub file, inside a Hugging Face folder and as our checkpoint's weights."""
    TRIED["safetensors header"] += 1
    with folder() as tmp:
        (tmp / "model.safetensors").write_bytes(data)
        read_or_refuse(importers.read_weights, tmp / "model.safetensors")
        (tmp / "config.json").write_text(json.dumps(HF_CONFIG))
        read_or_refuse(importers.read_weights, tmp)
        (tmp / "config.json").write_bytes(CHECKPOINT["config.json"])
        read_or_refuse(checkpoint.load_checkpoint, tmp)


CONFIG_FIELDS = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "drop_rate", "qkv_bias")


@st.composite
def checkpoint_configs(draw) -> str:
    good = json.loads(CHECKPOINT["config.json"])
    config = dict(good["config"])
    for key in draw(st.lists(st.sampled_from(CONFIG_FIELDS + ("name", "tie_weights", "other")), max_size=3)):
        config[key] = draw(SIZE)
    data = {**good, "config": config}
    for key in draw(st.lists(st.sampled_from(["format", "version", "config", "dtype", "meta"]), max_size=2)):
        data[key] = draw(JSON_VALUE)
    return draw(st.one_of(st.just(json_text(data)), NASTY_JSON))


@FUZZ
@given(checkpoint_configs())
def test_checkpoint_config_structure(text: str) -> None:
    """Our checkpoint's config.json with fields of any JSON type and size (a model larger than the file)."""
    TRIED["checkpoint config.json"] += 1
    with folder() as tmp:
        (tmp / "model.safetensors").write_bytes(CHECKPOINT["model.safetensors"])
        (tmp / "config.json").write_text(text, errors="surrogatepass")
        read_or_refuse(checkpoint.read_checkpoint_config, tmp)
        read_or_refuse(checkpoint.read_checkpoint_meta, tmp)
        read_or_refuse(checkpoint.load_checkpoint, tmp)
        read_or_refuse(importers.read_weights, tmp)


# --------------------------------------------------------------------------------------- Hugging Face

HF_KEYS = ("vocab_size", "n_positions", "n_ctx", "n_embd", "n_head", "n_layer", "model_type")
HF_OPTIONS = ("activation_function", "layer_norm_epsilon", "scale_attn_weights", "reorder_and_upcast_attn")


@st.composite
def hf_folders(draw) -> dict[str, bytes]:
    """A Hugging Face GPT-2 folder: config.json with any values, maybe an index naming shards, maybe a second
    weight file, maybe tensors missing or with the wrong shape."""
    config: Any = dict(HF_CONFIG)
    for key in draw(st.lists(st.sampled_from(HF_KEYS + HF_OPTIONS), max_size=3)):
        config[key] = draw(st.one_of(SIZE, st.sampled_from(["gpt2", "bert", "gelu", "relu"])))
    config_text = draw(
        st.one_of(st.just(json_text(config)), NASTY_JSON, st.just(json_text(draw(JSON_VALUE))))
    )
    state = dict(HF_STATE)
    for key in draw(st.lists(st.sampled_from(sorted(HF_STATE)), max_size=2)):
        if draw(st.booleans()):
            state.pop(key, None)
        else:
            state[key] = torch.zeros(draw(st.lists(st.integers(0, 40), max_size=3)))
    files = {"config.json": config_text.encode("utf-8", "surrogatepass")}
    weights_name = draw(st.sampled_from(["model.safetensors", "pytorch_model.bin", "weights.safetensors"]))
    files[weights_name] = save(state)
    if draw(st.booleans()):
        index_name = draw(st.sampled_from(["model.safetensors.index.json", "pytorch_model.bin.index.json"]))
        weight_map = draw(
            st.one_of(
                st.just({k: weights_name for k in state}),
                st.dictionaries(
                    st.text(max_size=5), st.sampled_from([weights_name, "x.bin", "../x"]), max_size=3
                ),
                JSON_VALUE,
            )
        )
        files[index_name] = json_text({"weight_map": weight_map}).encode()
    if draw(st.booleans()):
        files[draw(st.sampled_from(["extra.pth", "other.safetensors", "ckpt.pt"]))] = draw(
            st.binary(max_size=32)
        )
    return files


@FUZZ
@given(hf_folders())
def test_hf_folder_structure(files: dict[str, bytes]) -> None:
    TRIED["HF folder"] += 1
    with folder() as tmp:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        read_or_refuse(importers.read_weights, tmp)
        read_or_refuse(importers.read_weights, tmp, n_heads=2)


# ----------------------------------------------------------------------------------- the book's .pth

TENSOR = st.builds(
    lambda shape, dtype: torch.zeros(shape, dtype=dtype),
    st.lists(st.integers(0, 6), max_size=3),
    st.sampled_from([torch.float32, torch.float16, torch.int64, torch.bool]),
)
PICKLE_VALUE = st.recursive(
    st.one_of(JSON_SCALAR, TENSOR),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.one_of(st.text(max_size=12), st.integers()), inner, max_size=4)
    ),
    max_leaves=8,
)


@st.composite
def book_files(draw) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["bytes", "pickle bytes", "legacy bytes", "structure", "renamed"]))
    if kind == "bytes":
        return kind, mutate(BOOK_PTH, draw(EDITS))
    if kind == "pickle bytes":  # the zip intact, its data.pkl damaged
        return kind, replace_member(BOOK_PTH, "data.pkl", lambda b: mutate(b, draw(EDITS)))
    if kind == "legacy bytes":
        return kind, mutate(BOOK_PTH_LEGACY, draw(EDITS))
    if kind == "structure":
        return kind, _torch_bytes(draw(PICKLE_VALUE))
    state = book_state_dict(make_model())
    for key in draw(st.lists(st.sampled_from(sorted(state)), max_size=3)):
        value = draw(st.one_of(TENSOR, JSON_SCALAR))
        state[draw(st.sampled_from([key, key + "x", "trf_blocks.9." + key]))] = value
    wrapper = draw(st.sampled_from([None, "model_state_dict", "state_dict", "model"]))
    return kind, _torch_bytes(state if wrapper is None else {wrapper: state, "optimizer_state_dict": {}})


@FUZZ
@given(book_files())
def test_book_pth(file: tuple[str, bytes]) -> None:
    """The book's .pth (torch.save of its state dict, or of {"model_state_dict": ...}), damaged or odd.
    Legacy (PyTorch < 1.6, not zip) files too: their pickles are checked against the file's size before
    torch.load sees them (safe_load.check_legacy_storage_sizes), so no claim is allocated there either."""
    TRIED["book .pth"] += 1
    _kind, data = file
    with folder() as tmp:
        (tmp / "gpt2-small-124M.pth").write_bytes(data)
        read_or_refuse(importers.read_weights, tmp / "gpt2-small-124M.pth")
        read_or_refuse(importers.read_weights, tmp)


def _legacy_with(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) >= 1, old
    return data.replace(old, new, 1)


def test_legacy_pth_declaring_more_than_it_holds_is_refused_before_allocating() -> None:
    """torch.load allocates a legacy file's storages at the sizes its pickle declares, and its pickle
    reader allocates a string's claimed length, before finding the bytes missing: this 56 KB file made it
    ask for 8 GiB (a storage of 2**31 - 1 floats) or 4 GiB (a 'cpu' string 2**32 - 1 long): under the fuzz
    tests' address-space cap these failed with "can't allocate memory" and MemoryError before the guard
    (2**62 floats torch refuses itself, with an overflow). Good legacy files, with storages shared between
    tensors, load exactly."""
    state = book_state_dict(make_model())
    legacy = _torch_bytes(state, zip_format=False)
    first = next(iter(state.values())).numel()  # the first storage's size, pickled after its location
    location = b"X\x03\x00\x00\x00cpu"
    numel = b"cpuq\x06M" + struct.pack("<H", first)  # BINPUT 6, BININT2 first
    assert numel in legacy, "torch pickles the first storage differently now: update the crafted bytes"
    crafted = {
        "a storage of 2**31 - 1 floats": _legacy_with(legacy, numel, b"cpuq\x06J\xff\xff\xff\x7f"),
        "a storage of 2**62 floats": _legacy_with(
            legacy, numel, b"cpuq\x06\x8a\x08" + (2**62).to_bytes(8, "little")
        ),
        "a string of 2**32 - 1 bytes": _legacy_with(legacy, location, b"X\xff\xff\xff\xffcpu"),
    }
    with folder() as tmp:
        for what, data in crafted.items():
            path = tmp / "book.pth"
            path.write_bytes(data)
            refused = read_or_refuse(importers.read_weights, path)  # one line, no failed allocation inside
            assert isinstance(refused, GptvizError), what
            if "storage" in what:
                assert "declares" in str(refused) and f"holds {len(data):,} bytes" in str(refused), what
        # The same claim in a zip file: torch compares it with the record's size before allocating.
        zipped = replace_member(
            _torch_bytes(state),
            "data.pkl",
            lambda b: b.replace(numel, b"cpuq\x06J\xff\xff\xff\x7f", 1),
        )
        (tmp / "book.pth").write_bytes(zipped)
        assert isinstance(read_or_refuse(importers.read_weights, tmp / "book.pth"), GptvizError)

        # Good legacy files: the book's state dict, and an OrderedDict whose tensors share one storage.
        (tmp / "book.pth").write_bytes(legacy)
        loaded = safe_load.torch_load_safely(tmp / "book.pth")
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
        base = torch.arange(12, dtype=torch.float64)
        shared = OrderedDict(a=base, b=base[2:8].view(2, 3), c=torch.ones(3, dtype=torch.int8))
        (tmp / "shared.pth").write_bytes(_torch_bytes(shared, zip_format=False))
        again = safe_load.torch_load_safely(tmp / "shared.pth")
        assert list(again) == ["a", "b", "c"] and all(torch.equal(again[k], shared[k]) for k in shared)


# --------------------------------------------------------------------------------------------- nanoGPT


@st.composite
def nano_files(draw) -> bytes:
    kind = draw(st.sampled_from(["model_args", "state", "pickle bytes", "bytes"]))
    if kind == "pickle bytes":
        return replace_member(NANO_CKPT, "data.pkl", lambda b: mutate(b, draw(EDITS)))
    if kind == "bytes":
        return mutate(NANO_CKPT, [(e[0], draw(st.integers(0, 2048)), *e[2:]) for e in draw(EDITS)])
    args: Any = dict(NANO_ARGS)
    state: Any = dict(NANO_STATE)
    if kind == "model_args":
        for key in draw(st.lists(st.sampled_from([*NANO_ARGS, "dropout", "flash"]), min_size=1, max_size=3)):
            args[key] = draw(st.one_of(SIZE, st.sampled_from([10**6, 2**20, 2**31, True])))
        args = draw(st.one_of(st.just(args), PICKLE_VALUE))
    else:
        for key in draw(st.lists(st.sampled_from(sorted(NANO_STATE)), min_size=1, max_size=3)):
            choice = draw(st.sampled_from(["drop", "shape", "value", "compiled"]))
            if choice == "drop":
                state.pop(key, None)
            elif choice == "shape":
                state[key] = torch.zeros(draw(st.lists(st.integers(0, 9), max_size=3)))
            elif choice == "value":
                state[key] = draw(JSON_SCALAR)
            else:
                state["_orig_mod." + key] = state.pop(key, torch.zeros(1))
    return _torch_bytes({"model": state, "model_args": args, "iter_num": 1})


@FUZZ
@given(nano_files())
def test_nanogpt_ckpt(data: bytes) -> None:
    """nanoGPT's ckpt.pt: model_args of any value (a million layers of zero biases), a state dict missing
    tensors or holding non-tensors, a damaged pickle or zip."""
    TRIED["nanoGPT ckpt.pt"] += 1
    with folder() as tmp:
        (tmp / "ckpt.pt").write_bytes(data)
        read_or_refuse(importers.read_weights, tmp / "ckpt.pt")
        read_or_refuse(importers.read_weights, tmp)
        read_or_refuse(importers.read_weights, tmp, n_heads=2)


def test_nanogpt_base_file_imports() -> None:
    """The fuzzed nanoGPT file is a real one: undamaged, it imports."""
    with folder() as tmp:
        (tmp / "ckpt.pt").write_bytes(NANO_CKPT)
        assert importers.read_weights(tmp / "ckpt.pt").model.cfg.emb_dim == 8


def test_hf_config_describing_a_giant_model_is_refused_before_allocating() -> None:
    """Found by the fuzzer: a config.json saying n_embd 8192 x 48 layers beside a file of 60 numbers made
    the importer allocate the 39-billion-parameter model before comparing shapes."""
    with folder() as tmp:
        save_file(
            {"wte.weight": torch.zeros(10, 4), "wpe.weight": torch.zeros(4, 4)},
            str(tmp / "model.safetensors"),
        )
        big = {
            **HF_CONFIG,
            "n_embd": 8192,
            "n_head": 64,
            "n_layer": 48,
            "vocab_size": 50257,
            "n_positions": 1024,
        }
        (tmp / "config.json").write_text(json.dumps(big))
        error = read_or_refuse(importers.read_weights, tmp)
        assert isinstance(error, GptvizError) and "describes 39,078,748,160 parameters" in str(error)


def test_nanogpt_model_args_of_a_million_layers_are_refused_before_allocating() -> None:
    """Found by the fuzzer: bias=False model_args with 10**6 layers made the importer allocate zero biases for
    every one of them (and then the model) before checking the tensors."""
    with folder() as tmp:
        args = {**NANO_ARGS, "n_layer": 10**6, "n_embd": 2**16, "bias": False}
        (tmp / "ckpt.pt").write_bytes(_torch_bytes({"model": NANO_STATE, "model_args": args}))
        error = read_or_refuse(importers.read_weights, tmp / "ckpt.pt")
        assert isinstance(error, GptvizError) and "model_args describe" in str(error)


# -------------------------------------------------------------------------- metrics.jsonl followed live

RECORD = st.fixed_dictionaries(
    {"step": st.integers(0, 10**6)},
    optional={"train_loss": st.floats(allow_nan=True), "lr": st.floats(0, 1), "note": st.text(max_size=6)},
)
LINE = st.one_of(
    RECORD.map(lambda r: rundir.dumps_record(r).encode() + b"\n"),
    NASTY_JSON.map(lambda t: t.encode("utf-8", "surrogatepass") + b"\n"),
    st.binary(max_size=12),
    st.just(b"\xff\xfe{}\n"),
    st.just(b"\n"),
)
# An operation on the followed file: append bytes (lines cut at random points: half-written lines), cut the
# file back, or replace it (a new file under the same name).
OPERATION = st.one_of(
    st.tuples(st.just("append"), st.lists(LINE, max_size=4).map(b"".join), st.integers(0, 40)),
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("replace"), st.lists(LINE, max_size=3).map(b"".join)),
)


def complete_records(content: bytes) -> list[str]:
    """What a follower may return for `content`: each complete line that is a JSON object, as JSON text."""
    out = []
    for line in content[: content.rfind(b"\n") + 1].splitlines():
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            continue
        if isinstance(record, dict):
            out.append(json.dumps(record, sort_keys=True))
    return out


@FUZZ
@given(st.lists(OPERATION, min_size=1, max_size=12))
def test_metrics_followed_live(operations: list) -> None:
    """metrics.jsonl written in pieces (half lines), damaged, cut back and replaced while a MetricsFollower
    polls after every write: the records since its last restart are always exactly the complete, valid
    lines of the file, never half of one."""
    TRIED["metrics.jsonl followed"] += 1
    with folder() as tmp:
        path = tmp / rundir.METRICS_FILE
        path.write_bytes(b"")
        follower = rundir.MetricsFollower(tmp)
        content = b""
        seen: list[str] = []
        for op in operations:
            if op[0] == "append":
                data, split = op[1], min(op[2], len(op[1]))
                for piece in (data[:split], data[split:]):  # one write cut in two: a poll in between
                    with open(path, "ab") as handle:
                        handle.write(piece)
                    content += piece
                    seen = _poll(follower, seen)
                    assert seen == complete_records(content)[: len(seen)]
            elif op[0] == "truncate":
                content = content[: int(op[1] * len(content))]
                os.truncate(path, len(content))
            else:
                staged = tmp / "new.jsonl"
                staged.write_bytes(op[1])
                os.replace(staged, path)
                content = op[1]
            seen = _poll(follower, seen)
            assert seen == complete_records(content)
        assert [json.dumps(r, sort_keys=True) for r in read_or_refuse(rundir.read_metrics, tmp)] == seen
        read_or_refuse(rundir.truncate_jsonl, path, 10)


def _poll(follower: rundir.MetricsFollower, seen: list[str]) -> list[str]:
    for record in read_or_refuse(follower.poll):
        assert isinstance(record, dict)
        if record == {"event": rundir.RESTART_EVENT}:
            seen = []
        else:
            seen = [*seen, json.dumps(record, sort_keys=True)]
    return seen


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=64),
        NASTY_JSON.map(str.encode),
        JSON_VALUE.map(
            lambda v: json_text({"format": "gptviz-run", **v} if isinstance(v, dict) else v).encode()
        ),
    )
)
def test_settings_json(data: bytes) -> None:
    TRIED["settings.json"] += 1
    with folder() as tmp:
        (tmp / rundir.SETTINGS_FILE).write_bytes(data)
        result = read_or_refuse(rundir.read_settings, tmp)
        assert isinstance(result, (dict, GptvizError))


# ------------------------------------------------------------------------------------------------ probes

GOOD_PROBE = {
    "step": 3,
    "tokens_seen": 96,
    "file": "probe-000003.npz",
    "prompt": "Every effort",
    "prompt_ids": [1, 2],
    "prompt_pieces": ["Every", " effort"],
    "sample_ids": [3],
    "sample_text": " moves",
    "top_ids": [3, 4],
    "top_pieces": [" moves", " you"],
    "top_probs": [0.5, 0.25],
}


def _npz(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, attention=array, prompt_ids=np.arange(2))
    return buffer.getvalue()


GOOD_NPZ = _npz(np.ones((1, 2, 2, 2), np.float16))


@st.composite
def probe_runs(draw) -> tuple[bytes, bytes]:
    entry: Any = dict(GOOD_PROBE)
    for key in draw(st.lists(st.sampled_from(sorted(GOOD_PROBE)), max_size=3)):
        entry[key] = draw(
            st.one_of(
                JSON_VALUE, st.sampled_from(["../settings.json", "/etc/hostname", ".", "probe-000003.npz"])
            )
        )
    index = draw(st.one_of(st.just(json_text(entry) + "\n"), NASTY_JSON.map(lambda t: t + "\n")))
    kind = draw(st.sampled_from(["header", "bytes", "npy bytes", "structure"]))
    if kind == "header":  # the .npy header claims another shape or dtype (up to 10**20 values)
        shape = draw(
            st.lists(st.one_of(st.integers(0, 9), st.sampled_from([2**20, 2**40, 10**20])), max_size=4)
        )
        dtype = draw(st.sampled_from(["<f2", "<f4", "|O", "<U9", "|V0", "<c16"]))
        old = b"{'descr': '<f2', 'fortran_order': False, 'shape': (1, 2, 2, 2), }"
        new = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {tuple(shape)}, }}".encode()
        npz = replace_member(GOOD_NPZ, "attention.npy", lambda b: b.replace(old, new))
    elif kind == "bytes":
        npz = mutate(GOOD_NPZ, draw(EDITS))
    elif kind == "npy bytes":
        npz = replace_member(GOOD_NPZ, "attention.npy", lambda b: mutate(b, draw(EDITS)))
    else:
        npz = _npz(
            draw(st.one_of(st.just(np.zeros(0)), st.just(np.zeros((2, 3), np.int64)), st.just(np.array("x"))))
        )
    return index.encode("utf-8", "surrogatepass"), npz


@FUZZ
@given(probe_runs())
def test_probes(files: tuple[bytes, bytes]) -> None:
    """A run's probes: index lines with any field damaged (a file name pointing elsewhere, step 1e400) and
    .npz files whose .npy header claims a terabyte, the wrong dtype, or whose bytes are damaged."""
    TRIED["probes"] += 1
    index, npz = files
    with folder() as tmp:
        probes = tmp / rundir.PROBES_DIR
        probes.mkdir()
        (probes / rundir.PROBES_INDEX).write_bytes(index)
        (probes / "probe-000003.npz").write_bytes(npz)
        for with_arrays in (False, True):
            records = read_or_refuse(probe.read_probes, tmp, attention=with_arrays)
            assert isinstance(records, list)
            for record in records:
                assert isinstance(record.step, int)
                if with_arrays:
                    assert record.attention.dtype == np.float32 and record.attention.nbytes <= 2 * len(npz)


def test_probe_header_claiming_a_terabyte_is_not_allocated() -> None:
    """Found by the fuzzer: an .npz whose .npy header said (10**6, 10**6, 2, 2) made read_probes ask numpy for
    7.3 TiB (a MemoryError that ended the reader); a list as the file name and step 1e400 raised TypeError
    and OverflowError. Each such probe is now skipped and the others are read."""
    old = b"'shape': (1, 2, 2, 2), }"
    huge = b"'shape': (1000000, 1000000, 2, 2), }"
    npz = replace_member(GOOD_NPZ, "attention.npy", lambda b: b.replace(old, huge))
    with folder() as tmp:
        probes = tmp / rundir.PROBES_DIR
        probes.mkdir()
        lines = [GOOD_PROBE, {**GOOD_PROBE, "file": ["x"]}, {**GOOD_PROBE, "step": 1e400}]
        (probes / rundir.PROBES_INDEX).write_text("".join(json.dumps(x) + "\n" for x in lines))
        (probes / "probe-000003.npz").write_bytes(npz)
        assert read_or_refuse(probe.read_probes, tmp) == []
        assert [r.step for r in read_or_refuse(probe.read_probes, tmp, attention=False)] == [3, 3]
        (probes / "probe-000003.npz").write_bytes(GOOD_NPZ)
        assert [r.attention.shape for r in read_or_refuse(probe.read_probes, tmp)] == [(1, 2, 2, 2)]


def test_json_readers_refuse_huge_ints_and_deep_nesting_in_one_line() -> None:
    """Found by the fuzzer: json.loads raises ValueError (not JSONDecodeError) for an int of 4,300+ digits and
    RecursionError for deep nesting; config.json and settings.json let both escape, and one such line in
    metrics.jsonl ended the follower. Now: a one-line error, and a skipped line."""
    for text in ('{"a": ' + "9" * 5000 + "}", "[" * 100_000 + "]" * 100_000):
        with folder() as tmp:
            for name in ("config.json", "settings.json"):
                (tmp / name).write_text(text)
            assert isinstance(read_or_refuse(checkpoint.load_checkpoint, tmp), GptvizError)
            assert isinstance(read_or_refuse(rundir.read_settings, tmp), GptvizError)
            (tmp / "metrics.jsonl").write_text('{"step": 1}\n' + text + '\n{"step": 2}\n')
            assert read_or_refuse(rundir.MetricsFollower(tmp).poll) == [{"step": 1}, {"step": 2}]


# ----------------------------------------------------------------------------------------------- corpora

CORPUS = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=100).map(lambda t: t.encode("utf-8")),
    st.tuples(st.text(max_size=60), EDITS).map(lambda p: mutate(p[0].encode("utf-8"), p[1])),
    st.sampled_from(
        [b"\xef\xbb\xbf", b"\xef\xbb\xbfhi", b" \n\t", b"a\x00b", b"\xf0\x9f\x98", b"\xef\xbf\xbd"]
    ),
)


@FUZZ
@given(CORPUS, st.booleans(), st.integers(1, 9))
def test_corpus_readers(data: bytes, lenient: bool, chunk: int) -> None:
    """Both corpus readers on any bytes: the same refusal or the same ids."""
    TRIED["corpus"] += 1
    with folder() as tmp:
        path = tmp / "corpus.txt"
        path.write_bytes(data)
        whole = read_or_refuse(load_corpus, path, lenient=lenient)
        streamed = read_or_refuse(read_corpus_ids, path, TOK, lenient=lenient, chunk_bytes=chunk)
        if isinstance(whole, GptvizError) or isinstance(streamed, GptvizError):
            assert isinstance(whole, GptvizError) and isinstance(streamed, GptvizError)
            if (
                b"\0" not in data
            ):  # with NUL bytes, tiny chunks may meet bad UTF-8 before the NUL: both refuse
                assert str(whole) == str(streamed)
        elif streamed.forced_cuts == 0:  # a forced cut (documented) may change the ids at the cut
            assert streamed.ids.tolist() == TOK.encode(whole.text)
            assert streamed.replacements == whole.replacements


def test_odd_files_found_by_the_longer_fuzz_run_get_one_line_errors() -> None:
    """Found by the fuzzer (1,000 examples a test): a config key holding a newline gave a two-line error;
    an index whose weight_map names a list or null raised TypeError; the book's W_query/W_key/W_value as
    0-d tensors made torch.cat raise; an .npy header of dtype V0 (0 bytes an item) claiming 2**40 items
    passed the size check and numpy allocated 4 TiB for it as float32; a nanoGPT pickle whose tensor
    arguments were damaged got torch's many-line "set_() received an invalid combination" as its error."""
    with folder() as tmp:
        config = {**json.loads(CHECKPOINT["config.json"]), "config": {"\n": None}}
        (tmp / "config.json").write_text(json.dumps(config))
        assert "\\n" in str(read_or_refuse(checkpoint.read_checkpoint_config, tmp))
    for shard in (["model.safetensors"], None, "../model.safetensors"):
        with folder() as tmp:
            (tmp / "model.safetensors").write_bytes(save(HF_STATE))
            (tmp / "model.safetensors.index.json").write_text(
                json.dumps({"weight_map": {"wte.weight": shard}})
            )
            assert "not file names" in str(read_or_refuse(importers.read_weights, tmp))
    state = book_state_dict(make_model())
    for part in ("query", "key", "value"):
        state[f"trf_blocks.0.att.W_{part}.weight"] = torch.zeros(())
    with folder() as tmp:
        (tmp / "book.pth").write_bytes(_torch_bytes(state))
        assert "does not fit the model" in str(
            read_or_refuse(importers.read_weights, tmp / "book.pth", n_heads=2)
        )
    old = b"{'descr': '<f2', 'fortran_order': False, 'shape': (1, 2, 2, 2), }"
    new = b"{'descr': '|V0', 'fortran_order': False, 'shape': (1099511627776,), }"
    with folder() as tmp:
        (tmp / "p.npz").write_bytes(replace_member(GOOD_NPZ, "attention.npy", lambda b: b.replace(old, new)))
        assert read_or_refuse(probe.load_probe_attention, tmp / "p.npz") is None
        (tmp / "p.npz").write_bytes(GOOD_NPZ)
        assert read_or_refuse(probe.load_probe_attention, tmp / "p.npz").shape == (1, 2, 2, 2)
    with folder() as tmp:
        data = replace_member(
            NANO_CKPT, "data.pkl", lambda b: b.replace(b"\x85", b"K", 1)
        )  # a tuple -> an int
        (tmp / "ckpt.pt").write_bytes(data)
        error = read_or_refuse(importers.read_weights, tmp / "ckpt.pt")
        assert isinstance(error, GptvizError)
