"""PySide6 6.12.0 on Python 3.11 drops a reference to None on each call of a Qt method returning nothing,
and the process dies with `Fatal Python error: none_dealloc` (see ../shared/DESIGN.md). Guard the pin."""

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import PySide6  # noqa: E402
from PySide6.QtCore import QObject  # noqa: E402
from PySide6.QtWidgets import QWidget  # noqa: E402


def test_void_qt_calls_keep_none_alive(qtbot):
    widget = QWidget()
    qtbot.addWidget(widget)
    marker = QObject()
    before = sys.getrefcount(None)
    for i in range(10_000):
        widget.setToolTip("x")  # returns None
        marker.setObjectName(f"m{i % 7}")  # returns None
    after = sys.getrefcount(None)
    assert after >= before - 100, f"None lost {before - after} references over 20,000 void Qt calls"


def test_pyside_version_is_pinned_below_6_12_on_python_3_11():
    major, minor = (int(p) for p in PySide6.__version__.split(".")[:2])
    if sys.version_info[:2] == (3, 11):
        assert (major, minor) < (6, 12), "PySide6 6.12 crashes on Python 3.11; keep the pin in pyproject.toml"
