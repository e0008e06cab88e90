"""A run started in the window is written to disk: the data folder's runs/, checkpoints at Pause, Stop and
close, and the Runs list reads it back."""

from __future__ import annotations

import datetime as dt
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from gptviz.engine import runs  # noqa: E402
from gptviz.engine.rundir import read_metrics  # noqa: E402
from gptviz.errors import ConfigError  # noqa: E402


def _start(qtbot, window, settings):
    states = []
    window.host.resultReady.connect(lambda ch, p: states.append(p) if ch == "train_state" else None)
    window.host.submit("train_start", settings=settings)
    return states


def test_a_window_run_lands_in_the_data_folder_with_checkpoints_at_pause_and_stop(
    qtbot, main_window, train_settings
):
    window = main_window
    states = _start(qtbot, window, train_settings(steps=40, eval_freq=50))
    qtbot.waitUntil(
        lambda: (
            window.host.worker.session.trainer is not None
            and window.host.worker.session.trainer.step_count >= 3
        ),
        timeout=30_000,
    )
    run_dir = window.host.worker.session.run_dir
    assert run_dir is not None and run_dir.parent == runs.runs_dir()
    window.host.submit("train_pause")
    qtbot.waitUntil(lambda: "paused" in states, timeout=30_000)
    qtbot.waitUntil(
        lambda: runs.summarize(run_dir) is not None and runs.summarize(run_dir).steps >= 3, timeout=30_000
    )
    paused_at = window.host.worker.session.trainer.step_count
    summary = runs.summarize(run_dir)
    assert summary.steps == paused_at  # the checkpoint holds the step the run paused at
    assert summary.model == "qt-tiny" and summary.corpus and summary.total_steps == 40
    assert not summary.finished and summary.size_bytes > 0
    assert runs.last_run() is not None and runs.last_run().path == run_dir
    window.host.submit("train_start")  # resume
    qtbot.waitUntil(lambda: window.host.worker.session.trainer.step_count >= paused_at + 2, timeout=30_000)
    window.host.submit("train_stop")
    qtbot.waitUntil(lambda: "idle" in states, timeout=30_000)
    stopped = runs.summarize(run_dir)
    assert stopped.steps >= paused_at + 2
    assert {r["step"] for r in read_metrics(run_dir)} >= {1, 2, 3}


def test_closing_mid_run_finishes_the_step_and_writes_a_checkpoint(qtbot, session_factory, train_settings):
    from gptviz.qt.main_window import MainWindow

    window = MainWindow(session_factory, startup_tokens=0)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.host.ready, timeout=30_000):
        window.show()
    window.host.submit("train_start", settings=train_settings(steps=10_000, eval_freq=10_000))
    session = window.host.worker.session
    qtbot.waitUntil(lambda: session.trainer is not None and session.trainer.step_count >= 2, timeout=30_000)
    run_dir = session.run_dir
    window.close()
    assert not window.host.is_running()
    summary = runs.summarize(run_dir)
    assert summary.has_checkpoint and summary.steps >= 2
    assert summary.steps == session.trainer.step_count  # the last finished step, not the last evaluation


def test_run_names_listing_and_deleting(tmp_path):
    when = dt.datetime(2026, 11, 30, 12, 15, 2)
    first = runs.new_run_dir("tiny (training)", "my corpus.txt", when)
    assert first.name == "2026-11-30-121502-tiny-training-my-corpus.txt" and first.parent == runs.runs_dir()
    first.mkdir(parents=True)
    (first / "settings.json").write_text('{"total_steps": 5, "corpus": {"name": "c"}}')
    assert runs.new_run_dir("tiny (training)", "my corpus.txt", when).name.endswith("-2")
    (listed,) = runs.list_runs()
    assert listed.started == "2026-11-30 12:15:02" and listed.steps == 0 and not listed.has_checkpoint
    assert runs.last_run() is None  # nothing to reopen without a checkpoint
    with pytest.raises(ConfigError):
        runs.delete_run(tmp_path)  # not a run inside runs/: refused
    runs.delete_run(first)
    assert runs.list_runs() == []


def test_runs_dialog_lists_opens_resumes_and_deletes(qtbot, main_window, train_settings):
    from gptviz.qt.runs_dialog import last_run_message

    window = main_window
    states = _start(qtbot, window, train_settings(steps=50, eval_freq=2))
    session = window.host.worker.session
    qtbot.waitUntil(lambda: session.trainer is not None and session.trainer.step_count >= 3, timeout=30_000)
    window.host.submit("train_stop")
    qtbot.waitUntil(lambda: "idle" in states, timeout=30_000)
    run_dir = runs.list_runs()[0].path
    stopped_at = runs.summarize(run_dir).steps
    assert "File › Runs…" in last_run_message() and f"{stopped_at:,} of 50 steps" in last_run_message()

    dialog = window.runs_dialog()  # owned by the window, deleted when it closes
    assert dialog.table.rowCount() == 1
    assert (
        dialog.table.item(0, 1).text() == "qt-tiny" and dialog.table.item(0, 3).text() == f"{stopped_at} / 50"
    )
    assert dialog.table.item(0, 5).text() == "stopped" and dialog.resume_button.isEnabled()

    states.clear()
    dialog.resume_button.click()  # the run goes on from its checkpoint, in the same folder
    qtbot.waitUntil(lambda: "running" in states, timeout=30_000)
    qtbot.waitUntil(
        lambda: (
            window.host.worker.session.trainer is not None
            and window.host.worker.session.trainer.step_count >= stopped_at + 2
        ),
        timeout=30_000,
    )
    assert window.host.worker.session.run_dir == run_dir
    states.clear()  # loading the run said "idle" before it said "running"
    window.host.submit("train_stop")
    qtbot.waitUntil(lambda: "idle" in states, timeout=30_000)
    steps = [r["step"] for r in read_metrics(run_dir)]
    assert steps == sorted(steps) and steps[-1] >= stopped_at + 2  # one run, continued, no step twice

    dialog = window.runs_dialog()  # owned by the window, deleted when it closes
    dialog.open_button.click()
    qtbot.waitUntil(
        lambda: window.model_info is not None and window.model_info.path == str(run_dir / "checkpoint"),
        timeout=30_000,
    )

    dialog = window.runs_dialog()  # owned by the window, deleted when it closes
    dialog._ask = lambda _text: False
    dialog.delete_button.click()
    assert run_dir.exists()  # answered No
    dialog._ask = lambda _text: True
    dialog.delete_button.click()
    assert not run_dir.exists() and dialog.table.rowCount() == 0
    dialog.close()
