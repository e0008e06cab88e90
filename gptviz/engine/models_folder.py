"""Where downloaded models live: gptviz's data folder, its models/ folder, one folder name per model, the
complete checkpoints found there, and the free disk space around a path.

Torch-free and network-free, so the Model menu and the download dialog list what is on disk while the window
paints, and the runs folder (engine/runs.py) finds the same data folder without importing the downloader.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from gptviz.engine.path_kind import is_own_checkpoint

DATA_DIR_ENV = "GPTVIZ_DATA_DIR"
DEFAULT_REVISION = "main"


def data_dir() -> Path:
    """gptviz's per-user data folder: $GPTVIZ_DATA_DIR, else platformdirs' user data dir."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("gptviz", appauthor=False))


def models_dir() -> Path:
    return data_dir() / "models"


def folder_name(name: str, revision: str | None = None) -> str:
    """The models/ folder of NAME: '124M' stays, 'owner/name' becomes 'owner--name' (plus '@revision')."""
    base = name.replace("/", "--")
    if revision and revision != DEFAULT_REVISION:
        base += "@" + re.sub(r"[^\w.-]", "_", revision)
    return base


def default_out(name: str, revision: str | None = None) -> Path:
    return models_dir() / folder_name(name, revision)


def downloaded_models(directory: Path | None = None) -> list[Path]:
    """gptviz checkpoints in the models folder (complete ones only: hidden staging folders are skipped)."""
    root = directory if directory is not None else models_dir()
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    found = []
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        if is_own_checkpoint(entry):
            found.append(entry)
    return found


def free_disk_bytes(path: Path) -> int:
    """Free bytes on the disk that holds `path` (or the nearest folder above it that exists)."""
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return 2**62


def device_of(path: Path) -> int | None:
    """The file system (st_dev) holding `path` or the nearest folder above it; None when none exists."""
    for candidate in (path, *path.parents):
        try:
            return candidate.stat().st_dev
        except OSError:
            continue
    return None
