"""Garbage collection happens in the GUI thread while a window lives (a worker-thread collection that
destroyed a Qt object deadlocked the GUI monkey)."""

from __future__ import annotations

import gc
import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def test_a_window_turns_automatic_collection_off_and_its_timer_collects_in_the_gui_thread(qtbot, main_window):
    assert not gc.isenabled()
    collector = main_window.host.gc
    seen = []
    gc.callbacks.append(
        lambda phase, _info: seen.append(threading.current_thread() is threading.main_thread())
    )
    try:
        for _ in range(3000):  # cycles enough to pass generation 0's threshold
            a = []
            a.append(a)
        qtbot.waitUntil(lambda: collector.collections > 0, timeout=5_000)
    finally:
        gc.callbacks.pop()
    assert seen and all(seen)  # every collection ran in the GUI thread


def test_closing_the_window_gives_collection_back(qtbot, session_factory):
    from gptviz.qt.main_window import MainWindow

    assert gc.isenabled()
    window = MainWindow(session_factory, startup_tokens=0)
    with qtbot.waitSignal(window.host.ready, timeout=30_000):
        window.show()
    assert not gc.isenabled()
    window.close()
    assert gc.isenabled()


def test_a_model_arriving_freezes_what_lives_on_and_later_garbage_is_still_collected(qtbot, session_factory):
    """A full collection walked every object (138-152 ms with the demo model: a frozen window). After a
    model arrives the survivors are frozen, so collections walk only what came after; closing unfreezes."""
    import weakref

    from gptviz.qt.main_window import MainWindow

    class Node:
        pass

    before = Node()
    before.self = before  # a cycle made before the model: collected by the freeze's own full collection
    gone_before = weakref.ref(before)
    del before
    window = MainWindow(session_factory, startup_tokens=0)
    with qtbot.waitSignal(window.host.ready, timeout=30_000):
        window.show()
    qtbot.waitUntil(lambda: gc.get_freeze_count() > 0, timeout=10_000)  # the MODEL result, then the delay
    assert gone_before() is None
    after = Node()
    after.self = after  # a cycle made after the freeze: an ordinary collection still finds it
    gone_after = weakref.ref(after)
    del after
    gc.collect()
    assert gone_after() is None
    window.close()
    assert gc.get_freeze_count() == 0  # given back whole
