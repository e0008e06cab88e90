"""A training run on disk: settings.json, metrics.jsonl, checkpoint/ and probes/.

The layout is what lets a run be followed and resumed by another process:

    RUN_DIR/settings.json    model config, training settings, corpus reference (written once, atomically)
    RUN_DIR/metrics.jsonl    one JSON object a line, one line per optimizer step (rank 0 only)
    RUN_DIR/checkpoint/      the project's checkpoint format, swapped in atomically at every evaluation
    RUN_DIR/probes/          probe-NNNNNN.npz + probes.jsonl (see gptviz.engine.probe)

Lines are appended and flushed one at a time, so a reader may find a half-written last line (the writer was
killed mid-line). `read_jsonl` and `MetricsFollower` only ever return complete lines. On resume the JSONL
files are cut back to the checkpoint's step, so a resumed run never repeats a step.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from gptviz.engine.atomic import atomic_write_json
from gptviz.errors import ConfigError, DataError

SETTINGS_FILE = "settings.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoint"
PROBES_DIR = "probes"
PROBES_INDEX = "probes.jsonl"
RUN_FORMAT = "gptviz-run"
RUN_FORMAT_VERSION = 1

# The one event record that is not a step: the follower emits it when the file was cut back or replaced.
RESTART_EVENT = "restart"


def metrics_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / METRICS_FILE


def checkpoint_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def probes_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / PROBES_DIR


def ensure_fresh_run_dir(run_dir: str | os.PathLike) -> Path:
    """Refuse to start a new run over an existing one: its checkpoint and metrics would be lost."""
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path} exists and is not a directory; choose a new run directory")
    if path.is_dir() and any(path.iterdir()):
        raise ConfigError(
            f"{path} is not empty; pass --resume to continue the run in it, or choose a new directory"
        )
    return path


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null so every line stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):  # per-part diagnostics: {part: norm}
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):  # attention entropy: [layer][head]
        return [_clean(v) for v in value]
    return value


def dumps_record(record: dict[str, Any]) -> str:
    return json.dumps({k: _clean(v) for k, v in record.items()}, separators=(",", ":"))


def write_settings(run_dir: str | os.PathLike, data: dict[str, Any]) -> None:
    atomic_write_json(
        Path(run_dir) / SETTINGS_FILE, {"format": RUN_FORMAT, "version": RUN_FORMAT_VERSION, **data}
    )


def read_settings(run_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(run_dir) / SETTINGS_FILE
    if not Path(run_dir).is_dir():
        raise DataError(f"run directory not found: {run_dir}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{run_dir} is not a gptviz run directory (no {SETTINGS_FILE})") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: a huge int
        raise DataError(f"{path} is unreadable: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != RUN_FORMAT:
        raise DataError(f"{path} is not a gptviz run settings file")
    return data


class JsonlWriter:
    """Appends one JSON object per line and flushes it, so a follower sees each record at once."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def write(self, record: dict[str, Any]) -> None:
        self._handle.write(dumps_record(record) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()


def _parse_line(raw: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # ValueError: also an int of 4,300+ digits
        return None
    return record if isinstance(record, dict) else None


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every complete, valid line of a JSONL file; a half-written last line or a damaged line is skipped."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    complete = raw[: raw.rfind(b"\n") + 1]
    records = []
    for line in complete.splitlines():
        if line.strip():
            record = _parse_line(line)
            if record is not None:
                records.append(record)
    return records


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    return read_jsonl(metrics_path(run_dir))


def truncate_jsonl(path: str | os.PathLike, max_step: int) -> int:
    """Cut a step-ordered JSONL file in place after the last complete line with step <= max_step.

    Used on resume: lines written after the checkpoint (and a half line left by a killed writer) go, so
    the resumed run continues the file without repeating steps. Returns the number of lines kept.
    """
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        return 0
    keep_bytes = 0
    kept = 0
    offset = 0
    while True:
        newline = raw.find(b"\n", offset)
        if newline < 0:
            break
        record = _parse_line(raw[offset:newline])
        if record is None or not isinstance(record.get("step"), int) or record["step"] > max_step:
            break
        offset = newline + 1
        keep_bytes = offset
        kept += 1
    if keep_bytes != len(raw):
        os.truncate(file, keep_bytes)
    return kept


class MetricsFollower:
    """Reads the records a run appends to a JSONL file, from any process, without ever returning half a line.

    `poll()` returns the complete lines added since the last call. When the file was cut back (a resumed
    run) or replaced, it starts again from the top and first returns `{"event": "restart"}`, so a plot can
    clear its curves before the records arrive again.
    """

    def __init__(self, run_dir_or_file: str | os.PathLike) -> None:
        path = Path(run_dir_or_file)
        self.path = path / METRICS_FILE if path.is_dir() or path.suffix != ".jsonl" else path
        self._offset = 0
        self._inode: int | None = None

    def poll(self) -> list[dict[str, Any]]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        records: list[dict[str, Any]] = []
        if (self._inode is not None and stat.st_ino != self._inode) or stat.st_size < self._offset:
            self._offset = 0
            records.append({"event": RESTART_EVENT})
        self._inode = stat.st_ino
        if stat.st_size == self._offset:
            return records
        with open(self.path, "rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read()
        end = chunk.rfind(b"\n")
        if end < 0:
            return records  # only part of a line so far: wait for its newline
        for line in chunk[: end + 1].splitlines():
            if line.strip():
                record = _parse_line(line)
                if record is not None:
                    records.append(record)
        self._offset += end + 1
        return records
