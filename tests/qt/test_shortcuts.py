"""Keyboard: generation's keys are window-wide actions that work from any focus, the prompt field
included, and keep working after Play has been relabelled Pause; training has a Stop item and key."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from gptviz.qt import commands as cmd


def _ready(window, qtbot):
    qtbot.waitUntil(lambda: window.generation_pane.view is not None, timeout=20_000)
    # The start-up prompt is set after the first view: wait for the tokens asked for right after it (the
    # worker answers in order), or its "not playing" can land after the test's first Ctrl+P (seen under
    # load in the full suite).
    qtbot.waitUntil(lambda: getattr(window.tokens_pane, "tokens_view", None) is not None, timeout=20_000)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)


def _menu(window, title):
    return next(a.menu() for a in window.menuBar().actions() if a.text().replace("&", "") == title)


def test_ctrl_right_and_left_step_and_undo_from_the_prompt_field(main_window, qtbot):
    window = main_window
    _ready(window, qtbot)
    prompt = window.generation_pane.prompt
    prompt.setFocus()
    qtbot.waitUntil(prompt.hasFocus, timeout=5_000)
    prompt.setCursorPosition(0)
    with qtbot.waitSignal(window.generation_pane.stepRequested, timeout=5_000):
        qtbot.keyClick(prompt, Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: len(window.generation_pane.view.new_ids) == 1, timeout=20_000)
    assert prompt.cursorPosition() == 0  # the key stepped; it did not move the cursor a word
    with qtbot.waitSignal(window.generation_pane.undoRequested, timeout=5_000):
        qtbot.keyClick(prompt, Qt.Key.Key_Left, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: len(window.generation_pane.view.new_ids) == 0, timeout=20_000)


def test_ctrl_p_plays_and_pauses_again_after_the_button_was_relabelled(main_window, qtbot):
    window = main_window
    _ready(window, qtbot)
    pane = window.generation_pane
    pane.prompt.setFocus()
    for expected in (True, False, True, False):
        with qtbot.waitSignal(pane.playToggled, timeout=5_000) as blocker:
            qtbot.keyClick(pane.prompt, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
        assert blocker.args == [expected]
        assert pane.play_button.text() == ("Pause" if expected else "Play")
        # The worker's own word (PLAY_STATE) follows; let it land before the next key, as a person's
        # next press would (a press before it arrives is answered by it: the worker is the authority).
        qtbot.waitUntil(lambda expected=expected: window.host.worker.playing is expected, timeout=5_000)
        qtbot.wait(100)
        QApplication.processEvents()


def test_stop_training_menu_item_and_key(main_window, qtbot):
    window = main_window
    model_menu = _menu(window, "Model")
    stop = next(a for a in model_menu.actions() if a.text() == "Stop training")
    assert stop.shortcut().toString() == "Ctrl+Shift+X"
    generate = [a.text().replace("&", "") for a in _menu(window, "Generate").actions()]
    assert generate == ["Step one token", "Play / pause", "Undo the last token", "Reset to the prompt"]
    sent = []
    window.host.submit = lambda command: sent.append(command)
    stop.trigger()
    assert sent == [cmd.TrainStop()]


def test_model_menu_lists_the_demo_model_by_name(main_window):
    from gptviz.resources import DEMO_MODEL_DIR

    model_menu = _menu(main_window, "Model")
    model_menu.aboutToShow.emit()
    demo = [a for a in model_menu.actions() if a.text().startswith("Demo model")]
    assert len(demo) == 1 and demo[0].toolTip() == str(DEMO_MODEL_DIR)
    opened = []
    main_window.open_checkpoint = opened.append
    demo[0].trigger()
    assert opened == [DEMO_MODEL_DIR]
