"""The base the panes' mixins type-check against.

TrainingPane is one QWidget assembled from mixins (settings form, curves, diagnostics, time-lapse), and so is
the Generation pane (text, candidates), each
calling QWidget methods and the pane's shared state on `self`. For mypy a mixin's base is QWidget, so those
calls check against the real signatures; at run time it is plain `object`, so the pane's MRO (and the order in
which Qt's metaclass sees the mixins) is exactly what it was. Each mixin declares, in an `if TYPE_CHECKING:`
block, the state and methods it borrows from the pane or from a sibling mixin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    PaneMixin = QWidget
else:
    PaneMixin = object

__all__ = ["PaneMixin"]
