"""Timing helpers shared by the benchmarks: interleaved repeats, min/median/max, machine facts, markdown.

A loaded machine slows every run, but it slows two runs taken in turn (A B A B ...) about equally, so the
ratio of the two medians is far steadier than either figure alone. Every side-by-side benchmark therefore
runs its variants interleaved, with one untimed warm-up each, and reports both the figures and the ratio.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Stats:
    """min / median / max of repeated measurements of one figure."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        if not values:
            raise ValueError("no measurements")
        return cls(tuple(float(v) for v in values))

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))

    @property
    def max(self) -> float:
        return max(self.values)

    def map(self, fn: Callable[[float], float]) -> Stats:
        """The same repeats through `fn` (e.g. seconds -> tokens/s); min and max swap when fn decreases."""
        return Stats(tuple(fn(v) for v in self.values))

    def to_dict(self) -> dict[str, Any]:
        return {
            "min": self.min,
            "median": self.median,
            "max": self.max,
            "n": len(self.values),
            "values": list(self.values),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Stats | None:
        """Inverse of to_dict; a record without `values` keeps its min, median and max."""
        if data is None:
            return None
        values = data.get("values") or [data["min"], data["median"], data["max"]]
        return cls.of(values)


@dataclass
class Figure:
    """One measured number with its target: `value` is what the table shows (a median unless noted)."""

    name: str
    value: float
    unit: str
    stats: Stats | None = None
    target: str = ""  # e.g. "<= 1.25"
    passed: bool | None = None  # None: no target

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "stats": self.stats.to_dict() if self.stats else None,
            "target": self.target,
            "pass": self.passed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Figure:
        return cls(
            data["name"],
            data["value"],
            data["unit"],
            Stats.from_dict(data.get("stats")),
            data["target"] or "",
            data["pass"],
        )


@dataclass
class BenchResult:
    """One benchmark: the headline comparison (ours vs baseline and their ratio) plus further figures.

    For throughput benchmarks `ratio` = ours / baseline (higher is better); for overhead benchmarks it is
    ours / baseline of a time (lower is better); `target` says which way and how far.
    """

    name: str
    ours: float | None
    baseline: float | None
    unit: str
    ratio: float | None
    target: str
    passed: bool | None
    ours_label: str = "ours"
    baseline_label: str = "baseline"
    ours_stats: Stats | None = None
    baseline_stats: Stats | None = None
    figures: list[Figure] = field(default_factory=list)
    setup: str = ""  # what was run, sizes included
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # plain values a test or a script can check
    seconds: float = 0.0  # wall time the benchmark took
    started: str = ""  # when it started (ISO time) and the load average then: results of one report may
    load_start: tuple[float, float, float] | None = None  # come from different runs (`--only` updates)
    judged: bool = True  # False for quick runs: their sizes are not the ones the targets are stated for

    def unjudge(self) -> None:
        """A quick run judges nothing: no target, no pass/fail, for the headline and every figure."""
        self.judged = False
        self.passed = None
        for figure in self.figures:
            figure.passed = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ours": self.ours,
            "baseline": self.baseline,
            "unit": self.unit,
            "ratio": self.ratio,
            "target": self.target if self.judged else None,
            "pass": self.passed if self.judged else None,
            "judged": self.judged,
            "ours_label": self.ours_label,
            "baseline_label": self.baseline_label,
            "ours_stats": self.ours_stats.to_dict() if self.ours_stats else None,
            "baseline_stats": self.baseline_stats.to_dict() if self.baseline_stats else None,
            "figures": [
                f.to_dict() if self.judged else {**f.to_dict(), "target": None, "pass": None}
                for f in self.figures
            ],
            "setup": self.setup,
            "notes": list(self.notes),
            "details": dict(self.details),
            "seconds": self.seconds,
            "started": self.started,
            "load_start": list(self.load_start) if self.load_start else None,
        }

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> BenchResult:
        """Inverse of to_dict (the name is the key it was stored under)."""
        load = data.get("load_start")
        return cls(
            name=name,
            ours=data["ours"],
            baseline=data["baseline"],
            unit=data["unit"],
            ratio=data["ratio"],
            target=data["target"] or "",
            passed=data["pass"],
            ours_label=data.get("ours_label", "ours"),
            baseline_label=data.get("baseline_label", "baseline"),
            ours_stats=Stats.from_dict(data.get("ours_stats")),
            baseline_stats=Stats.from_dict(data.get("baseline_stats")),
            figures=[Figure.from_dict(f) for f in data.get("figures", [])],
            setup=data.get("setup", ""),
            notes=list(data.get("notes", [])),
            details=dict(data.get("details", {})),
            seconds=float(data.get("seconds", 0.0)),
            started=data.get("started", ""),
            load_start=tuple(load) if load else None,
            judged=bool(data.get("judged", True)),
        )


