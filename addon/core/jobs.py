"""Follow one backend job from submit to result; ``JobTracker.tick()`` is the whole timer body.

No ``bpy`` module use: the bpy layer passes callbacks that touch Blender data.

Thread and process contract:
  - Only Blender's main thread touches bpy; this module never imports it.
  - The Client's DEALER socket is polled only from ``tick()``, ``cancel()`` and ``wait()``, all on
    the main thread (timer ticks, operators, or a ``blender -b`` script).
  - Nothing here waits on the network: ``cancel()`` sends its request and forgets it (a dead
    backend cannot hold the operator, a file load or unregister); the job ends when the backend
    confirms, or here after ``CANCEL_WAIT_S`` without its word.
  - The add-on starts no Python threads; the engine runs in the backend process.
  - ``tick()`` first steps the ``Connect`` state machine (when the job still needs a backend), then
    submits once, then drains with ``client.poll(0)``; it never blocks for long (submit is one
    request to a backend that has just answered hello). Job state changes only inside tick().
  - Without timers (``blender -b``) ``wait()`` loops tick() until the job ends or a deadline passes;
    Ctrl+C (KeyboardInterrupt) there cancels the job on the backend before it propagates.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .lib import load
from .progress_model import ProgressModel, StagePlan
from .request import with_amplitude_pixels

log = logging.getLogger(__name__)

__all__ = ["JobRequest", "JobTracker", "TICK_INTERVAL", "TERMINAL_STATES", "CANCEL_WAIT_S"]

_errors = load("errors")
_FILE_CAPABILITY = load("link.wire_amplitude").FILE_CAPABILITY

TICK_INTERVAL = 0.1
"""Seconds between timer ticks while a job runs."""

TERMINAL_STATES = ("done", "failed", "cancelled")

CANCEL_WAIT_S = 5.0
"""Seconds a cancelled job waits for the backend's ``cancelled`` before it ends here regardless."""


@dataclass(frozen=True)
class JobRequest:
    """Everything a job needs, snapshotted at submit time (later UI edits never reach a running job).

    ``image`` is (H, W, C) float32 or uint8, rows top-down, or the path of a still file the backend
    decodes itself (``inputs.image_input``); ``mask`` is (H', W') float32 in [0, 1]
    or None for "animate everything"; ``out_dir`` is where the frames end up.
    """

    image: np.ndarray | str
    mask: np.ndarray | None
    motion: Any
    options: Any
    out_dir: str
    label: str = ""
    share_files: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    regions: tuple[Any, ...] | None = None
    """Motion regions (masks as arrays; amplitude images as arrays or file paths) instead of ``mask`` and ``motion``."""
    read_amplitude: Callable[[int], np.ndarray] | None = None
    """Reads region i's amplitude image's pixels (main thread) when the backend cannot decode its file."""


