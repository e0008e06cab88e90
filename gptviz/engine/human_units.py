"""Bytes and durations as a person reads them: one copy of each format, for the window and the CLI alike.

Torch-free and Qt-free (the Training pane and the download dialog import it while the window paints), and
kept apart from where the numbers come from, so that the download, the training CLI and the Training pane
cannot drift into three spellings of the same time left.
"""

from __future__ import annotations

import math
from typing import Literal

DurationStyle = Literal["clock", "short"]


def format_bytes(n: float) -> str:
    """Decimal units, as the Hub lists sizes: 548 MB, 6.43 GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            value = n / scale
            decimals = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
            return f"{value:,.{decimals}f} {unit}"
    return f"{int(n)} B"


def format_duration(seconds: float | None, style: DurationStyle = "clock", unknown: str = "–") -> str:
    """A duration, rounded to the second.

    style "clock": 1:02:05, or 2:05 under an hour (the Training pane's elapsed time and ETA, a plot's
    readout). style "short": 1h02m, or 4m05s under an hour (a time left on a terminal's progress line or in
    the download dialog). `unknown` stands for a time not known yet: None, NaN, infinite or negative.
    """
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return unknown
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if style == "short":
        return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
