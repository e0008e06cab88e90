"""Remembered settings (QSettings, INI format): window layout, recent files, the last prompt and controls.

Everything goes through one INI file whose location `use_settings_dir()` can move, so tests (and a user who
wants a portable profile) never touch the real one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

ORGANIZATION = "gptviz"
APPLICATION = "gptviz"
MAX_RECENT = 8
ENV_SETTINGS_DIR = "GPTVIZ_SETTINGS_DIR"


def use_settings_dir(directory: str | os.PathLike) -> None:
    """Keep every QSettings of this process in `directory` (tests, portable installs)."""
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(directory))


class AppSettings:
    """Typed access to the few things gptviz remembers between launches."""

    def __init__(self) -> None:
        override = os.environ.get(ENV_SETTINGS_DIR)
        if override:
            use_settings_dir(override)
        self.qsettings = QSettings(
            QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION
        )

    @property
    def path(self) -> str:
        return self.qsettings.fileName()

    def value(self, key: str, default: Any = None, kind: type | None = None) -> Any:
        raw = self.qsettings.value(key, default)
        if kind is None or raw is None:
            return raw
        try:
            if kind is bool:
                return raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes")
            return kind(raw)
        except (TypeError, ValueError):
            return default

    def set_value(self, key: str, value: Any) -> None:
        self.qsettings.setValue(key, value)

    def geometry(self) -> tuple[QByteArray | None, QByteArray | None]:
        geometry = self.qsettings.value("window/geometry")
        state = self.qsettings.value("window/state")
        return (
            geometry if isinstance(geometry, QByteArray) else None,
            state if isinstance(state, QByteArray) else None,
        )

    def set_geometry(self, geometry: QByteArray, state: QByteArray) -> None:
        self.qsettings.setValue("window/geometry", geometry)
        self.qsettings.setValue("window/state", state)

    def recent_files(self) -> list[tuple[str, str]]:
        """(kind, path) pairs, newest first; kind is "corpus", "checkpoint", "import" or "rundir"."""
        raw = self.qsettings.value("recent/files", [])
        # QSettings gives back a one-item list as a plain string, and nothing as None
        items = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
        out: list[tuple[str, str]] = []
        for item in items:
            kind, _, path = str(item).partition("|")
            if path:
                out.append((kind, path))
        return out

    def add_recent(self, kind: str, path: str | os.PathLike) -> list[tuple[str, str]]:
        path = _recent_key(path)
        items = [(k, p) for k, p in self.recent_files() if not (k == kind and p == path)]
        items.insert(0, (kind, path))
        items = items[:MAX_RECENT]
        self.qsettings.setValue("recent/files", [f"{k}|{p}" for k, p in items])
        return items

    def remove_recent(self, kind: str, path: str | os.PathLike) -> list[tuple[str, str]]:
        """Take one entry off the list (a file that failed to open is not worth offering again)."""
        path = _recent_key(path)
        items = [(k, p) for k, p in self.recent_files() if not (k == kind and p == path)]
        self.qsettings.setValue("recent/files", [f"{k}|{p}" for k, p in items])
        return items

    def clear_recent(self) -> None:
        self.qsettings.setValue("recent/files", [])

    def sync(self) -> None:
        self.qsettings.sync()


def _recent_key(path: str | os.PathLike) -> str:
    """How a path is written in the recent list: absolute when it exists, as given otherwise."""
    return str(Path(path).resolve()) if Path(path).exists() else str(path)