def at_most(value: float, limit: float) -> bool:
    return value <= limit


def at_least(value: float, limit: float) -> bool:
    return value >= limit


def now_iso() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def interleave(
    variants: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
    sync: Callable[[], Any] | None = None,
) -> dict[str, list[float]]:
    """Run each variant `warmup` times untimed, then `repeats` rounds of A B C ...; seconds per call.

    The order inside a round alternates (A B, then B A, ...) so neither variant always runs right after the
    other's memory traffic or right before a pause. `sync` (e.g. torch.cuda.synchronize) runs before the
    clock starts and before it stops, so work a GPU queued is counted in the call that queued it.
    """
    wait = sync if sync is not None else _nothing
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            wait()
            start = time.perf_counter()
            variants[name]()
            wait()
            times[name].append(time.perf_counter() - start)
    return times


def _nothing() -> None:
    return None


BENCH_DEVICES = ("cpu", "cuda", "auto")


def resolve_device(name: str) -> str:
    """'cpu' or 'cuda' for a --device choice; 'auto' takes the GPU when PyTorch sees one.

    Asking for cuda without a GPU is a ConfigError with one line a user can act on.
    """
    import torch

    from gptviz.errors import ConfigError

    if name not in BENCH_DEVICES:
        raise ConfigError(f"device must be one of {', '.join(BENCH_DEVICES)}, got {name!r}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but PyTorch sees no CUDA device (use --device cpu)")
    return name


def device_sync(device: str) -> Callable[[], Any] | None:
    """What `interleave` needs to time work on `device`: torch.cuda.synchronize on a GPU, nothing on a CPU."""
    import torch

    return torch.cuda.synchronize if torch.device(device).type == "cuda" else None


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except (OSError, AttributeError):
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except (OSError, ValueError):
        pass
    return None


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001 - a missing package is reported as such
        return "not installed"


