"""File › Recent files lists what opened, not what was tried.

Opening runs in the worker: the window learns whether a checkpoint, weights, a corpus or a run directory
opened only when the worker answers, or raises an error naming the command. A path goes on the list when
it is asked for (so the menu shows it at once) and comes off again when its command fails; before this,
a few bad tries filled the list with paths that never opened.
"""

from __future__ import annotations

import os

from gptviz.qt.settings import AppSettings

COMMAND_OF_KIND = {
    "corpus": "load_corpus",
    "checkpoint": "load_checkpoint",
    "import": "import_weights",
    "rundir": "follow",
}


class RecentOpens:
    """The opens waiting for the worker's word, one per command (the worker runs commands in order, and
    each new open of a kind replaces the last)."""

    def __init__(self, settings: AppSettings) -> None:
        self.settings = settings
        self.pending: dict[str, tuple[str, str]] = {}  # command -> (kind, path)

    def opening(self, kind: str, path: str | os.PathLike) -> None:
        """`path` was asked for as `kind`: on the list now, off it again if its command fails."""
        self.settings.add_recent(kind, path)
        self.pending[COMMAND_OF_KIND[kind]] = (kind, str(path))

    def failed(self, command: str) -> bool:
        """The worker reported `command` failed: drop the path it was opening. True when the list changed."""
        opened = self.pending.pop(command, None)
        if opened is None:
            return False
        self.settings.remove_recent(*opened)
        return True
