"""The run directory: JSONL that survives a killed writer, the metrics follower, and a run killed mid-way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gptviz.engine.checkpoint import load_checkpoint, read_checkpoint_meta
from gptviz.engine.rundir import (
    MetricsFollower,
    ensure_fresh_run_dir,
    read_jsonl,
    read_metrics,
    read_settings,
    truncate_jsonl,
    write_settings,
)
from gptviz.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[2]


def _line(step: int, **extra) -> str:
    return json.dumps({"step": step, "train_loss": 10.0 - step, **extra}) + "\n"


def test_follower_returns_only_complete_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    follower = MetricsFollower(tmp_path)
    assert follower.poll() == []  # no file yet: nothing, no error
    path.write_text(_line(1) + _line(2) + '{"step": 3, "train_lo')  # writer killed mid-line
    assert [r["step"] for r in follower.poll()] == [1, 2]
    assert follower.poll() == []  # the half line is not returned until it is finished
    with open(path, "a") as handle:
        handle.write('ss": 7.0}\n' + _line(4))
    records = follower.poll()
    assert [r["step"] for r in records] == [3, 4]
    assert records[0]["train_loss"] == 7.0


def test_follower_restarts_when_the_file_is_cut_back(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(_line(1) + _line(2) + _line(3))
    follower = MetricsFollower(path)
    assert len(follower.poll()) == 3
    truncate_jsonl(path, 1)  # a resumed run cuts the file back to its checkpoint
    with open(path, "a") as handle:
        handle.write(_line(2, resumed=True))
    records = follower.poll()
    assert records[0] == {"event": "restart"}
    assert [r["step"] for r in records[1:]] == [1, 2] and records[2]["resumed"] is True


def test_truncate_keeps_steps_up_to_the_checkpoint_and_drops_a_half_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(_line(1) + _line(2) + _line(3) + '{"step": 4, "tr')
    assert truncate_jsonl(path, 2) == 2
    assert path.read_text() == _line(1) + _line(2)
    path.write_text(_line(1) + '{"step": 2, "tr')
    assert truncate_jsonl(path, 10) == 1
    assert path.read_text() == _line(1)


def test_read_jsonl_skips_damaged_lines(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(_line(1) + "not json\n" + "[1, 2]\n" + _line(2) + '{"half')
    assert [r["step"] for r in read_jsonl(path)] == [1, 2]
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_fresh_run_dir_and_settings(tmp_path):
    ensure_fresh_run_dir(tmp_path / "new")  # missing is fine
    ensure_fresh_run_dir(tmp_path)  # empty is fine
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="not empty; pass --resume"):
        ensure_fresh_run_dir(tmp_path)
    with pytest.raises(ConfigError, match="not a directory"):
        ensure_fresh_run_dir(tmp_path / "f")
    write_settings(tmp_path / "run", {"train": {"lr": 0.1}})
    assert read_settings(tmp_path / "run")["train"] == {"lr": 0.1}
    with pytest.raises(DataError, match="not a gptviz run directory"):
        read_settings(tmp_path)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.mark.slow
def test_a_run_killed_mid_way_loads_and_resumes(tmp_path):
    corpus = tmp_path / "corpus.txt"
    from gptviz.data import builtin_text

    corpus.write_text(builtin_text()[:20000])
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "gptviz",
        "train",
        "--corpus",
        str(corpus),
        "--preset",
        "tiny",
        "--context",
        "16",
    ]
    cmd += ["--batch-size", "2", "--eval-freq", "2", "--eval-iter", "1", "--out", str(run)]
    proc = subprocess.Popen([*cmd, "--steps", "1000"], env=_env(), stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while len(read_metrics(run)) < 5:
            assert proc.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline, "training made no progress"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    model, meta = load_checkpoint(run / "checkpoint")  # a complete checkpoint, whatever the kill hit
    assert model.cfg.context_length == 16
    saved_step = meta["step"]
    assert saved_step == 1 or saved_step % 2 == 0  # checkpoints are written at evaluations only
    target = saved_step + 3
    resumed = subprocess.run(
        [*cmd, "--resume", "--steps", str(target)], env=_env(), capture_output=True, text=True, timeout=240
    )
    assert resumed.returncode == 0, resumed.stderr
    steps = [m["step"] for m in read_metrics(run)]
    assert steps == list(range(0, target + 1))  # no step repeated, none missing (0: before training)
    assert read_checkpoint_meta(run / "checkpoint")["step"] == target
