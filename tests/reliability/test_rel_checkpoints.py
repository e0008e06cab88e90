"""Bad checkpoints and weight files: refused through the Python API and the CLI, never run, nothing changed.

Every damaged checkpoint is made from a good one, then read by `load_checkpoint`, `import_weights`,
`gptviz generate` and `gptviz import`. A refusal must be a WeightsError whose message is one line; the
CLI must exit 1 with exactly one line on stderr; the folder holding the files (and an existing --out
checkpoint) must be byte-for-byte what it was.
"""

from __future__ import annotations

import json
import logging
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from relhelpers import make_model, tree_digest
from safetensors.torch import load_file, save_file

from gptviz.config import GPTConfig
from gptviz.engine.checkpoint import (
    CONFIG_FILE,
    TRAINER_STATE_FILE,
    WEIGHTS_FILE,
    load_checkpoint,
    load_trainer_state,
    save_checkpoint,
)
from gptviz.engine.importers import import_weights, read_weights
from gptviz.errors import WeightsError

# The CLI tests use the real GPT-2 vocabulary so any prompt's ids are valid; width 8 keeps it at ~1.6 MB.
CLI_CFG = GPTConfig(context_length=16, emb_dim=8, n_heads=2, n_layers=1, drop_rate=0.0, name="rel")


class Payload:
    """Unpickling this creates a file: the proof that a loader ran a stranger's code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _header(path: Path) -> tuple[int, dict]:
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return length, json.loads(data[8 : 8 + length])


def _write_header(path: Path, header: dict, length: int | None = None) -> None:
    """Rewrite a safetensors file's JSON header (padded to keep the data where it was) or its length field."""
    data = path.read_bytes()
    (old_length,) = struct.unpack("<Q", data[:8])
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= old_length
    text = text + b" " * (old_length - len(text))
    field = struct.pack("<Q", old_length if length is None else length)
    path.write_bytes(field + text + data[8 + old_length :])


def _first_tensor(header: dict) -> str:
    return sorted(k for k in header if k != "__metadata__")[0]


# Each damage takes the checkpoint directory and breaks it; the regex is what the message must say.
def truncate_weights(ckpt: Path) -> None:
    path = ckpt / WEIGHTS_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def truncate_inside_header(ckpt: Path) -> None:
    path = ckpt / WEIGHTS_FILE
    path.write_bytes(path.read_bytes()[:30])


def header_length_lies_huge(ckpt: Path) -> None:
    _write_header(ckpt / WEIGHTS_FILE, _header(ckpt / WEIGHTS_FILE)[1], length=2**62)


def header_length_past_end(ckpt: Path) -> None:
    path = ckpt / WEIGHTS_FILE
    _write_header(path, _header(path)[1], length=path.stat().st_size + 100)


def offsets_past_end(ckpt: Path) -> None:
    path = ckpt / WEIGHTS_FILE
    header = _header(path)[1]
    name = _first_tensor(header)
    start, end = header[name]["data_offsets"]
    header[name]["data_offsets"] = [start, end + 10**9]
    _write_header(path, header)


def shape_disagrees_with_offsets(ckpt: Path) -> None:
    path = ckpt / WEIGHTS_FILE
    header = _header(path)[1]
    name = _first_tensor(header)
    header[name]["shape"] = [dim * 2 for dim in header[name]["shape"]]  # 4x the bytes the offsets hold
    _write_header(path, header)


def overlapping_offsets(ckpt: Path) -> None:
    path = ckpt / WEIGHTS_FILE
    header = _header(path)[1]
    names = sorted(k for k in header if k != "__metadata__")
    a, b = header[names[0]], header[names[1]]
    if a["shape"] == b["shape"] and a["dtype"] == b["dtype"]:
        b["data_offsets"] = a["data_offsets"]
    else:
        b["data_offsets"] = [
            a["data_offsets"][0],
            a["data_offsets"][0] + b["data_offsets"][1] - b["data_offsets"][0],
        ]
    _write_header(path, header)


def _resave(ckpt: Path, change: Callable[[dict], None]) -> None:
    state = load_file(str(ckpt / WEIGHTS_FILE))
    change(state)
    save_file(state, str(ckpt / WEIGHTS_FILE), metadata={"format": "pt"})


