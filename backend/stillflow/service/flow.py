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
    """When the backend last reached each client, and how long each client waits before giving it up.

    A client fails its jobs once it has heard nothing for its ``dead_after`` seconds; it hears
    something whenever the I/O loop hands it a message or has some waiting for it. So a job is
    given up (``stalled``) when no send to its client was even tried for that long: the process
    was stopped (SIGSTOP), or the I/O loop was kept from sending.

    Thread contract: the I/O thread writes; workers only read (single dict reads and float
    assignments, atomic in CPython).
    """

    def __init__(self, default_dead_after_s: float) -> None:
        self.default_dead_after_s = default_dead_after_s
        self.last_tick = time.monotonic()
        self._dead_after: dict[bytes, float] = {}
        self._reached: dict[bytes, float] = {}

    def tell_dead_after(self, identity: bytes, seconds: float) -> None:
        """Remember the silence after which ``identity`` fails its jobs (sent in its heartbeats)."""
        self._dead_after[identity] = seconds

    def reached(self, identity: bytes, now: float | None = None) -> None:
        """Note that a message to ``identity`` was sent, or is waiting for it to read."""
        self._reached[identity] = time.monotonic() if now is None else now

    def forget(self, identity: bytes) -> None:
        """Drop what is known about a client that left."""
        self._dead_after.pop(identity, None)
        self._reached.pop(identity, None)

    def dead_after(self, identity: bytes) -> float:
        """Seconds of backend silence after which ``identity`` has failed its jobs."""
        return self._dead_after.get(identity, self.default_dead_after_s)

    def stalled(self, identity: bytes, now: float | None = None) -> bool:
        """True when ``identity`` has heard nothing from the backend for longer than it waits."""
        now = time.monotonic() if now is None else now
        last = self._reached.get(identity, self.last_tick)
        return now - last > self.dead_after(identity)


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
