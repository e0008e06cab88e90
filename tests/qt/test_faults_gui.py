"""Faults survived through the real window and worker (issue 6): closing the window in the middle of a
training step, a save or an import; Stop in the middle of a step; an exception inside the worker; a full
disk; damaged files opened from the File menu's path; a followed run whose writer is killed mid-line.

"In the middle" is made deterministic by holding the real engine call on a `threading.Event` the test
controls (for a close: the worker's own abort event, which the window sets when it closes). The autouse
fixtures of tests/qt/conftest.py fail any test that leaves a QThread running; `_no_python_thread_left`
below does the same for Python threads.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import gptviz.engine.checkpoint as W
import gptviz.engine.importers as importers
from gptviz.data import split_ids
from gptviz.engine.checkpoint import load_checkpoint, load_trainer_state, save_checkpoint
from gptviz.engine.rundir import metrics_path, read_jsonl, truncate_jsonl
from gptviz.engine.train_settings import TrainSettings
from gptviz.engine.trainer import Trainer
from gptviz.model.gpt import GPTModel
from gptviz.qt import commands as cmd

HOLD_S = 30  # a held call gives up after this long, so a failing test cannot hang the suite


@pytest.fixture(autouse=True)
def _no_python_thread_left():
    before = set(threading.enumerate())
    yield
    left = [
        t.name
        for t in threading.enumerate()
        if t not in before and t.is_alive() and not isinstance(t, threading._DummyThread)
    ]
    assert not left, f"test left Python thread(s) running: {left}"


def _ready(window, qtbot):
    """The worker's session once the first generation view has been drawn."""
    qtbot.waitUntil(lambda: window.generation_pane.view is not None, timeout=20_000)
    return window.host.worker.session


def _held(real, entered: threading.Event, release: threading.Event, calls: list | None = None, at: int = 1):
    """`real`, except that its `at`-th call signals `entered` and waits for `release` before running."""
    count = [0]

    def wrapper(*args, **kwargs):
        count[0] += 1
        if calls is not None:
            calls.append(count[0])
        if count[0] == at:
            entered.set()
            if not release.wait(HOLD_S):
                raise RuntimeError("the test never released the held call")
        return real(*args, **kwargs)

    return wrapper


def _record_shutdown(window, monkeypatch) -> list[tuple[int, bool]]:
    """(timeout_ms, finished) of every WorkerHost.shutdown the window calls."""
    results: list[tuple[int, bool]] = []
    real = window.host.shutdown

    def shutdown(timeout_ms: int = 2000) -> bool:
        finished = real(timeout_ms)
        results.append((timeout_ms, finished))
        return finished

    monkeypatch.setattr(window.host, "shutdown", shutdown)
    return results


def _digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden ones too) by relative path -> sha256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _wait_result(qtbot, window, channel: str, timeout: int = 20_000):
    return qtbot.waitSignal(
        window.host.resultReady, timeout=timeout, check_params_cb=lambda ch, _payload: ch == channel
    )


def _state_equal(model_a, model_b) -> bool:
    a, b = model_a.state_dict(), model_b.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k].float(), b[k].float()) for k in a)


# ------------------------------------------------------------------------------ closing mid-operation


def test_closing_in_the_middle_of_a_training_step(main_window, qtbot, monkeypatch, train_settings):
    window = main_window
    session = _ready(window, qtbot)
    worker = window.host.worker
    entered, calls = threading.Event(), []
    monkeypatch.setattr(session, "train_step", _held(session.train_step, entered, worker.abort, calls, at=3))
    shutdowns = _record_shutdown(window, monkeypatch)
    window.host.submit(cmd.TrainStart(train_settings(steps=10_000, eval_freq=1_000)))
    qtbot.waitUntil(entered.is_set, timeout=30_000)  # the worker is inside step 3

    window.close()

    assert shutdowns == [(2000, True)]  # the worker thread finished within the first 2 s wait
    assert not window.host.is_running()
    assert calls == [1, 2, 3] and session.trainer.step_count == 3  # the held step ran to its end, no more
    assert worker.training == "idle" and window.errors == []


