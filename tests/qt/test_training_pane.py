"""Training pane: curves get one point a step through the worker; probes feed the time-lapse; runs can be followed."""

from __future__ import annotations

import numpy as np
import pytest

from gptviz.data import split_ids
from gptviz.engine.trainer import Trainer
from gptviz.qt import worker as w
from gptviz.qt.panes.training import CurveBuffer, TrainingPane, format_duration
from gptviz.qt.worker import WorkerHost


@pytest.fixture
def pane(qtbot):
    widget = TrainingPane()
    widget.resize(1000, 700)
    qtbot.addWidget(widget)
    widget.show()
    return widget


def test_curve_buffer_grows_without_losing_points():
    buffer = CurveBuffer(capacity=4)
    for i in range(11):
        buffer.append(i, 10.0 - i)
    x, y = buffer.view()
    assert x.tolist() == list(range(11)) and y[-1] == 0.0 and buffer.x.shape[0] == 16
    assert format_duration(3725) == "1:02:05"


def test_curves_after_training_steps_through_the_worker(pane, qtbot, session_factory, train_settings):
    host = WorkerHost(session_factory)
    states = []
    host.resultReady.connect(lambda ch, p: pane.add_update(p) if ch == w.TRAINING else None)
    host.resultReady.connect(lambda ch, p: states.append(p) if ch == w.TRAIN_STATE else None)
    pane.startRequested.connect(lambda settings, preset: host.submit("train_start", settings=settings))
    try:
        with qtbot.waitSignal(host.ready, timeout=30_000):
            host.start()
        settings = train_settings(steps=5, eval_freq=2)
        pane.startRequested.emit(settings, "")
        qtbot.waitUntil(lambda: "finished" in states, timeout=60_000)
    finally:
        assert host.shutdown(5000)
    pane.refresh()
    x, y = pane.train_curve.getData()
    assert x.tolist() == [1, 2, 3, 4, 5]
    assert np.all(np.isfinite(y)) and abs(y[0] - np.log(50257)) < 0.5  # an untrained model starts near ln V
    # evaluations at steps 1, 2, 4 and the last one
    assert pane.val_curve.getData()[0].tolist() == [1, 2, 4, 5]
    assert pane.point_counts() == {"train": 5, "train_eval": 4, "val": 4}
    # probes: the untrained one (step 0) plus one per evaluation
    assert [p.step for p in pane.probes] == [0, 1, 2, 4, 5]
    assert pane.slider.maximum() == 4
    assert pane.stats["step"].text() == "5 / 5"
    assert pane.progress.value() == 5
    assert pane.heatmap.matrix.shape == (4, 4)  # "Every effort moves you": 4 tokens


def test_time_lapse_slider_shows_an_earlier_probe(pane, session, train_settings):
    session.start_training(train_settings(steps=2, eval_freq=1))
    for _ in range(2):
        pane.add_update(session.train_step())
    pane.refresh()
    pane.slider.setValue(0)
    assert pane.probe_label.text().startswith("probe 1 of 3 · step 0")
    assert not pane.follow_latest.isChecked()
    expected = pane.probes[0].attention[1, 2]  # (T, T)
    pane.layer.setValue(1)
    pane.head.setValue(2)
    np.testing.assert_allclose(pane.heatmap.matrix, expected)


def test_following_a_run_directory(pane, session, tmp_path, train_settings):
    run = tmp_path / "run"
    train_ids, val_ids = split_ids(session.corpus_ids, 0.1)
    trainer = Trainer(
        session.model,
        session.tokenizer,
        train_ids,
        val_ids,
        train_settings(steps=3, eval_freq=2),
        run,
        corpus={"name": "small", "source": session.corpus.path},
    )
    for _ in range(3):
        trainer.step()
    trainer.close()
    follower = session.follow_run(run)
    batch = session.poll_run(follower)
    pane.set_following(str(run))
    pane.add_follow(batch)
    pane.refresh()
    assert pane.train_curve.getData()[0].tolist() == [1, 2, 3]
    assert pane.val_curve.getData()[0].tolist() == [1, 2, 3]
    assert [p.step for p in pane.probes] == [0, 1, 2, 3]
    assert not pane.start_button.isEnabled()
    assert session.poll_run(follower) is None  # nothing new


# ------------------------------------------------------------------------------ the loaded model's history


