"""`gptviz train`: the command-line contract, refusals as one line on stderr, resume, Ctrl-C."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gptviz.cli import main
from gptviz.commands.train import Progress
from gptviz.config import preset
from gptviz.engine.checkpoint import load_checkpoint, load_trainer_state, read_checkpoint_meta
from gptviz.engine.probe import read_probes
from gptviz.engine.rundir import read_metrics, read_settings
from gptviz.engine.train_results import StepResult

REPO = Path(__file__).resolve().parents[2]
FAST = ["--preset", "tiny", "--context", "16", "--batch-size", "2", "--eval-iter", "1"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """20k characters of the built-in corpus plus one byte that is not UTF-8 (for --lenient)."""
    from gptviz.data import builtin_text

    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_bytes(builtin_text()[:20000].encode() + b"\xff tail\n")
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gptviz train: error: ")
    return lines[0]


def test_train_writes_a_run_directory_other_commands_can_load(tmp_path, corpus, capsys):
    run = tmp_path / "run"
    argv = ["train", "--corpus", str(corpus), *FAST, "--steps", "3", "--eval-freq", "3", "--out", str(run)]
    assert main([*argv, "--lenient", "--lr", "1e-3", "--warmup", "1", "--cosine"]) == 0
    out, err = capsys.readouterr()
    assert "done: step 3" in out
    assert (
        "step 1/3" in err
        and "step 3/3" in err
        and "step 2/3" not in err
        and "1 undecodable bytes replaced" in err
    )
    for name in ("settings.json", "metrics.jsonl", "checkpoint/config.json", "checkpoint/model.safetensors",
                 "checkpoint/trainer_state.pt", "probes/probes.jsonl"):  # fmt: skip
        assert (run / name).is_file(), name
    model, meta = load_checkpoint(run / "checkpoint")
    assert model.cfg == preset("tiny").replace(context_length=16)  # --context builds a shorter model
    assert meta["step"] == 3
    metrics = read_metrics(run)[1:]  # after step 0, the untrained model's evaluation
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert [m["tokens_seen"] for m in metrics] == [32, 64, 96] and all(m["world_size"] == 1 for m in metrics)
    assert metrics[0]["lr"] == pytest.approx(1e-3)  # warm-up of one step, then cosine down to 1e-4
    assert metrics[2]["lr"] == pytest.approx(1e-4 + 0.9e-3 * 0.5)  # half way through the decay
    settings = read_settings(run)
    assert settings["train"]["lr"] == 1e-3 and settings["corpus"]["lenient"] is True
    assert [p.step for p in read_probes(run, attention=False)] == [0, 1, 3]

    assert main(["info", str(run / "checkpoint"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["context_length"] == 16

    # --resume continues the same run to a new end; data options given again are ignored with a note.
    assert main(["train", "--out", str(run), "--resume", "--steps", "4", "--batch-size", "4"]) == 0
    err = capsys.readouterr().err
    assert "--batch-size ignored on --resume" in err and "resuming" in err
    assert [m["step"] for m in read_metrics(run)] == [0, 1, 2, 3, 4]
    assert read_checkpoint_meta(run / "checkpoint")["step"] == 4


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "corpus file not found"),
        (b"", "is empty"),
        (b"\x00\x01binary", "binary"),
        (b"caf\xe9 au lait", "not valid UTF-8"),
    ],
)
def test_bad_corpus_exits_1_with_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "corpus.txt"
    if content is not None:
        path.write_bytes(content)
    run = tmp_path / "run"
    assert main(["train", "--corpus", str(path), *FAST, "--steps", "1", "--out", str(run)]) == 1
    assert message in _one_error_line(capsys)
    assert not run.exists()  # nothing half-made left behind


def test_refusals_exit_1_with_one_line(tmp_path, corpus, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    base = ["train", "--corpus", str(corpus), "--lenient", "--steps", "1"]
    assert main([*base, *FAST, "--out", str(busy)]) == 1
    assert "not empty; pass --resume" in _one_error_line(capsys)
    assert (busy / "notes.txt").read_text() == "mine"
    assert main([*base, "--preset", "tiny", "--context", "256", "--out", str(tmp_path / "a")]) == 1
    assert "longer than the tiny preset's context length 128" in _one_error_line(capsys)
    assert main([*base, *FAST, "--batch-size", "0", "--out", str(tmp_path / "b")]) == 1
    assert "batch_size must be a positive integer" in _one_error_line(capsys)
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 1
    assert "run directory not found" in _one_error_line(capsys)
    assert main(["train", "--out", str(tmp_path / "c"), "--preset", "tiny"]) == 1
    assert "--corpus and --preset are needed" in _one_error_line(capsys)


def _result(step: int, total: int, val: float | None) -> StepResult:
    return StepResult(step=step, epoch=0, tokens_seen=step * 8, train_loss=5.0, val_loss=val,
                      train_eval_loss=val, perplexity=None, lr=1e-3, grad_norm=1.0, tokens_per_s=100.0,
                      elapsed_s=1.0, total_steps=total, eta_s=65.0, done=step == total)  # fmt: skip


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_one_line_on_a_terminal_and_prints_evaluations_otherwise():
    tty = _Tty()
    bar = Progress(tty)
    bar.update(_result(1, 4, 4.5))
    bar.update(_result(4, 4, 4.0))
    text = tty.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "[#####...............]  25% step 1/4 loss 5.000 val 4.500" in text and "ETA 1m05s" in text
    plain = io.StringIO()
    bar = Progress(plain)
    for step in (1, 2, 3):
        bar.update(_result(step, 3, 4.0 if step != 2 else None))
    lines = plain.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in plain.getvalue()  # a line per evaluation only
    assert lines[-1].startswith("100% step 3/3")


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path, corpus):
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "gptviz", "train", "--corpus", str(corpus), "--lenient", *FAST]
    cmd += ["--steps", "1000", "--eval-freq", "500", "--save-dtype", "float16", "--out", str(run)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while len(read_metrics(run)) < 3:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "--resume" in err
    last = read_metrics(run)[-1]["step"]
    assert 3 <= last < 1000
    model, meta = load_checkpoint(run / "checkpoint")
    assert meta["step"] == last  # saved at the step it stopped on, not the last evaluation
    assert json.loads((run / "checkpoint" / "config.json").read_text())["dtype"] == "float16"
    assert load_trainer_state(run / "checkpoint")["step"] == last


def test_no_diagnostics_leaves_out_the_update_ratios_only(tmp_path, corpus, capsys):
    run = tmp_path / "run"
    argv = ["train", "--corpus", str(corpus), *FAST, "--steps", "2", "--eval-freq", "2", "--out", str(run)]
    assert main([*argv, "--lenient", "--no-diagnostics", "--quiet"]) == 0
    capsys.readouterr()
    lines = read_metrics(run)[1:]  # after the untrained model's step 0
    assert all("update_ratios" not in m and m["grad_norms"] for m in lines)
    assert read_settings(run)["train"]["diagnostics"] is False