def test_closing_in_the_middle_of_a_save_finishes_the_save(main_window, qtbot, monkeypatch, tmp_path):
    window = main_window
    session = _ready(window, qtbot)
    entered = threading.Event()
    monkeypatch.setattr(W, "save_checkpoint", _held(W.save_checkpoint, entered, window.host.worker.abort))
    shutdowns = _record_shutdown(window, monkeypatch)
    ckpt = tmp_path / "ckpt"
    window.host.submit(cmd.SaveCheckpoint(str(ckpt)))
    qtbot.waitUntil(entered.is_set, timeout=20_000)
    assert not ckpt.exists()  # nothing written yet: the save is held at its start

    window.close()

    assert shutdowns == [(2000, True)]
    assert not window.host.is_running()
    model, meta = load_checkpoint(ckpt, "cpu")  # the save ran to its end: a complete checkpoint
    assert _state_equal(model, session.model) and meta["name"] == "qt-tiny"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no staging folder left
    assert window.errors == []


def test_closing_in_the_middle_of_an_import(main_window, qtbot, monkeypatch, tmp_path):
    window = main_window
    session = _ready(window, qtbot)
    torch.manual_seed(7)
    source = save_checkpoint(GPTModel(session.model.cfg), tmp_path / "other", meta={"name": "other"})
    before = _digest(tmp_path)
    entered = threading.Event()
    monkeypatch.setattr(
        importers, "import_weights", _held(importers.import_weights, entered, window.host.worker.abort)
    )
    shutdowns = _record_shutdown(window, monkeypatch)
    window.import_weights(source)
    qtbot.waitUntil(entered.is_set, timeout=20_000)

    window.close()

    assert shutdowns == [(2000, True)]
    assert not window.host.is_running()
    assert _digest(tmp_path) == before  # the source is never written
    imported, _ = load_checkpoint(source, "cpu")
    assert session.model_source == "import" and _state_equal(session.model, imported)  # finished whole
    assert window.errors == []


# ------------------------------------------------------------------------------ Stop mid-step


def test_stop_in_the_middle_of_a_training_step(main_window, qtbot, monkeypatch, train_settings):
    window = main_window
    session = _ready(window, qtbot)
    training = window.training_pane
    entered, release, calls = threading.Event(), threading.Event(), []
    monkeypatch.setattr(session, "train_step", _held(session.train_step, entered, release, calls, at=3))
    window.host.submit(cmd.TrainStart(train_settings(steps=10_000, eval_freq=1_000)))
    qtbot.waitUntil(lambda: entered.is_set() and training.state == "running", timeout=30_000)
    assert training.stop_button.isEnabled()

    training.stop_button.click()  # queued behind the step the worker is inside
    release.set()
    qtbot.waitUntil(lambda: training.state == "idle", timeout=20_000)

    assert calls == [1, 2, 3]  # the step in progress finished; Stop came before any further step
    assert session.trainer is None and not session.model.training  # run ended, model back in eval mode
    qtbot.waitUntil(lambda: training.train_curve_data.n == 3, timeout=5_000)
    assert training.train_curve_data.view()[0].tolist() == [1, 2, 3]
    assert not training.stop_button.isEnabled() and training.start_button.isEnabled()
    window.generation_pane.step_button.click()  # the next command works
    qtbot.waitUntil(lambda: len(window.generation_pane.view.new_ids) == 1, timeout=20_000)
    assert window.errors == []


# ------------------------------------------------------------------------------ exceptions in the worker


