"""Client-side records of submitted jobs: JobHandle (state, progress, result) and Event.

No torch, no bpy: the add-on bundles this file. Only ``Client`` (client.py) changes them, inside
its poll(), wait() and requests, on the thread that owns the Client.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import StillflowError

__all__ = ["Event", "JobHandle"]

_ACTIVE = ("queued", "running")


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to a job: kind is progress, result, error or cancelled."""

    kind: Literal["progress", "result", "error", "cancelled"]
    job_id: str
    data: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(eq=False)
class JobHandle:
    """Client-side state of one submitted job, updated by poll() and wait().

    ``preview`` is the latest small (h, w, C) uint8 frame; ``result`` holds out_dir and
    frame_paths (shared filesystem), or ``frames`` (N, H, W, C) float32, or ``files``
    {name: bytes} (remote), plus the ``manifest``. ``out_dir`` / ``video`` are the absolute
    paths the backend writes to (from its ``accepted`` reply; None for a remote job).
    """

    job_id: str
    out_dir: str | None = None
    video: str | None = None
    state: Literal["queued", "running", "done", "failed", "cancelled"] = "queued"
    stage: str = ""
    done: int = 0
    total: int = 0
    preview: np.ndarray | None = None
    result: dict[str, Any] | None = None
    error: StillflowError | None = None
    _frames: list[np.ndarray] = field(default_factory=list, repr=False)
    _files: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def is_finished(self) -> bool:
        """True once the job is done, failed or cancelled."""
        return self.state not in _ACTIVE
