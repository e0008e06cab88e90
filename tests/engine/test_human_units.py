"""One copy of each human-readable format (engine/human_units.py): the Training pane's clock, the CLI's and
the download's time left, and the Hub's decimal byte sizes."""

from __future__ import annotations

import math

import pytest

from gptviz.engine.human_units import format_bytes, format_duration


@pytest.mark.parametrize(
    ("seconds", "clock", "short"),
    [
        (0, "0:00", "0m00s"),
        (59.4, "0:59", "0m59s"),
        (65, "1:05", "1m05s"),
        (3599.6, "1:00:00", "1h00m"),  # rounded to the second before it is split
        (3725, "1:02:05", "1h02m"),
        (90061, "25:01:01", "25h01m"),
    ],
)
def test_both_styles_of_a_duration(seconds: float, clock: str, short: str) -> None:
    assert format_duration(seconds) == clock
    assert format_duration(seconds, "short") == short


@pytest.mark.parametrize("seconds", [None, math.nan, math.inf, -1.0])
def test_a_time_not_known_yet_reads_as_the_callers_word(seconds: float | None) -> None:
    assert format_duration(seconds) == "–"
    assert format_duration(seconds, "short", unknown="--") == "--"
    assert format_duration(seconds, "short", unknown="?") == "?"


def test_bytes_in_decimal_units_as_the_hub_lists_them() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(548_105_171) == "548 MB"
    assert format_bytes(6_431_000_000) == "6.43 GB"
    assert format_bytes(1_000_000) == "1.00 MB"
    assert format_bytes(12_345) == "12.3 kB"
