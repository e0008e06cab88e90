"""Run the desktop app (`gptviz.qt.app.main`, what `gptviz` with no command runs), print when its main window
first paints and when its worker reports the model ready, then quit. Used by the start-up benchmark:

    python -m gptviz.bench.startup_probe     ->  "painted <epoch s>" and "ready <epoch s>" on stdout

Only the standard library is imported before the app's own imports, so the timing is the app's. The
QApplication is created here first (the app's `create_application` reuses it) so that an event filter can
watch for the first paint of the main window.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:  # only the standard library before the app's imports: the window's class is for the checker
    from gptviz.qt.main_window import MainWindow


def main() -> int:
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication, QMainWindow

    app = QApplication.instance() or QApplication(["gptviz"])
    marks: dict[str, float] = {}

    def mark(name: str) -> None:
        if name in marks:
            return
        marks[name] = time.time()
        print(f"{name} {marks[name]:.6f}", flush=True)
        if "painted" in marks and "ready" in marks:
            QTimer.singleShot(0, app.quit)

    class Watcher(QObject):
        def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
            if isinstance(obj, QMainWindow):
                kind = event.type()
                if kind == QEvent.Type.Show and "shown" not in marks:
                    marks["shown"] = time.time()
                    window = cast("MainWindow", obj)  # the app's only main window
                    window.host.ready.connect(lambda: mark("ready"))  # queued: lands in the event loop
                elif kind == QEvent.Type.Paint:
                    mark("painted")
            return False

    watcher = Watcher()
    app.installEventFilter(watcher)
    QTimer.singleShot(120_000, app.quit)  # never hang a benchmark
    from gptviz.qt.app import main as app_main

    code = app_main([])
    if "painted" not in marks or "ready" not in marks:
        print(f"missing {sorted({'painted', 'ready'} - set(marks))}", file=sys.stderr, flush=True)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
