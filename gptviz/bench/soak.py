"""Soak benchmark (not a test): the real main window, offscreen, trains the tiny model flat out through its
worker for N minutes while every pane redraws, and samples what would show a leak.

Every `--sample-s` seconds it records the resident memory (VmRSS of /proc/self/status), the OS thread count
(Threads of /proc/self/status) and Python's `threading.active_count()`, the QTimers alive in the app (the
QTimer children of the application and of every top-level window; active ones counted apart), the Training
pane's plot data (points per curve, points actually handed to the loss curve, buffer capacity) and the
number of probes kept. Besides training, it takes a generation step and re-tokenises a text every
`--poke-s` seconds, so the Generation, Tokens, Attention and Activations panes redraw throughout.

Targets (issue 6): resident memory grows by at most 5% between the first minute and the end; plot data
bounded; no growth in threads or timers.

    python -m gptviz.bench.soak --minutes 10 --out docs/soak.md --into docs/reliability.md
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import re
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gptviz.config import GPTConfig

RSS_GROWTH_TARGET = 0.05  # at most +5% after the first minute
WARMUP_S = 60.0  # the first minute fills caches, allocators and the buffers: growth is measured after it
SECTION_TITLE = "## Soak"


@dataclass(frozen=True)
class Sample:
    t_s: float
    step: int
    rss_bytes: int
    os_threads: int
    py_threads: int
    timers: int
    active_timers: int
    train_points: int  # points the Training pane keeps for the batch-loss curve
    drawn_points: int  # points handed to the loss curve item at its last redraw
    val_points: int
    buffer_capacity: int  # length of the preallocated x array behind the batch-loss curve
    probes: int
    gc_objects: int


@dataclass
class SoakResult:
    minutes: float
    preset: str
    batch_size: int
    context: int
    max_points: int
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    worker_stopped: bool = False  # the worker thread had finished when the window closed
    poke_s: float = 5.0  # seconds between a generation step + re-tokenised text
    app_bound: int = 0  # the app's own bound on points a curve (max_points may be lower for a run)
    load_15min: float = 0.0  # the machine's 15-minute load average when the run ended

    def at(self, t_s: float) -> Sample:
        """The first sample at or after `t_s` (the last one if none)."""
        for sample in self.samples:
            if sample.t_s >= t_s:
                return sample
        return self.samples[-1]

    @property
    def baseline(self) -> Sample:
        return self.at(min(WARMUP_S, self.samples[-1].t_s))

    @property
    def end(self) -> Sample:
        return self.samples[-1]

    def after_warmup(self) -> list[Sample]:
        base = self.baseline
        return [s for s in self.samples if s.t_s >= base.t_s]

    def rss_median(self, t0: float, t1: float) -> float:
        """Median resident memory of the samples taken in [t0, t1) seconds (the nearest one if none)."""
        values = sorted(s.rss_bytes for s in self.samples if t0 <= s.t_s < t1) or [self.at(t0).rss_bytes]
        mid = len(values) // 2
        return float(values[mid]) if len(values) % 2 else (values[mid - 1] + values[mid]) / 2.0

    def rss_windows(self) -> tuple[float, float]:
        """(median RSS over the minute after the first, median RSS over the last minute).

        Each training step allocates and frees its activations and logits, so single samples swing by tens
        of MiB; the medians of a minute of samples compare like with like.
        """
        base_t, end_t = self.baseline.t_s, self.end.t_s
        return self.rss_median(base_t, base_t + 60.0), self.rss_median(max(base_t, end_t - 60.0), end_t + 1.0)

    def rss_growth(self) -> float:
        first, last = self.rss_windows()
        return last / first - 1.0

    def rss_peak_growth(self) -> float:
        return max(s.rss_bytes for s in self.after_warmup()) / self.rss_windows()[0] - 1.0

    def checks(self) -> list[tuple[str, bool, str]]:
        """(what, passed, the numbers) for each target."""
        base, end, later = self.baseline, self.end, self.after_warmup()
        mib = 2**20
        max_points = max(max(s.train_points, s.drawn_points, s.val_points) for s in self.samples)
        max_capacity = max(s.buffer_capacity for s in self.samples)
        first, last = self.rss_windows()
        return [
            (
                f"resident memory grows <= {RSS_GROWTH_TARGET:.0%} after the first minute",
                self.rss_growth() <= RSS_GROWTH_TARGET,
                f"median {first / mib:,.1f} MiB in the minute after the first, {last / mib:,.1f} MiB in the "
                f"last minute: {self.rss_growth():+.2%}. Single samples: {base.rss_bytes / mib:,.1f} MiB at "
                f"{base.t_s:.0f} s, {end.rss_bytes / mib:,.1f} MiB at {end.t_s:.0f} s; highest after the first "
                f"minute {self.rss_peak_growth():+.2%} over the first median",
            ),
            (
                "plot data bounded",
                max_points <= self.max_points and max_capacity <= self.max_points,
                f"at most {max_points:,} points a curve and a {max_capacity:,}-slot buffer for "
                f"{end.step:,} steps (bound {self.max_points:,})",
            ),
            (
                "no growth in threads",
                max(s.os_threads for s in later) <= base.os_threads
                and max(s.py_threads for s in later) <= base.py_threads,
                f"OS threads {base.os_threads} at {base.t_s:.0f} s, {end.os_threads} at the end (max "
                f"{max(s.os_threads for s in later)}); Python threads {base.py_threads} -> {end.py_threads}",
            ),
            (
                "no growth in timers",
                max(s.timers for s in later) <= base.timers,
                f"QTimers {base.timers} at {base.t_s:.0f} s, {end.timers} at the end (max "
                f"{max(s.timers for s in later)}; active {base.active_timers} -> {end.active_timers})",
            ),
        ]

    def passed(self) -> bool:
        return all(ok for _, ok, _ in self.checks())


# ---------------------------------------------------------------------------------------------- probes


def proc_status() -> dict[str, int]:
    """VmRSS (bytes) and Threads of this process from /proc/self/status (Linux); zeros elsewhere."""
    out = {"rss_bytes": 0, "threads": 0}
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return out
    rss = re.search(r"^VmRSS:\s+(\d+)\s+kB", text, re.M)
    threads = re.search(r"^Threads:\s+(\d+)", text, re.M)
    if rss:
        out["rss_bytes"] = int(rss.group(1)) * 1024
    if threads:
        out["threads"] = int(threads.group(1))
    return out


def count_timers(app: Any) -> tuple[int, int]:
    """(QTimers alive, active ones) among the children of the application and of every top-level widget."""
    from PySide6.QtCore import QTimer

    seen: dict[int, Any] = {}
    for owner in [app, *app.topLevelWidgets()]:
        for timer in owner.findChildren(QTimer):
            seen[id(timer)] = timer
    return len(seen), sum(1 for t in seen.values() if t.isActive())


# ------------------------------------------------------------------------------------------------ run


def run_soak(
    minutes: float,
    *,
    sample_s: float = 5.0,
    poke_s: float = 5.0,
    model: str | GPTConfig = "tiny",
    batch_size: int = 4,
    context: int = 64,
    eval_freq: int = 50,
    max_points: int | None = None,
    corpus: str | os.PathLike | None = None,
    progress: bool = True,
) -> SoakResult:
    """Open the window, train for `minutes`, sample every `sample_s` seconds, close; returns the samples.

    `model` is a preset name or a config; `corpus` defaults to the built-in one. `max_points` lowers the
    Training pane's bound on points a curve for this run (restored afterwards), so a short soak reaches it.
    """
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from gptviz.qt.panes.training import curves as training_module  # where the curves read the bound

    app_bound = training_module.MAX_CURVE_POINTS
    if max_points:
        training_module.MAX_CURVE_POINTS = max_points
    try:
        result = _run(minutes, sample_s, poke_s, model, batch_size, context, eval_freq, corpus, progress)
        result.app_bound = app_bound
        return result
    finally:
        training_module.MAX_CURVE_POINTS = app_bound


def _run(
    minutes: float,
    sample_s: float,
    poke_s: float,
    model: str | GPTConfig,
    batch_size: int,
    context: int,
    eval_freq: int,
    corpus: str | os.PathLike | None,
    progress: bool,
) -> SoakResult:
    import torch
    from PySide6.QtCore import QEventLoop, QTimer

    from gptviz.config import preset
    from gptviz.data import BUILTIN
    from gptviz.engine.session import Session
    from gptviz.engine.train_settings import TrainSettings
    from gptviz.model.gpt import GPTModel
    from gptviz.qt import commands as cmd
    from gptviz.qt.app import create_application
    from gptviz.qt.main_window import MainWindow
    from gptviz.qt.panes import training as training_module
    from gptviz.qt.settings import AppSettings, use_settings_dir

    app = create_application()
    settings_dir = tempfile.mkdtemp(prefix="gptviz-soak-settings-")
    use_settings_dir(settings_dir)  # never read or write the user's settings
    os.environ["GPTVIZ_DATA_DIR"] = os.path.join(
        settings_dir, "data"
    )  # nor keep the soak's run in their data
    cfg = preset(model) if isinstance(model, str) else model

    def factory() -> Session:
        torch.manual_seed(0)
        return Session(model=GPTModel(cfg), corpus=corpus or BUILTIN)

    result = SoakResult(
        minutes, cfg.name, batch_size, context, training_module.MAX_CURVE_POINTS, poke_s=poke_s
    )
    window = MainWindow(factory, AppSettings(), startup_tokens=3)
    window.resize(1500, 950)
    window.host.errorRaised.connect(lambda cmd, msg: result.errors.append(f"{cmd}: {msg}"))
    ready = QEventLoop()
    window.host.ready.connect(ready.quit)  # queued: delivered once the loop below runs
    window.host.errorRaised.connect(lambda cmd, _msg: ready.quit() if cmd == "start" else None)
    window.show()
    ready.exec()
    if window.host.worker.session is None:
        window.close()
        raise RuntimeError(f"the worker could not start: {result.errors}")
    training = window.training_pane
    settings = TrainSettings(
        steps=10_000_000,
        batch_size=batch_size,
        context=min(context, cfg.context_length),
        eval_freq=eval_freq,
        eval_iter=2,
        probe_tokens=8,
        lr=1e-3,
        warmup_steps=20,
        device="cpu",
    )
    window.host.submit(cmd.TrainStart(settings))

    texts = ("Every effort moves you", "The for statement", "A class definition", "Hello, do you like tea?")
    pokes = [0]

    def poke() -> None:
        """A generation step (or a reset after 16) and a new text for the Tokens pane."""
        pokes[0] += 1
        view = window.generation_pane.view
        if view is not None and (view.stopped or len(view.new_ids) >= 16):
            window.host.submit(cmd.Reset())
        else:
            window.host.submit(cmd.GenStep())
        window.tokens_pane.set_text(f"{texts[pokes[0] % len(texts)]} #{pokes[0]}")

    start = time.perf_counter()
    end_s = minutes * 60.0

    def sample() -> None:
        status = proc_status()
        timers, active = count_timers(app)
        drawn = training.train_curve.getData()[0]
        latest = training.latest or {}
        counts = training.point_counts()
        s = Sample(
            t_s=time.perf_counter() - start,
            step=int(latest.get("step") or 0),
            rss_bytes=status["rss_bytes"],
            os_threads=status["threads"],
            py_threads=threading.active_count(),
            timers=timers,
            active_timers=active,
            train_points=counts["train"],
            drawn_points=0 if drawn is None else len(drawn),
            val_points=counts["val"],
            buffer_capacity=int(training.train_curve_data.x.shape[0]),
            probes=len(training.probes),
            gc_objects=len(gc.get_objects()),
        )
        result.samples.append(s)
        if progress:
            print(
                f"{s.t_s:7.1f} s  step {s.step:6d}  RSS {s.rss_bytes / 2**20:8.1f} MiB  threads "
                f"{s.os_threads}/{s.py_threads}  timers {s.timers}/{s.active_timers}  points "
                f"{s.train_points}/{s.drawn_points}  probes {s.probes}",
                file=sys.stderr,
                flush=True,
            )
        if s.t_s >= end_s:
            loop.quit()

    loop = QEventLoop()
    poke_timer = QTimer()
    poke_timer.setInterval(int(poke_s * 1000))
    poke_timer.timeout.connect(poke)
    sample_timer = QTimer()
    sample_timer.setInterval(int(sample_s * 1000))
    sample_timer.timeout.connect(sample)
    poke_timer.start()
    sample_timer.start()
    sample()
    loop.exec()
    poke_timer.stop()
    sample_timer.stop()
    window.host.submit(cmd.TrainStop())
    window.close()
    result.wall_s = time.perf_counter() - start
    result.worker_stopped = not window.host.is_running()
    result.load_15min = os.getloadavg()[2] if hasattr(os, "getloadavg") else float("nan")
    window.deleteLater()
    return result


# --------------------------------------------------------------------------------------------- report


def report_markdown(result: SoakResult, command: str, heading: str = SECTION_TITLE) -> str:
    """The soak's section: what ran, the checks with their numbers, and one row a minute."""
    mib = 2**20
    end = result.end
    steps_per_s = end.step / end.t_s if end.t_s else 0.0
    lines = [
        heading,
        "",
        f"`{command}` — the real main window (offscreen) trains a fresh `{result.preset}` model flat out "
        f"through its worker (batch {result.batch_size}, context {result.context}) while a generation step "
        f"and a re-tokenised text every {result.poke_s:g} s keep the Generation, Tokens, Attention and "
        "Activations panes "
        "redrawing; one sample every few seconds.",
        "",
        f"Ran {end.t_s / 60:.1f} minutes ({end.step:,} steps, {steps_per_s:.2f} steps/s) on "
        f"{os.cpu_count()} shared CPU cores (load average over the last 15 minutes at the end: "
        f"{result.load_15min:.1f}), Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}. Worker errors during the run: {len(result.errors)}. On close the "
        f"worker thread {'had stopped' if result.worker_stopped else 'was STILL RUNNING'}.",
        "",
        "| Target | Result | Numbers |",
        "|---|---|---|",
    ]
    for what, ok, numbers in result.checks():
        lines.append(f"| {what} | {'pass' if ok else 'FAIL'} | {numbers} |")
    lines += [
        "",
        "| time | step | RSS (MiB) | OS threads | Python threads | QTimers (active) | loss points kept / drawn "
        "| val points | buffer slots | probes | Python objects |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows, next_t = [], 0.0
    for s in result.samples:
        if s.t_s >= next_t or s is result.end:
            rows.append(s)
            next_t = (int(s.t_s // 60) + 1) * 60.0
    for s in rows:
        lines.append(
            f"| {s.t_s / 60:.1f} min | {s.step:,} | {s.rss_bytes / mib:,.1f} | {s.os_threads} | {s.py_threads} "
            f"| {s.timers} ({s.active_timers}) | {s.train_points:,} / {s.drawn_points:,} | {s.val_points:,} "
            f"| {s.buffer_capacity:,} | {s.probes:,} | {s.gc_objects:,} |"
        )
    if result.errors:
        lines += ["", "Worker errors: " + "; ".join(result.errors[:5])]
    return "\n".join(lines) + "\n"


def replace_section(document: str, section: str, heading: str = SECTION_TITLE) -> str:
    """`document` with its `heading` section (up to the next `## `) replaced by `section`, or appended."""
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(document):
        return pattern.sub(lambda _m: section.rstrip("\n") + "\n\n", document, count=1).rstrip("\n") + "\n"
    return document.rstrip("\n") + "\n\n" + section


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gptviz.bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to train (default 10)")
    parser.add_argument("--sample-s", type=float, default=5.0, help="seconds between samples (default 5)")
    parser.add_argument(
        "--poke-s", type=float, default=5.0, help="seconds between generation steps + new texts (default 5)"
    )
    parser.add_argument("--preset", default="tiny", help="model preset to train (default tiny)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--eval-freq", type=int, default=50)
    parser.add_argument(
        "--max-points",
        type=int,
        default=None,
        help="lower the Training pane's bound on points a curve (default: the app's own) so that a short "
        "soak reaches it",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the markdown report here")
    parser.add_argument(
        "--into",
        type=Path,
        default=None,
        help="replace (or append) the '## Soak' section of this markdown file",
    )
    parser.add_argument("--quiet", action="store_true", help="no line per sample on stderr")
    args = parser.parse_args(argv)
    if min(args.minutes, args.sample_s, args.poke_s) <= 0:
        parser.error("--minutes, --sample-s and --poke-s must be positive")
    result = run_soak(
        args.minutes,
        sample_s=args.sample_s,
        poke_s=args.poke_s,
        model=args.preset,
        batch_size=args.batch_size,
        context=args.context,
        eval_freq=args.eval_freq,
        max_points=args.max_points,
        progress=not args.quiet,
    )
    command = "python -m gptviz.bench.soak " + " ".join(
        a for a in (argv if argv is not None else sys.argv[1:]) if a != "--quiet"
    )
    text = report_markdown(result, command.strip())
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("# Soak benchmark\n\n" + text.split("\n", 2)[2], encoding="utf-8")
    if args.into:
        old = args.into.read_text(encoding="utf-8") if args.into.exists() else ""
        args.into.write_text(replace_section(old, text), encoding="utf-8")
    return 0 if result.passed() else 1


if __name__ == "__main__":
    sys.exit(main())
