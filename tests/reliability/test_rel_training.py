"""Training faults: a learning rate that makes the loss diverge, and a run followed while its writer dies."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import torch
from relhelpers import write_metrics_slowly

from gptviz.engine.checkpoint import load_checkpoint, read_checkpoint_meta
from gptviz.engine.rundir import RESTART_EVENT, JsonlWriter, MetricsFollower, read_metrics, truncate_jsonl


def test_diverging_learning_rate_stops_with_the_last_good_weights(tmp_path: Path, cli) -> None:
    """lr 1e30 without clipping overflows within a few steps; the NaN guard stops the run, keeps the last
    checkpoint (saved at every step here), and says so in one line."""
    run = tmp_path / "run"
    result = cli(
        "train", "--corpus", "builtin", "--preset", "tiny", "--out", run, "--context", "16",
        "--batch-size", "2", "--lr", "1e30", "--grad-clip", "0", "--steps", "30", "--eval-freq", "1",
        "--eval-iter", "1", "--quiet",
    )  # fmt: skip
    assert result.code == 1, result
    assert len(result.err_lines) == 1, result.err
    line = result.err_lines[0]
    assert line.startswith("gptviz train: error: ") and "learning rate 1e+30" in line
    assert "weights of step" in line and "Lower the learning rate" in line
    kept = int(line.split("weights of step ")[1].split()[0])
    assert read_checkpoint_meta(run / "checkpoint")["step"] == kept
    model, _ = load_checkpoint(run / "checkpoint")
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    metrics = read_metrics(run)
    assert metrics[-1]["event"] == "diverged"
    assert all(json.dumps(m) for m in metrics)  # every line valid JSON (NaN written as null)


def test_follower_never_returns_half_a_line_when_the_writer_is_killed(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["gptviz.engine.rundir", "relhelpers"])
    path = tmp_path / "metrics.jsonl"
    path.touch()
    follower = MetricsFollower(path)
    rng = random.Random(7)
    seen: list[dict] = []
    for _round in range(5):
        counter = ctx.Value("q", 0)
        child = ctx.Process(target=write_metrics_slowly, args=(str(path), counter), daemon=True)
        child.start()
        deadline = time.monotonic() + rng.uniform(0.05, 0.3)
        while time.monotonic() < deadline:
            seen.extend(follower.poll())
            time.sleep(0.003)
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        seen.extend(follower.poll())
        records = [r for r in seen if r.get("event") != RESTART_EVENT]
        # Only whole records, in order, with every field intact.
        steps = [r["step"] for r in records]
        assert steps == list(range(1, len(steps) + 1)), steps
        assert all(
            r["train_loss"] == 10.0 / r["step"] and r["note"] == "é" * (r["step"] % 7) for r in records
        )
        assert len(records) >= counter.value  # everything written in full has been (or is now) seen
        # A resumed writer cuts the half line off and goes on from the last complete step.
        kept = truncate_jsonl(path, max_step=len(records))
        assert kept == len(records)
        assert path.read_bytes().endswith(b"\n") or path.stat().st_size == 0
        seen = records
        writer = JsonlWriter(path)
        writer.write(
            {
                "step": len(records) + 1,
                "train_loss": 10.0 / (len(records) + 1),
                "note": "é" * ((len(records) + 1) % 7),
            }
        )
        writer.close()
        new = follower.poll()
        assert [r["step"] for r in new] == [len(records) + 1], new
        seen.extend(new)
        # The next round's child continues the numbering from 1 again; start a fresh file for it.
        path.unlink()
        path.touch()
        restarted = follower.poll()
        assert restarted == [{"event": RESTART_EVENT}]
        seen = []


def test_follower_restarts_when_a_resume_cuts_the_file_back(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    writer = JsonlWriter(path)
    for step in range(1, 11):
        writer.write({"step": step})
    writer.close()
    follower = MetricsFollower(path)
    assert [r["step"] for r in follower.poll()] == list(range(1, 11))
    truncate_jsonl(path, max_step=6)  # resumed from the checkpoint of step 6
    writer = JsonlWriter(path)
    writer.write({"step": 7})
    writer.close()
    again = follower.poll()
    assert again[0] == {"event": RESTART_EVENT}
    assert [r["step"] for r in again[1:]] == list(range(1, 8))
