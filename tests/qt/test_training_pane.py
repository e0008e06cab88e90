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
