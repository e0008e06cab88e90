"""Faults while saving: SIGKILL in the middle of a checkpoint write, a full disk, a read-only folder.

The promise under test: after any of them, the checkpoint directory loads, and it holds either the previous
save or the new one, complete, never a mix of the two; a failed save says why in one line.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch
from relhelpers import fill_model, make_model, save_forever, tree_digest

from gptviz.engine import checkpoint as W
from gptviz.engine.checkpoint import (
    load_checkpoint,
    load_trainer_state,
    read_checkpoint_meta,
    save_checkpoint,
)

KILLS = 30


def _check_consistent(ckpt: Path) -> int:
    """Load the checkpoint and prove weights, meta and trainer state all come from one save; its version."""
    model, meta = load_checkpoint(ckpt)
    version = meta["version"]
    for name, param in model.state_dict().items():
        assert torch.all(param == float(version)), f"{name} is not from save {version}"
    assert load_trainer_state(ckpt)["step"] == version
    return version


def test_sigkill_during_checkpoint_writes_always_leaves_a_loadable_checkpoint(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "gptviz.engine.checkpoint", "relhelpers"])
    ckpt = tmp_path / "checkpoint"
    rng = random.Random(1234)
    last_loaded = -1
    outcomes = {"previous": 0, "new": 0}
    for round_ in range(KILLS):
        counter = ctx.Value("q", -1)
        first = (round_ + 1) * 1000
        child = ctx.Process(target=save_forever, args=(str(ckpt), counter, first), daemon=True)
        child.start()
        deadline = time.monotonic() + 60
        while counter.value < first and time.monotonic() < deadline:  # one complete save in this round
            time.sleep(0.002)
        assert counter.value >= first, "the child never finished a save"
        time.sleep(rng.uniform(0.0, 0.06))  # about two saves' time: the kill lands anywhere in one
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        assert child.exitcode == -signal.SIGKILL
        done = counter.value
        version = _check_consistent(ckpt)
        # The last finished save, or the one after it if it got as far as its final rename.
        assert version in (done, done + 1), (version, done)
        outcomes["previous" if version == done else "new"] += 1
        assert version > last_loaded
        last_loaded = version
    # Killed saves leave full-size staging folders behind; the next save must clear them, not trip on them.
    stale = [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]
    model = fill_model(make_model(), 7.0)
    save_checkpoint(model, ckpt, trainer_state={"step": 7}, meta={"version": 7})
    assert _check_consistent(ckpt) == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"], stale
    assert sum(outcomes.values()) == KILLS


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _saved(tmp_path: Path) -> Path:
    ckpt = tmp_path / "ckpt"
    save_checkpoint(fill_model(make_model(), 1.0), ckpt, trainer_state={"step": 1}, meta={"version": 1})
    return ckpt


def _half_written_then_full(tensors, filename, metadata=None):
    Path(filename).write_bytes(b"\x00" * 100)  # some bytes reached the disk before it filled up
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)


@pytest.mark.parametrize("where", ["weights", "trainer_state", "config", "swap"])
def test_disk_full_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch, where: str) -> None:
    ckpt = _saved(tmp_path)
    before = tree_digest(tmp_path)
    if where == "weights":
        monkeypatch.setattr(W, "save_file", _half_written_then_full)
    elif where == "trainer_state":
        monkeypatch.setattr(W.torch, "save", _enospc)
    elif where == "config":
        monkeypatch.setattr(Path, "write_text", _enospc)
    else:  # the old checkpoint was moved aside and the new one cannot be moved in
        real_replace = os.replace

        def replace(src, dst):
            if ".tmp-" in str(src):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_replace(src, dst)

        monkeypatch.setattr(W.os, "replace", replace)
    model = fill_model(make_model(), 2.0)
    with pytest.raises(OSError) as err:
        save_checkpoint(model, ckpt, trainer_state={"step": 2}, meta={"version": 2})
    assert err.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert tree_digest(tmp_path) == before  # no staging folder left, the old checkpoint byte for byte
    assert _check_consistent(ckpt) == 1


def test_read_only_folder_is_a_clear_error(tmp_path: Path, monkeypatch, cli) -> None:
    """Tests run as root, for whom chmod does not stop writes: the OS's refusal is simulated instead."""
    ckpt = _saved(tmp_path)
    before = tree_digest(tmp_path)
    real_mkdir = Path.mkdir

    def read_only_mkdir(self, *args, **kwargs):
        if self.exists() and kwargs.get("exist_ok"):
            return None
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "mkdir", read_only_mkdir)
    with pytest.raises(OSError) as err:
        save_checkpoint(fill_model(make_model(), 2.0), ckpt)
    assert err.value.errno == errno.EROFS
    result = cli("import", ckpt, "--out", ckpt)  # re-save over itself: the same refusal through the CLI
    monkeypatch.setattr(Path, "mkdir", real_mkdir)
    assert result.code == 1 and len(result.err_lines) == 1, result.err
    assert "Read-only file system" in result.err_lines[0]
    assert tree_digest(tmp_path) == before
    assert _check_consistent(ckpt) == 1


def test_disk_full_through_the_cli_is_one_line(tmp_path: Path, monkeypatch, cli) -> None:
    ckpt = _saved(tmp_path)
    out = _saved(tmp_path / "other")
    before = tree_digest(tmp_path)
    monkeypatch.setattr(W, "save_file", _half_written_then_full)
    result = cli("import", ckpt, "--out", out)
    assert result.code == 1 and len(result.err_lines) == 1, result.err
    assert result.err_lines[0].startswith("gptviz import: error: No space left on device")
    monkeypatch.undo()
    assert tree_digest(tmp_path) == before


def test_disk_full_during_training_keeps_the_last_checkpoint(tmp_path: Path, monkeypatch, cli) -> None:
    """`gptviz train` saves at step 0 and at every evaluation; the disk fills before the second save."""
    real_save_file = W.save_file
    calls = []

    def fill_up_on_second(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) >= 2:
            _half_written_then_full(tensors, filename, metadata)
        return real_save_file(tensors, filename, metadata=metadata)

    monkeypatch.setattr(W, "save_file", fill_up_on_second)
    run = tmp_path / "run"
    result = cli(
        "train", "--corpus", "builtin", "--preset", "tiny", "--out", run, "--steps", "4", "--eval-freq", "2",
        "--context", "16", "--batch-size", "2", "--eval-iter", "1", "--quiet",
    )  # fmt: skip
    monkeypatch.undo()
    assert result.code == 1, result
    assert len(result.err_lines) == 1 and "No space left on device" in result.err_lines[0], result.err
    assert read_checkpoint_meta(run / "checkpoint")["step"] == 0
    model, _ = load_checkpoint(run / "checkpoint")
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    assert not [p for p in run.iterdir() if ".tmp-" in p.name]
