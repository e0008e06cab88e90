"""Training pane: curves get one point a step through the worker; probes feed the time-lapse; runs can be followed."""

from __future__ import annotations

import numpy as np
import pytest

from gptviz.data import split_ids
from gptviz.engine.human_units import format_duration
from gptviz.engine.trainer import Trainer
from gptviz.qt import commands as cmd
from gptviz.qt.panes.training import CurveBuffer, TrainingPane, history_settings
from gptviz.qt.worker_host import WorkerHost


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


def test_refresh_redraws_only_the_curves_that_changed(pane, monkeypatch):
    calls = {"train": 0, "val": 0}
    monkeypatch.setattr(
        pane.train_curve, "setData", lambda *a, **k: calls.__setitem__("train", calls["train"] + 1)
    )
    monkeypatch.setattr(pane.val_curve, "setData", lambda *a, **k: calls.__setitem__("val", calls["val"] + 1))
    pane.train_curve_data.append(1, 5.0)
    pane.val_curve_data.append(1, 4.0)
    pane._dirty = True
    pane.refresh()
    assert calls == {"train": 1, "val": 1}
    pane.train_curve_data.append(2, 4.5)  # a step without an evaluation
    pane._dirty = True
    pane.refresh()
    assert calls == {"train": 2, "val": 1}
    pane.val_curve_data.clear()  # a new run: the cleared curve is redrawn empty
    pane._dirty = True
    pane.refresh()
    assert calls == {"train": 2, "val": 2}


def test_evaluation_markers_go_when_the_curve_gets_long(pane):
    from gptviz.qt.panes.training import MAX_MARKED_POINTS

    for step in range(1, MAX_MARKED_POINTS + 1):
        pane.val_curve_data.append(step, 3.0)
    pane._dirty = True
    pane.refresh()
    assert pane.val_curve.opts["symbol"] == "o"
    pane.val_curve_data.append(MAX_MARKED_POINTS + 1, 3.0)
    pane._dirty = True
    pane.refresh()
    assert pane.val_curve.opts["symbol"] is None
    assert len(pane.val_curve.getData()[0]) == MAX_MARKED_POINTS + 1


def test_curves_after_training_steps_through_the_worker(pane, qtbot, session_factory, train_settings):
    host = WorkerHost(session_factory)
    states = []
    host.resultReady.connect(lambda ch, p: pane.add_update(p) if ch == cmd.TRAINING else None)
    host.resultReady.connect(lambda ch, p: states.append(p) if ch == cmd.TRAIN_STATE else None)
    pane.startRequested.connect(lambda settings, preset: host.submit(cmd.TrainStart(settings)))
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
    # evaluations of the untrained model (step 0), at steps 1, 2, 4 and the last one
    assert pane.val_curve.getData()[0].tolist() == [0, 1, 2, 4, 5]
    assert pane.point_counts() == {"train": 5, "train_eval": 5, "val": 5}
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
    assert pane.val_curve.getData()[0].tolist() == [0, 1, 2, 3]  # 0: the untrained model
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
        assert pane.point_counts() == {"train": 3, "train_eval": 4, "val": 4}  # + the untrained model
        assert pane.train_curve.getData()[0].tolist() == [1, 2, 3]
        assert pane.slider.maximum() == 3 and len(pane.probes) == 4  # probes at steps 0, 1, 2, 3
        assert pane.probe_label.text().startswith("probe 4 of 4 · step 3")
        assert pane.heatmap.matrix.shape == (4, 4)
        assert pane.history == "history of demo: 3 steps on small.txt"
        assert pane.history_label.isVisible() and "history of demo" in pane.history_label.text()
        assert pane.stats["step"].text() == "3 / 3"
        # Read once: nothing polls the static folder.
        assert not window.opener.follow_timer.isActive() and window.opener.watcher.files() == []
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
    # the controls show the settings that run was trained with (train_settings(steps=3, eval_freq=2))
    assert (pane.steps.value(), pane.batch_size.value(), pane.context.value()) == (3, 2, 16)
    assert (pane.eval_freq.value(), pane.eval_iter.value()) == (2, 1)
    assert pane.train_curve.getData()[0].tolist() == [1, 2, 3] and pane.slider.maximum() == 3
    assert window.model_info.source == "checkpoint" and pane.following is None
    assert not window.opener.follow_timer.isActive()
    # A model without a record (a new preset) takes the history down.
    window.host.submit(cmd.NewModel("tiny"))
    qtbot.waitUntil(lambda: pane.history is None, timeout=30_000)
    window.redraw()
    assert pane.point_counts() == {"train": 0, "train_eval": 0, "val": 0} and pane.slider.maximum() == 0