def test_an_exception_in_the_worker_is_shown_and_the_next_command_works(main_window, qtbot, monkeypatch):
    window = main_window
    session = _ready(window, qtbot)
    real, failed = session.gen_step, []

    def gen_step(*args, **kwargs):
        if not failed:
            failed.append(True)
            raise RuntimeError("injected fault")
        return real(*args, **kwargs)

    monkeypatch.setattr(session, "gen_step", gen_step)
    with qtbot.waitSignal(window.host.errorRaised, timeout=20_000) as error:
        window.generation_pane.step_button.click()
    assert error.args == ["gen_step", "RuntimeError: injected fault"]
    assert window.banner.isVisible()
    assert window.banner.label.full_text() == "gen step: RuntimeError: injected fault"
    assert window.host.is_running()

    window.generation_pane.step_button.click()
    qtbot.waitUntil(lambda: len(window.generation_pane.view.new_ids) == 1, timeout=20_000)


def test_an_exception_in_a_training_step_ends_the_run_cleanly(
    main_window, qtbot, monkeypatch, train_settings
):
    window = main_window
    session = _ready(window, qtbot)
    training = window.training_pane
    real, calls = session.train_step, []

    def train_step():
        calls.append(len(calls) + 1)
        if len(calls) == 2:
            raise RuntimeError("injected fault in step 2")
        return real()

    monkeypatch.setattr(session, "train_step", train_step)
    with qtbot.waitSignal(window.host.errorRaised, timeout=30_000) as error:
        window.host.submit(cmd.TrainStart(train_settings(steps=10_000, eval_freq=1_000)))
    assert error.args == ["training", "RuntimeError: injected fault in step 2"]
    qtbot.waitUntil(lambda: training.state == "idle", timeout=20_000)
    assert "injected fault in step 2" in window.banner.label.full_text()
    assert training.message.text() == "RuntimeError: injected fault in step 2"
    assert session.trainer is None and not session.model.training  # the run was ended, eval mode again
    qtbot.waitUntil(window.progress.isHidden, timeout=5_000)

    window.host.submit(cmd.TrainStart(train_settings(steps=2, eval_freq=1_000)))  # a new run works
    qtbot.waitUntil(lambda: training.train_curve_data.n >= 2 and training.state == "idle", timeout=30_000)
    assert calls == [1, 2, 3, 4] and len(window.errors) == 1


# ------------------------------------------------------------------------------ disk full


def _half_written_then_full(tensors, filename, metadata=None):
    Path(filename).write_bytes(b"\x00" * 100)  # some bytes reached the disk before it filled up
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)


def test_save_while_paused_then_disk_full_keeps_the_previous_checkpoint(
    main_window, qtbot, monkeypatch, tmp_path, train_settings
):
    window = main_window
    session = _ready(window, qtbot)
    training = window.training_pane
    window.host.submit(cmd.TrainStart(train_settings(steps=10_000, eval_freq=1_000)))
    qtbot.waitUntil(lambda: training.train_curve_data.n >= 2, timeout=30_000)
    window.host.submit(cmd.TrainPause())
    qtbot.waitUntil(lambda: training.state == "paused", timeout=20_000)
    step = session.trainer.step_count

    ckpt = tmp_path / "ckpt"
    with _wait_result(qtbot, window, cmd.SAVED):  # saving a paused run: weights plus the trainer's state
        window.host.submit(cmd.SaveCheckpoint(str(ckpt)))
    assert load_trainer_state(ckpt)["step"] == step
    assert _state_equal(load_checkpoint(ckpt, "cpu")[0], session.model)
    before = _digest(tmp_path)

    monkeypatch.setattr(W, "save_file", _half_written_then_full)
    with qtbot.waitSignal(window.host.errorRaised, timeout=20_000) as error:
        window.host.submit(cmd.SaveCheckpoint(str(ckpt)))
    message = error.args[1]
    assert error.args[0] == "save_checkpoint"
    assert message == f"could not save the checkpoint to {ckpt}: No space left on device"
    assert "No space left on device" in window.banner.label.full_text() and window.banner.isVisible()
    assert _digest(tmp_path) == before  # the previous checkpoint byte for byte, no staging folder
    monkeypatch.undo()

    window.host.submit(cmd.TrainStart())  # the paused run resumes: the app is still usable
    qtbot.waitUntil(lambda: training.train_curve_data.n >= step + 1, timeout=30_000)
    window.host.submit(cmd.TrainStop())
    qtbot.waitUntil(lambda: training.state == "idle", timeout=20_000)