def wrong_shape(ckpt: Path) -> None:
    _resave(ckpt, lambda s: s.__setitem__("blocks.0.ff.fc1.bias", torch.zeros(7)))


def missing_tensor(ckpt: Path) -> None:
    _resave(ckpt, lambda s: s.pop("blocks.0.norm1.scale"))


def extra_tensor(ckpt: Path) -> None:
    _resave(ckpt, lambda s: s.__setitem__("blocks.0.attn.rotary", torch.zeros(3)))


def config_does_not_match_tensors(ckpt: Path) -> None:
    data = json.loads((ckpt / CONFIG_FILE).read_text())
    data["config"]["n_layers"] = 3  # the file holds one block
    data["config"]["emb_dim"] = data["config"]["emb_dim"] * 2
    (ckpt / CONFIG_FILE).write_text(json.dumps(data))


def config_impossible(ckpt: Path) -> None:
    data = json.loads((ckpt / CONFIG_FILE).read_text())
    data["config"]["n_heads"] = 3  # does not divide the width
    (ckpt / CONFIG_FILE).write_text(json.dumps(data))


def config_garbage(ckpt: Path) -> None:
    (ckpt / CONFIG_FILE).write_bytes(b"\x89PNG\r\n\x1a\n not json at all")


def weights_not_a_model(ckpt: Path) -> None:
    (ckpt / WEIGHTS_FILE).write_text("these are not the weights you are looking for\n")


def weights_missing(ckpt: Path) -> None:
    (ckpt / WEIGHTS_FILE).unlink()


def weights_are_a_pickle(ckpt: Path) -> None:
    marker = ckpt.parent / "payload-ran"
    with open(ckpt / WEIGHTS_FILE, "wb") as handle:
        pickle.dump({"x": Payload(marker)}, handle, protocol=2)


DAMAGES = {
    "truncated": (truncate_weights, r"damaged|truncated"),
    "truncated inside header": (truncate_inside_header, r"damaged|truncated|not safetensors"),
    "header length 2**62": (header_length_lies_huge, r"damaged|not safetensors"),
    "header length past the end": (header_length_past_end, r"damaged|not safetensors"),
    "data offsets past the end": (offsets_past_end, r"damaged|not safetensors"),
    "shape disagrees with offsets": (shape_disagrees_with_offsets, r"damaged|not safetensors"),
    "overlapping offsets": (overlapping_offsets, r"damaged|not safetensors"),
    "wrong shape": (wrong_shape, r"wrong shape: blocks\.0\.ff\.fc1\.bias \(7,\)"),
    "missing tensor": (missing_tensor, r"missing: blocks\.0\.norm1\.scale"),
    "extra tensor": (extra_tensor, r"unexpected: blocks\.0\.attn\.rotary"),
    "config does not match tensors": (config_does_not_match_tensors, r"does not fit the model"),
    "config impossible": (config_impossible, r"config is invalid.*n_heads"),
    "config not json": (config_garbage, r"unreadable|not a gptviz checkpoint"),
    "weights not a model": (weights_not_a_model, r"damaged|not safetensors"),
    "weights missing": (weights_missing, r"has no model\.safetensors"),
    "weights are a pickle": (weights_are_a_pickle, r"damaged|not safetensors"),
}