def _history(run_dir, train: dict | None, total_steps: int = 600):
    """A recorded run on disk (settings.json with `train`, two metrics records) and its FollowBatch."""
    from gptviz.engine.rundir import write_settings
    from gptviz.engine.views import FollowBatch

    run_dir.mkdir()
    if train is not None:
        write_settings(run_dir, {"train": train, "total_steps": total_steps})
    records = (
        {"step": 1, "tokens_seen": 64, "train_loss": 10.0},
        {"step": 2, "tokens_seen": 128, "train_loss": 9.0, "val_loss": 9.5, "train_eval_loss": 9.2},
    )
    return FollowBatch(str(run_dir), records, (), False, total_steps, label="history of demo: 2 steps")


def test_a_shown_history_fills_the_settings_it_was_trained_with(pane, tmp_path):
    train = {
        "lr": 0.002,
        "weight_decay": 0.05,
        "batch_size": 8,
        "context": None,
        "stride": 32,
        "steps": 600,
        "epochs": None,
        "eval_freq": 50,
        "eval_iter": 5,
        "val_ratio": 0.2,
        "seed": 7,
        "warmup_steps": 50,
        "cosine": True,
        "probe_prompt": "The for statement",
        "a_setting_from_a_newer_version": 1,
    }
    pane.cosine.setChecked(False)
    pane.model_choice.setCurrentIndex(2)
    pane.set_history(_history(tmp_path / "run", train))
    assert pane.history == "history of demo: 2 steps"
    shown = pane.settings()
    assert (shown.steps, shown.batch_size, shown.context, shown.stride) == (600, 8, None, 32)
    assert (shown.lr, shown.weight_decay, shown.warmup_steps, shown.cosine) == (0.002, 0.05, 50, True)
    assert (shown.eval_freq, shown.eval_iter, shown.val_ratio, shown.seed) == (50, 5, 0.2, 7)
    assert shown.probe_prompt == "The for statement"
    assert pane.model_choice.currentIndex() == 0  # Start goes on training the model this history belongs to
    assert "with its settings" in pane.history_label.text()


def test_a_history_without_readable_settings_leaves_the_controls_alone(pane, tmp_path):
    pane.batch_size.setValue(3)
    pane.set_history(_history(tmp_path / "bare", None))  # curves but no settings.json
    assert pane.history is not None and pane.batch_size.value() == 3
    assert "with its settings" not in pane.history_label.text()
    assert history_settings(str(tmp_path / "bare")) is None
    assert history_settings(str(tmp_path / "missing")) is None
    # an epoch-counted run shows its total steps; nonsense values are refused, not shown
    (tmp_path / "epochs").mkdir()
    from gptviz.engine.rundir import write_settings

    write_settings(tmp_path / "epochs", {"train": {"steps": None, "epochs": 2}, "total_steps": 244})
    assert history_settings(str(tmp_path / "epochs")).steps == 244
    (tmp_path / "bad").mkdir()
    write_settings(tmp_path / "bad", {"train": {"batch_size": -1}})
    assert history_settings(str(tmp_path / "bad")) is None


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