# ------------------------------------------------------------------------------ damaged files


def test_damaged_checkpoint_and_binary_corpus_leave_the_current_model(main_window, qtbot, tmp_path):
    window = main_window
    session = _ready(window, qtbot)
    label, corpus_label = window.model_label.text(), window.training_pane.corpus_label.text()
    model_before = {k: v.clone() for k, v in session.model.state_dict().items()}

    ckpt = save_checkpoint(GPTModel(session.model.cfg), tmp_path / "broken", meta={"name": "broken"})
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with qtbot.waitSignal(window.host.errorRaised, timeout=20_000) as error:
        window.open_path(ckpt)
    assert error.args[0] == "load_checkpoint"
    assert "model.safetensors is damaged or not safetensors" in error.args[1]
    assert window.banner.isVisible() and "damaged" in window.banner.label.full_text()

    binary = tmp_path / "corpus.txt"
    binary.write_bytes(b"some text\x00\x01\x02" * 100)
    with qtbot.waitSignal(window.host.errorRaised, timeout=20_000) as error:
        window.open_path(binary)
    assert error.args == [
        "load_corpus",
        f"{binary} looks like a binary file (it contains NUL bytes); choose a UTF-8 text file",
    ]

    assert window.model_label.text() == label and window.model_info.name == "qt-tiny"
    assert window.training_pane.corpus_label.text() == corpus_label
    assert session.model_source == "injected" and session.corpus.name == "small.txt"
    assert all(torch.equal(v, model_before[k]) for k, v in session.model.state_dict().items())
    window.generation_pane.step_button.click()  # the current model still generates
    qtbot.waitUntil(lambda: len(window.generation_pane.view.new_ids) == 1, timeout=20_000)


# ------------------------------------------------------------------------------ followed run, writer killed