def _pyside_version() -> str:
    found = _version("PySide6")
    return found if found != "not installed" else _version("PySide6-Essentials")


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, threads torch uses, memory, versions, load; on a GPU
    run also the GPU's name and memory and the CUDA version torch was built with."""
    import numpy
    import torch

    from gptviz.model import native_decode

    info = {
        "date": now_iso(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "PySide6": _pyside_version(),
        "pyqtgraph": _version("pyqtgraph"),
        "load_average": load_average(),
        "cuda": torch.cuda.is_available(),
        "native_decode": native_decode.status(),
    }
    if torch.device(device).type == "cuda":
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        info.update(
            {
                "device": "cuda",
                "gpu": torch.cuda.get_device_name(),
                "gpu_memory_gib": props.total_memory / 2**30,
                "gpu_multiprocessors": props.multi_processor_count,
                "cuda_version": torch.version.cuda,
            }
        )
    return info


def fmt(value: float | None, unit: str = "") -> str:
    """Readable number: 3 significant digits, thousands separators, unit after."""
    if value is None:
        return "–"
    magnitude = abs(value)
    if magnitude >= 1000:
        text = f"{value:,.0f}"
    elif magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def fmt_stats(stats: Stats | None, unit: str = "") -> str:
    if stats is None:
        return "–"
    return f"{fmt(stats.min)} / {fmt(stats.median)} / {fmt(stats.max)} {unit}".strip()


def verdict(passed: bool | None) -> str:
    return {True: "pass", False: "MISS", None: "–"}[passed]


NOT_JUDGED = "not judged at quick sizes"


def load_now() -> float | None:
    """The 1-minute load average (None where the OS does not say)."""
    load = load_average()
    return load[0] if load else None


def wait_for_quiet(limit_s: float, threshold: float = 1.0, poll_s: float = 5.0) -> float | None:
    """Wait up to `limit_s` seconds for the 1-minute load average to fall to `threshold`; the load then.

    Ratios survive a busy machine better than times, but not entirely (a quiet run measured the capture
    ratio 1.46x where a run at load 4.5 said 1.14x), so judged figures should come from a quiet machine."""
    deadline = time.monotonic() + max(0.0, limit_s)
    load = load_now()
    while load is not None and load > threshold and time.monotonic() < deadline:
        time.sleep(poll_s)
        load = load_now()
    return load


def summary_table(results: Sequence[BenchResult]) -> str:
    """The plain-text table `gptviz bench` prints."""
    rows = [("benchmark", "ours", "baseline", "ratio", "target", "")]
    for r in results:
        rows.append(
            (
                r.name,
                fmt(r.ours, r.unit),
                fmt(r.baseline, r.unit),
                fmt(r.ratio) + ("x" if r.ratio is not None else ""),
                r.target if r.judged else NOT_JUDGED,
                verdict(r.passed),
            )
        )
        for f in r.figures:
            target = f.target if r.judged else (NOT_JUDGED if f.target else "")
            rows.append(("  " + f.name, fmt(f.value, f.unit), "", "", target, verdict(f.passed)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _target(result: BenchResult, figure: Figure | None = None) -> str:
    """A target as the report shows it: quick runs judge nothing and say so."""
    target = result.target if figure is None else figure.target
    return target if result.judged else (NOT_JUDGED if target else "")


def markdown_report(
    results: Sequence[BenchResult],
    machine: dict[str, Any],
    *,
    quick: bool,
    command: str,
    preface: str = "",
    appendix: str = "",
) -> str:
    """docs/benchmarks.md: machine, versions, each figure as min / median / max, ratio, target, pass/miss."""

    def load_text(load: Sequence[float] | None) -> str:
        return ", ".join(f"{x:.2f}" for x in load) if load else "unknown"

    lines = ["# gptviz benchmarks", ""]
    if preface:
        lines += [preface.strip(), ""]
    lines += [
        f"Measured with `{command}`" + (" (quick sizes: see each setup line)" if quick else "") + ".",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| date | {machine.get('date')} |",
        f"| CPU | {machine.get('cpu')} |",
        f"| cores / torch threads | {machine.get('cores')} / {machine.get('torch_threads')} |",
        f"| memory | {machine.get('memory_gib') or 0:.1f} GiB |",
        f"| load average (1, 5, 15 min) at the start | {load_text(machine.get('load_average'))} |",
        f"| load average (1, 5, 15 min) at the end | {load_text(machine.get('load_average_end'))} |",
        f"| OS | {machine.get('os')} |",
        f"| Python / torch / numpy | {machine.get('python')} / {machine.get('torch')} / {machine.get('numpy')} |",
        f"| PySide6 / pyqtgraph | {machine.get('PySide6')} / {machine.get('pyqtgraph')} |",
        f"| one-token generation steps in C (`native_decode`) | {machine.get('native_decode', 'not recorded')} |",
    ]
    if machine.get("gpu"):
        lines.append(
            f"| GPU | {machine['gpu']}, {machine.get('gpu_memory_gib') or 0:.0f} GiB, "
            f"CUDA {machine.get('cuda_version')} |"
        )
    lines += [
        "",
        "Figures are min / median / max over the repeats; the headline value and the ratio use medians. "
        "Side-by-side variants ran interleaved (A B B A ...) in one process on the same data and seed.",
        "",
        "## Summary",
        "",
        "| benchmark | ours | baseline | ratio | target | result |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = fmt(r.ratio) + "x" if r.ratio is not None else "–"
        lines.append(
            f"| {r.name} | {fmt(r.ours, r.unit)} | {fmt(r.baseline, r.unit)} | {ratio} | {_target(r)} | "
            f"{verdict(r.passed)} |"
        )
        for f in r.figures:
            lines.append(
                f"| &nbsp;&nbsp;{f.name} | {fmt(f.value, f.unit)} | | | {_target(r, f)} | {verdict(f.passed)} |"
            )
    for r in results:
        lines += ["", f"## {r.name}", ""]
        if r.setup:
            lines += [r.setup, ""]
        lines += ["| figure | min / median / max | target | result |", "|---|---|---|---|"]
        if r.ours_stats is not None:
            lines.append(f"| {r.ours_label} | {fmt_stats(r.ours_stats, r.unit)} | | |")
        if r.baseline_stats is not None:
            lines.append(f"| {r.baseline_label} | {fmt_stats(r.baseline_stats, r.unit)} | | |")
        if r.ratio is not None:
            lines.append(f"| ratio (medians) | {fmt(r.ratio)}x | {_target(r)} | {verdict(r.passed)} |")
        for f in r.figures:
            shown = fmt_stats(f.stats, f.unit) if f.stats is not None else fmt(f.value, f.unit)
            lines.append(f"| {f.name} | {shown} | {_target(r, f)} | {verdict(f.passed)} |")
        for note in r.notes:
            lines += ["", note]
        when = f", started {r.started}" if r.started else ""
        load = f", load average {load_text(r.load_start)}" if r.load_start else ""
        lines += ["", f"(took {r.seconds:.0f} s{when}{load})"]
    if appendix:
        lines += ["", appendix.strip()]
    return "\n".join(lines) + "\n"
