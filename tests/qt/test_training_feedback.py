"""Training tells the user what it does: Start says so at once and shows the run's steps on the axis,
paused reads as paused, Stop takes the progress bar down, and the status bar names the trained model."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication

from gptviz.qt import commands as cmd


def _start(window, qtbot, settings):
    pane = window.training_pane
    pane.apply_settings(settings)
    pane.model_choice.setCurrentIndex(0)
    pane._on_start()


def test_start_says_what_it_does_before_the_first_step(main_window, qtbot, train_settings):
    window = main_window
    pane = window.training_pane
    sent = []
    pane.startRequested.connect(lambda settings, preset: sent.append(settings))
    original = window.host.submit
    window.host.submit = lambda *a, **k: 0  # nothing reaches the worker: only what Start shows at once
    try:
        _start(window, qtbot, train_settings(steps=40, eval_freq=10))
    finally:
        window.host.submit = original
    assert sent and sent[0].steps == 40
    assert pane.message.text().startswith("starting:") and "first step" in pane.message.text()
    assert pane.progress.text() == "starting…"
    (x0, x1), _ = pane.plot.getViewBox().viewRange()
    assert -2 <= x0 <= 0 and 40 <= x1 <= 42  # the run's steps, not -1..1 or -200..200


def test_start_names_each_phase_and_shows_the_untrained_validation_loss_first(
    main_window, qtbot, train_settings
):
    """After Start the worker says what it does (tokenizing, evaluating the untrained model, saving, first
    step), and the first update is step 0: the untrained model's losses, before any step has run."""

    window = main_window
    pane = window.training_pane
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=20_000)
    phases, updates, shown = [], [], []
    window.host.resultReady.connect(lambda ch, p: phases.append(p) if ch == cmd.TRAIN_PHASE else None)
    window.host.resultReady.connect(lambda ch, p: updates.append(p) if ch == cmd.TRAINING else None)
    window.host.resultReady.connect(
        lambda ch, p: shown.append(pane.message.text()) if ch == cmd.TRAIN_PHASE else None
    )
    _start(window, qtbot, train_settings(steps=3, eval_freq=3))
    qtbot.waitUntil(lambda: len(updates) >= 2, timeout=60_000)
    assert phases[0].startswith("tokenizing ") and phases[0].endswith(" tokens into windows")
    assert phases[1:] == ["evaluating the untrained model", "saving the first checkpoint", "first step"]
    assert shown[-1] == "starting: first step…"  # the notice follows the phases
    first = updates[0].result
    assert first.step == 0 and first.val_loss is not None and first.train_eval_loss is not None
    assert updates[1].result.step == 1
    window.host.submit(cmd.TrainStop())
    qtbot.waitUntil(lambda: pane.state == "idle", timeout=20_000)


def test_paused_is_shown_as_paused_and_stop_clears_the_bar_and_names_the_model(
    main_window, qtbot, train_settings
):
    window = main_window
    pane = window.training_pane
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=20_000)
    _start(window, qtbot, train_settings(steps=500, eval_freq=400))
    qtbot.waitUntil(lambda: pane.latest is not None and pane.latest["step"] >= 2, timeout=60_000)
    assert not pane.message.text().startswith("starting")  # the first step replaced the notice
    window.host.submit(cmd.TrainPause())
    qtbot.waitUntil(lambda: pane.state == "paused", timeout=20_000)
    # The worker may first say what it does on pausing (saving the run's checkpoint), then goes quiet.
    qtbot.waitUntil(lambda: window.activity_label.text() == "training paused", timeout=20_000)
    assert pane.message.text().startswith("paused")
    window.host.submit(cmd.TrainStop())
    qtbot.waitUntil(lambda: pane.state == "idle", timeout=20_000)
    QApplication.processEvents()
    assert window.progress.isHidden()
    steps = pane.latest["step"]
    assert f"trained {steps:,} steps on" in window.model_label.text()
    assert "(untrained)" not in window.model_label.text()
