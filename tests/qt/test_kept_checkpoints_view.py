"""The Training pane's Checkpoints tab: the time slider lists a run's kept steps and loads exactly the
kept weights into the window's model; A vs B shows each step's attention and their difference."""

from __future__ import annotations

import numpy as np
import torch

from gptviz.config import GPTConfig
from gptviz.engine.checkpoint import load_checkpoint
from gptviz.engine.kept_checkpoints import KEEP_ALL, compare_on_prompt, keep_checkpoint, list_kept
from gptviz.engine.rundir import JsonlWriter, metrics_path
from gptviz.model.gpt import GPTModel
from gptviz.qt.panes.training import TrainingPane

QT_TINY = GPTConfig(vocab_size=50257, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)


def _kept_run(run_dir, steps=(2, 4, 6)):
    torch.manual_seed(5)
    model = GPTModel(QT_TINY)
    for step in steps:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)  # (same shape) the weights move between evaluations
        keep_checkpoint(model, run_dir, step, KEEP_ALL, meta={"name": "kept"})
    writer = JsonlWriter(metrics_path(run_dir))
    for step in range(7):  # the run's record: a loss a step
        writer.write(
            {"step": step, "tokens_seen": 64 * step, "train_loss": 10.0 - step, "val_loss": 10.5 - step}
        )
    writer.close()
    return run_dir


def test_the_slider_loads_exactly_the_kept_weights(main_window, qtbot, tmp_path):
    run = _kept_run(tmp_path / "run")
    pane = main_window.training_pane
    view = pane.kept_view
    pane.set_run_dir(str(run))
    pane.views.setCurrentWidget(view)
    assert [k.step for k in view.kept] == [2, 4, 6] and view.slider.maximum() == 2
    assert view.step_label.text() == "step 6 (3/3)"  # the newest first
    assert (view.layer.maximum(), view.head.maximum()) == (QT_TINY.n_layers - 1, QT_TINY.n_heads - 1)
    view.select_step(4)
    view.slider.sliderReleased.emit()  # letting go of the slider loads the step
    kept = list_kept(run)[1].path
    session = main_window.host.worker.session
    qtbot.waitUntil(lambda: session.model_path == str(kept), timeout=20_000)
    qtbot.waitUntil(lambda: main_window.model_info is not None and main_window.model_info.path == str(kept))
    expected, _ = load_checkpoint(kept)
    loaded = session.model.state_dict()
    for key, tensor in expected.state_dict().items():
        assert torch.equal(loaded[key].cpu(), tensor), key
    # The pane shows the run's history up to the kept step (the model as it was then); the slider stays.
    qtbot.waitUntil(lambda: pane.history is not None, timeout=10_000)
    assert pane.train_curve_data.view()[0].tolist() == [0, 1, 2, 3, 4]  # not 5 and 6
    assert view.run_dir == str(run) and len(view.kept) == 3 and view.selected().step == 4
    # While a run trains in the window, loading would replace its model: refused, said so.
    pane.app_state.set_training("running")  # the worker's word, as the pane observes it
    assert not view.load_button.isEnabled()
    view.load_selected()
    assert "stop it" in view.status.text()
    pane.app_state.set_training("idle")
    main_window.generation_pane.prompt.setText("The cat sat")
    assert view.prompt.text() == "The cat sat"  # A vs B follows the window's prompt


def test_a_vs_b_shows_each_steps_attention_and_their_difference(qtbot, tmp_path):
    run = _kept_run(tmp_path / "run")
    pane = TrainingPane()
    qtbot.addWidget(pane)
    view = pane.kept_view
    pane.set_run_dir(str(run))
    view.step_a.setCurrentIndex(0)
    view.step_b.setCurrentIndex(2)
    view.layer.setValue(1)
    view.head.setValue(3)
    view.prompt.setText("Every effort moves you forward")
    view.compare()
    assert not view.compare_button.isEnabled()  # one comparison at a time
    qtbot.waitUntil(lambda: not view.busy() and view.comparison is not None, timeout=20_000)
    kept = list_kept(run)
    expected = compare_on_prompt(kept[0], kept[2], "Every effort moves you forward", 1, 3)
    np.testing.assert_array_equal(view.map_a.matrix, expected.a)
    np.testing.assert_array_equal(view.map_b.matrix, expected.b)
    np.testing.assert_array_equal(view.map_diff.matrix, (expected.a - expected.b).astype(np.float32))
    assert view.map_a.row_labels[1] == "·effort"
    bound = float(np.abs(expected.diff).max())
    assert view.map_diff.levels == (-bound, bound)
    assert "A = step 2, B = step 6" in view.status.text()


def test_a_run_without_kept_checkpoints_says_how_to_keep_them(qtbot, tmp_path):
    pane = TrainingPane()
    qtbot.addWidget(pane)
    pane.set_run_dir(str(tmp_path))
    view = pane.kept_view
    assert view.kept == [] and "--keep-checkpoints" in view.header.text()
    assert not view.load_button.isEnabled() and not view.compare_button.isEnabled()
    view.load_selected()
    view.compare()  # nothing to do, nothing breaks
    assert not view.busy()
