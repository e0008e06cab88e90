"""Run the benchmarks by name, full or quick, and turn the results into the table, JSON and markdown."""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from gptviz.bench.harness import BenchResult, load_average, markdown_report, now_iso, wait_for_quiet
from gptviz.errors import ConfigError

# name -> module under gptviz.bench; each has run(sizes), FULL and QUICK. Order is the report's order.
BENCHMARKS: dict[str, str] = {
    "generation": "gptviz.bench.generation",
    "training": "gptviz.bench.training",
    "capture": "gptviz.bench.capture",
    "step": "gptviz.bench.step",
    "peers": "gptviz.bench.peers",
    "gui": "gptviz.bench.gui",
    "startup": "gptviz.bench.startup",
    "causal": "gptviz.bench.causal",
}
# The benchmarks that also run on a GPU (`--device cuda`): their modules have CUDA_FULL and CUDA_QUICK sizes
# and a run(sizes, device=...). The others (the Qt window, start-up) measure the desktop app on the CPU.
CUDA_BENCHMARKS: tuple[str, ...] = ("generation", "training", "capture")
NOTES_FILE = Path(__file__).with_name("notes.md")
# A hand-written section of the report between these markers (the GPU figures) survives a rewrite.
KEPT_START, KEPT_END = "<!-- kept:gpu -->", "<!-- /kept:gpu -->"


def select(only: Sequence[str] | None, device: str = "cpu") -> list[str]:
    """The benchmark names to run, in report order; unknown names are a ConfigError naming the choices.

    On cuda the default is every benchmark that runs there, and naming one that does not is a ConfigError.
    """
    usable = list(BENCHMARKS) if device == "cpu" else [n for n in BENCHMARKS if n in CUDA_BENCHMARKS]
    if not only:
        return usable
    unknown = [n for n in only if n not in BENCHMARKS]
    if unknown:
        raise ConfigError(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    cpu_only = [n for n in only if n not in usable]
    if cpu_only:
        raise ConfigError(
            f"the {cpu_only[0]} benchmark runs on the CPU only; with --device {device} choose from "
            f"{', '.join(usable)}"
        )
    return [n for n in BENCHMARKS if n in only]


def run_benchmarks(
    names: Sequence[str],
    *,
    quick: bool = False,
    judged_quick: bool = False,
    sizes: dict[str, Any] | None = None,
    log: TextIO | None = None,
    on_result: Callable[[BenchResult], None] | None = None,
    device: str = "cpu",
    quiet_wait: float = 0.0,
) -> list[BenchResult]:
    """Run each named benchmark (quick or full sizes, or the explicit `sizes` given for a name).

    `device` "cuda" runs the CUDA_BENCHMARKS at their CUDA_QUICK / CUDA_FULL sizes on the GPU.
    `judged_quick` runs each benchmark at its JUDGED_QUICK sizes: the sizes its targets are stated for,
    with fewer repeats (the full sizes where a module keeps none), so every figure is still judged.
    """
    on_gpu = device != "cpu"
    results = []
    for name in names:
        module = importlib.import_module(BENCHMARKS[name])
        if on_gpu:
            default = module.CUDA_QUICK if quick else module.CUDA_FULL
        elif judged_quick:
            default = getattr(module, "JUDGED_QUICK", module.FULL)
        else:
            default = module.QUICK if quick else module.FULL
        chosen = (sizes or {}).get(name) or default
        if log is not None:
            where = f", {device}" if on_gpu else ""
            kind = "quick" if quick else "judged quick" if judged_quick else "full"
            print(f"[bench] {name} ({kind}{where}) ...", file=log, flush=True)
        if quiet_wait > 0 and not quick:
            settled = wait_for_quiet(quiet_wait)
            if settled is not None and settled > 1.0 and log is not None:
                print(
                    f"[bench] WARNING: load average {settled:.1f} after waiting {quiet_wait:.0f} s: {name}'s "
                    "figures are from a busy machine; judged figures belong to a quiet one",
                    file=log,
                    flush=True,
                )
        started = time.perf_counter()
        when, load = now_iso(), load_average()
        result = module.run(chosen, device=device) if on_gpu else module.run(chosen)
        if quick:
            result.unjudge()
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


def kept_section(text: str) -> str:
    """The block between KEPT_START and KEPT_END (markers included), or "" when the report has none."""
    start = text.find(KEPT_START)
    end = text.find(KEPT_END, start + 1) if start >= 0 else -1
    return text[start : end + len(KEPT_END)] if start >= 0 and end >= 0 else ""


def write_markdown(
    path: str | Path,
    results: Sequence[BenchResult],
    machine: dict[str, Any],
    *,
    quick: bool,
    command: str,
    notes: str | None = None,
) -> Path:
    """docs/benchmarks.md: the generated tables, then the hand-written notes (profiles, changes, targets).

    `notes` None appends notes.md (the CPU report's profiles); a GPU report passes its own (or "")."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if notes is None:
        notes = NOTES_FILE.read_text(encoding="utf-8") if NOTES_FILE.is_file() else ""
    kept = kept_section(path.read_text(encoding="utf-8")) if path.is_file() else ""
    if kept:
        notes = kept + "\n\n" + notes
    text = markdown_report(results, machine, quick=quick, command=command, appendix=notes)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
