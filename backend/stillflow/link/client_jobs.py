"""Client-side records of submitted jobs: JobHandle (state, progress, result), Event, and how the
backend's job events (progress, part, result, cancelled, error) update them.

No torch, no bpy: the add-on bundles this file. Only ``Client`` (client.py) changes them, inside
its poll(), wait() and requests, on the thread that owns the Client.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import BackendUnavailable, StillflowError
from .protocol import Message, error_from_wire

__all__ = ["Event", "JobHandle", "apply_job_event", "fail_job"]

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


def apply_job_event(handle: JobHandle, message: Message, events: list[Event]) -> None:
    """Update an active ``handle`` from one event of its job, appending the Event it makes to ``events``."""
    if message.op == "progress":
        handle.state = "running"
        handle.stage = str(message.body.get("stage", ""))
        handle.done = int(message.body.get("done", 0))
        handle.total = int(message.body.get("total", 0))
        if "preview" in message.parts:
            handle.preview = message.parts["preview"]
        events.append(Event("progress", handle.job_id, message.body, message.parts))
    elif message.op == "part":
        _collect_part(handle, message)
    elif message.op == "result":
        _finish(handle, message.body, events)
    elif message.op == "cancelled":
        handle.state = "cancelled"
        events.append(Event("cancelled", handle.job_id, message.body))
    elif message.op == "error":
        fail_job(handle, error_from_wire(message.body), message.body, events)


def fail_job(handle: JobHandle, error: StillflowError, body: dict[str, Any], events: list[Event]) -> None:
    """Mark a job failed and append its error event."""
    handle.state = "failed"
    handle.error = error
    handle._frames, handle._files = [], {}
    data = dict(body) or {"code": error.wire_code, "msg": str(error)}
    events.append(Event("error", handle.job_id, data))


def _collect_part(handle: JobHandle, message: Message) -> None:
    """Collect one piece of a remote result."""
    name = str(message.body.get("name", ""))
    data = next(iter(message.parts.values()), None)
    if data is None:
        return
    if name == "frame":
        handle._frames.append(data)
    else:
        handle._files[name] = data.tobytes()


def _finish(handle: JobHandle, body: dict[str, Any], events: list[Event]) -> None:
    """Finish a job: build its result dict and append the result event (or fail it when parts are missing)."""
    result = dict(body)
    arrays: dict[str, np.ndarray] = {}
    if handle._frames:
        arrays["frames"] = np.stack(handle._frames)
        result["frames"] = arrays["frames"]
    if handle._files:
        result["files"] = handle._files
    handle._frames = []
    expected = body.get("count")
    got = len(result.get("frames", ())) or len(handle._files)
    if isinstance(expected, int) and expected != got:
        fail_job(handle, BackendUnavailable(f"job {handle.job_id} result is incomplete: {got} of "
                                            f"{expected} parts arrived", hint="submit it again"), body, events)
        return
    handle.state = "done"
    handle.result = result
    events.append(Event("result", handle.job_id, result, arrays))