WRITER = r"""
import json, os, signal, sys
path, last = sys.argv[1], json.loads(sys.argv[2])
with open(path, "ab", buffering=0) as out:
    def write(data):
        for i in range(0, len(data), 5):  # 5 bytes at a time, like a slow disk
            out.write(data[i : i + 5])
    for step in (4, 5, 6):
        write((json.dumps(dict(last, step=step, tokens_seen=last["tokens_seen"] * step // 3)) + "\n").encode())
    line = json.dumps(dict(last, step=7, train_loss=123.0)).encode()
    write(line[: len(line) // 2])  # half of step 7's line, then the writer dies
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _sync(window, qtbot) -> None:
    """Poll the run now and wait until the worker has handled it (commands run in order)."""
    window.host.submit(cmd.PollFollow())
    with _wait_result(qtbot, window, cmd.TOKENS):
        window.request_tokens("sync")
    window.redraw()


def test_followed_run_whose_writer_is_killed_mid_line(main_window, qtbot, session_factory, tmp_path):
    window = main_window
    _ready(window, qtbot)
    training = window.training_pane
    writer_session = session_factory()
    train_ids, val_ids = split_ids(writer_session.corpus_ids, 0.1)  # (N_train,), (N_val,)
    run = tmp_path / "run"
    settings = TrainSettings(steps=100, batch_size=2, context=16, eval_freq=100, eval_iter=1, probe_tokens=2)
    trainer = Trainer(writer_session.model, writer_session.tokenizer, train_ids, val_ids, settings, run)
    for _ in range(3):
        trainer.step()
    trainer.close()
    metrics = metrics_path(run)
    last = read_jsonl(metrics)[-1]

    window.follow(run)  # File > Follow run directory…
    qtbot.waitUntil(lambda: training.train_curve.getData()[0] is not None, timeout=20_000)
    qtbot.waitUntil(lambda: training.train_curve.getData()[0].tolist() == [1, 2, 3], timeout=20_000)

    killed = subprocess.run(
        [sys.executable, "-c", WRITER, str(metrics), json.dumps(last)], capture_output=True, timeout=60
    )
    assert killed.returncode == -9, killed.stderr
    assert not metrics.read_bytes().endswith(b"\n")  # the file ends in half a line
    _sync(window, qtbot)
    # The follow timer may queue its own poll after ours (a newer request replaces an older one), so wait
    # for the curve rather than assume one round trip: it must reach the complete records, and only them.
    qtbot.waitUntil(lambda: len(training.train_curve.getData()[0]) >= 6, timeout=20_000)
    window.redraw()
    steps, losses = training.train_curve.getData()
    assert steps.tolist() == [1, 2, 3, 4, 5, 6]  # the complete records only
    assert np.all(losses[3:] == last["train_loss"]) and 123.0 not in losses.tolist()
    assert training.stats["step"].text().startswith("6 /")
    assert window.errors == []

    # A resumed writer cuts the half line and goes on; the new lines appear.
    assert truncate_jsonl(metrics, 6) == 7  # steps 0 (the untrained model's evaluation) to 6
    with open(metrics, "a", encoding="utf-8") as out:
        for step in (7, 8):
            out.write(json.dumps(dict(last, step=step, train_loss=2.5)) + "\n")
    qtbot.waitUntil(lambda: training.train_curve.getData()[0].tolist() == list(range(1, 9)), timeout=20_000)
    assert training.train_curve.getData()[1][-2:].tolist() == [2.5, 2.5]
    window.stop_following()


# ------------------------------------------------------------------------------ bounded plot history


def test_curve_history_is_bounded_and_uniformly_downsampled():
    from gptviz.qt.panes.training import MAX_CURVE_POINTS, CurveBuffer

    buffer = CurveBuffer(max_points=1000)
    for step in range(1, 100_001):
        buffer.append(step, 2.0 * step)
        assert buffer.n <= 1000
    x, y = buffer.view()
    assert buffer.stride == 128 and buffer.n == 783 and buffer.x.shape[0] == 1000
    assert x[0] == 1 and x[-1] == 100_000  # the first and the newest point are always shown
    assert np.all(np.diff(x[:-1]) == 128) and np.all(y == 2.0 * x)  # uniform, and x still matches y
    buffer.clear()
    buffer.append(5, 1.0)
    assert buffer.view()[0].tolist() == [5] and buffer.stride == 1
    assert CurveBuffer().max_points == MAX_CURVE_POINTS == 10_000


def test_training_pane_keeps_a_bounded_number_of_points(qtbot):
    from gptviz.engine.train_results import StepResult
    from gptviz.engine.views import TrainingUpdate
    from gptviz.qt.panes.training import MAX_CURVE_POINTS, TrainingPane

    pane = TrainingPane()
    qtbot.addWidget(pane)
    total = 3 * MAX_CURVE_POINTS
    for step in range(1, total + 1):
        evaluated = step % 10 == 0
        result = StepResult(
            step=step, epoch=0, tokens_seen=64 * step, train_loss=5.0, val_loss=5.5 if evaluated else None,
            train_eval_loss=5.0 if evaluated else None, perplexity=None, lr=1e-3, grad_norm=1.0,
            tokens_per_s=1.0, elapsed_s=float(step), total_steps=total, eta_s=0.0, done=False,
        )  # fmt: skip
        pane.add_update(TrainingUpdate(result=result, new_probes=(), batch_tokens=64, corpus_name="c"))
    pane.refresh()
    counts = pane.point_counts()
    assert max(counts.values()) <= MAX_CURVE_POINTS and counts["val"] == total // 10  # 3,000: not thinned
    steps = pane.train_curve.getData()[0]
    assert len(steps) == counts["train"] and steps[0] == 1 and steps[-1] == total
