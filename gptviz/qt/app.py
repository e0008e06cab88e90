"""The desktop app's entry point: QApplication, pyqtgraph options, the main window, a clean exit."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gptviz.resources import RESOURCES_DIR

STYLE_SHEET = RESOURCES_DIR / "style.qss"


def _needs_offscreen() -> bool:
    return sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


def configure_pyqtgraph() -> None:
    """Light background, antialiased curves, row-major images (query rows down, keys across)."""
    import pyqtgraph as pg

    pg.setConfigOptions(antialias=True, imageAxisOrder="row-major", background="w", foreground="#222222")


def create_application(argv: list[str] | None = None) -> Any:
    """The one QApplication (reused when a test or a caller already made it)."""
    if _needs_offscreen():
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication(["gptviz", *(argv or [])])
    if not isinstance(app, QApplication):
        raise RuntimeError(
            "a QCoreApplication without widgets is running; gptviz's window needs a QApplication"
        )
    app.setOrganizationName("gptviz")
    app.setApplicationName("gptviz")
    app.setApplicationDisplayName("gptviz")
    configure_pyqtgraph()
    if STYLE_SHEET.is_file():
        app.setStyleSheet(STYLE_SHEET.read_text(encoding="utf-8"))
    return app


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gptviz", description="Open the gptviz desktop app.")
    parser.add_argument("--open", dest="open_path", help="a checkpoint directory or corpus file to open")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    return parser


def _close_on_signals(window: Any) -> None:
    """Ctrl+C in the terminal or SIGTERM closes the window like the close button (settings saved, exit 0).

    Python runs signal handlers only between bytecodes, so a cheap timer gives it the chance while Qt waits.
    """
    import signal

    from PySide6.QtCore import QTimer

    def close(*_args: object) -> None:
        window.close()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, close)
        except (ValueError, OSError):  # not the main thread, or a platform without it
            return
    timer = QTimer(window)
    timer.setInterval(200)
    timer.timeout.connect(lambda: None)
    timer.start()


def _session_factory(device: str) -> Callable[[], Any]:
    """Build the Session in the worker thread: importing torch (about 1.5 s here) then happens while the
    window is already painted, not before it."""

    def factory() -> Any:
        from gptviz.engine.session import Session

        return Session(device=device)

    return factory


def main(argv: list[str] | None = None, session_factory: Callable[[], Any] | None = None) -> int:
    """Open the main window with the demo model, the built-in corpus and a default prompt; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = [a for a in argv if not a.startswith("-psn")]  # macOS Finder adds a process serial number
    args = build_parser().parse_args(argv)
    app = create_application()
    from gptviz.qt.main_window import MainWindow  # Qt, numpy and pyqtgraph: no torch yet

    window = MainWindow(session_factory or _session_factory(args.device), start=False)
    window.show()
    app.processEvents()  # the first paint, before torch loads
    window.host.start()  # the worker thread imports torch and builds the session while the window is up
    if args.open_path:
        window.open_path(Path(args.open_path))
    _close_on_signals(window)
    code = app.exec()
    window.host.shutdown(2000)
    return int(code)
