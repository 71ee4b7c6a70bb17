"""Run the live preview's planning on a worker thread, so Blender's main thread never waits for numpy.

No ``bpy`` module use. The preview's timer gathers its inputs from Blender (cheap reads into numpy
arrays), hands a plain function of them to ``Planner.submit`` and picks the finished value up with
``Planner.take`` at a later tick; the preview draws its previous plan meanwhile.

Thread and process contract:
  - The main thread (the preview's timer, load handler and unregister) calls ``submit``, ``take``,
    ``cancel`` and ``pending``; none of them waits for the worker.
  - The worker runs one job at a time: a function of plain values (numpy arrays, frozen options)
    that touches no bpy data, no GPU and no socket. It hands back its value or its exception
    through ``take``; the lock guards only the few references the two threads share.
  - A newer ``submit`` supersedes: the running job's ``should_cancel`` turns true (checked between
    its steps; it raises ``Cancelled``) and its result is dropped; only the newest job is ever taken.
  - The thread exists only while there is work: it ends when no job waits, and after ``cancel``
    at the end of the step it is in. It is a daemon, so a Blender that quits never waits for it.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Generic, Hashable, TypeVar

from .lib import load

__all__ = ["Outcome", "Planner"]

T = TypeVar("T")

_errors = load("errors")


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """A finished job: its key and either its value or the exception it raised."""

    key: Hashable
    value: T | None = None
    error: Exception | None = None


@dataclass
class _Job(Generic[T]):
    """One submitted job and its own stop flag."""

    key: Hashable
    work: Callable[[Callable[[], bool]], T]
    stop: threading.Event = field(default_factory=threading.Event)


class Planner(Generic[T]):
    """One worker thread computing the newest submitted job; older ones are cancelled and dropped."""

    def __init__(self, name: str = "stillflow-preview-plan") -> None:
        """No thread yet: it starts with the first job."""
        self._name = name
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._waiting: _Job[T] | None = None
        self._running: _Job[T] | None = None
        self._finished: Outcome[T] | None = None
        self._thread: threading.Thread | None = None

    def submit(self, key: Hashable, work: Callable[[Callable[[], bool]], T]) -> None:
        """Compute ``work(should_cancel)`` on the worker for ``key``, superseding every earlier job."""
        with self._lock:
            self._drop_locked()
            self._waiting = _Job(key, work)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def pending(self) -> Hashable | None:
        """Key of the job waiting, running or finished and not yet taken; None when there is none."""
        with self._lock:
            # A cancelled job still running until its next check is not pending: its result is dropped.
            running = self._running if self._running is not None and not self._running.stop.is_set() else None
            job = self._waiting or running
            if job is not None:
                return job.key
            return None if self._finished is None else self._finished.key

    def take(self) -> Outcome[T] | None:
        """The newest job's outcome once it has finished (once), else None."""
        with self._lock:
            finished, self._finished = self._finished, None
            return finished

    def cancel(self) -> None:
        """Drop every job: the running one stops at its next check and its result is never taken."""
        with self._lock:
            self._drop_locked()

    def wait(self, timeout: float) -> bool:
        """Block until no job waits or runs (tests, benches, ``blender -b``); whether that happened in time."""
        with self._idle:
            return self._idle.wait_for(lambda: self._thread is None, timeout)

    def _drop_locked(self) -> None:
        """Forget the waiting and finished jobs and stop the running one (the lock is held)."""
        if self._running is not None:
            self._running.stop.set()
        self._waiting, self._finished = None, None

    def _run(self) -> None:
        """Thread body: run the waiting job, keep its outcome unless it was superseded, until none waits."""
        while True:
            with self._lock:
                job, self._waiting = self._waiting, None
                self._running = job
                if job is None:
                    self._thread = None
                    self._idle.notify_all()
                    return
            try:
                outcome = Outcome(job.key, value=job.work(job.stop.is_set))
            except _errors.Cancelled:
                outcome = None
            except Exception as error:  # handed to the main thread, which shows or raises it
                outcome = Outcome(job.key, error=error)
            with self._lock:
                self._running = None
                if outcome is not None and not job.stop.is_set():
                    self._finished = outcome
