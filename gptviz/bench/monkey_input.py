"""The GUI monkey's input vocabulary: what a user can do to the window, each as one random event.

Clicks (left, right, double) at random points of random visible widgets; keys sent to the focused widget,
among them every action's shortcut (Quit's aside); wheel turns and drags on the plots; spin-box, combo-box,
slider and line-edit edits (values in and out of range, text that is not a number); menu actions triggered
directly. Every choice comes from the one seeded generator, so a seed replays the same run.

Apart from the driver (gptviz.bench.monkey: timers, watchdogs, keeping training and Play running) so that a
new kind of input is one method here and one weight in KIND_WEIGHTS.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

QUIT_TEXTS = ("quit", "exit")
# How often each kind of event is drawn (relative weights); each names a do_<kind> method of RandomInput.
KIND_WEIGHTS = {
    "click": 30,
    "key": 12,
    "shortcut": 10,
    "action": 6,
    "wheel": 10,
    "drag": 8,
    "spin": 8,
    "combo": 5,
    "slider": 4,
    "text": 7,
}


class RandomInput:
    """Sends one random event at a time to the window's visible widgets, plots and actions; each event is
    described to `note` first, so a report can say what came before an exception or a stall."""

    def __init__(self, window: Any, app: Any, rng: random.Random, note: Callable[[str], None]) -> None:
        self.window, self.app, self.rng, self.note = window, app, rng, note

    def widgets(self, types: tuple = ()) -> list[Any]:
        from PySide6.QtWidgets import QWidget

        out = []
        for top in self.app.topLevelWidgets():
            if not top.isVisible():
                continue
            for widget in [top, *top.findChildren(QWidget)]:
                if types and not isinstance(widget, types):
                    continue
                if widget.isVisible() and widget.isEnabled() and widget.width() > 0 and widget.height() > 0:
                    out.append(widget)
        return out

    def actions(self) -> list[Any]:
        """What a user can reach: the menu bar's actions (submenus too) and the window's own shortcuts.
        Not every QAction in the tree: pyqtgraph's context-menu actions expect their menu to be open."""
        found: list[Any] = []

        def walk(actions) -> None:
            for action in actions:
                menu = action.menu()
                if menu is not None:
                    walk(menu.actions())
                else:
                    found.append(action)

        walk(self.window.menuBar().actions())
        walk(self.window.actions())
        out = []
        for action in found:
            text = action.text().replace("&", "").lower()
            if any(word in text for word in QUIT_TEXTS) or action.shortcut().toString() == "Ctrl+Q":
                continue
            if text.startswith("new untrained") and not text.endswith("tiny"):
                continue  # a fresh 124M-1558M model is gigabytes and seconds: not what a monkey should test
            if action.isEnabled() and not action.isSeparator():
                out.append(action)
        return out

    def send(self) -> str | None:
        """One input event of a kind drawn by KIND_WEIGHTS; its kind, or None when nothing could take it."""
        kind = self.rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
        return kind if getattr(self, f"do_{kind}")() else None

    def _point(self, widget: Any) -> Any:
        from PySide6.QtCore import QPoint

        return QPoint(self.rng.randrange(widget.width()), self.rng.randrange(widget.height()))

    def do_click(self) -> bool:
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest

        widgets = self.widgets()
        if not widgets:
            return False
        widget = self.rng.choice(widgets)
        point = self._point(widget)
        how = self.rng.choices(["left", "right", "double"], weights=[8, 1, 1])[0]
        self.note(f"{how} click {type(widget).__name__} {widget.objectName()!r} at {point.x()},{point.y()}")
        if how == "double":
            QTest.mouseDClick(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point)
        else:
            button = Qt.MouseButton.LeftButton if how == "left" else Qt.MouseButton.RightButton
            QTest.mouseClick(widget, button, Qt.KeyboardModifier.NoModifier, point)
        return True

    def do_key(self) -> bool:
        from PySide6.QtCore import Qt

        key = self.rng.choice(
            [Qt.Key.Key_Return, Qt.Key.Key_Escape, Qt.Key.Key_Tab, Qt.Key.Key_Backspace, Qt.Key.Key_Delete,
             Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_PageUp,
             Qt.Key.Key_PageDown, Qt.Key.Key_Home, Qt.Key.Key_End, Qt.Key.Key_Space, Qt.Key.Key_A,
             Qt.Key.Key_Z, Qt.Key.Key_0, Qt.Key.Key_9, Qt.Key.Key_Minus, Qt.Key.Key_Period]
        )  # fmt: skip
        modifiers = self.rng.choice(
            [Qt.KeyboardModifier.NoModifier] * 4
            + [Qt.KeyboardModifier.ShiftModifier, Qt.KeyboardModifier.ControlModifier]
        )
        target = self.app.focusWidget() or self.window
        self.note(f"key {key.name} {modifiers.name} to {type(target).__name__}")
        press_key(target, key, modifiers)
        return True

    def do_shortcut(self) -> bool:

        actions = [a for a in self.actions() if not a.shortcut().isEmpty()]
        if not actions:
            return False
        action = self.rng.choice(actions)
        combo = action.shortcut()[0]
        target = self.app.focusWidget() or self.window
        self.note(f"shortcut {action.shortcut().toString()} ({action.text()!r})")
        press_key(target, combo.key(), combo.keyboardModifiers())
        return True

    def do_action(self) -> bool:
        actions = self.actions()
        if not actions:
            return False
        action = self.rng.choice(actions)
        self.note(f"trigger {action.text()!r}")
        action.trigger()
        return True

    def plots(self) -> list[Any]:
        import pyqtgraph as pg

        return self.widgets((pg.GraphicsView,))

    def do_wheel(self) -> bool:
        from PySide6.QtCore import QPoint, QPointF, Qt
        from PySide6.QtGui import QWheelEvent

        plots = self.plots()
        if not plots:
            return False
        plot = self.rng.choice(plots)
        target = plot.viewport()
        pos = QPointF(self._point(target))
        delta = self.rng.choice([-360, -120, -15, 15, 120, 360])
        self.note(f"wheel {delta} on {type(plot).__name__}")
        event = QWheelEvent(
            pos, QPointF(target.mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, delta),
            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
        )  # fmt: skip
        self.app.sendEvent(target, event)
        return True

    def do_drag(self) -> bool:
        from PySide6.QtCore import QEvent, QPointF, Qt
        from PySide6.QtGui import QMouseEvent

        plots = self.plots()
        if not plots:
            return False
        plot = self.rng.choice(plots)
        target = plot.viewport()
        button = self.rng.choice([Qt.MouseButton.LeftButton] * 3 + [Qt.MouseButton.RightButton])
        points = [QPointF(self._point(target)) for _ in range(self.rng.randint(2, 5))]
        self.note(f"drag {button.name} on {type(plot).__name__} over {len(points)} points")

        def send(kind: QEvent.Type, pos: QPointF, buttons: Qt.MouseButton) -> None:
            glob = QPointF(target.mapToGlobal(pos.toPoint()))
            pressed = button if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton
            event = QMouseEvent(kind, pos, glob, pressed, buttons, Qt.KeyboardModifier.NoModifier)
            self.app.sendEvent(target, event)

        send(QEvent.Type.MouseButtonPress, points[0], button)
        for point in points[1:]:
            send(QEvent.Type.MouseMove, point, button)
        send(QEvent.Type.MouseButtonRelease, points[-1], Qt.MouseButton.NoButton)
        return True

    def do_spin(self) -> bool:
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QAbstractSpinBox, QDoubleSpinBox, QSpinBox

        boxes = self.widgets((QAbstractSpinBox,))
        if not boxes:
            return False
        box = self.rng.choice(boxes)
        how = self.rng.choice(["value", "type", "step"])
        self.note(f"spin {how} {box.objectName()!r} ({type(box).__name__})")
        if how == "value" and isinstance(box, (QSpinBox, QDoubleSpinBox)):
            low, high = box.minimum(), box.maximum()
            span = high - low
            value = self.rng.choice([low, high, low - 1, high + 1, low + span * self.rng.random()])
            if isinstance(box, QSpinBox):
                box.setValue(int(min(max(value, -(2**31)), 2**31 - 1)))  # a C int: out of range raises
            else:
                box.setValue(float(value))
        elif how == "type":
            box.setFocus()
            box.selectAll()
            text = self.rng.choice(["0", "-1", "1e9", "abc", "", "3.5", "999999999", "0.0001", "٣"])
            type_text(box, text)
            press_key(box, Qt.Key.Key_Return, Qt.KeyboardModifier.NoModifier)
        else:
            box.stepBy(self.rng.choice([-10, -1, 1, 10]))
        return True

    def do_combo(self) -> bool:
        from PySide6.QtWidgets import QComboBox

        combos = [c for c in self.widgets((QComboBox,)) if c.count() > 0]
        if not combos:
            return False
        combo = self.rng.choice(combos)
        index = self.rng.randrange(combo.count())
        self.note(f"combo {combo.objectName()!r} -> {combo.itemText(index)!r}")
        combo.setCurrentIndex(index)
        combo.activated.emit(index)
        return True

    def do_slider(self) -> bool:
        from PySide6.QtWidgets import QAbstractSlider

        sliders = self.widgets((QAbstractSlider,))
        if not sliders:
            return False
        slider = self.rng.choice(sliders)
        value = self.rng.randint(slider.minimum(), max(slider.minimum(), slider.maximum()))
        self.note(f"slider {slider.objectName()!r} ({type(slider).__name__}) -> {value}")
        slider.setValue(value)
        return True

    def do_text(self) -> bool:
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QLineEdit, QPlainTextEdit, QTextEdit

        edits = [e for e in self.widgets((QLineEdit, QPlainTextEdit, QTextEdit)) if not _read_only(e)]
        if not edits:
            return False
        edit = self.rng.choice(edits)
        text = self.rng.choice(
            ["Every effort moves you", "", " ", "<|endoftext|>", "héllo wörld 👋🏽", "\t\n", "a" * 300,
             "def f(x):\n    return x", "0", "٣٤", "the the the the"]
        )  # fmt: skip
        self.note(f"text {type(edit).__name__} {edit.objectName()!r} <- {text[:30]!r}")
        edit.setFocus()
        if isinstance(edit, QLineEdit):
            edit.setText(text)
            if self.rng.random() < 0.5:
                press_key(edit, Qt.Key.Key_Return, Qt.KeyboardModifier.NoModifier)
        else:
            edit.setPlainText(text)
        return True


def press_key(target: Any, key: Any, modifiers: Any) -> None:
    """Press and release `key` as a user would (spontaneous, so shortcuts fire), with its text given:
    QTest.keyClick looks the text up itself and aborts the process on keys it has no ASCII for."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    code = int(key.value if hasattr(key, "value") else key)
    plain = modifiers in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier)
    text = chr(code) if plain and 0x20 <= code < 0x7F else ""
    for action in (QTest.KeyAction.Press, QTest.KeyAction.Release):
        QTest.sendKeyEvent(action, target, key, text, modifiers)


def type_text(target: Any, text: str) -> None:
    """Type `text` one character at a time (any Unicode: QTest.keyClicks aborts on non-ASCII)."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    for char in text:
        for action in (QTest.KeyAction.Press, QTest.KeyAction.Release):
            QTest.sendKeyEvent(action, target, Qt.Key.Key_unknown, char, Qt.KeyboardModifier.NoModifier)


def _read_only(edit: Any) -> bool:
    return bool(edit.isReadOnly())
