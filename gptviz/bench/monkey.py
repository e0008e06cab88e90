"""GUI monkey (a stress run, not a test): the real main window, offscreen, gets seeded random input while a
training run and Play run, and must never raise, warn about a deleted Qt object, or stall.

    python -m gptviz.bench.monkey --minutes 10 --seed 1 [--json]

Input, drawn from one `random.Random(seed)`: clicks (left, right, double) at random points of random visible
widgets; keys sent to the focused widget, among them every action's shortcut (Quit's aside); wheel turns
and drags on the plots; spin-box, combo-box, slider and line-edit edits (values in and out of range,
text that is not a number); menu actions triggered directly. File dialogs never open: QFileDialog's static
functions are replaced by ones that answer with a random path, valid (a corpus, a checkpoint, a Hugging
Face folder, the book's .pth, a new folder to save into) or not (missing, a directory, binary bytes, a
damaged checkpoint, a folder that cannot be written), or cancel. A modal dialog (Help > Keyboard
shortcuts, an export dialog) is closed from a timer after a moment, so nothing blocks. Every few seconds
the monkey starts training again if it stopped, and Play if it paused (the random input stops them too).

It reports {"events", "exceptions", "max_lag_ms", "errors_shown", "seed"} (plus detail) and exits 1 on any
uncaught exception (sys.excepthook, threading.excepthook, and Qt messages about deleted objects or
critical errors) or a stalled event loop (a 20 ms timer late by more than 2 s). Nothing touches the user's
settings, data folder or the network: each run gets temporary folders and HF_HUB_OFFLINE=1.

This module is the driver: it opens the window, sends events from a timer, measures the event loop's lag,
samples the GUI thread during a stall, closes dialogs and keeps training and Play running. The input
vocabulary is in monkey_input, the file dialogs' answers in monkey_files, the verdict in monkey_report.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gptviz.bench.monkey_files import DialogAnswers, make_answers
from gptviz.bench.monkey_input import RandomInput
from gptviz.bench.monkey_report import STALL_MS, MonkeyReport, format_report

LAG_TICK_MS = 20
KEEPALIVE_S = 3.0  # how often training and Play are restarted if they stopped
DIALOG_OPEN_S = 0.3  # how long a modal dialog (or a popup menu) may stay open before the monkey closes it
QT_BAD_MESSAGES = ("already deleted", "has been deleted", "Internal C++ object", "destroyed while")


# ----------------------------------------------------------------------------------------------- monkey


class Monkey:
    """Drives one run: random input from a timer (RandomInput), the answers of the patched file dialogs
    (DialogAnswers), the lag and stall watch, closing dialogs, and restarting training and Play."""

    def __init__(self, window: Any, app: Any, report: MonkeyReport, rng: random.Random, answers, settings):
        from PySide6.QtCore import QTimer

        self.window, self.app, self.report, self.rng = window, app, report, rng
        self.train_settings = settings
        self.busy = False
        self.history: list[str] = []
        self.last_tick = time.perf_counter()
        self.input = RandomInput(window, app, rng, self.note)
        self.dialogs = DialogAnswers(answers, rng, self.note)
        self.opened_at: dict[int, float] = {}
        self.timers: list[Any] = []
        for interval, slot in ((LAG_TICK_MS, self.measure_lag), (100, self.close_dialogs)):
            timer = QTimer()
            timer.setInterval(interval)
            timer.timeout.connect(slot)
            self.timers.append(timer)
        self.keepalive = QTimer()
        self.keepalive.setInterval(int(KEEPALIVE_S * 1000))
        self.keepalive.timeout.connect(self.keep_running)
        self.timers.append(self.keepalive)

    # ---- bookkeeping
    def note(self, text: str) -> None:
        self.history.append(text)
        del self.history[:-30]

    def measure_lag(self) -> None:
        now = time.perf_counter()
        lag = (now - self.last_tick) * 1000.0 - LAG_TICK_MS
        self.last_tick = now
        self.report.max_lag_ms = max(self.report.max_lag_ms, lag)
        if lag > STALL_MS:
            self.note(f"event loop stalled {lag:.0f} ms")
            if not self.report.events_before_stall:
                self.report.events_before_stall = list(self.history[-12:])

    def watch_for_stalls(self, stop: threading.Event) -> threading.Thread:
        """A thread that samples the GUI thread's stack while the event loop is late by more than half the
        stall limit: a stall's report then says where the time went, not only which events came before."""
        gui = threading.get_ident()

        def watch() -> None:
            sampled_at = 0.0
            while not stop.wait(0.25):
                late = time.perf_counter() - self.last_tick
                if late * 1000.0 < STALL_MS / 2 or late - sampled_at < 0.5:
                    if late * 1000.0 < STALL_MS / 2:
                        sampled_at = 0.0
                    continue
                sampled_at = late
                frame = sys._current_frames().get(gui)
                if frame is None:
                    continue
                stack = "".join(traceback.format_stack(frame)[-8:])
                text = f"late {late:.1f} s, after: {(self.history or ['-'])[-1]}\n{stack}"
                if len(self.report.stall_stacks) < 20:
                    self.report.stall_stacks.append(text)

        thread = threading.Thread(target=watch, name="monkey-stall-watchdog", daemon=True)
        thread.start()
        return thread

    def close_dialogs(self) -> None:
        """Close modal dialogs and popup menus that have been open for DIALOG_OPEN_S."""
        from PySide6.QtWidgets import QDialog, QMenu

        now = time.perf_counter()
        for widget in self.app.topLevelWidgets():
            if widget is self.window or not widget.isVisible():
                continue
            if not isinstance(widget, (QDialog, QMenu)) and not widget.isModal():
                continue
            opened = self.opened_at.setdefault(id(widget), now)
            if now - opened >= DIALOG_OPEN_S:
                self.opened_at.pop(id(widget), None)
                self.note(f"close {type(widget).__name__} {widget.windowTitle()!r}")
                if isinstance(widget, QDialog):
                    widget.reject()
                else:
                    widget.close()
                self.report.dialogs_closed += 1

    def keep_running(self) -> None:
        from gptviz.qt import commands as cmd

        worker = getattr(self.window.host, "worker", None)
        if worker is None or getattr(worker, "session", None) is None:
            return
        if getattr(worker, "training", "") not in ("running", "paused"):
            self.window.host.submit(cmd.TrainStart(self.train_settings))
            self.report.restarts += 1
        if not getattr(worker, "playing", True):
            self.window.host.submit(cmd.Play())
            self.report.restarts += 1

    def tick(self) -> None:
        if self.busy:  # a modal dialog's nested event loop: let close_dialogs end it
            return
        self.busy = True
        try:
            kind = self.input.send()
            if kind is not None:
                self.report.events += 1
                self.report.kinds[kind] += 1
        finally:
            self.busy = False


