"""End the service when the process that started it is gone (``stillflow serve --parent-pid PID``).

The add-on starts a local backend for Blender; when Blender dies (crash, kill) nothing would stop
that backend, so it watches Blender's pid from a daemon thread. Nobody is left to hear a running
job's "cancelled" (the orderly shutdown would spend seconds delivering it to a dead client), so the
process exits at once, within ``interval`` of the parent's end; a staging folder that leaves behind
is removed by the next run (its pid is gone), and a result is never half-written (atomic moves).
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Callable

__all__ = ["watch_parent", "is_alive", "WATCH_INTERVAL_S"]

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.25
"""Seconds between two looks at the parent: the backend outlives it by about this much."""


def is_alive(pid: int) -> bool:
    """True while a process with ``pid`` exists (and is not a zombie we could reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def watch_parent(pid: int, *, interval: float = WATCH_INTERVAL_S,
                 at_exit: Callable[[], None] | None = None) -> threading.Thread:
    """Exit the process once ``pid`` has exited or we were re-parented (checked every ``interval`` s);
    ``at_exit`` runs just before (the process ends without its usual cleanup)."""
    started_under = os.getppid()

    def watch() -> None:
        finished = threading.Event()
        while not finished.wait(interval):
            orphaned = started_under == pid and os.getppid() != pid
            if orphaned or not is_alive(pid):
                log.warning("parent process %d is gone; exiting now (nobody is left to hear the jobs)", pid)
                if at_exit is not None:
                    at_exit()
                logging.shutdown()
                os._exit(0)

    thread = threading.Thread(target=watch, name="stillflow-parent-watch", daemon=True)
    thread.start()
    return thread
