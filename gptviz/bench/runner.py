"""Run the benchmarks by name, full or quick, and turn the results into the table, JSON and markdown."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from gptviz.bench.harness import BenchResult, markdown_report
from gptviz.errors import ConfigError

# name -> module under gptviz.bench; each has run(sizes), FULL and QUICK. Order is the report's order.
BENCHMARKS: dict[str, str] = {
    "generation": "gptviz.bench.generation",
    "training": "gptviz.bench.training",
    "capture": "gptviz.bench.capture",
    "gui": "gptviz.bench.gui",
    "startup": "gptviz.bench.startup",
}
NOTES_FILE = Path(__file__).with_name("notes.md")


def select(only: Sequence[str] | None) -> list[str]:
    """The benchmark names to run, in report order; unknown names are a ConfigError naming the choices."""
    if not only:
        return list(BENCHMARKS)
    unknown = [n for n in only if n not in BENCHMARKS]
    if unknown:
        raise ConfigError(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    return [n for n in BENCHMARKS if n in only]


def run_benchmarks(
    names: Sequence[str],
    *,
    quick: bool = False,
    sizes: dict[str, Any] | None = None,
    log: TextIO | None = None,
    on_result: Callable[[BenchResult], None] | None = None,
) -> list[BenchResult]:
    """Run each named benchmark (quick or full sizes, or the explicit `sizes` given for a name)."""
    results = []
    for name in names:
        module = importlib.import_module(BENCHMARKS[name])
        chosen = (sizes or {}).get(name) or (module.QUICK if quick else module.FULL)
        if log is not None:
            print(f"[bench] {name} ({'quick' if quick else 'full'}) ...", file=log, flush=True)
        started = time.perf_counter()
        result = module.run(chosen)
        result.seconds = time.perf_counter() - started
        if log is not None:
            print(f"[bench] {name} done in {result.seconds:.0f} s", file=log, flush=True)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def as_json(results: Sequence[BenchResult], machine: dict[str, Any], quick: bool) -> dict[str, Any]:
    """{"generation": {"ours", "baseline", "unit", "ratio", ...}, ..., "machine": {...}, "quick": bool}."""
    data: dict[str, Any] = {r.name: r.to_dict() for r in results}
    data["machine"] = machine
    data["quick"] = quick
    return data


def write_markdown(
    path: str | Path, results: Sequence[BenchResult], machine: dict[str, Any], *, quick: bool, command: str
) -> Path:
    """docs/benchmarks.md: the generated tables, then the hand-written notes (profiles, changes, targets)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    notes = NOTES_FILE.read_text(encoding="utf-8") if NOTES_FILE.is_file() else ""
    text = markdown_report(results, machine, quick=quick, command=command, appendix=notes)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
