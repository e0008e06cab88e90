"""cell_data reads back the exact value a pane stored beside a cell's text, and names a cell never filled."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTableWidget, QTableWidgetItem

from gptviz.qt.widgets.table_cells import cell_data


def test_cell_data_returns_the_user_role_value_not_the_rounded_text(qtbot) -> None:
    table = QTableWidget(2, 2)
    qtbot.addWidget(table)
    item = QTableWidgetItem("0.33")
    item.setData(Qt.ItemDataRole.UserRole, 1 / 3)
    table.setItem(1, 0, item)
    assert cell_data(table, 1, 0) == pytest.approx(1 / 3, abs=1e-15)


def test_a_cell_never_filled_is_a_lookup_error_naming_it(qtbot) -> None:
    table = QTableWidget(2, 2)
    qtbot.addWidget(table)
    with pytest.raises(LookupError, match="row 0, column 1"):
        cell_data(table, 0, 1)
