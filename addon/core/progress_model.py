"""One overall progress figure across a job's stages, with 'frame k/N' and an ETA, for the panel.

No ``bpy`` module use. The backend reports each stage on its own scale (``motion`` 0..1, ``render``
frame by frame, ``video`` frame by frame; ``strips`` and ``invert`` inside those); the add-on adds
``write`` when it writes a remote result's frames itself. This module maps them onto one bar that
never moves backwards.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["StagePlan", "ProgressModel", "STAGE_WEIGHTS", "format_seconds"]

STAGE_WEIGHTS = {"motion": 1.0, "render": 8.0, "write": 2.0, "video": 1.5}
"""Share of the bar each stage gets (relative), from typical CPU timings of a 24-frame loop."""

_ALIASES = {"invert": "motion", "strips": "render"}
"""Sub-stages reported inside another stage: shown by name, counted in their parent stage."""

_WORDS = {"motion": "Preparing motion", "render": "Rendering frame", "write": "Writing frame",
          "video": "Encoding video frame", "strips": "Rendering strip", "invert": "Fitting the image, step"}


@dataclass(frozen=True)
class StagePlan:
    """The stages a job goes through, in order (which depends on where frames are written)."""

    stages: tuple[str, ...] = ("motion", "render")

    @classmethod
    def for_job(cls, *, writes_frames_here: bool, video: bool) -> "StagePlan":
        """The plan of a job: the add-on writes frames itself for a remote backend; a video is encoded last."""
        return cls(("motion", "render") + (("write",) if writes_frames_here else ()) + (("video",) if video else ()))

    def span(self, stage: str) -> tuple[float, float]:
        """Start and width of ``stage`` on the 0..1 bar ((0, 0) for a stage outside the plan)."""
        total = sum(STAGE_WEIGHTS.get(s, 1.0) for s in self.stages)
        start = 0.0
        for name in self.stages:
            width = STAGE_WEIGHTS.get(name, 1.0) / total
            if name == stage:
                return start, width
            start += width
        return 0.0, 0.0


@dataclass
class ProgressModel:
    """Turns (stage, done, total) reports into one fraction, a 'k/N' count and an ETA."""

    plan: StagePlan = field(default_factory=StagePlan)
    clock: Callable[[], float] = time.monotonic
    fraction: float = 0.0
    stage: str = ""
    done: int = 0
    total: int = 0
    _started: float | None = None

    def update(self, stage: str, done: int, total: int) -> None:
        """Record the latest report; the fraction only grows."""
        if not stage:
            return
        self.stage, self.done, self.total = stage, done, total
        counted = _ALIASES.get(stage, stage)
        start, width = self.plan.span(counted)
        if width == 0.0:
            return
        if stage == counted and total > 0:
            within = min(1.0, max(0.0, done / total))
        else:
            within = 0.0  # a sub-stage's count restarts per chunk; its parent's count moves the bar
        if self._started is None:
            self._started = self.clock()
        self.fraction = max(self.fraction, min(1.0, start + width * within))

    def finish(self) -> None:
        """The job is done: a full bar."""
        self.fraction = 1.0

    def eta(self) -> float | None:
        """Seconds left, from the pace so far (None until there is a pace to go by)."""
        if self._started is None or self.fraction < 0.02 or self.fraction >= 1.0:
            return None
        elapsed = self.clock() - self._started
        if elapsed <= 0.0:
            return None
        return elapsed * (1.0 - self.fraction) / self.fraction

    def text(self) -> str:
        """'Rendering frame 7/24 · 31% · about 12 s left' (or the stage alone before a count)."""
        if not self.stage:
            return "Queued"
        words = _WORDS.get(self.stage, self.stage.title())
        count = f" {self.done}/{self.total}" if self.total > 1 else ""
        if self.stage == "motion":
            count = ""
        line = f"{words}{count} · {self.fraction:.0%}"
        eta = self.eta()
        return f"{line} · about {format_seconds(eta)} left" if eta is not None else line


def format_seconds(seconds: float) -> str:
    """'8 s', '2 min 5 s', '1 h 3 min'."""
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"
