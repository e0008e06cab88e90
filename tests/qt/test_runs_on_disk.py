"""A run started in the window is written to disk: the data folder's runs/, checkpoints at Pause, Stop and
close, and the Runs list reads it back."""

from __future__ import annotations

import datetime as dt
import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from gptviz.engine import runs  # noqa: E402
from gptviz.engine.rundir import read_metrics  # noqa: E402
from gptviz.errors import ConfigError  # noqa: E402
from gptviz.qt import commands as cmd  # noqa: E402


def _start(qtbot, window, settings):
    states = []
    window.host.resultReady.connect(lambda ch, p: states.append(p) if ch == "train_state" else None)
    window.host.submit(cmd.TrainStart(settings))
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
    window.host.submit(cmd.TrainPause())
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
    window.host.submit(cmd.TrainStart())  # resume
    qtbot.waitUntil(lambda: window.host.worker.session.trainer.step_count >= paused_at + 2, timeout=30_000)
    window.host.submit(cmd.TrainStop())
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
    window.host.submit(cmd.TrainStart(train_settings(steps=10_000, eval_freq=10_000)))
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
    window.host.submit(cmd.TrainStop())
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
    window.host.submit(cmd.TrainStop())
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


# ------------------------------------------------------------------------------ the reopen offer at launch


def _new_window(qtbot, session_factory):
    """A second launch: a new window over the same data folder, once its worker is ready (the offer is
    decided then)."""
    from gptviz.qt.main_window import MainWindow

    window = MainWindow(session_factory, startup_tokens=0)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.host.ready, timeout=30_000):
        window.show()
    return window


def _close(window):
    window.close()
    assert not window.host.is_running()


def _train_and_close(qtbot, session_factory, train_settings, steps=3):
    """A first launch that trains a few steps and is closed mid-run; the run directory."""
    window = _new_window(qtbot, session_factory)
    assert not window.reopen_offer.isVisible()  # an empty data folder: nothing to offer
    window.host.submit(cmd.TrainStart(train_settings(steps=10_000, eval_freq=10_000)))
    session = window.host.worker.session
    qtbot.waitUntil(
        lambda: session.trainer is not None and session.trainer.step_count >= steps, timeout=30_000
    )
    run_dir = session.run_dir
    _close(window)
    return run_dir


def test_a_run_closed_mid_training_is_offered_at_the_next_launch_and_reopen_loads_its_weights(
    qtbot, session_factory, train_settings
):
    from gptviz.engine.checkpoint import load_checkpoint

    run_dir = _train_and_close(qtbot, session_factory, train_settings)
    saved = runs.summarize(run_dir)
    assert saved.state == runs.CLOSED and saved.steps >= 3

    window = _new_window(qtbot, session_factory)
    offer = window.reopen_offer
    assert offer.isVisible() and offer.run.path == run_dir
    text = offer.label.text()
    assert "qt-tiny" in text and "was still training when gptviz was closed" in text
    assert f"step {saved.steps:,} of 10,000" in text
    for button in (offer.reopen_button, offer.resume_button, offer.runs_button, offer.dismiss_button):
        assert button.isVisible() and button.isEnabled()
    assert window.toolBarArea(offer) == Qt.ToolBarArea.TopToolBarArea  # a strip above the panes

    offer.reopen_button.click()
    assert not offer.isVisible()
    checkpoint = run_dir / "checkpoint"
    qtbot.waitUntil(
        lambda: window.model_info is not None and window.model_info.path == str(checkpoint), timeout=30_000
    )
    expected, meta = load_checkpoint(checkpoint)
    assert meta["step"] == saved.steps
    loaded = window.host.worker.session.model.state_dict()
    for name, tensor in expected.state_dict().items():
        assert torch.equal(loaded[name].cpu(), tensor), name  # the weights the close wrote, bit for bit
    _close(window)

    third = _new_window(qtbot, session_factory)  # answered: not offered twice
    assert not third.reopen_offer.isVisible() and runs.summarize(run_dir).offer_answered
    _close(third)


def test_a_run_cut_off_by_a_crash_is_offered_and_resume_trains_on_in_the_same_folder(
    qtbot, session_factory, train_settings
):
    # A crash: the run started and wrote a checkpoint (an evaluation, a pause), then the process died
    # without closing: window.json still says "running".
    session = session_factory()
    run_dir = session.start_window_run(train_settings(steps=50, eval_freq=1000))
    while session.trainer.step_count < 4:
        session.train_step()
    session.checkpoint_run()
    session.train_step()  # a step after the checkpoint: lost in the crash
    assert runs.summarize(run_dir).state == runs.RUNNING

    window = _new_window(qtbot, session_factory)
    offer = window.reopen_offer
    assert offer.isVisible() and "did not end cleanly" in offer.label.text()
    assert "newest checkpoint holds step 4 of 50" in offer.label.text()
    states = []
    window.host.resultReady.connect(lambda ch, p: states.append(p) if ch == "train_state" else None)
    offer.resume_button.click()
    assert not offer.isVisible()
    qtbot.waitUntil(lambda: "running" in states, timeout=30_000)
    worker_session = window.host.worker.session
    qtbot.waitUntil(
        lambda: worker_session.trainer is not None and worker_session.trainer.step_count >= 6, timeout=30_000
    )
    assert worker_session.run_dir == run_dir
    assert runs.summarize(run_dir).state == runs.RUNNING  # running again: a second crash is offered again
    states.clear()
    window.host.submit(cmd.TrainStop())
    qtbot.waitUntil(lambda: "idle" in states, timeout=30_000)
    assert runs.summarize(run_dir).state == runs.STOPPED
    _close(window)


