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
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STALL_MS = 2000.0  # an event loop late by more than this is stalled
LAG_TICK_MS = 20
KEEPALIVE_S = 3.0  # how often training and Play are restarted if they stopped
DIALOG_OPEN_S = 0.3  # how long a modal dialog (or a popup menu) may stay open before the monkey closes it
QT_BAD_MESSAGES = ("already deleted", "has been deleted", "Internal C++ object", "destroyed while")
QUIT_TEXTS = ("quit", "exit")


@dataclass
class MonkeyReport:
    seed: int
    minutes: float
    events: int = 0
    kinds: Counter = field(default_factory=Counter)
    exceptions: list[str] = field(default_factory=list)
    qt_warnings: list[str] = field(default_factory=list)
    max_lag_ms: float = 0.0
    errors_shown: int = 0
    error_samples: list[str] = field(default_factory=list)
    dialogs_closed: int = 0
    restarts: int = 0
    wall_s: float = 0.0
    last_events: list[str] = field(default_factory=list)  # the events before the first exception
    events_before_stall: list[str] = field(default_factory=list)  # the events before the first stall
    # Where the GUI thread was while the event loop stood still: a watchdog thread's samples (at most 20)
    stall_stacks: list[str] = field(default_factory=list)

    @property
    def stalled(self) -> bool:
        return self.max_lag_ms > STALL_MS

    @property
    def ok(self) -> bool:
        return not self.exceptions and not self.stalled

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "exceptions": len(self.exceptions),
            "max_lag_ms": round(self.max_lag_ms, 1),
            "errors_shown": self.errors_shown,
            "seed": self.seed,
            "minutes": round(self.wall_s / 60.0, 2),
            "events_by_kind": dict(sorted(self.kinds.items())),
            "dialogs_closed": self.dialogs_closed,
            "restarts": self.restarts,
            "stalled": self.stalled,
            "exception_texts": self.exceptions[:5],
            "events_before_first_exception": self.last_events,
            "events_before_first_stall": self.events_before_stall,
            "stall_stacks": self.stall_stacks,
            "error_samples": self.error_samples[:10],
        }


# ---------------------------------------------------------------------------------------- files to answer


