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

__all__ = ["StagePlan", "ProgressModel", "STAGE_WEIGHTS", "PACE_WINDOW", "MIN_FRAME_TIMES", "MIN_ETA_S", "format_seconds"]

STAGE_WEIGHTS = {"motion": 1.0, "render": 8.0, "write": 2.0, "video": 1.5}
"""Share of the bar each stage gets (relative), from typical CPU timings of a 24-frame loop."""

_ALIASES = {"invert": "motion", "strips": "render", "engine": "motion"}
"""Sub-stages reported inside another stage: shown by name, counted in their parent stage."""

_WORDS = {"motion": "Preparing motion", "render": "Rendering frame", "write": "Writing frame",
          "video": "Encoding video frame", "strips": "Rendering strip", "invert": "Fitting the image, step",
          "engine": "Preparing the engine (first run only)"}


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


PACE_WINDOW = 5
"""Frame times the ETA goes by: the slowest of the last few (so that the countdown rarely has to wait)."""
MIN_ETA_S = 1.0
"""Below this (or with one frame left) the ETA is left out: the last frame's own spread would make it wrong
several times over; a short render still shows a few seconds' countdown before that."""
MIN_FRAME_TIMES = 2
"""Measured frame times needed before an ETA is shown (the first frame, which includes warm-up, never counts)."""


@dataclass
class ProgressModel:
    """Turns (stage, done, total) reports into one fraction, a 'k/N' count and an ETA.

    The ETA comes from measured frame times of the plan's last stage (the first frame excluded)
    and counts down between frames; it never rises while shown, and is left out when there is no
    pace to go by or the countdown ran out before the frames did.
    """

    plan: StagePlan = field(default_factory=StagePlan)
    clock: Callable[[], float] = time.monotonic
    fraction: float = 0.0
    stage: str = ""
    done: int = 0
    total: int = 0
    _last_done: tuple[str, int, float] | None = None
    _frame_times: list[float] = field(default_factory=list)
    _shown: tuple[float, float] | None = None
    """(seconds left, clock time) of the last ETA shown: what the countdown may not exceed."""
    _is_visible: bool = False

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
            self._time_frames(stage, done)
        else:
            within = 0.0  # a sub-stage's count restarts per chunk; its parent's count moves the bar
        self.fraction = max(self.fraction, min(1.0, start + width * within))

    def _time_frames(self, stage: str, done: int) -> None:
        """Measure the time per frame whenever the count of ``stage`` grows (from its second frame on)."""
        now = self.clock()
        if self._last_done is None or self._last_done[0] != stage:
            self._last_done, self._frame_times, self._shown = (stage, done, now), [], None
            self._is_visible = False
            return
        _, before, at = self._last_done
        if done > before:
            if before > 0:  # the time up to the first frame includes warm-up
                self._frame_times += [(now - at) / (done - before)] * (done - before)
            self._last_done = (stage, done, now)

    def finish(self) -> None:
        """The job is done: a full bar."""
        self.fraction = 1.0

    def eta(self) -> float | None:
        """Seconds left, from measured frame times (None: no pace yet, another stage follows, or overdue)."""
        if (self._last_done is None or self.fraction >= 1.0 or self.stage != self.plan.stages[-1]
                or len(self._frame_times) < MIN_FRAME_TIMES):
            return None
        _, done, at = self._last_done
        now = self.clock()
        per_frame = max(self._frame_times[-PACE_WINDOW:])
        left = per_frame * max(0, self.total - done) - (now - at)
        if self._shown is not None:
            shown, shown_at = self._shown
            if left > shown:  # the frames fell behind: no ETA rather than a rising one
                self._is_visible = False
                return None
            if self._is_visible:
                left = min(left, shown - (now - shown_at))  # between frames it counts down
        if left < MIN_ETA_S or self.total - done <= 1:  # overdue, or nearly done: mostly noise
            self._is_visible = False
            return None
        self._shown, self._is_visible = (left, now), True
        return left

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
