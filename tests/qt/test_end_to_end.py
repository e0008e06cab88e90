"""End to end, without a display: open the window, train through the worker, generate three tokens while
training runs, close during training -- the worker thread stops and nothing is left running."""

from __future__ import annotations

from gptviz.qt import commands as cmd


def test_train_generate_and_close_while_training(main_window, qtbot, train_settings):
    window = main_window
    qtbot.waitUntil(lambda: window.generation_pane.view is not None, timeout=20_000)
    training = window.training_pane
    window.host.submit(cmd.TrainStart(train_settings(steps=10_000, eval_freq=1_000)))
    qtbot.waitUntil(lambda: training.state == "running", timeout=20_000)
    qtbot.waitUntil(lambda: training.train_curve_data.n >= 3, timeout=60_000)

    # Generation interleaves with the queued training steps.
    for expected in (1, 2, 3):
        window.generation_pane.step_button.click()
        qtbot.waitUntil(lambda n=expected: len(window.generation_pane.view.new_ids) == n, timeout=30_000)
    view = window.generation_pane.view
    assert view.prompt_ids.tolist() == [6109, 3626, 6100, 345] and len(view.new_ids) == 3
    assert training.state == "running"  # still training after the three tokens

    # The curves are drawn from the redraw timer, one point a step.
    qtbot.waitUntil(lambda: training.train_curve.getData()[0] is not None, timeout=5_000)
    qtbot.waitUntil(lambda: len(training.train_curve.getData()[0]) >= 3, timeout=5_000)
    steps = training.train_curve.getData()[0]
    assert steps.tolist() == list(range(1, len(steps) + 1))
    assert window.progress.maximum() == 10_000  # the status bar's progress bar follows the run

    window.close()
    assert not window.host.is_running()
    assert window.host.worker.training == "idle"


SCRIPT = r"""
import os, sys, time
import torch
from PySide6.QtWidgets import QApplication
from gptviz.config import GPTConfig
from gptviz.engine.session import Session
from gptviz.engine.train_settings import TrainSettings
from gptviz.model.gpt import GPTModel
from gptviz.qt import app as gui
from gptviz.qt import commands as cmd

cfg = GPTConfig(context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)
factory = lambda: Session(model=GPTModel(cfg), corpus=sys.argv[1])
from gptviz.qt import main_window

class ClosingWindow(main_window.MainWindow):
    def _on_ready(self):
        super()._on_ready()
        self.host.submit(cmd.TrainStart(TrainSettings(steps=100000, batch_size=2, context=16,
                                                                     eval_freq=100000, eval_iter=1, device="cpu")))
    def _on_result(self, channel, payload):
        super()._on_result(channel, payload)
        if channel == cmd.TRAINING and payload.step == 2:
            self.closed_at = time.perf_counter()
            self.close()
    def closeEvent(self, event):
        super().closeEvent(event)
        print(f"worker stopped {not self.host.is_running()} after {time.perf_counter() - self.closed_at:.2f} s")

main_window.MainWindow = ClosingWindow
sys.exit(gui.main([], session_factory=factory))
"""


def test_closing_during_training_exits_zero(tmp_path, small_corpus):
    import os
    import subprocess
    import sys

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", GPTVIZ_SETTINGS_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, small_corpus], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "worker stopped True" in done.stdout
