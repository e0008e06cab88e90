"""Following a run directory as another process writes it, and reading a finished run's history once.

A run directory (gptviz.engine.rundir) grows one metrics line a step and one probe file an evaluation.
`RunFollower.poll()` returns what was appended since the last poll as a `FollowBatch` (restarting when the
file was cut back by a resume or replaced); `read_history` reads a loaded checkpoint's own run once, cut to
the checkpoint's step. `history_dir_for` and `run_is_finished` answer the window's two questions about a
folder: where its history is, and whether anything more will be written to it.

Torch-free at module level (the window asks `run_is_finished` in the GUI thread): the probe reader, which
lives beside the probe writer, is imported when a poll first needs it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptviz.engine.kept_checkpoints import KEPT_DIR
from gptviz.engine.path_kind import CONFIG_FILE
from gptviz.engine.rundir import (
    CHECKPOINT_DIR,
    RESTART_EVENT,
    SETTINGS_FILE,
    MetricsFollower,
    checkpoint_path,
    metrics_path,
    probes_path,
    read_settings,
)
from gptviz.engine.views import FollowBatch
from gptviz.errors import DataError


@dataclass
class RunFollower:
    """Where a followed run is and how far it has been read (lives in the worker thread only)."""

    run_dir: Path
    metrics: MetricsFollower
    settings: dict
    probes_seen: int = 0

    @classmethod
    def open(cls, run_dir: str | os.PathLike) -> RunFollower:
        """Start following a run directory from its first line; DataError when it is not a run."""
        path = Path(run_dir)
        return cls(path, MetricsFollower(path), dict(read_settings(path)))

    def poll(self) -> FollowBatch | None:
        """New metrics lines and probes since the last poll; None when nothing changed."""
        from gptviz.engine.probe import (  # probe imports torch
            load_probe_attention,
            probe_file_name,
            read_probes,
        )

        records = self.metrics.poll()
        restart = any(r.get("event") == RESTART_EVENT for r in records)
        if restart:
            self.probes_seen = 0
        steps = tuple(r for r in records if isinstance(r.get("step"), int) and "event" not in r)
        index = read_probes(self.run_dir, attention=False)
        fresh = []
        for record in index[self.probes_seen :]:
            file = probes_path(self.run_dir) / probe_file_name(record.step)
            attention = load_probe_attention(file)  # (L, H, T, T) or None; a lying header is not allocated
            fresh.append(dataclasses.replace(record, attention=attention))
        self.probes_seen = len(index)
        if not steps and not fresh and not restart:
            return None
        return FollowBatch(
            run_dir=str(self.run_dir),
            records=steps,
            probes=tuple(fresh),
            restart=restart,
            total_steps=int(self.settings.get("total_steps") or 0),
        )


def history_dir_for(checkpoint_dir: str | os.PathLike) -> Path | None:
    """Where a checkpoint's training was recorded: the checkpoint directory itself when its run's
    metrics.jsonl was copied beside the weights (the demo model), or the run directory around a run's
    checkpoint/ folder, or the run around a kept step (RUN/checkpoints/step-N, gptviz.engine.kept_checkpoints:
    its history up to that step); None when none has a metrics.jsonl."""
    path = Path(checkpoint_dir)
    candidates = [path, path.parent] if path.name == CHECKPOINT_DIR else [path]
    if path.parent.name == KEPT_DIR:
        candidates.append(path.parent.parent)
    for candidate in candidates:
        if metrics_path(candidate).is_file():
            return candidate
    return None


def run_is_finished(run_dir: str | os.PathLike) -> bool:
    """True when a run directory's checkpoint holds its last step (settings' total_steps): nothing more will
    be written, so opening it shows the model and its history once instead of following a static folder.
    Reads two small JSON files, never the metrics."""
    try:
        settings = json.loads((Path(run_dir) / SETTINGS_FILE).read_text(encoding="utf-8"))
        config = json.loads((checkpoint_path(run_dir) / CONFIG_FILE).read_text(encoding="utf-8"))
        total, step = int(settings["total_steps"]), int(config["meta"]["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return step >= total > 0


def read_history(history_dir: Path, meta: dict[str, Any], model_name: str) -> FollowBatch | None:
    """A loaded checkpoint's run, read once: records and probes up to the checkpoint's step (`meta["step"]`;
    later ones describe weights this model does not have), labelled for the Training pane. None when there
    is nothing to show or the files are unreadable."""
    try:
        settings: dict[str, Any] = dict(read_settings(history_dir))
    except DataError:
        settings = {}  # a checkpoint with metrics but no settings.json: curves without the run's totals
    try:
        batch = RunFollower(history_dir, MetricsFollower(history_dir), settings).poll()
    except (OSError, ValueError):
        return None
    if batch is None:
        return None
    last = meta.get("step")
    records, probes = batch.records, batch.probes
    if isinstance(last, int):
        records = tuple(r for r in records if r["step"] <= last)
        probes = tuple(p for p in probes if p.step <= last)
    if not records:
        return None
    steps = int(records[-1]["step"])
    total = max(steps, int(settings.get("total_steps") or 0))
    corpus = (settings.get("corpus") or {}).get("name") or meta.get("corpus") or ""
    label = f"history of {model_name}: {steps:,}" + (f" of {total:,}" if total > steps else "")
    label += " steps" + (f" on {corpus}" if corpus else "")
    return dataclasses.replace(
        batch, records=records, probes=probes, restart=False, total_steps=total, label=label
    )
