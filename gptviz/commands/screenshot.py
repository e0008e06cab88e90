"""`gptviz screenshot --out DIR`: render the main window and each pane to PNG files, no display needed.

Runs the real app on the demo model (or a checkpoint): a few training steps through the worker, then a few
generation steps, so every pane shows live data. Settings go to a temporary folder, not the user's.

`--train-steps N` trains exactly as Start in the window does (the worker's `train_start`, which calls
`Session.start_window_run`), so the run is written to the data folder's runs/ like any window run (settings,
metrics, probes, checkpoints; File › Runs… lists it) and its folder is printed. A screenshot that trained
behind the user's back and kept nothing would be the one place where window training is only in memory.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TypeVar

from gptviz.engine.views import DEFAULT_PROMPT
from gptviz.errors import ConfigError

PANE_SIZE = (1280, 820)
WINDOW_SIZE = (1600, 1000)

T = TypeVar("T")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="folder for the PNG files (created if missing)")
    parser.add_argument("--checkpoint", help="a checkpoint directory instead of the bundled demo model")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="prompt to generate from")
    parser.add_argument("--tokens", type=int, default=6, help="generation steps to take (default 6)")
    parser.add_argument(
        "--train-steps",
        type=int,
        default=0,
        help="training steps to take first (default 0: the Training pane shows the model's own history)",
    )
    parser.add_argument(
        "--size",
        type=_size,
        help="window size WxH, e.g. 1280x720 (a laptop); also writes the window in each View › Layout "
        "preset (layout_explore.png, layout_generate.png, layout_train.png) and panes no larger than it",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")


def _present(value: T | None, what: str) -> T:
    """`value`, which a wait above made sure of (ConfigError naming `what` if the window dropped it since)."""
    if value is None:
        raise ConfigError(f"the window lost {what}")
    return value


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH, e.g. 1280x720, got {text!r}") from None
    if width < 320 or height < 240:
        raise argparse.ArgumentTypeError(f"{text} is smaller than 320x240")
    return width, height


def run(args: argparse.Namespace) -> int:
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.tokens < 0 or args.train_steps < 0:
        raise ConfigError("--tokens and --train-steps must be 0 or more")

    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    from gptviz.engine.session import Session
    from gptviz.engine.train_settings import TrainSettings
    from gptviz.qt import commands as cmd
    from gptviz.qt.app import create_application
    from gptviz.qt.main_window import MainWindow
    from gptviz.qt.settings import ENV_SETTINGS_DIR, AppSettings

    settings_dir = tempfile.mkdtemp(prefix="gptviz-screenshot-")
    os.environ[ENV_SETTINGS_DIR] = settings_dir
    app = create_application()
    deadline = time.monotonic() + args.timeout

    def wait_until(predicate, what: str) -> None:
        while not predicate():
            if time.monotonic() > deadline:
                raise ConfigError(f"screenshot timed out while waiting for {what}")
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.005)

    def settle(seconds: float = 0.3) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 30)

    def factory() -> Session:
        session = Session(device=args.device)
        if args.checkpoint:
            session.load_checkpoint(args.checkpoint)
        return session

    # No startup tokens: this command takes its own steps and counts them; the startup ones would race it.
    window = MainWindow(factory, AppSettings(), startup_tokens=0)
    window.generation_pane.prompt.setText(args.prompt)
    ready: list[bool] = []
    window.host.ready.connect(lambda: ready.append(True))  # after the window's own start-up requests
    runs_written: list[str] = []
    window.host.resultReady.connect(lambda ch, p: runs_written.append(str(p)) if ch == cmd.RUN_DIR else None)
    window.show()
    # After show: the first show fits the window to the (offscreen, 800-pixel) screen.
    size = getattr(args, "size", None)
    window.resize(*(size or WINDOW_SIZE))
    window.apply_layout("default")  # the dock sizes follow the window's
    wait_until(
        lambda: ready and window.model_info is not None and window.generation_pane.view is not None,
        "the model",
    )
    if window.errors:
        raise ConfigError(f"the app reported: {window.errors[-1]}")
    window.reopen_offer.hide()  # a run of the user's offered back is not part of the pictures (unanswered)

    # A few real training steps, as Start in the window takes them: written to the data folder's runs/
    # (the checkpoint given with --checkpoint is untouched).
    if args.train_steps:
        context = min(64, _present(window.model_info, "the model").context_length)
        settings = TrainSettings(
            steps=args.train_steps,
            batch_size=4,
            context=context,
            eval_freq=max(1, args.train_steps // 4),
            eval_iter=2,
            lr=1e-4,
            device=args.device if args.device != "auto" else "auto",
        )
        window.training_pane.apply_settings(settings)
        window.host.submit(cmd.TrainStart(settings))
        wait_until(lambda: window.training_pane.state == "running", "training to start")
        wait_until(lambda: window.training_pane.state == "idle", "training to finish")
        for run_dir in runs_written:
            print(f"gptviz screenshot: the training run is kept in {run_dir}", file=sys.stderr)

    # Then generation, one step at a time, as a user pressing Step would.
    window.host.submit(cmd.SetPrompt(args.prompt))
    wait_until(
        lambda: (view := window.generation_pane.view) is not None and len(view.new_ids) == 0, "the prompt"
    )
    for n in range(1, args.tokens + 1):
        window.host.submit(cmd.GenStep())
        wait_until(
            lambda n=n: (
                (view := window.generation_pane.view) is not None and (len(view.new_ids) == n or view.stopped)
            ),
            "a generation step",
        )
    window.host.submit(cmd.Inspect(lens_position=-1))
    wanted = min(
        len(_present(window.generation_pane.view, "the generated text").ids),
        _present(window.model_info, "the model").context_length,
    )  # the tokens the inspection covers
    attention = window.attention_pane
    wait_until(
        lambda: (
            window.activity_label.text() == "idle"
            and ((snapshot := attention.snapshot) is None or snapshot.n_tokens == wanted)
        ),
        "the inspection of the generated text",
    )
    window.generation_pane.prompt.deselect()  # a selected prompt reads as a highlight in the pictures
    settle(0.5)
    window.redraw()
    if window.errors:
        print(f"gptviz screenshot: warning: the app reported: {window.errors[-1]}", file=sys.stderr)

    written = []
    path = out / "main.png"
    window.grab().save(str(path), "PNG")
    written.append(path)
    state = window.saveState()
    if size:
        for name in ("explore", "generate", "train"):
            window.apply_layout(name)
            settle(0.6)
            window.redraw()
            settle(0.2)
            window.generation_pane.prompt.deselect()
            path = out / f"layout_{name}.png"
            window.grab().save(str(path), "PNG")
            written.append(path)
        window.restoreState(state)
    pane_size = (min(PANE_SIZE[0], size[0]), min(PANE_SIZE[1], size[1])) if size else PANE_SIZE
    for key, dock in window.docks.items():
        dock.setFloating(True)
        dock.resize(*pane_size)
        dock.show()
        dock.raise_()
        settle(0.6)
        window.redraw()
        settle(0.2)
        window.generation_pane.prompt.deselect()  # a floated dock takes the focus, and focus selects all
        path = out / f"{key}.png"
        dock.widget().grab().save(str(path), "PNG")
        written.append(path)
        dock.setFloating(False)
    window.restoreState(state)
    window.close()
    QApplication.processEvents()
    for path in written:
        print(path)
    return 0