def make_answers(root: Path, cfg: Any) -> dict[str, list[str]]:
    """Paths the patched file dialogs answer with: for opening files, folders, and for saving."""
    import torch

    from gptviz.data import builtin_text
    from gptviz.engine.checkpoint import save_checkpoint
    from gptviz.engine.export import export_book, export_hf
    from gptviz.model.gpt import GPTModel

    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.txt").write_text(builtin_text()[:20_000], encoding="utf-8")
    (root / "binary.bin").write_bytes(bytes(range(256)) * 8)
    (root / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (root / "empty.txt").write_bytes(b"")
    torch.manual_seed(1)
    model = GPTModel(cfg).eval()
    save_checkpoint(model, root / "checkpoint")
    save_checkpoint(model, root / "damaged")
    weights_file = root / "damaged" / "model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:100])
    export_hf(model, root / "hf")
    export_book(model, root / "book.pth")
    (root / "empty-dir").mkdir(exist_ok=True)
    missing = str(root / "missing" / "nothing.txt")
    files = [str(root / n) for n in ("corpus.txt", "binary.bin", "latin1.txt", "empty.txt", "book.pth")]
    files += [str(root / "hf" / "model.safetensors"), missing, str(root), "", "\x00bad", "é/☃.txt"]
    dirs = [str(root / n) for n in ("checkpoint", "damaged", "hf", "empty-dir")] + [missing, str(root), ""]
    saves = ["", missing, "/proc/gptviz-cannot-write", str(root / "corpus.txt"), str(root / "checkpoint")]
    saves += ["{new}"]  # a fresh path under root each time
    return {"open": files, "dir": dirs, "save": saves}


# ----------------------------------------------------------------------------------------------- monkey


class Monkey:
    def __init__(self, window: Any, app: Any, report: MonkeyReport, rng: random.Random, answers, settings):
        from PySide6.QtCore import QTimer

        self.window, self.app, self.report, self.rng = window, app, report, rng
        self.answers, self.train_settings = answers, settings
        self.busy = False
        self.history: list[str] = []
        self.last_tick = time.perf_counter()
        self.new_paths = 0
        self.answers_root = Path(answers["open"][0]).parent
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

    # ---- the patched file dialogs
    def answer(self, kind: str) -> str:
        choice = self.rng.choice(self.answers[kind])
        if choice == "{new}":
            self.new_paths += 1
            choice = str(self.answers_root / f"saved-{self.new_paths}")
        self.note(f"dialog answers {kind}: {choice!r}")
        return choice

    def patch_dialogs(self) -> Callable[[], None]:
        from PySide6.QtWidgets import QFileDialog

        names = ("getOpenFileName", "getSaveFileName", "getExistingDirectory", "getOpenFileNames")
        saved = {name: QFileDialog.__dict__.get(name) for name in names}
        rng = self.rng

        def open_file(*_a, **_k):
            return self.answer("open"), ""

        def open_files(*_a, **_k):
            return [self.answer("open") for _ in range(rng.randint(0, 2))], ""

        def save_file(*_a, **_k):
            return self.answer("save"), ""

        def directory(*_a, **_k):
            return self.answer("dir")

        fakes = {
            "getOpenFileName": open_file,
            "getOpenFileNames": open_files,
            "getSaveFileName": save_file,
            "getExistingDirectory": directory,
        }
        for name, fake in fakes.items():  # a monkey-patch, undone by restore(): setattr, as restore does
            setattr(QFileDialog, name, staticmethod(fake))

        def restore() -> None:
            for name, value in saved.items():
                if value is not None:
                    setattr(QFileDialog, name, value)

        return restore

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

    # ---- input
    def widgets(self, types: tuple = ()) -> list[Any]:
        from PySide6.QtWidgets import QWidget

        out = []
        for top in self.app.topLevelWidgets():
            if not top.isVisible():
                continue
            for widget in [top, *top.findChildren(QWidget)]:
                if types and not isinstance(widget, types):
                    continue
                if widget.isVisible() and widget.isEnabled() and widget.width() > 0 and widget.height() > 0:
                    out.append(widget)
        return out

    def actions(self) -> list[Any]:
        """What a user can reach: the menu bar's actions (submenus too) and the window's own shortcuts.
        Not every QAction in the tree: pyqtgraph's context-menu actions expect their menu to be open."""
        found: list[Any] = []

        def walk(actions) -> None:
            for action in actions:
                menu = action.menu()
                if menu is not None:
                    walk(menu.actions())
                else:
                    found.append(action)

        walk(self.window.menuBar().actions())
        walk(self.window.actions())
        out = []
        for action in found:
            text = action.text().replace("&", "").lower()
            if any(word in text for word in QUIT_TEXTS) or action.shortcut().toString() == "Ctrl+Q":
                continue
            if text.startswith("new untrained") and not text.endswith("tiny"):
                continue  # a fresh 124M-1558M model is gigabytes and seconds: not what a monkey should test
            if action.isEnabled() and not action.isSeparator():
                out.append(action)
        return out

    def tick(self) -> None:
        if self.busy:  # a modal dialog's nested event loop: let close_dialogs end it
            return
        self.busy = True
        try:
            kind = self.rng.choices(
                ["click", "key", "shortcut", "action", "wheel", "drag", "spin", "combo", "slider", "text"],
                weights=[30, 12, 10, 6, 10, 8, 8, 5, 4, 7],
            )[0]
            done = getattr(self, f"do_{kind}")()
            if done:
                self.report.events += 1
                self.report.kinds[kind] += 1
        finally:
            self.busy = False

    def _point(self, widget: Any) -> Any:
        from PySide6.QtCore import QPoint

        return QPoint(self.rng.randrange(widget.width()), self.rng.randrange(widget.height()))

    def do_click(self) -> bool:
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest

        widgets = self.widgets()
        if not widgets:
            return False
        widget = self.rng.choice(widgets)
        point = self._point(widget)
        how = self.rng.choices(["left", "right", "double"], weights=[8, 1, 1])[0]
        self.note(f"{how} click {type(widget).__name__} {widget.objectName()!r} at {point.x()},{point.y()}")
        if how == "double":
            QTest.mouseDClick(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point)
        else:
            button = Qt.MouseButton.LeftButton if how == "left" else Qt.MouseButton.RightButton
            QTest.mouseClick(widget, button, Qt.KeyboardModifier.NoModifier, point)
        return True

    def do_key(self) -> bool:
        from PySide6.QtCore import Qt

        key = self.rng.choice(
            [Qt.Key.Key_Return, Qt.Key.Key_Escape, Qt.Key.Key_Tab, Qt.Key.Key_Backspace, Qt.Key.Key_Delete,
             Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_PageUp,
             Qt.Key.Key_PageDown, Qt.Key.Key_Home, Qt.Key.Key_End, Qt.Key.Key_Space, Qt.Key.Key_A,
             Qt.Key.Key_Z, Qt.Key.Key_0, Qt.Key.Key_9, Qt.Key.Key_Minus, Qt.Key.Key_Period]
        )  # fmt: skip
        modifiers = self.rng.choice(
            [Qt.KeyboardModifier.NoModifier] * 4
            + [Qt.KeyboardModifier.ShiftModifier, Qt.KeyboardModifier.ControlModifier]
        )
        target = self.app.focusWidget() or self.window
        self.note(f"key {key.name} {modifiers.name} to {type(target).__name__}")
        press_key(target, key, modifiers)
        return True

    def do_shortcut(self) -> bool:

        actions = [a for a in self.actions() if not a.shortcut().isEmpty()]
        if not actions:
            return False
        action = self.rng.choice(actions)
        combo = action.shortcut()[0]
        target = self.app.focusWidget() or self.window
        self.note(f"shortcut {action.shortcut().toString()} ({action.text()!r})")
        press_key(target, combo.key(), combo.keyboardModifiers())
        return True

    def do_action(self) -> bool:
        actions = self.actions()
        if not actions:
            return False
        action = self.rng.choice(actions)
        self.note(f"trigger {action.text()!r}")
        action.trigger()
        return True

    def plots(self) -> list[Any]:
        import pyqtgraph as pg

        return self.widgets((pg.GraphicsView,))

    def do_wheel(self) -> bool:
        from PySide6.QtCore import QPoint, QPointF, Qt
        from PySide6.QtGui import QWheelEvent

        plots = self.plots()
        if not plots:
            return False
        plot = self.rng.choice(plots)
        target = plot.viewport()
        pos = QPointF(self._point(target))
        delta = self.rng.choice([-360, -120, -15, 15, 120, 360])
        self.note(f"wheel {delta} on {type(plot).__name__}")
        event = QWheelEvent(
            pos, QPointF(target.mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, delta),
            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
        )  # fmt: skip
        self.app.sendEvent(target, event)
        return True

    def do_drag(self) -> bool:
        from PySide6.QtCore import QEvent, QPointF, Qt
        from PySide6.QtGui import QMouseEvent

        plots = self.plots()
        if not plots:
            return False
        plot = self.rng.choice(plots)
        target = plot.viewport()
        button = self.rng.choice([Qt.MouseButton.LeftButton] * 3 + [Qt.MouseButton.RightButton])
        points = [QPointF(self._point(target)) for _ in range(self.rng.randint(2, 5))]
        self.note(f"drag {button.name} on {type(plot).__name__} over {len(points)} points")

        def send(kind: QEvent.Type, pos: QPointF, buttons: Qt.MouseButton) -> None:
            glob = QPointF(target.mapToGlobal(pos.toPoint()))
            pressed = button if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton
            event = QMouseEvent(kind, pos, glob, pressed, buttons, Qt.KeyboardModifier.NoModifier)
            self.app.sendEvent(target, event)

        send(QEvent.Type.MouseButtonPress, points[0], button)
        for point in points[1:]:
            send(QEvent.Type.MouseMove, point, button)
        send(QEvent.Type.MouseButtonRelease, points[-1], Qt.MouseButton.NoButton)
        return True

    def do_spin(self) -> bool:
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QAbstractSpinBox, QDoubleSpinBox, QSpinBox

        boxes = self.widgets((QAbstractSpinBox,))
        if not boxes:
            return False
        box = self.rng.choice(boxes)
        how = self.rng.choice(["value", "type", "step"])
        self.note(f"spin {how} {box.objectName()!r} ({type(box).__name__})")
        if how == "value" and isinstance(box, (QSpinBox, QDoubleSpinBox)):
            low, high = box.minimum(), box.maximum()
            span = high - low
            value = self.rng.choice([low, high, low - 1, high + 1, low + span * self.rng.random()])
            if isinstance(box, QSpinBox):
                box.setValue(int(min(max(value, -(2**31)), 2**31 - 1)))  # a C int: out of range raises
            else:
                box.setValue(float(value))
        elif how == "type":
            box.setFocus()
            box.selectAll()
            text = self.rng.choice(["0", "-1", "1e9", "abc", "", "3.5", "999999999", "0.0001", "٣"])
            type_text(box, text)
            press_key(box, Qt.Key.Key_Return, Qt.KeyboardModifier.NoModifier)
        else:
            box.stepBy(self.rng.choice([-10, -1, 1, 10]))
        return True

    def do_combo(self) -> bool:
        from PySide6.QtWidgets import QComboBox

        combos = [c for c in self.widgets((QComboBox,)) if c.count() > 0]
        if not combos:
            return False
        combo = self.rng.choice(combos)
        index = self.rng.randrange(combo.count())
        self.note(f"combo {combo.objectName()!r} -> {combo.itemText(index)!r}")
        combo.setCurrentIndex(index)
        combo.activated.emit(index)
        return True

    def do_slider(self) -> bool:
        from PySide6.QtWidgets import QAbstractSlider

        sliders = self.widgets((QAbstractSlider,))
        if not sliders:
            return False
        slider = self.rng.choice(sliders)
        value = self.rng.randint(slider.minimum(), max(slider.minimum(), slider.maximum()))
        self.note(f"slider {slider.objectName()!r} ({type(slider).__name__}) -> {value}")
        slider.setValue(value)
        return True

    def do_text(self) -> bool:
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QLineEdit, QPlainTextEdit, QTextEdit

        edits = [e for e in self.widgets((QLineEdit, QPlainTextEdit, QTextEdit)) if not _read_only(e)]
        if not edits:
            return False
        edit = self.rng.choice(edits)
        text = self.rng.choice(
            ["Every effort moves you", "", " ", "<|endoftext|>", "héllo wörld 👋🏽", "\t\n", "a" * 300,
             "def f(x):\n    return x", "0", "٣٤", "the the the the"]
        )  # fmt: skip
        self.note(f"text {type(edit).__name__} {edit.objectName()!r} <- {text[:30]!r}")
        edit.setFocus()
        if isinstance(edit, QLineEdit):
            edit.setText(text)
            if self.rng.random() < 0.5:
                press_key(edit, Qt.Key.Key_Return, Qt.KeyboardModifier.NoModifier)
        else:
            edit.setPlainText(text)
        return True


def press_key(target: Any, key: Any, modifiers: Any) -> None:
    """Press and release `key` as a user would (spontaneous, so shortcuts fire), with its text given:
    QTest.keyClick looks the text up itself and aborts the process on keys it has no ASCII for."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    code = int(key.value if hasattr(key, "value") else key)
    plain = modifiers in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier)
    text = chr(code) if plain and 0x20 <= code < 0x7F else ""
    for action in (QTest.KeyAction.Press, QTest.KeyAction.Release):
        QTest.sendKeyEvent(action, target, key, text, modifiers)


def type_text(target: Any, text: str) -> None:
    """Type `text` one character at a time (any Unicode: QTest.keyClicks aborts on non-ASCII)."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    for char in text:
        for action in (QTest.KeyAction.Press, QTest.KeyAction.Release):
            QTest.sendKeyEvent(action, target, Qt.Key.Key_unknown, char, Qt.KeyboardModifier.NoModifier)


def _read_only(edit: Any) -> bool:
    return bool(edit.isReadOnly())


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
        restore_dialogs = monkey.patch_dialogs()
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


def format_report(report: MonkeyReport) -> str:
    d = report.to_dict()
    lines = [
        f"monkey seed {report.seed}: {d['events']} events in {d['minutes']} min, {d['exceptions']} exceptions, "
        f"max lag {d['max_lag_ms']} ms, {d['errors_shown']} errors shown, {d['dialogs_closed']} dialogs closed",
        "events: " + ", ".join(f"{k} {v}" for k, v in d["events_by_kind"].items()),
    ]
    for text in report.exceptions[:3]:
        lines.append("exception:\n" + text)
    if report.events_before_stall:
        lines.append("events before the first stall:\n  " + "\n  ".join(report.events_before_stall))
    for stack in report.stall_stacks[:3]:
        lines.append("GUI thread while the event loop stood still: " + stack)
    if report.last_events:
        lines.append("events before the first exception:\n  " + "\n  ".join(report.last_events))
    lines.append("PASS" if report.ok else "FAIL")
    return "\n".join(lines)


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
