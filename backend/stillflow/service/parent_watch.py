"""Stop the service when the process that started it is gone (``stillflow serve --parent-pid PID``).

The add-on starts a local backend for Blender; when Blender dies (crash, kill) nothing would stop
that backend, so it watches Blender's pid from a daemon thread and asks for the normal shutdown.
Nobody is left to hear a running job's "cancelled", so when the orderly shutdown has not ended the
process after ``grace`` seconds (a job between two cancellation checks, a slow interpreter exit), it
exits at once; a staging folder that leaves behind is removed by the next run (its pid is gone).
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Callable

__all__ = ["watch_parent", "is_alive"]

log = logging.getLogger(__name__)


def is_alive(pid: int) -> bool:
    """True while a process with ``pid`` exists (and is not a zombie we could reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def watch_parent(pid: int, stop: Callable[[], None], *, interval: float = 0.5, grace: float = 3.0
                 ) -> threading.Thread:
    """Call ``stop()`` once ``pid`` has exited or we were re-parented (checked every ``interval`` s),
    and end the process ``grace`` s later if it is still running."""
    started_under = os.getppid()

    def watch() -> None:
        finished = threading.Event()
        while not finished.wait(interval):
            orphaned = started_under == pid and os.getppid() != pid
            if orphaned or not is_alive(pid):
                log.warning("parent process %d is gone; shutting down", pid)
                stop()
                finished.wait(grace)
                log.warning("still running %g s after the parent went; exiting now", grace)
                logging.shutdown()
                os._exit(0)

    thread = threading.Thread(target=watch, name="stillflow-parent-watch", daemon=True)
    thread.start()
    return thread