# ---------------------------------------------------------------------------------------------------- run


def micro_config():
    from gptviz.config import GPTConfig

    return GPTConfig(
        vocab_size=50257, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0, name="monkey"
    )


def run_monkey(
    minutes: float,
    seed: int,
    *,
    interval_ms: int = 15,
    model: str = "micro",
    progress: bool = False,
) -> MonkeyReport:
    """Open the real window offscreen, send seeded random input for `minutes`, close it; the report."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    work = Path(tempfile.mkdtemp(prefix="gptviz-monkey-"))
    saved_env = {k: os.environ.get(k) for k in ("GPTVIZ_DATA_DIR", "HF_HUB_OFFLINE", "HF_ENDPOINT")}
    os.environ["GPTVIZ_DATA_DIR"] = str(work / "data")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"  # a closed port: nothing leaves the machine
    try:
        return _run(minutes, seed, interval_ms, model, progress, work)
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        # Every Start the monkey presses writes a run to this data folder, and Model › Recipe trains 124M
        # with its AdamW state: a 30-minute run left 38 GB here and filled the disk. The window is closed
        # and its worker has ended, so nothing writes here any more.
        shutil.rmtree(work, ignore_errors=True)


def _run(minutes: float, seed: int, interval_ms: int, model: str, progress: bool, work: Path) -> MonkeyReport:
    import torch
    from PySide6.QtCore import QEventLoop, QTimer, QtMsgType, qInstallMessageHandler

    from gptviz.config import preset
    from gptviz.engine.session import Session
    from gptviz.engine.train_settings import TrainSettings
    from gptviz.model.gpt import GPTModel
    from gptviz.qt.app import create_application
    from gptviz.qt.main_window import MainWindow
    from gptviz.qt.settings import AppSettings, use_settings_dir

    report = MonkeyReport(seed=seed, minutes=minutes)
    rng = random.Random(seed)
    app = create_application()
    use_settings_dir(work / "settings")  # never read or write the user's settings
    cfg = micro_config() if model == "micro" else preset(model)
    answers = make_answers(work / "files", cfg)
    corpus = answers["open"][0]

    def factory() -> Session:
        torch.manual_seed(seed)
        return Session(model=GPTModel(cfg), corpus=corpus)

    monkey_ref: list[Monkey] = []

    def record(text: str) -> None:
        if not report.exceptions and monkey_ref:
            report.last_events = list(monkey_ref[0].history[-10:])
        report.exceptions.append(text)
        if progress:
            print(f"EXCEPTION:\n{text}", file=sys.stderr, flush=True)

    old_hook, old_thread_hook = sys.excepthook, threading.excepthook

    def excepthook(kind, value, tb) -> None:
        record("".join(traceback.format_exception(kind, value, tb)))

    def thread_hook(args) -> None:
        record("".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)))

    def qt_messages(kind, _context, message: str) -> None:
        bad = kind in (QtMsgType.QtCriticalMsg, QtMsgType.QtFatalMsg)
        if bad or any(sign in message for sign in QT_BAD_MESSAGES):
            report.qt_warnings.append(message)
            record(f"Qt {kind.name}: {message}")

    sys.excepthook, threading.excepthook = excepthook, thread_hook
    old_handler = qInstallMessageHandler(qt_messages)
    window = MainWindow(factory, AppSettings(), startup_tokens=3)
    restore_dialogs: Callable[[], None] = lambda: None  # noqa: E731
    try:
        window.resize(1400, 900)

        def on_error(command: str, message: str) -> None:
            report.errors_shown += 1
            if len(report.error_samples) < 50 and f"{command}: {message}"[:160] not in report.error_samples:
                report.error_samples.append(f"{command}: {message}"[:160])

        window.host.errorRaised.connect(on_error)
        ready = QEventLoop()
        window.host.ready.connect(ready.quit)
        window.host.errorRaised.connect(lambda cmd, _msg: ready.quit() if cmd == "start" else None)
        window.show()
        ready.exec()
        if window.host.worker.session is None:
            raise RuntimeError("the worker could not start")
        settings = TrainSettings(
            steps=100_000, batch_size=2, context=16, eval_freq=10, eval_iter=1, probe_tokens=4, device="cpu"
        )
        monkey = Monkey(window, app, report, rng, answers, settings)
        monkey_ref.append(monkey)
        restore_dialogs = monkey.dialogs.patch_dialogs()
        monkey.keep_running()
        driver = QTimer()
        driver.setInterval(interval_ms)
        driver.timeout.connect(monkey.tick)
        loop = QEventLoop()
        start = time.perf_counter()
        end_s = minutes * 60.0
        last_print = [start]

        def check_end() -> None:
            now = time.perf_counter()
            if progress and now - last_print[0] >= 30:
                last_print[0] = now
                print(
                    f"{now - start:7.1f} s  events {report.events}  exceptions {len(report.exceptions)}  "
                    f"max lag {report.max_lag_ms:.0f} ms  errors shown {report.errors_shown}",
                    file=sys.stderr,
                    flush=True,
                )
            if now - start >= end_s:
                loop.quit()

        ender = QTimer()
        ender.setInterval(200)
        ender.timeout.connect(check_end)
        monkey.last_tick = time.perf_counter()
        for timer in [*monkey.timers, driver, ender]:
            timer.start()
        stop_watching = threading.Event()
        watchdog = monkey.watch_for_stalls(stop_watching)
        try:
            loop.exec()
        finally:
            stop_watching.set()
            watchdog.join(2)
        for timer in [*monkey.timers, driver, ender]:
            timer.stop()
        report.wall_s = time.perf_counter() - start
    finally:
        restore_dialogs()
        for widget in app.topLevelWidgets():
            if widget is not window and widget.isVisible():
                widget.close()
        window.close()
        deadline = time.perf_counter() + 30
        while window.host.is_running() and time.perf_counter() < deadline:
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        window.deleteLater()
        app.processEvents()
        qInstallMessageHandler(old_handler)
        sys.excepthook, threading.excepthook = old_hook, old_thread_hook
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gptviz.bench.monkey", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--model", default="micro", help="micro (2 layers, 32 wide) or a preset name")
    parser.add_argument("--interval-ms", type=int, default=15, help="time between two input events")
    args = parser.parse_args(argv)
    report = run_monkey(
        args.minutes, args.seed, interval_ms=args.interval_ms, model=args.model, progress=True
    )
    print(json.dumps(report.to_dict(), indent=1) if args.json else format_report(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
