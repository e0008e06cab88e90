"""The worker runs typed commands by type and keeps the queueing rules; the host keeps one application state
(gptviz.qt.app_state) from the worker's words, and the window's status bar and buttons follow it."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from gptviz.qt import commands as cmd
from gptviz.qt.app_state import AppState, Running, TrainState
from gptviz.qt.worker import Worker
from gptviz.qt.worker_host import WorkerHost


@pytest.fixture
def host(qtbot):
    """A host whose worker thread is never started: submits only queue, results are fed by hand."""
    made = WorkerHost(lambda: None)
    yield made
    assert made.shutdown(100)


def test_every_command_type_has_a_handler():
    worker = Worker(lambda: None)
    missing = [kind.__name__ for kind in cmd.ALL_COMMANDS if not worker.handles(kind)]
    assert missing == []


def test_the_worker_skips_a_step_queued_before_a_new_prompt(qtbot, session_factory):
    """Run in this thread: the host's bookkeeping is done by hand, in the order a storm would leave it."""
    worker = Worker(session_factory)
    results: list[tuple[int, str, object]] = []
    worker.result.connect(lambda request, channel, payload: results.append((request, channel, payload)))
    worker.start()
    assert worker.session is not None
    results.clear()
    step, prompt = cmd.GenStep(), cmd.SetPrompt("Hello there")
    worker.newest.note(step, 1)
    worker.newest.note(prompt, 2)
    worker.run_command(1, step)  # a new prompt was asked for after it: moot
    assert results == [] and len(worker.session.generation_view().new_ids) == 0
    worker.run_command(2, prompt)
    assert [r[1] for r in results[:2]] == [cmd.SEQUENCE_REACHED, cmd.PLAY_STATE]
    assert results[0][2] == 2  # the worker says which sequence it holds before any view of it
    views = [p for _, ch, p in results if ch == cmd.GENERATION]
    assert (
        len(views) == 1
        and views[0].prompt_ids.tolist() == worker.session.tokenize("Hello there").ids.tolist()
    )
    worker.newest.note(cmd.GenStep(), 3)
    worker.run_command(3, cmd.GenStep())  # asked for after the prompt: runs
    assert len(worker.session.generation_view().new_ids) == 1
    # The Inspect command carries the pane's choices whole; the worker keeps the last one for the next steps.
    worker.newest.note(cmd.Inspect(mlp_layer=1, lens_position=0), 4)
    worker.run_command(4, cmd.Inspect(mlp_layer=1, lens_position=0))
    assert worker.inspection == cmd.Inspect(mlp_layer=1, lens_position=0)
    assert worker.training == TrainState.IDLE and worker.training == "idle"


def test_a_model_change_sets_the_cancel_events_of_the_analyses(host):
    patch_cancel, ig_cancel = threading.Event(), threading.Event()
    host.submit(cmd.Patch("a", "b", " c", " d", cancel=patch_cancel))
    host.submit(cmd.IntegratedGradients(5, cancel=ig_cancel))
    assert host.state.patching and host.state.running == Running.PATCHING
    host.submit(cmd.TrainStart())  # trains the model being analysed: nothing to cancel
    host.submit(cmd.SetPrompt("x"))
    assert not patch_cancel.is_set() and not ig_cancel.is_set()
    host.submit(cmd.NewModel("tiny"))
    assert patch_cancel.is_set() and ig_cancel.is_set()
    later = threading.Event()
    host.submit(cmd.Patch("a", "b", " c", " d", cancel=later))
    host.submit(cmd.TrainStart(preset="tiny"))  # a fresh model of its own
    assert later.is_set()


