"""Progress reports and cancellation hooks shared by the engine, the service and the CLI.

No torch, no bpy.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["Progress", "ProgressFn", "CancelFn", "Pace", "format_duration", "LONG_RENDER_S"]

LONG_RENDER_S = 600.0
"""A render expected to take longer than this (from its first frame) is warned about."""


@dataclass(frozen=True, slots=True)
class Progress:
    """One progress report: ``done`` of ``total`` units of ``stage`` are finished.

    ``frame`` is the frame just rendered, (H, W, C) float32 in [0, 1], when the stage
    renders frames (the service turns it into a small preview); otherwise None.
    """

    stage: str
    done: int
    total: int
    frame: np.ndarray | None = None


ProgressFn = Callable[[Progress], None]
CancelFn = Callable[[], bool]


def format_duration(seconds: float) -> str:
    """'8 s', '2 min 5 s', '1 h 3 min'."""
    whole = int(round(max(0.0, seconds)))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


@dataclass
class Pace:
    """Elapsed time and the time left of each stage, from the pace of its reports so far."""

    clock: Callable[[], float] = time.monotonic
    _starts: dict[str, float] = field(default_factory=dict)
    _last: float | None = None

    def update(self, report: Progress) -> None:
        """Note a report; a stage's clock starts at the report before its first one (its work began then)."""
        now = self.clock()
        self._starts.setdefault(report.stage, now if self._last is None else self._last)
        self._last = now

    def elapsed(self, stage: str) -> float:
        """Seconds since ``stage`` was first reported."""
        return self.clock() - self._starts.get(stage, self.clock())

    def left(self, report: Progress) -> float | None:
        """Seconds until ``report.stage`` ends at its pace so far (None before its first unit is done)."""
        if report.done <= 0 or report.total <= 0:
            return None
        return self.elapsed(report.stage) * (report.total - report.done) / report.done
