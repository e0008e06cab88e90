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
import time
from dataclasses import dataclass
from pathlib import Path

from gptviz.engine.atomic import atomic_write_json
from gptviz.engine.models_folder import data_dir
from gptviz.errors import ConfigError

RUNS_FOLDER = "runs"
# Written by the window beside the run's own files: {"model": the name it showed, "state": how the window
# left the run, "pid": the process that wrote the state, "updated": when (seconds since the epoch),
# "offer": "answered" once the reopen offer for it was answered}.
WINDOW_FILE = "window.json"

# How the window left a run. RUNNING is written when a run starts or resumes and stays when the process
# dies without closing (a crash, a kill, a power cut): found at the next launch, it means the run was cut
# off. CLOSED: the window was closed mid-run (or paused) and wrote a checkpoint of the last finished step.
# STOPPED: the user pressed Stop (or the run ended by itself or by an error they were shown).
RUNNING, CLOSED, STOPPED = "running", "closed", "stopped"
OFFERED_STATES = (RUNNING, CLOSED)  # a run left this way is offered back at the next launch


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
    size_bytes: int  # -1 when not counted (summarize(..., with_size=False))
    has_checkpoint: bool
    state: str = ""  # RUNNING, CLOSED, STOPPED; "" for a run written before the window recorded it
    pid: int = 0  # the process that last wrote the state
    updated: float = 0.0  # when the state was written (seconds since the epoch); 0 when unknown
    offer_answered: bool = False  # the reopen offer for this run was answered (or dismissed)

    @property
    def finished(self) -> bool:
        return self.total_steps > 0 and self.steps >= self.total_steps


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _dict_at(data: dict, key: str) -> dict:
    """data[key] when it is a JSON object, else {} (a hand-edited or older file may hold anything there)."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a file deleted while we count
                total += (Path(root) / name).stat().st_size
    return total


def summarize(path: Path, with_size: bool = True) -> RunSummary | None:
    """A run directory's summary; None when the folder holds no run (no settings.json). `with_size=False`
    skips walking the folder (probes can be thousands of files), for the start-up check."""
    settings = _read_json(path / "settings.json")
    if not settings:
        return None
    config = _read_json(path / "checkpoint" / "config.json")
    meta = _dict_at(config, "meta")
    corpus = _dict_at(settings, "corpus")
    match = re.match(r"^(\d{4}-\d{2}-\d{2})-(\d{2})(\d{2})(\d{2})-", path.name)
    started = f"{match.group(1)} {match.group(2)}:{match.group(3)}:{match.group(4)}" if match else ""
    window = _read_json(path / WINDOW_FILE)  # what the window knew: the model's name as it showed it
    shape = _dict_at(settings, "model")
    model = str(window.get("model") or meta.get("name") or shape.get("name") or "?")
    return RunSummary(
        path=path,
        started=started,
        model=model,
        corpus=str(corpus.get("name") or meta.get("corpus") or "?"),
        steps=int(meta.get("step") or 0),
        total_steps=int(settings.get("total_steps") or 0),
        size_bytes=_size(path) if with_size else -1,
        has_checkpoint=bool(config),
        state=str(window.get("state") or ""),
        pid=_int(window.get("pid")),
        updated=_float(window.get("updated")),
        offer_answered=bool(window.get("offer")),
    )


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _float(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


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


def mark_run(path: str | os.PathLike, state: str, **fields: object) -> None:
    """Record in the run's window.json how the window left it (RUNNING, CLOSED, STOPPED), by which process
    and when, so the next launch can tell a run cut off by a crash or a close from one the user stopped.
    A new state clears an earlier answer to the reopen offer: a run resumed and closed again is offered
    again. Written atomically (a reader never sees half a file); raises OSError when it cannot be written."""
    target = Path(path) / WINDOW_FILE
    data = _read_json(target)
    data.update(fields)
    data.update(state=state, pid=os.getpid(), updated=time.time())
    data.pop("offer", None)
    atomic_write_json(target, data)


def answer_offer(path: str | os.PathLike) -> None:
    """The reopen offer for this run was answered (Reopen, Resume, Runs… or dismissed): don't offer it at
    the next launch. File › Runs… still lists it."""
    target = Path(path) / WINDOW_FILE
    data = _read_json(target)
    data["offer"] = "answered"
    atomic_write_json(target, data)


def _alive(pid: int) -> bool:
    """True when a process with this id exists (another gptviz may be training the run right now)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else (PermissionError), or a platform without signal 0
        return True
    return True


def run_to_offer(directory: Path | None = None) -> RunSummary | None:
    """The run to offer back at start-up, or None.

    The last run is the one whose state the window wrote most recently (a resumed older run counts from
    its resume). It is offered when it has a checkpoint, is not finished, the offer for it was not answered
    before, and the window left it RUNNING (the process died: a crash, a kill, a power cut) or CLOSED (the
    window was closed mid-run). A run the user stopped is not offered: they saw it end, and File › Runs…
    lists it. A RUNNING run whose process is still alive is being trained by another window: not offered.
    """
    folder = directory or runs_dir()
    if not folder.is_dir():
        return None
    found = [
        summarize(p, with_size=False) for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
    ]
    candidates = [r for r in found if r is not None]
    if not candidates:
        return None
    last = max(candidates, key=lambda r: (r.updated, r.path.name))
    if (
        not last.has_checkpoint
        or last.finished
        or last.offer_answered
        or last.state not in OFFERED_STATES
        or (last.state == RUNNING and last.pid != os.getpid() and _alive(last.pid))
    ):
        return None
    return last


def delete_run(path: Path, directory: Path | None = None) -> None:
    """Delete one run directory; refuses anything that is not a run inside runs/."""
    folder = (directory or runs_dir()).resolve()
    target = Path(path).resolve()
    if target.parent != folder or summarize(target) is None:
        raise ConfigError(f"{path} is not a run in {folder}; nothing was deleted")
    shutil.rmtree(target)


__all__ = [
    "CLOSED",
    "RUNNING",
    "STOPPED",
    "RunSummary",
    "answer_offer",
    "delete_run",
    "last_run",
    "list_runs",
    "mark_run",
    "new_run_dir",
    "run_to_offer",
    "runs_dir",
    "summarize",
]