def test_the_host_drops_stale_results_and_views_of_an_old_sequence(host):
    shown: list[tuple[str, object]] = []
    host.resultReady.connect(lambda channel, payload: shown.append((channel, payload)))
    old, new = host.submit(cmd.Tokenize("a")), host.submit(cmd.Tokenize("ab"))
    host._on_result(old, cmd.TOKENS, "old tokens")
    host._on_result(new, cmd.TOKENS, "new tokens")
    assert shown == [(cmd.TOKENS, "new tokens")]
    prompt = host.submit(cmd.SetPrompt("hi"))
    assert host.sequence_behind()
    host._on_result(cmd.WORKER_ORIGIN, cmd.GENERATION, "view of the old prompt")
    host._on_result(prompt, cmd.SEQUENCE_REACHED, prompt)
    host._on_result(prompt, cmd.GENERATION, "view of the new prompt")
    assert not host.sequence_behind()
    assert shown[1:] == [(cmd.GENERATION, "view of the new prompt")]


def test_the_host_keeps_the_application_state_from_the_workers_words(host, qtbot):
    state = host.state
    seen: list[frozenset[str]] = []
    state.changed.connect(seen.append)
    host._on_result(cmd.WORKER_ORIGIN, cmd.MODEL, SimpleNamespace(name="qt-tiny (untrained)"))
    assert state.model_name == "qt-tiny (untrained)"
    host._on_activity("training step 3/10")
    host._on_result(1, cmd.TRAIN_STATE, TrainState.RUNNING)
    assert state.training == TrainState.RUNNING and state.running == Running.TRAINING and state.busy
    assert state.status_text() == "idle"  # the run's word ends the activity reported before it
    host._on_result(2, cmd.TRAIN_STATE, TrainState.PAUSED)
    assert state.running == Running.PAUSED and state.status_text() == "training paused" and not state.busy
    host._on_result(3, cmd.PLAY_STATE, True)
    assert state.playing and state.busy
    host._on_activity("generating")
    assert state.status_text() == "generating"
    host.submit(cmd.Patch("a", "b", " c", " d"))
    host._on_result(4, cmd.PATCH_ENDED, "cancelled: nothing was changed")
    assert not state.patching
    host.submit(cmd.Patch("a", "b", " c", " d"))
    assert state.patching
    host.worker.error.emit("patch", "a bug")  # no PATCH_ENDED after an unexpected error: the error ends it
    qtbot.waitUntil(lambda: not state.patching, timeout=5_000)
    assert {"model", "model_name"} <= seen[0] and frozenset({"training", "activity"}) in seen


def test_app_state_reports_only_what_changed(qtbot):
    state = AppState()
    seen: list[frozenset[str]] = []
    state.changed.connect(seen.append)
    assert state.update(playing=False, activity="") == frozenset()  # already so: no signal
    assert state.update(playing=True, activity="generating") == {"playing", "activity"}
    state.set_training("finished")  # each word of the worker counts, even one that changes nothing
    state.set_training("finished")
    assert seen == [{"playing", "activity"}, {"training", "activity"}, {"training", "activity"}]
    assert state.training == TrainState.FINISHED and state.running == Running.PLAYING
    state.update(downloading=True, playing=False)
    assert state.running == Running.DOWNLOADING
    with pytest.raises(AttributeError):
        state.update(runing=True)


def test_the_window_follows_the_state(main_window, qtbot):
    window = main_window
    state = window.host.state
    qtbot.waitUntil(lambda: window.activity_label.text() == "idle", timeout=20_000)
    state.update(playing=True)
    assert (
        window.generation_pane.play_button.isChecked()
        and window.generation_pane.play_button.text() == "Pause"
    )
    state.update(playing=False)
    assert not window.generation_pane.play_button.isChecked()
    state.set_training("paused")
    assert window.activity_label.text() == "training paused"
    assert window.training_pane.state == "paused" and window.training_pane.start_button.text() == "Resume"
    state.update(activity="saving the run's checkpoint")
    assert window.activity_label.text() == "saving the run's checkpoint"
    state.set_training("idle")
    assert window.activity_label.text() == "idle" and window.training_pane.start_button.text() == "Start"
    # The Activations pane's two choices travel whole in one Inspect; the worker keeps the last one.
    window.request_inspect(mlp_layer=1)
    window.request_inspect(lens_position=0)
    assert window.inspection == cmd.Inspect(mlp_layer=1, lens_position=0)
    qtbot.waitUntil(lambda: window.host.worker.inspection == cmd.Inspect(1, 0), timeout=20_000)
