"""Reading a table's cells back: the value a pane stored under UserRole next to the text it shows.

Panes put the exact number (a token id, a probability) in each cell's UserRole so tests and exports read
it back unrounded; `QTableWidget.item` returns None for a cell never filled, which here is a bug to name,
not a None to pass on.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTableWidget


def cell_data(table: QTableWidget, row: int, column: int) -> Any:
    """The UserRole value of a filled cell (LookupError for one never filled)."""
    item = table.item(row, column)
    if item is None:
        raise LookupError(f"no item at row {row}, column {column}")
    return item.data(Qt.ItemDataRole.UserRole)


__all__ = ["cell_data"]
