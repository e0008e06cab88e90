"""Start-up: from launching the process to the first painted main window, and to the model being ready.

Each repeat launches a fresh Python running `gptviz.bench.startup_probe` (the app's own `main()`, offscreen,
settings in a temporary folder), which prints wall-clock times when the window first paints and when the
worker reports the model ready. Interleaved with it, the same interpreter importing torch, PySide6 and
pyqtgraph and nothing else: the floor no amount of laziness inside gptviz can go below.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from gptviz.bench.harness import BenchResult, Figure, Stats, at_most, interleave

PAINT_TARGET_S = 3.0
READY_TARGET_S = 5.0
FLOOR_CODE = "import torch, numpy, PySide6.QtWidgets, pyqtgraph"


@dataclass(frozen=True)
class StartupSizes:
    repeats: int


FULL = StartupSizes(repeats=5)
JUDGED_QUICK = StartupSizes(repeats=2)  # --judged-quick
QUICK = StartupSizes(repeats=1)


def _env(settings_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["GPTVIZ_SETTINGS_DIR"] = settings_dir
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    return env


def launch_app(settings_dir: str, timeout_s: float = 150.0) -> tuple[float, float]:
    """(seconds to first paint, seconds to model ready) of one fresh app process."""
    started = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "gptviz.bench.startup_probe"],
        env=_env(settings_dir),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    marks: dict[str, float] = {}
    for line in proc.stdout.splitlines():
        name, _, value = line.partition(" ")
        if name in ("painted", "ready"):
            marks[name] = float(value)
    if proc.returncode != 0 or len(marks) != 2:
        raise RuntimeError(
            f"the app did not start cleanly (exit {proc.returncode}): {proc.stderr.strip()[-500:]}"
        )
    return marks["painted"] - started, marks["ready"] - started


def launch_floor(timeout_s: float = 120.0) -> float:
    started = time.time()
    subprocess.run([sys.executable, "-c", FLOOR_CODE], check=True, timeout=timeout_s, capture_output=True)
    return time.time() - started


def run(sizes: StartupSizes = FULL) -> BenchResult:
    started = time.perf_counter()
    painted: list[float] = []
    ready: list[float] = []
    floor: list[float] = []
    with tempfile.TemporaryDirectory(prefix="gptviz-bench-startup-") as settings_dir:

        def app() -> None:
            p, r = launch_app(settings_dir)
            painted.append(p)
            ready.append(r)

        interleave({"app": app, "floor": lambda: floor.append(launch_floor())}, sizes.repeats)
    # interleave's warm-up call is the first entry of each list: a cold disk cache, not a start-up figure.
    paint_s, ready_s, floor_s = Stats.of(painted[1:]), Stats.of(ready[1:]), Stats.of(floor[1:])
    return BenchResult(
        name="startup",
        ours=paint_s.median,
        baseline=floor_s.median,
        unit="s",
        ratio=None,
        target=f"painted <= {PAINT_TARGET_S:g} s",
        passed=at_most(paint_s.median, PAINT_TARGET_S),
        ours_label="process start -> first painted window",
        baseline_label=f"process start -> `{FLOOR_CODE}` done (the floor)",
        ours_stats=paint_s,
        baseline_stats=floor_s,
        figures=[
            Figure(
                "process start -> model ready",
                ready_s.median,
                "s",
                ready_s,
                f"<= {READY_TARGET_S:g} s",
                at_most(ready_s.median, READY_TARGET_S),
            )
        ],
        setup=(
            f"{sizes.repeats} launches of `python -m gptviz.bench.startup_probe` (the app's main(), offscreen, "
            "fresh settings), interleaved with the import floor, after one untimed warm-up launch each. "
            "'Model ready' is the worker's ready signal: the model loaded (the bundled demo, or a fresh tiny "
            "model when there is none), the built-in corpus tokenized and the first inspection sent."
        ),
        seconds=time.perf_counter() - started,
    )