def test_dismissing_the_offer_hides_it_for_good_and_a_stopped_run_is_only_noted(
    qtbot, session_factory, train_settings
):
    run_dir = _train_and_close(qtbot, session_factory, train_settings, steps=2)
    window = _new_window(qtbot, session_factory)
    offer = window.reopen_offer
    assert offer.isVisible()
    model_before = window.model_info.path
    offer.dismiss_button.click()
    assert not offer.isVisible() and runs.summarize(run_dir).offer_answered
    assert window.model_info.path == model_before  # dismissing loads nothing

    # A run the user stopped is not offered: the status bar names it instead.
    states = _start(qtbot, window, train_settings(steps=40, eval_freq=50))
    session = window.host.worker.session
    qtbot.waitUntil(lambda: session.trainer is not None and session.trainer.step_count >= 2, timeout=30_000)
    window.host.submit(cmd.TrainStop())
    qtbot.waitUntil(lambda: "idle" in states, timeout=30_000)
    _close(window)
    second = _new_window(qtbot, session_factory)
    assert not second.reopen_offer.isVisible()
    assert "File › Runs…" in second.statusBar().currentMessage()
    _close(second)


def test_a_run_another_live_process_is_training_is_not_offered(session_factory, train_settings):
    import subprocess
    import sys

    session = session_factory()
    run_dir = session.start_window_run(train_settings(steps=50, eval_freq=1000))
    session.train_step()
    session.checkpoint_run()
    assert runs.run_to_offer() is not None and runs.run_to_offer().path == run_dir  # our own pid: a crash
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        runs.mark_run(run_dir, runs.RUNNING)
        data = json.loads((run_dir / runs.WINDOW_FILE).read_text())
        (run_dir / runs.WINDOW_FILE).write_text(json.dumps({**data, "pid": other.pid}))
        assert runs.run_to_offer() is None  # another gptviz is training it now
    finally:
        other.kill()
        other.wait()
    assert runs.run_to_offer() is not None  # that process is gone: the run was cut off
    runs.mark_run(run_dir, runs.STOPPED)
    assert runs.run_to_offer() is None


def test_screenshot_train_steps_writes_its_run_to_the_data_folder(
    qtbot, session, tmp_path, train_settings, monkeypatch, _isolated_settings, capsys
):
    """`gptviz screenshot --train-steps N` trains through the window's own path: its run is in runs/ with
    the metrics of every step and a checkpoint of the last one, and the checkpoint it was given is
    untouched."""
    import argparse

    from gptviz.commands import screenshot
    from gptviz.engine.checkpoint import save_checkpoint
    from gptviz.qt.settings import ENV_SETTINGS_DIR

    source = tmp_path / "tiny"
    save_checkpoint(session.model, source, meta={"name": "tiny-shot"})
    before = {p.name: p.read_bytes() for p in source.iterdir() if p.is_file()}
    assert runs.list_runs() == []
    monkeypatch.setenv(ENV_SETTINGS_DIR, str(_isolated_settings))  # restored after the command sets it
    parser = argparse.ArgumentParser()
    screenshot.add_arguments(parser)
    args = parser.parse_args(
        ["--out", str(tmp_path / "shots"), "--checkpoint", str(source), "--train-steps", "3"]
        + ["--tokens", "1", "--timeout", "180"]
    )
    assert screenshot.run(args) == 0
    (run,) = runs.list_runs()
    assert run.path.parent == runs.runs_dir() and str(run.path) in capsys.readouterr().err
    assert run.has_checkpoint and run.steps == 3 and run.total_steps == 3 and run.finished
    assert run.state == runs.STOPPED  # ended by itself: nothing to offer at the next launch
    trained = [r["step"] for r in read_metrics(run.path) if "train_loss" in r]
    assert trained == [1, 2, 3]  # every step's record, once
    assert {p.name: p.read_bytes() for p in source.iterdir() if p.is_file()} == before


def test_closing_the_runs_dialog_while_its_delete_question_is_up_neither_crashes_nor_loses_the_answer(
    qtbot, main_window
):
    """Found by the GUI monkey: the Runs dialog deletes itself when closed, and the delete question was its
    child on Qt's stack, so closing the dialog under the question aborted the process (a double free)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    run = runs.new_run_dir("tiny", "corpus")
    run.mkdir(parents=True)
    (run / "settings.json").write_text('{"total_steps": 5, "corpus": {"name": "c"}}')
    dialog = main_window.runs_dialog()
    dialog.table.selectRow(0)
    closed = []

    def close_then_answer() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, close_then_answer)
            return
        dialog.close()  # WA_DeleteOnClose: deleted in this nested event loop
        closed.append(True)
        QTimer.singleShot(50, lambda: box.button(QMessageBox.StandardButton.Yes).click())

    QTimer.singleShot(20, close_then_answer)
    dialog.delete_selected()  # blocks in the question until the timers answer it
    assert closed and not run.exists()  # the dialog went away under the question; the Yes still deleted
