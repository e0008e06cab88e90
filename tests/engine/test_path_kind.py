"""`path_kind.classify` on real folders and files built here: each kind gptviz opens, the cases where two
kinds overlap (the demo model is a checkpoint with a run's files beside it), and what is no model at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from gptviz.config import GPTConfig
from gptviz.engine.checkpoint import model_state_for_saving, save_checkpoint
from gptviz.engine.importers import read_weights
from gptviz.engine.path_kind import (
    PathKind,
    checkpoint_in,
    classify,
    find_nanogpt_checkpoint,
    is_own_checkpoint,
)
from gptviz.engine.rundir import write_settings
from gptviz.model.gpt import GPTModel
from gptviz.resources import DEMO_MODEL_DIR

TINY = GPTConfig(vocab_size=64, context_length=8, emb_dim=8, n_heads=2, n_layers=1, drop_rate=0.0, name="t")


@pytest.fixture(scope="module")
def model() -> GPTModel:
    torch.manual_seed(0)
    return GPTModel(TINY).eval()


def _run_dir(root: Path, model: GPTModel | None, metrics: bool = True) -> Path:
    run = root / "run"
    write_settings(run, {"total_steps": 4})
    if metrics:
        (run / "metrics.jsonl").write_text('{"step": 1, "train_loss": 3.0}\n')
    if model is not None:
        save_checkpoint(model, run / "checkpoint", meta={"step": 2})
    return run


def test_own_checkpoint_and_its_backup(tmp_path: Path, model: GPTModel) -> None:
    ckpt = save_checkpoint(model, tmp_path / "ckpt")
    assert classify(ckpt) is PathKind.CHECKPOINT
    assert classify(str(ckpt)) is PathKind.CHECKPOINT  # a string works as well as a Path
    os.replace(ckpt, tmp_path / ".ckpt.old")  # a save killed between its two renames
    assert classify(ckpt) is PathKind.CHECKPOINT and is_own_checkpoint(ckpt)
    assert classify(tmp_path / "elsewhere") is PathKind.MISSING


def test_checkpoint_weights_file_is_a_weight_file(tmp_path: Path, model: GPTModel) -> None:
    ckpt = save_checkpoint(model, tmp_path / "ckpt")
    assert classify(ckpt / "model.safetensors") is PathKind.WEIGHT_FILE
    assert classify(ckpt / "config.json") is PathKind.CORPUS  # a file of no model kind: read as text


def test_run_directory(tmp_path: Path, model: GPTModel) -> None:
    run = _run_dir(tmp_path, model)
    assert classify(run) is PathKind.RUN_DIR
    assert classify(run).is_own and classify(run).is_model
    assert checkpoint_in(run) == run / "checkpoint"
    assert classify(run / "checkpoint") is PathKind.CHECKPOINT and checkpoint_in(run / "checkpoint") == (
        run / "checkpoint"
    )


def test_run_being_written_before_its_first_checkpoint_is_a_run(tmp_path: Path) -> None:
    assert classify(_run_dir(tmp_path, None)) is PathKind.RUN_DIR  # followed: its checkpoint comes later


def test_run_without_metrics_opens_its_checkpoint(tmp_path: Path, model: GPTModel) -> None:
    run = _run_dir(tmp_path, model, metrics=False)
    assert classify(run) is PathKind.CHECKPOINT  # nothing to follow, but a model to open
    assert checkpoint_in(run) == run / "checkpoint"


def test_demo_model_is_a_checkpoint_with_a_history() -> None:
    """It holds settings.json and metrics.jsonl beside its weights: the checkpoint wins (opened, not
    followed; its history is read once)."""
    assert classify(DEMO_MODEL_DIR) is PathKind.CHECKPOINT


def test_hugging_face_folders(tmp_path: Path, model: GPTModel) -> None:
    with_config = tmp_path / "hf"
    with_config.mkdir()
    (with_config / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 8}))
    save_file(model_state_for_saving(model), str(with_config / "model.safetensors"))
    assert classify(with_config) is PathKind.HF_FOLDER
    assert classify(with_config).is_model and not classify(with_config).is_own
    bin_only = tmp_path / "bin"
    bin_only.mkdir()
    torch.save(model_state_for_saving(model), bin_only / "pytorch_model.bin")
    assert classify(bin_only) is PathKind.HF_FOLDER
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    (sharded / "model.safetensors.index.json").write_text('{"weight_map": {}}')
    assert classify(sharded) is PathKind.HF_FOLDER


def test_damaged_own_config_is_not_own(tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "config.json").write_text('{"format": "gptviz-checkpoint"')  # cut short
    assert not is_own_checkpoint(folder)
    assert classify(folder) is PathKind.HF_FOLDER  # the importer then says what is wrong with it
    (folder / "config.json").write_text("[1, 2]")
    assert classify(folder) is PathKind.HF_FOLDER


def test_nanogpt_file_and_out_dir(tmp_path: Path, model: GPTModel) -> None:
    out = tmp_path / "out"
    out.mkdir()
    args = {"n_layer": 1, "n_head": 2, "n_embd": 8, "block_size": 8, "bias": True, "vocab_size": 64}
    torch.save({"model": {"x": torch.zeros(2)}, "model_args": args, "iter_num": 3}, out / "ckpt.pt")
    assert classify(out / "ckpt.pt") is PathKind.NANOGPT
    assert classify(out) is PathKind.NANOGPT
    assert find_nanogpt_checkpoint(out) == out / "ckpt.pt"
    plain = tmp_path / "plain.pt"
    torch.save(model_state_for_saving(model), plain)  # a state dict, no model_args
    assert classify(plain) is PathKind.WEIGHT_FILE
    (out / "config.json").write_text("{}")  # an out_dir with Hugging Face files is read as those
    assert classify(out) is PathKind.HF_FOLDER


@pytest.mark.parametrize("name", ["model.pth", "w.safetensors", "pytorch_model.bin", "MODEL.PT"])
def test_weight_files_by_suffix(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"\x80\x02}q\x00.")
    assert classify(tmp_path / name) is PathKind.WEIGHT_FILE


def test_corpus_and_unknown(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("Every effort moves you")
    (tmp_path / "empty").mkdir()
    (tmp_path / "pictures").mkdir()
    (tmp_path / "pictures" / "cat.png").write_bytes(b"\x89PNG")
    assert classify(tmp_path / "notes.txt") is PathKind.CORPUS
    assert not PathKind.CORPUS.is_model
    assert classify(tmp_path / "empty") is PathKind.UNKNOWN
    assert classify(tmp_path / "pictures") is PathKind.UNKNOWN


def test_importer_reads_a_run_directory_as_its_checkpoint(tmp_path: Path, model: GPTModel) -> None:
    run = _run_dir(tmp_path, model)
    imported = read_weights(run)
    assert imported.file_format == "gptviz-checkpoint" and imported.source == run / "checkpoint"
    assert torch.equal(imported.model.tok_emb.weight, model.tok_emb.weight)


@pytest.mark.parametrize("module", ["path_kind", "atomic", "views", "run_follow", "memory", "rundir"])
def test_what_the_window_reads_at_start_up_never_imports_torch(module: str) -> None:
    """The window classifies a dropped path, builds its panes' views and asks whether a run is finished
    in the GUI thread, painting before torch has loaded (lint-imports checks the first three statically)."""
    code = f"import sys, gptviz.engine.{module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