def _packed_run(session, tmp_path, train_settings):
    """A run trained by the Trainer, packed like `make demo-model` (weights + metrics + settings + probes)."""
    import shutil

    run = tmp_path / "run"
    train_ids, val_ids = split_ids(session.corpus_ids, 0.1)
    corpus = {"name": "small.txt", "source": session.corpus.path}
    settings = train_settings(steps=3, eval_freq=2)
    trainer = Trainer(session.model, session.tokenizer, train_ids, val_ids, settings, run, corpus=corpus)
    for _ in range(3):
        trainer.step()
    trainer.close()
    demo = tmp_path / "demo"
    demo.mkdir()
    for name in ("model.safetensors", "config.json"):
        shutil.copy(run / "checkpoint" / name, demo / name)
    for name in ("metrics.jsonl", "settings.json"):
        shutil.copy(run / name, demo / name)
    shutil.copytree(run / "probes", demo / "probes")
    return run, demo


def test_the_app_opens_with_the_demo_models_history_then_a_new_run_replaces_it(
    qtbot, session, small_corpus, tmp_path, train_settings
):
    from gptviz.engine.session import Session
    from gptviz.qt.main_window import MainWindow

    _run, demo = _packed_run(session, tmp_path, train_settings)
    window = MainWindow(lambda: Session(demo_dir=demo, corpus=small_corpus), startup_tokens=0)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.host.ready, timeout=30_000):
        window.show()
    pane = window.training_pane
    try:
        qtbot.waitUntil(lambda: pane.history is not None, timeout=20_000)
        window.redraw()
        assert pane.point_counts() == {"train": 3, "train_eval": 3, "val": 3}
        assert pane.train_curve.getData()[0].tolist() == [1, 2, 3]
        assert pane.slider.maximum() == 3 and len(pane.probes) == 4  # probes at steps 0, 1, 2, 3
        assert pane.probe_label.text().startswith("probe 4 of 4 · step 3")
        assert pane.heatmap.matrix.shape == (4, 4)
        assert pane.history == "history of demo: 3 steps on small.txt"
        assert pane.history_label.isVisible() and "history of demo" in pane.history_label.text()
        assert pane.stats["step"].text() == "3 / 3"
        # Read once: nothing polls the static folder.
        assert not window.follow_timer.isActive() and window.watcher.files() == []
        assert pane.start_button.isEnabled()

        # Start a new run from the pane: the history goes, the new run is plotted from step 1.
        pane.steps.setValue(2)
        pane.batch_size.setValue(2)
        pane.context.setValue(16)
        pane.eval_freq.setValue(1)
        pane.eval_iter.setValue(1)
        pane.start_button.click()
        assert pane.history is None and not pane.history_label.isVisible()
        qtbot.waitUntil(lambda: pane.state == "running", timeout=20_000)
        qtbot.waitUntil(lambda: pane.state == "idle", timeout=60_000)
        window.redraw()
        assert pane.train_curve.getData()[0].tolist() == [1, 2]
        assert [p.step for p in pane.probes] == [0, 1, 2] and pane.slider.maximum() == 2
        assert pane.stats["step"].text() == "2 / 2"
        assert window.errors == []
    finally:
        window.close()


def test_opening_a_finished_run_directory_shows_its_history_without_following(
    main_window, qtbot, session, tmp_path, train_settings
):
    run, _demo = _packed_run(session, tmp_path, train_settings)
    window = main_window
    pane = window.training_pane
    qtbot.waitUntil(lambda: window.generation_pane.view is not None, timeout=20_000)
    assert pane.history is None  # the injected model has no record
    window.open_path(run)
    qtbot.waitUntil(lambda: pane.history is not None, timeout=20_000)
    window.redraw()
    assert pane.history == "history of run: 3 steps on small.txt"
    assert pane.train_curve.getData()[0].tolist() == [1, 2, 3] and pane.slider.maximum() == 3
    assert window.model_info.source == "checkpoint" and pane.following is None
    assert not window.follow_timer.isActive()
    # A model without a record (a new preset) takes the history down.
    window.host.submit("new_model", preset="tiny")
    qtbot.waitUntil(lambda: pane.history is None, timeout=30_000)
    window.redraw()
    assert pane.point_counts() == {"train": 0, "train_eval": 0, "val": 0} and pane.slider.maximum() == 0


def test_a_probe_of_only_newlines_and_spaces_stays_visible(pane):
    from gptviz.engine.probe import ProbeRecord

    probe = ProbeRecord(
        step=0,
        tokens_seen=0,
        prompt="Every effort moves you",
        prompt_ids=(6109, 3626, 6100, 345),
        prompt_pieces=("Every", " effort", " moves", " you"),
        sample_ids=(198, 198, 220),
        sample_text="\n\n  x",
        top_ids=(198,),
        top_pieces=("\n",),
        top_probs=(0.5,),
        attention=None,
    )
    pane.probes = [probe]
    pane._dirty = True
    pane.refresh()
    text = pane.sample.toPlainText().split("next token")[0]
    # HTML would have collapsed them to nothing; the run of two newlines breaks the line once.
    assert text.strip("\n") == "Every effort moves you↵↵\n  x"
