"""Qt test fixtures: offscreen, settings in a temporary folder, tiny models, and a guard that fails a test
which leaves a QThread running (a leaked worker would keep the model alive and crash at exit)."""

from __future__ import annotations

import os
import weakref

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before anything imports Qt

import pytest  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import QThread  # noqa: E402

from gptviz.config import GPTConfig  # noqa: E402
from gptviz.data import builtin_text  # noqa: E402
from gptviz.model.gpt import GPTModel  # noqa: E402
from gptviz.qt.app import configure_pyqtgraph  # noqa: E402
from gptviz.qt.settings import ENV_SETTINGS_DIR, use_settings_dir  # noqa: E402

QT_TINY = GPTConfig(
    vocab_size=50257, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0, name="qt-tiny"
)

_started_threads: list[weakref.ref] = []
_original_start = QThread.start


def _recording_start(self, *args, **kwargs):
    _started_threads.append(weakref.ref(self))
    return _original_start(self, *args, **kwargs)


QThread.start = _recording_start


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path_factory, monkeypatch):
    """Every test gets its own QSettings folder: the user's settings are never read or written."""
    folder = tmp_path_factory.mktemp("settings")
    monkeypatch.setenv(ENV_SETTINGS_DIR, str(folder))
    use_settings_dir(folder)
    configure_pyqtgraph()
    yield folder


@pytest.fixture(autouse=True)
def _no_thread_left_running():
    """Fail the test if a QThread it started is still running at its end (and stop it, so others run)."""
    _started_threads.clear()
    yield
    leaked = []
    for ref in _started_threads:
        thread = ref()
        try:
            running = thread is not None and thread.isRunning()
        except RuntimeError:  # the C++ object is gone: it was deleted, so it is not running
            running = False
        if running:
            leaked.append(thread.objectName() or repr(thread))
            thread.quit()
            thread.wait(10_000)
    _started_threads.clear()
    if leaked:
        pytest.fail(f"test left QThread(s) running: {', '.join(leaked)}")


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> str:
    """About 12k tokens of the built-in corpus: enough windows for a batch, fast to tokenize."""
    path = tmp_path_factory.mktemp("corpus") / "small.txt"
    path.write_text(builtin_text()[:50_000], encoding="utf-8")
    return str(path)


@pytest.fixture
def session_factory(small_corpus):
    """Builds a Session with a seeded tiny model (no demo checkpoint needed)."""
    from gptviz.engine.session import Session

    def factory():
        torch.manual_seed(0)
        return Session(model=GPTModel(QT_TINY), corpus=small_corpus)

    return factory


@pytest.fixture
def session(session_factory):
    return session_factory()


@pytest.fixture
def train_settings():
    """Tiny, fast training settings for the Qt tests: train_settings(steps=3, eval_freq=2)."""
    from gptviz.engine.train_settings import TrainSettings

    def make(steps: int = 3, eval_freq: int = 2) -> TrainSettings:
        return TrainSettings(
            steps=steps,
            batch_size=2,
            context=16,
            eval_freq=eval_freq,
            eval_iter=1,
            probe_tokens=2,
            device="cpu",
        )

    return make


@pytest.fixture
def main_window(qtbot, session_factory):
    from gptviz.qt.main_window import MainWindow

    window = MainWindow(session_factory, startup_tokens=0)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.host.ready, timeout=30_000):
        window.show()
    yield window
    if window.host.is_running():
        window.close()
    assert not window.host.is_running()


@pytest.fixture
def training_pane(qtbot):
    """The Training pane alone, shown at 1000 x 700: for the views that live on its tabs."""
    from gptviz.qt.panes.training import TrainingPane

    pane = TrainingPane()
    qtbot.addWidget(pane)
    pane.resize(1000, 700)
    pane.show()
    return pane
