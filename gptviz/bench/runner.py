"""Run the benchmarks by name, full or quick, and turn the results into the table, JSON and markdown."""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from gptviz.bench.harness import BenchResult, load_average, markdown_report, now_iso
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
        when, load = now_iso(), load_average()
        result = module.run(chosen)
        result.seconds = time.perf_counter() - started
        result.started, result.load_start = when, load
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


def merge_previous(results: Sequence[BenchResult], previous_json: str | Path) -> list[BenchResult]:
    """`results` plus, in report order, the benchmarks a previous run stored in `previous_json` that this
    run did not measure (so `--only gui` updates one section of the report and keeps the others)."""
    path = Path(previous_json)
    fresh = {r.name: r for r in results}
    stored: dict[str, Any] = {}
    if path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = {}
    default_start = (stored.get("machine") or {}).get("date", "")  # older files: the run's own start
    default_load = (stored.get("machine") or {}).get("load_average")
    merged = []
    for name in BENCHMARKS:
        if name in fresh:
            merged.append(fresh[name])
        elif isinstance(stored.get(name), dict):
            old = BenchResult.from_dict(name, stored[name])
            if not old.started:  # a record from before per-benchmark times: the run's start stands in
                old.started = default_start
                old.load_start = tuple(default_load) if default_load else None
            merged.append(old)
    return merged


def write_json(
    path: str | Path, results: Sequence[BenchResult], machine: dict[str, Any], quick: bool, command: str = ""
) -> Path:
    """The results with every repeat, so a later `--only` run or `--render` can rebuild the report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = as_json(results, machine, quick)
    if command:
        data["command"] = command
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


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
