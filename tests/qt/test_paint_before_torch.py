"""The window paints before torch is imported: the app's start-up (issue 10: first paint <= 1.5 s) depends on
it, since importing torch alone takes about 1.5 s here. A fresh interpreter builds and shows the real main
window, without starting its worker, and reports whether torch got loaded on the way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CODE = """
import sys
from gptviz.qt.app import create_application
app = create_application()
from gptviz.qt.main_window import MainWindow
window = MainWindow(lambda: None, start=False)
window.show()
app.processEvents()
print("painted", window.isVisible(), "torch" in sys.modules)
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print("torch modules", len(loaded), loaded[:5])
"""


def test_main_window_shows_without_importing_torch(tmp_path: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", GPTVIZ_SETTINGS_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "painted True False" in done.stdout, done.stdout


def test_the_worker_still_builds_the_session_from_the_apps_factory() -> None:
    """The factory main() hands the window imports Session when it runs (in the worker thread)."""
    from gptviz.qt.app import _session_factory

    factory = _session_factory("cpu")
    session = factory()
    assert type(session).__name__ == "Session"
    assert session.info().name
