"""Atomic writes: a reader sees the old file (or folder) or the new one, never half of either.

Every file gptviz writes that another reader may open while it is written (a checkpoint, a run's
settings.json, a probe's .npz, `gptviz inspect --out`, an export) goes through here:

- `staged_file(path)` yields a hidden sibling `.NAME.tmp-PID` to fill; when the block ends without an error
  it is fsynced and renamed over `path` (one `os.replace`, atomic on POSIX and Windows) and the folder is
  fsynced, so the rename itself survives a power cut. On an error the sibling is deleted.
- `staged_directory(dir)` does the same for a whole folder: two renames swap it in, and a process killed
  between them leaves `.NAME.old`, which a reader (gptviz.engine.checkpoint.resolve_checkpoint_dir) falls
  back to. Staging folders of processes that died (SIGKILL, power cut) are removed by the next save.
- `atomic_write_bytes`, `atomic_write_text` and `atomic_write_json` are `staged_file` for one value.

Torch-free and Qt-free: the window's start-up path may import it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STAGING_MARK = ".tmp-"  # in every staging name: `.NAME.tmp-PID`


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename inside `path` durable. Some systems cannot open a folder for fsync: skipped there."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a written file's bytes to the disk before it is renamed into place."""
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def staging_name(target: Path) -> Path:
    """The hidden sibling a write to `target` fills first (one per process, so two writers never share)."""
    return target.parent / f".{target.name}{STAGING_MARK}{os.getpid()}"


def backup_name(target: Path) -> Path:
    """Where `staged_directory` keeps the previous folder while the new one is moved in."""
    return target.parent / f".{target.name}.old"


@contextmanager
def staged_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden sibling path to write; when the block ends without an error, fsync it and rename it
    over `path`, so a reader never sees half a file. On an error the sibling is deleted."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_name(target)
    try:
        yield staging
        fsync_file(staging)
        os.replace(staging, target)
        fsync_dir(target.parent)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with staged_file(path) as staging:
        staging.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with staged_file(path) as staging:
        staging.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike, data: Any, *, indent: int | None = 2) -> None:
    """JSON (UTF-8) written atomically: a reader never meets half a settings file."""
    atomic_write_text(path, json.dumps(data, indent=indent))


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, but belongs to someone else
    return True


def _remove_stale_staging(parent: Path, name: str) -> None:
    """Delete staging folders left by saves whose process died (SIGKILL, power cut): each is a full-size copy
    of the model that nobody will finish, and a run killed often would fill the disk with them."""
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return
    prefix = f".{name}{STAGING_MARK}"
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for stale in entries:
        pid = stale.name[len(prefix) :]
        if stale.name.startswith(prefix) and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def staged_directory(directory: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden sibling of `directory` to fill; when the block ends without an error, swap it in.

    Two renames replace the old directory, so a reader sees the old one or the new one, never a mix; a
    process killed between them leaves `.NAME.old` (see `backup_name`), which a reader falls back to. On
    an error the staging folder is removed and the old directory is left as it was. Files written into the
    staging folder should be fsynced by the caller (`fsync_file`); the folders are fsynced here.
    """
    target = Path(directory)
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = staging_name(target)
    backup = backup_name(target)
    _remove_stale_staging(parent, target.name)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        yield staging
        fsync_dir(staging)
        if target.exists():
            if backup.exists():
                shutil.rmtree(backup)
            os.replace(target, backup)
        os.replace(staging, target)
        fsync_dir(parent)
        if backup.exists():
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not target.exists() and backup.exists():
            os.replace(backup, target)
        raise
