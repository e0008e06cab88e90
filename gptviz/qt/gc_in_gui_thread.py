"""Python's cyclic garbage collection, run in the GUI thread only, while a window lives.

The interpreter collects cycles in whichever thread happens to allocate past a threshold. When that is the
model's worker thread and the garbage holds a Qt object, Qt destroys it in the worker, where PySide waits
for the interpreter lock inside Qt's own locks, while the GUI thread, holding the interpreter lock, waits
for one of those locks: a deadlock. The GUI monkey found exactly this (the worker building a model ran a
collection that destroyed a widget made in the GUI thread). So while a window is open, automatic collection
is off and a timer in the GUI thread collects instead, generation by generation as the interpreter would.
The approach follows pyqtgraph's GarbageCollector (credited; the code is ours).

A full collection walks every object the process holds: about 350,000 once torch, Qt, pyqtgraph and a model
are loaded, 95-200 ms here, all of it in the GUI thread, so the window froze that long every couple of
minutes while training (the bench's worst event-loop lag: 175-250 ms). Nearly all of those objects live as
long as the process or the model (modules, classes, functions, the model's layers). So when a model arrives
(`refreeze`), one full collection runs and every survivor moves to the interpreter's permanent generation
(`gc.freeze`), which later collections skip; what the window makes afterwards (snapshots, views) is
collected as before. The next model's arrival unfreezes first, so the previous model can still be
collected if it sits in a reference cycle; the collector's `stop` unfreezes for good. The freeze waits
REFREEZE_DELAY_MS after the model's arrival (`refreeze_soon`), so its one full collection does not delay the
first drawing of the new model. Measured in the app with the demo model: a full collection 138-152 ms
unfrozen, 0-1 ms frozen (233,000 objects frozen, about 1,200 left to walk).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

_ACTIVE = 0  # collectors alive: automatic collection comes back when the last one stops
REFREEZE_DELAY_MS = 1000


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
        self._refreeze_timer = QTimer(self)
        self._refreeze_timer.setSingleShot(True)
        self._refreeze_timer.setInterval(REFREEZE_DELAY_MS)
        self._refreeze_timer.timeout.connect(self.refreeze)

    def collect(self) -> None:
        """Collect the generations whose counts passed their thresholds (what the interpreter would do)."""
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > self._thresholds[generation]:
                gc.collect(generation)
                self.collections += 1
                return

    def refreeze_soon(self) -> None:
        """`refreeze` once the window has drawn what just arrived (a second model before then waits too)."""
        if not self._stopped:
            self._refreeze_timer.start()

    def refreeze(self) -> None:
        """A model arrived: collect everything once, then let later collections skip the survivors."""
        if self._stopped:
            return
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    def stop(self) -> None:
        """The window closes: collect once more here, and give collection back to the interpreter."""
        global _ACTIVE
        if self._stopped:
            return
        self._stopped = True
        self.timer.stop()
        self._refreeze_timer.stop()
        gc.unfreeze()
        gc.collect()
        _ACTIVE -= 1
        if _ACTIVE == 0 and self._enabled_before:
            gc.enable()


__all__ = ["GuiThreadGarbageCollector"]
