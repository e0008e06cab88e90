"""Training with several processes: sharding of the windows, and a real 2-process torchrun run on CPU (gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gptviz.engine.checkpoint import load_checkpoint
from gptviz.engine.distributed import SINGLE, DistInfo, all_reduce_mean, any_rank, init_distributed, shard
from gptviz.engine.rundir import read_metrics, read_settings

REPO = Path(__file__).resolve().parents[2]
TORCHRUN = Path(sys.executable).with_name("torchrun")


def test_shards_are_disjoint_equal_and_cover_all_but_the_remainder():
    order = torch.randperm(11, generator=torch.Generator().manual_seed(0))  # (11,)
    parts = [shard(order, DistInfo(rank=r, world_size=3)) for r in range(3)]
    assert [p.numel() for p in parts] == [3, 3, 3]
    joined = torch.cat(parts)  # (9,)
    assert joined.unique().numel() == 9 and set(joined.tolist()) <= set(order.tolist())
    assert torch.equal(shard(order, SINGLE), order)


def test_one_process_needs_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = init_distributed("cpu")
    assert info == SINGLE and info.is_main and not info.enabled
    assert all_reduce_mean([2.0, 4.0], info, torch.device("cpu")) == [2.0, 4.0]
    assert any_rank(True, info, torch.device("cpu")) is True


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
def test_torchrun_two_processes_write_one_run_directory(tmp_path):
    from gptviz.data import builtin_text

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(builtin_text()[:20000])
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "gptviz", "train"]
    cmd += ["--corpus", str(corpus), "--preset", "tiny", "--context", "16", "--batch-size", "2"]
    cmd += ["--steps", "3", "--eval-freq", "3", "--eval-iter", "2", "--device", "cpu", "--out", str(run)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("done: step 3") == 1  # rank 0 alone reports
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("metrics.jsonl")) == [
        Path("run/metrics.jsonl")
    ]
    metrics = read_metrics(run)[1:]  # after step 0, the untrained model's evaluation
    assert [m["step"] for m in metrics] == [1, 2, 3]  # one line a step: rank 1 wrote nothing
    assert all(m["world_size"] == 2 for m in metrics)
    assert [m["tokens_seen"] for m in metrics] == [64, 128, 192]  # 2 ranks x batch 2 x 16 tokens a step
    assert read_settings(run)["world_size"] == 2
    model, meta = load_checkpoint(run / "checkpoint")
    assert meta["step"] == 3 and meta["world_size"] == 2 and model.cfg.context_length == 16
