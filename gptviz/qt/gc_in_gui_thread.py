"""Python's cyclic garbage collection, run in the GUI thread only, while a window lives.

The interpreter collects cycles in whichever thread happens to allocate past a threshold. When that is the
model's worker thread and the garbage holds a Qt object, Qt destroys it in the worker, where PySide waits
for the interpreter lock inside Qt's own locks, while the GUI thread, holding the interpreter lock, waits
for one of those locks: a deadlock. The GUI monkey found exactly this (the worker building a model ran a
collection that destroyed a widget made in the GUI thread). So while a window is open, automatic collection
is off and a timer in the GUI thread collects instead, generation by generation as the interpreter would.
The approach follows pyqtgraph's GarbageCollector (credited; the code is ours).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

_ACTIVE = 0  # collectors alive: automatic collection comes back when the last one stops


class GuiThreadGarbageCollector(QObject):
    def __init__(self, parent: QObject | None = None, interval_ms: int = 1000) -> None:
        super().__init__(parent)
        global _ACTIVE
        self._thresholds = gc.get_threshold()
        self._enabled_before = gc.isenabled() if _ACTIVE == 0 else True
        _ACTIVE += 1
        gc.disable()
        self._stopped = False
        self.collections = 0
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.collect)
        self.timer.start()

    def collect(self) -> None:
        """Collect the generations whose counts passed their thresholds (what the interpreter would do)."""
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > self._thresholds[generation]:
                gc.collect(generation)
                self.collections += 1
                return

    def stop(self) -> None:
        """The window closes: collect once more here, and give collection back to the interpreter."""
        global _ACTIVE
        if self._stopped:
            return
        self._stopped = True
        self.timer.stop()
        gc.collect()
        _ACTIVE -= 1
        if _ACTIVE == 0 and self._enabled_before:
            gc.enable()


__all__ = ["GuiThreadGarbageCollector"]
