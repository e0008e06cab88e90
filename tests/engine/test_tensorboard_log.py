"""`gptviz train --tensorboard DIR`: the scalars under TensorBoard's tags, read back from the event file when
the optional tensorboard package is installed (`gptviz[tensorboard]`; CI does not install it)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from gptviz.cli import main
from gptviz.engine.tensorboard_log import TensorBoardLog, scalars_of
from gptviz.engine.train_results import StepResult
from gptviz.errors import ConfigError


def _result(**changes) -> StepResult:
    values = dict(
        step=3, epoch=0, tokens_seen=96, train_loss=5.0, val_loss=None, train_eval_loss=None, perplexity=None,
        lr=1e-3, grad_norm=2.0, tokens_per_s=100.0, elapsed_s=1.0, total_steps=5, eta_s=1.0, done=False,
        grad_norms={"embeddings": 1.2, "block.0": 1.6}, update_ratios={"embeddings": 1e-3, "block.0": None},
    )  # fmt: skip
    return StepResult(**{**values, **changes})


def test_scalars_carry_the_losses_and_each_parts_diagnostics():
    assert scalars_of(_result()) == {
        "loss/train": 5.0, "lr": 1e-3, "grad_norm": 2.0, "tokens_per_s": 100.0,
        "grad_norm/embeddings": 1.2, "grad_norm/block.0": 1.6, "update_ratio/embeddings": 1e-3,
    }  # fmt: skip
    untrained = _result(step=0, train_loss=math.nan, grad_norm=math.nan, val_loss=10.9, train_eval_loss=10.8,
                        perplexity=5.4e4, tokens_per_s=0.0, grad_norms=None, update_ratios=None)  # fmt: skip
    assert scalars_of(untrained) == {
        "loss/val": 10.9,
        "loss/train_eval": 10.8,
        "perplexity": 5.4e4,
        "lr": 1e-3,
    }


def test_without_the_package_the_option_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=r"gptviz\[tensorboard\]"):
        TensorBoardLog(tmp_path)


def test_the_cli_writes_an_event_file_tensorboard_reads(tmp_path: Path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Every effort moves you forward, one step at a time. " * 60, encoding="utf-8")
    argv = ["train", "--corpus", str(corpus), "--preset", "tiny", "--context", "16", "--batch-size", "2",
            "--eval-iter", "1", "--steps", "3", "--eval-freq", "3", "--quiet"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "run"), "--tensorboard", str(tmp_path / "tb")]) == 0
    capsys.readouterr()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "loss/train",
        "loss/val",
        "lr",
        "grad_norm",
        "grad_norm/block.0",
        "update_ratio/out_head",
    } - tags == {
        "update_ratio/out_head"  # tiny ties its head: no out_head part
    }
    assert [e.step for e in events.Scalars("loss/train")] == [1, 2, 3]
    assert [e.step for e in events.Scalars("loss/val")] == [0, 1, 3]  # untrained, first step, last step
    from gptviz.engine.rundir import read_metrics

    lines = read_metrics(tmp_path / "run")
    written = [e.value for e in events.Scalars("grad_norm/block.0")]
    assert written == pytest.approx([m["grad_norms"]["block.0"] for m in lines[1:]], rel=1e-6)
