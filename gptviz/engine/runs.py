"""The window's training runs on disk: DATA_DIR/runs/<date>-<model>-<corpus>/, one run directory each.

A run started in the window writes what `gptviz train --out` writes (settings.json, metrics.jsonl, probes/,
checkpoint/), so closing the window, a crash or a power cut loses at most the steps since the last
checkpoint, and any run can be reopened, resumed (`gptviz train --resume`), followed or deleted later.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from gptviz.engine.download import data_dir
from gptviz.errors import ConfigError

RUNS_FOLDER = "runs"
WINDOW_FILE = "window.json"  # written by the window beside the run's own files: {"model": name shown}


def runs_dir() -> Path:
    return data_dir() / RUNS_FOLDER


def _slug(text: str, limit: int = 40) -> str:
    """A name safe in any file system: letters, digits, '.', '-' and '_'; the rest becomes '-'."""
    slug = re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-.") or "x"
    return slug[:limit]


def new_run_dir(model_name: str, corpus_name: str, now: _dt.datetime | None = None) -> Path:
    """A fresh folder name under runs/ (not created): 2026-11-30-121502-tiny-builtin (-2, -3 if taken)."""
    now = now or _dt.datetime.now()
    base = f"{now:%Y-%m-%d-%H%M%S}-{_slug(model_name)}-{_slug(corpus_name)}"
    path = runs_dir() / base
    n = 2
    while path.exists():
        path = runs_dir() / f"{base}-{n}"
        n += 1
    return path


@dataclass(frozen=True)
class RunSummary:
    """One run directory as the Runs list shows it."""

    path: Path
    started: str  # from the folder name (local time), or the settings file's time
    model: str
    corpus: str
    steps: int  # steps in the checkpoint (what a resume continues from)
    total_steps: int
    size_bytes: int
    has_checkpoint: bool

    @property
    def finished(self) -> bool:
        return self.total_steps > 0 and self.steps >= self.total_steps


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a file deleted while we count
                total += (Path(root) / name).stat().st_size
    return total


def summarize(path: Path) -> RunSummary | None:
    """A run directory's summary; None when the folder holds no run (no settings.json)."""
    settings = _read_json(path / "settings.json")
    if not settings:
        return None
    config = _read_json(path / "checkpoint" / "config.json")
    meta = config.get("meta") if isinstance(config.get("meta"), dict) else {}
    corpus = settings.get("corpus") if isinstance(settings.get("corpus"), dict) else {}
    match = re.match(r"^(\d{4}-\d{2}-\d{2})-(\d{2})(\d{2})(\d{2})-", path.name)
    started = f"{match.group(1)} {match.group(2)}:{match.group(3)}:{match.group(4)}" if match else ""
    window = _read_json(path / WINDOW_FILE)  # what the window knew: the model's name as it showed it
    shape = settings.get("model") if isinstance(settings.get("model"), dict) else {}
    model = str(window.get("model") or meta.get("name") or shape.get("name") or "?")
    return RunSummary(
        path=path,
        started=started,
        model=model,
        corpus=str(corpus.get("name") or meta.get("corpus") or "?"),
        steps=int(meta.get("step") or 0),
        total_steps=int(settings.get("total_steps") or 0),
        size_bytes=_size(path),
        has_checkpoint=bool(config),
    )


def list_runs(directory: Path | None = None) -> list[RunSummary]:
    """Every run under runs/, newest first."""
    folder = directory or runs_dir()
    if not folder.is_dir():
        return []
    found = [summarize(p) for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted((r for r in found if r is not None), key=lambda r: r.path.name, reverse=True)


def last_run(directory: Path | None = None) -> RunSummary | None:
    """The newest run with a checkpoint that did not finish: what the window offers to reopen."""
    for run in list_runs(directory):
        if run.has_checkpoint and not run.finished:
            return run
    return None


def delete_run(path: Path, directory: Path | None = None) -> None:
    """Delete one run directory; refuses anything that is not a run inside runs/."""
    folder = (directory or runs_dir()).resolve()
    target = Path(path).resolve()
    if target.parent != folder or summarize(target) is None:
        raise ConfigError(f"{path} is not a run in {folder}; nothing was deleted")
    shutil.rmtree(target)


__all__ = ["RunSummary", "delete_run", "last_run", "list_runs", "new_run_dir", "runs_dir", "summarize"]
