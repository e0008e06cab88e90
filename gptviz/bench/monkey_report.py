"""What a GUI monkey run found (gptviz.bench.monkey): events sent, exceptions, the event loop's worst lag,
the errors the window showed, and where the GUI thread stood during a stall; as JSON or as text.

Its own module because it is the verdict, not the run: the short test and the command line read it, and
whether a run passed (no exception, no stall) is decided here in one place.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

STALL_MS = 2000.0  # an event loop late by more than this is stalled


@dataclass
class MonkeyReport:
    seed: int
    minutes: float
    events: int = 0
    kinds: Counter = field(default_factory=Counter)
    exceptions: list[str] = field(default_factory=list)
    qt_warnings: list[str] = field(default_factory=list)
    max_lag_ms: float = 0.0
    errors_shown: int = 0
    error_samples: list[str] = field(default_factory=list)
    dialogs_closed: int = 0
    restarts: int = 0
    wall_s: float = 0.0
    last_events: list[str] = field(default_factory=list)  # the events before the first exception
    events_before_stall: list[str] = field(default_factory=list)  # the events before the first stall
    # Where the GUI thread was while the event loop stood still: a watchdog thread's samples (at most 20)
    stall_stacks: list[str] = field(default_factory=list)

    @property
    def stalled(self) -> bool:
        return self.max_lag_ms > STALL_MS

    @property
    def ok(self) -> bool:
        return not self.exceptions and not self.stalled

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "exceptions": len(self.exceptions),
            "max_lag_ms": round(self.max_lag_ms, 1),
            "errors_shown": self.errors_shown,
            "seed": self.seed,
            "minutes": round(self.wall_s / 60.0, 2),
            "events_by_kind": dict(sorted(self.kinds.items())),
            "dialogs_closed": self.dialogs_closed,
            "restarts": self.restarts,
            "stalled": self.stalled,
            "exception_texts": self.exceptions[:5],
            "events_before_first_exception": self.last_events,
            "events_before_first_stall": self.events_before_stall,
            "stall_stacks": self.stall_stacks,
            "error_samples": self.error_samples[:10],
        }


def format_report(report: MonkeyReport) -> str:
    d = report.to_dict()
    lines = [
        f"monkey seed {report.seed}: {d['events']} events in {d['minutes']} min, {d['exceptions']} exceptions, "
        f"max lag {d['max_lag_ms']} ms, {d['errors_shown']} errors shown, {d['dialogs_closed']} dialogs closed",
        "events: " + ", ".join(f"{k} {v}" for k, v in d["events_by_kind"].items()),
    ]
    for text in report.exceptions[:3]:
        lines.append("exception:\n" + text)
    if report.events_before_stall:
        lines.append("events before the first stall:\n  " + "\n  ".join(report.events_before_stall))
    for stack in report.stall_stacks[:3]:
        lines.append("GUI thread while the event loop stood still: " + stack)
    if report.last_events:
        lines.append("events before the first exception:\n  " + "\n  ".join(report.last_events))
    lines.append("PASS" if report.ok else "FAIL")
    return "\n".join(lines)
