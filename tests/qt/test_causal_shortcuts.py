"""Model › Ablations… and Embeddings… have keys (Ctrl+Shift+A, Ctrl+Shift+N) that open their views from any
focus, and F1's list names them."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402

from gptviz.qt.causal_views import ABLATIONS_KEY, EMBEDDINGS_KEY  # noqa: E402
from gptviz.qt.menus import SHORTCUTS  # noqa: E402


def test_keys_open_ablations_and_embeddings_from_the_prompt_field(main_window, qtbot):
    window = main_window
    qtbot.waitUntil(lambda: window.generation_pane.view is not None, timeout=20_000)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    prompt = window.generation_pane.prompt
    prompt.setFocus()
    qtbot.waitUntil(prompt.hasFocus, timeout=5_000)
    assert window.causal.ablations_view is None
    qtbot.keyClick(
        prompt, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    )
    qtbot.waitUntil(
        lambda: window.causal.ablations_view is not None and window.causal.ablations_view.isVisible()
    )
    window.causal.ablations_view.close()
    window.activateWindow()
    prompt.setFocus()
    qtbot.waitUntil(prompt.hasFocus, timeout=5_000)
    qtbot.keyClick(
        prompt, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    )
    qtbot.waitUntil(
        lambda: window.causal.embeddings_view is not None and window.causal.embeddings_view.isVisible()
    )
    listed = dict(SHORTCUTS)
    assert ABLATIONS_KEY in listed and EMBEDDINGS_KEY in listed