class JobTracker:
    """One job's state as the panel shows it: progress, stage, result or a one-line error."""

    def __init__(self, client: Any | None, request: JobRequest, *,
                 connect: Any | None = None, adopt: Callable[[Any], Any] | None = None,
                 on_update: Callable[["JobTracker"], None] | None = None,
                 on_finish: Callable[["JobTracker"], None] | None = None,
                 interval: float = TICK_INTERVAL) -> None:
        """``client`` None: tick() steps ``connect`` (a core.connect.Connect) and ``adopt(connect)`` gives the Client."""
        self.client = client
        self.connect = connect
        self.adopt = adopt
        self.request = request
        self.progress = ProgressModel(StagePlan.for_job(writes_frames_here=not request.share_files, video=False))
        self.on_update = on_update
        self.on_finish = on_finish
        self.interval = interval
        self.job: Any | None = None
        self.state = "new" if client is not None else "connecting"
        self.stage = ""
        self.preview: np.ndarray | None = None
        self.preview_count = 0
        self.fraction = 0.0
        self.error: str = ""
        self.exception: Exception | None = None
        self.result: dict[str, Any] | None = None
        self._finished = False
        self._cancel_by: float | None = None

    @property
    def is_finished(self) -> bool:
        """True once the job is done, failed or cancelled and ``on_finish`` has run."""
        return self._finished

    @property
    def label(self) -> str:
        """What the panel shows: the connection step, 'Queued', or the progress line."""
        if self.state == "connecting" and self.connect is not None:
            return self.connect.label()
        if self._cancel_by is not None:
            return "cancelling…"
        return self.progress.text()

    def submit(self) -> None:
        """Send the job; InputError / BackendUnavailable propagate to the operator that reports them."""
        req = self.request
        regions = req.regions
        if regions and req.read_amplitude is not None and _FILE_CAPABILITY not in self.client.capabilities():
            regions = with_amplitude_pixels(regions, req.read_amplitude)  # an older backend: read them here after all
        self.job = self.client.submit(req.image, mask=req.mask, motion=req.motion, options=req.options,
                                      out_dir=req.out_dir if req.share_files else None, regions=regions)
        self.state = "queued"
        log.info("submitted job %s (%s)", self.job.job_id, req.label)

    def tick(self) -> float | None:
        """Drain the backend's events, update the state; seconds to the next tick, or None when over."""
        if self._finished:
            return None
        if self.job is None and not self._connect_step():
            return None if self._finished else self._updated()
        try:
            self.client.poll(timeout=0.0)
        except _errors.StillflowError as error:
            self._end("failed", str(error))
            return None
        job = self.job
        self.stage = job.stage or self.stage
        self.progress.update(job.stage, job.done, job.total)
        self.fraction = self.progress.fraction
        if job.preview is not None and job.preview is not self.preview:
            self.preview, self.preview_count = job.preview, self.preview_count + 1
        if job.state in TERMINAL_STATES:
            self._end(job.state, str(job.error) if job.error is not None else "")
            return None
        if self._cancel_by is not None and time.monotonic() > self._cancel_by:
            self._end("cancelled", f"cancelled; the backend did not confirm within {CANCEL_WAIT_S:g} s")
            return None
        self.state = job.state
        return self._updated()

    def _updated(self) -> float:
        """Tell the panel and return the next tick's delay."""
        if self.on_update is not None:
            self.on_update(self)
        return self.interval

    def _connect_step(self) -> bool:
        """Step the connection; True once the job is submitted (then tick() polls it)."""
        if self.client is None:
            if self.connect is None or self.adopt is None:
                raise RuntimeError("tick() without a client or a Connect")
            self.connect.step()
            if self.connect.state == "cancelled":
                self._end("cancelled", "cancelled before the job reached the backend")
                return False
            if self.connect.state == "failed":
                self.exception = self.connect.error
                self._end("failed", str(self.connect.error))
                return False
            if self.connect.state != "ready":
                return False
            try:
                self.client = self.adopt(self.connect)
            except _errors.StillflowError as error:
                self.exception = error
                self._end("failed", str(error))
                return False
        try:
            self.submit()
        except _errors.StillflowError as error:
            self.exception = error
            self._end("failed", str(error))
            return False
        return True

    def cancel(self) -> None:
        """Ask the backend to stop the job without waiting for it; a later tick() sees ``cancelled``."""
        if self._finished or self._cancel_by is not None:
            return
        if self.job is None:
            if self.connect is not None:
                self.connect.cancel()
            self._end("cancelled", "cancelled before the job reached the backend")
            return
        try:
            sent = self.client.cancel_nowait(self.job)
        except _errors.StillflowError:  # the client was closed: nobody is left to ask
            sent = False
        if not sent:
            self._end("cancelled", "cancelled; the backend was not reachable to confirm it")
            return
        self._cancel_by = time.monotonic() + CANCEL_WAIT_S

    def release_frames(self) -> None:
        """Drop a remote result's frame arrays once they are written (the Client keeps finished job handles)."""
        for result in (self.result, getattr(self.job, "result", None)):
            if result:
                result.pop("frames", None)

    def wait(self, timeout: float | None = None, *, sleep: float = 0.02) -> dict[str, Any]:
        """Block until the job ends (for ``blender -b`` where no timer runs); the result dict.

        Raises:
            JobFailed, Cancelled: the job did not finish; BackendUnavailable: the deadline passed
            (the job is cancelled) or the backend went away.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while self.tick() is not None:
                if deadline is not None and time.monotonic() > deadline:
                    self.cancel()
                    self._end("failed", f"the backend did not finish '{self.request.label}' within {timeout:g} s")
                    raise _errors.BackendUnavailable(self.error, hint="raise the timeout or use a faster device")
                time.sleep(sleep)
        except KeyboardInterrupt:
            self.interrupt()
            raise
        if self.state == "done":
            return self.result or {}
        if self.state == "cancelled":
            raise _errors.Cancelled(self.error or f"job '{self.request.label}' was cancelled")
        if self.exception is not None:
            raise self.exception
        raise _errors.JobFailed(self.error or f"job '{self.request.label}' failed")

    def interrupt(self, reason: str = "interrupted (Ctrl+C)") -> None:
        """Cancel the job on the backend and end it here at once (Ctrl+C while waiting, a file being closed)."""
        try:
            self.cancel()
        except KeyboardInterrupt:  # a second Ctrl+C while the cancel request is out: end here regardless
            pass
        self._end("cancelled", f"{reason}; the job was cancelled on the backend")

    def fail(self, reason: str) -> None:
        """End the job here as failed (its backend is known to be gone; no need to wait for silence)."""
        self._end("failed", reason)

    def stop_waiting(self, reason: str) -> None:
        """End a cancelled job here at once, without the backend's word (it is gone)."""
        self._end("cancelled", reason)

    def _end(self, state: str, error: str) -> None:
        """Record the final state and run ``on_finish`` once."""
        if self._finished:
            return
        self.state = state
        self.error = error
        if state == "done" and self.job is not None:
            self.result = dict(self.job.result or {})
            if self.request.share_files:
                self.progress.finish()
            self.fraction = self.progress.fraction
        self._finished = True
        log.info("job %s ended: %s %s", getattr(self.job, "job_id", "?"), state, error)
        if self.on_finish is not None:
            self.on_finish(self)
