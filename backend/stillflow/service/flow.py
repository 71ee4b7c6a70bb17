"""Flow control between the service's workers and its I/O loop: send backlogs and stall detection.

Thread contract: ``Backlog`` and ``Watchdog`` are shared by the I/O thread and the workers and
lock what they change. Workers call ``Backlog.wait_room`` before handing a reliable message to
the I/O loop (a client that stops reading pauses its job) and check ``JobCancel`` between frames.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from ..errors import Cancelled, JobFailed

__all__ = ["Backlog", "Watchdog", "JobCancel", "message_bytes"]

_WAIT_STEP_S = 0.1


def message_bytes(frames: list) -> int:
    """Bytes held by an encoded message's frames."""
    return sum(memoryview(frame).nbytes for frame in frames)


class Backlog:
    """Bytes of job messages per client that were produced but not yet taken by ZeroMQ."""

    def __init__(self, limit_bytes: int, patience_s: float) -> None:
        self.limit_bytes = limit_bytes
        self.patience_s = patience_s
        self._bytes: dict[bytes, int] = {}
        self._condition = threading.Condition()

    def pending(self, identity: bytes) -> int:
        """Bytes waiting for ``identity``."""
        with self._condition:
            return self._bytes.get(identity, 0)

    def add(self, identity: bytes, size: int) -> None:
        """Count a message handed to the I/O loop."""
        with self._condition:
            self._bytes[identity] = self._bytes.get(identity, 0) + size

    def release(self, identity: bytes, size: int) -> None:
        """Count a message ZeroMQ took (or that was dropped); wakes paused workers."""
        with self._condition:
            left = self._bytes.get(identity, 0) - size
            if left > 0:
                self._bytes[identity] = left
            else:
                self._bytes.pop(identity, None)
            self._condition.notify_all()

    def wait_room(self, identity: bytes, cancelled: Callable[[], bool], on_pause: Callable[[int], None]) -> None:
        """Block while ``identity``'s backlog is over the limit (the job pauses).

        Raises:
            Cancelled: the job was cancelled while paused.
            JobFailed: the client read nothing for ``patience_s``.
        """
        with self._condition:
            if self._bytes.get(identity, 0) <= self.limit_bytes:
                return
            on_pause(self._bytes[identity])
            deadline = time.monotonic() + self.patience_s
            while self._bytes.get(identity, 0) > self.limit_bytes:
                if cancelled():
                    raise Cancelled("the job was cancelled while its client was not reading; nothing was written")
                if time.monotonic() > deadline:
                    raise JobFailed(f"the client read none of this job's results for {self.patience_s:g} s; "
                                    "the job was stopped", hint="read the results while a job runs (poll)")
                self._condition.wait(_WAIT_STEP_S)


class Watchdog:
    """When the I/O loop last ran, and how long each client waits before it gives a silent backend up."""

    def __init__(self, default_dead_after_s: float) -> None:
        self.default_dead_after_s = default_dead_after_s
        self.last_tick = time.monotonic()
        self._dead_after: dict[bytes, float] = {}

    def tell_dead_after(self, identity: bytes, seconds: float) -> None:
        """Remember the silence after which ``identity`` fails its jobs (sent in its heartbeats)."""
        self._dead_after[identity] = seconds

    def forget(self, identity: bytes) -> None:
        """Drop what is known about a client that left."""
        self._dead_after.pop(identity, None)

    def dead_after(self, identity: bytes) -> float:
        """Seconds of backend silence after which ``identity`` has failed its jobs."""
        return self._dead_after.get(identity, self.default_dead_after_s)

    def stalled(self, identity: bytes, now: float | None = None) -> bool:
        """True when the I/O loop has not run for longer than ``identity`` waits (the process was stopped)."""
        now = time.monotonic() if now is None else now
        return now - self.last_tick > self.dead_after(identity)


class JobCancel(threading.Event):
    """A job's cancellation flag that also sets itself once its client must have given the job up."""

    def __init__(self, stalled: Callable[[], bool]) -> None:
        super().__init__()
        self._stalled = stalled

    def is_set(self) -> bool:
        """True once cancelled, or once the backend was silent for longer than the client waits."""
        if not super().is_set() and self._stalled():
            self.set()
        return super().is_set()