@pytest.fixture
def good_checkpoint(tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    save_checkpoint(make_model(cfg=CLI_CFG), folder / "ckpt", meta={"name": "good"})
    return folder / "ckpt"


@pytest.mark.parametrize("damage", list(DAMAGES), ids=list(DAMAGES))
def test_damaged_checkpoint_is_refused_by_the_api(good_checkpoint: Path, damage: str) -> None:
    breaker, pattern = DAMAGES[damage]
    breaker(good_checkpoint)
    before = tree_digest(good_checkpoint.parent)
    for reader in (load_checkpoint, import_weights):
        with pytest.raises(WeightsError, match=pattern) as err:
            reader(good_checkpoint)
        assert "\n" not in str(err.value)
    assert tree_digest(good_checkpoint.parent) == before
    assert not (good_checkpoint.parent / "payload-ran").exists()


@pytest.mark.parametrize("damage", list(DAMAGES), ids=list(DAMAGES))
def test_damaged_checkpoint_is_refused_by_the_cli(tmp_path: Path, good_checkpoint: Path, cli, damage: str):
    breaker, pattern = DAMAGES[damage]
    out = tmp_path / "out"
    save_checkpoint(make_model(seed=5, cfg=CLI_CFG), out)  # an existing checkpoint the import must not touch
    breaker(good_checkpoint)
    before, before_out = tree_digest(good_checkpoint.parent), tree_digest(tmp_path / "out")
    for args, command in (
        (["generate", good_checkpoint, "--prompt", "hello", "--max-new-tokens", "2"], "generate"),
        (["import", good_checkpoint, "--out", out], "import"),
    ):
        result = cli(*args)
        assert result.code == 1, result
        assert len(result.err_lines) == 1, result.err
        assert result.err_lines[0].startswith(f"gptviz {command}: error: ")
        assert "Traceback" not in result.err
    assert tree_digest(good_checkpoint.parent) == before
    assert tree_digest(tmp_path / "out") == before_out
    assert not (good_checkpoint.parent / "payload-ran").exists()


@pytest.mark.parametrize("writer", ["torch.save", "pickle protocol 2", "pickle protocol 5"])
def test_code_running_pickle_never_runs_api_and_cli(tmp_path: Path, cli, writer: str) -> None:
    marker = tmp_path / "payload-ran"
    path = tmp_path / "model.pth"
    state = {"tok_emb.weight": torch.zeros(3, 2), "trojan": Payload(marker)}
    if writer == "torch.save":
        torch.save(state, path)
    else:
        with open(path, "wb") as handle:
            pickle.dump(state, handle, protocol=int(writer[-1]))
    with pytest.raises(WeightsError, match="refused|damaged"):
        import_weights(path)
    result = cli("import", path, "--out", tmp_path / "out")
    assert result.code == 1 and len(result.err_lines) == 1
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_code_running_trainer_state_never_runs(good_checkpoint: Path) -> None:
    marker = good_checkpoint.parent / "payload-ran"
    torch.save({"step": 3, "trojan": Payload(marker)}, good_checkpoint / TRAINER_STATE_FILE)
    with pytest.raises(WeightsError, match="cannot be read safely"):
        load_trainer_state(good_checkpoint)
    assert not marker.exists()
    load_checkpoint(good_checkpoint)  # the weights themselves are still fine


@pytest.mark.parametrize(
    "content", [b"", b"hello\n", b"PK\x03\x04broken zip", b"\x80\x02garbage", b"\x89PNG\r\n"]
)
def test_not_a_model_file_through_import(tmp_path: Path, cli, content: bytes) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(content)
    with pytest.raises(WeightsError):
        import_weights(path)
    result = cli("import", path, "--out", tmp_path / "out")
    assert result.code == 1 and len(result.err_lines) == 1, result.err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_loaded_with_a_warning(tmp_path: Path, cli, caplog, bad: float) -> None:
    model = make_model(cfg=CLI_CFG)
    with torch.no_grad():
        model.blocks[0].ff.fc1.weight[0, 0] = bad
    save_checkpoint(model, tmp_path / "ckpt")
    warnings: list[str] = []
    with caplog.at_level(logging.WARNING):
        read_weights(tmp_path / "ckpt", warnings=warnings)
    assert len(warnings) == 1 and "NaN or infinite" in warnings[0] and "blocks.0.ff.fc1.weight" in warnings[0]
    result = cli("import", tmp_path / "ckpt", "--out", tmp_path / "out")
    assert result.code == 0
    assert any("warning" in line and "NaN or infinite" in line for line in result.err_lines)
    # Generating from it must not crash either: a one-line error or text, never a traceback.
    result = cli("generate", tmp_path / "ckpt", "--prompt", "hi", "--max-new-tokens", "2", "--json")
    assert "Traceback" not in result.err
    assert result.code in (0, 1)
    if result.code == 1:
        assert len(result.err_lines) == 1


def test_not_a_checkpoint_directory(tmp_path: Path, cli) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8\xff\xe0 jpeg")
    for target in (tmp_path / "photos", tmp_path / "photos" / "cat.jpg", tmp_path / "nowhere"):
        with pytest.raises(WeightsError):
            load_checkpoint(target)
        result = cli("generate", target, "--prompt", "x", "--max-new-tokens", "1")
        assert result.code == 1 and len(result.err_lines) == 1, result.err
