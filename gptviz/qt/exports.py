"""File › Export current pane as PNG / data: what a pane shows, written to a file the user names.

Why a room of its own: the window only knows which pane is current; turning a pane into a picture, an NPZ
of its arrays or a CSV of its main table is the same for every pane and has nothing to do with docks or
results, so it lives here, as functions of a widget and a path (tested without a window) and the two save
dialogs. Exporting the model itself (Hugging Face, the book's .pth) is `export_model_dialog`: it runs in
the worker, which owns the tensors; these exports only read what the window already drew.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtWidgets import QFileDialog, QWidget

from gptviz.qt.opening import remember_dir, start_dir

if TYPE_CHECKING:
    from gptviz.qt.main_window import MainWindow


def write_png(widget: QWidget, path: str | os.PathLike) -> Path:
    """The widget as it is painted now, as a PNG at `path`."""
    if not widget.grab().save(str(path), "PNG"):
        raise OSError(f"could not write {path}")
    return Path(path)


def write_data(widget: QWidget, path: str | os.PathLike) -> Path:
    """NPZ: every array the pane shows; CSV: its main table (or its first array of at most 2 dimensions).
    A path that is neither gets .npz. Returns the path written."""
    path = Path(path)
    data = widget.export_data() if hasattr(widget, "export_data") else {}
    if path.suffix.lower() == ".csv":
        if hasattr(widget, "export_table"):
            header, rows = widget.export_table()
        else:
            arrays = [(k, np.asarray(v)) for k, v in data.items() if np.asarray(v).ndim in (1, 2)]
            if not arrays:
                raise ValueError("this pane has no table to export; choose .npz")
            name, array = arrays[0]
            array = array.reshape(array.shape[0], -1)  # (rows, columns); a 1-D array is one column
            header = [f"{name}[{i}]" for i in range(array.shape[1])]
            rows = array.tolist()
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
    else:
        if path.suffix.lower() != ".npz":
            path = path.with_suffix(".npz")
        named: dict[str, np.ndarray] = {k: np.asarray(v) for k, v in data.items()}
        np.savez(path, allow_pickle=False, **named)  # numbers only: nothing to pickle
    return path


def export_png_dialog(window: MainWindow) -> None:
    """File › Export current pane as PNG…"""
    _export_dialog(
        window,
        "as PNG",
        "PNG (*.png)",
        lambda path: window.export_png(path if path.endswith(".png") else path + ".png"),
    )


def export_data_dialog(window: MainWindow) -> None:
    """File › Export current pane data (CSV / NPZ)…"""
    _export_dialog(window, "data", "NumPy arrays (*.npz);;CSV table (*.csv)", window.export_data)


def _export_dialog(window: MainWindow, what: str, filters: str, write: Callable[[str], object]) -> None:
    """Ask where to save the current pane (starting in the last folder used), then write it; a failed
    write is a one-line error."""
    title = window.docks[window.current_pane_key()].windowTitle()
    path, _ = QFileDialog.getSaveFileName(
        window, f"Export {title} {what}", start_dir(window.settings), filters
    )
    if path:
        remember_dir(window.settings, path)
        try:
            write(path)
        except (OSError, ValueError) as exc:
            window._on_error("export", str(exc))
