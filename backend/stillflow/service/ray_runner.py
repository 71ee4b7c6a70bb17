"""``stillflow serve --ray ADDR``: the service's jobs run as Ray tasks on a cluster.

The add-on talks to one endpoint; each service worker thread hands its job to a Ray task (one
GPU each where the cluster has GPUs) and relays what the task emits. The task runs the same
``run_job`` as a local worker; its messages (progress, parts, the final one) travel through a
small mailbox actor that the worker thread drains. Cancel goes through the mailbox too: the task
watches it and sets its job's cancel flag, so the engine stops at its next check and the job ends
as a local one does (nothing written, its own ``cancelled`` message). ``ray.cancel`` (a
KeyboardInterrupt in the task) is only the fallback for a task that has not stopped
``_INTERRUPT_AFTER_S`` later: a Ray worker whose cluster was started from a background shell (``nohup
... &``, as on a farm) inherits SIGINT ignored, and then that interrupt does nothing at all.
Paths in a job (loopback clients) must be visible on the Ray workers (shared storage); jobs that
send arrays or file bytes and take the result over the wire work on any cluster.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any

from ..errors import StillflowError
from ..link.protocol import Message, error_message
from .jobs import Emit, Job, run_job

__all__ = ["RayJobRunner"]

log = logging.getLogger(__name__)

_POLL_S = 0.1
_WATCH_S = 0.2
"""How often a task asks the mailbox whether its job was cancelled."""
_INTERRUPT_AFTER_S = 10.0
"""Seconds a cancelled task may take to stop by itself before it is interrupted with ``ray.cancel``."""
_SPEC_FIELDS = ("job_id", "owner", "options", "motion", "regions", "inputs", "out_dir", "video", "deliver", "preview")


class _Mailbox:
    """Messages of running jobs, by job id (a Ray actor; calls from one task arrive in order)."""

    def __init__(self) -> None:
        self._boxes: dict[str, list[tuple[Message, bool]]] = {}
        self._cancelled: set[str] = set()

    def put(self, job_id: str, message: Message, reliable: bool) -> None:
        """Add one message of a job."""
        self._boxes.setdefault(job_id, []).append((message, reliable))

    def take(self, job_id: str) -> list[tuple[Message, bool]]:
        """Every message of a job so far (removed from the box)."""
        return self._boxes.pop(job_id, [])

    def cancel(self, job_id: str) -> None:
        """Mark a job cancelled (its task stops at its engine's next check)."""
        self._cancelled.add(job_id)

    def is_cancelled(self, job_id: str) -> bool:
        """Whether the job was cancelled."""
        return job_id in self._cancelled

    def forget(self, job_id: str) -> None:
        """Drop what is kept of an ended job."""
        self._boxes.pop(job_id, None)
        self._cancelled.discard(job_id)


def _run_remote(spec: dict[str, Any], mailbox: Any) -> str:
    """Ray task body: run the job with ``run_job``, its messages posted to the mailbox; returns its state."""
    import ray

    job = Job(**spec)
    last: list[Any] = []
    ended = threading.Event()

    def emit(owner: bytes, message: Message, reliable: bool) -> None:
        last[:] = [mailbox.put.remote(job.job_id, message, reliable)]

    def watch() -> None:
        while not ended.wait(_WATCH_S):
            if ray.get(mailbox.is_cancelled.remote(job.job_id)):
                job.cancel.set()
                return

    watcher = threading.Thread(target=watch, name="stillflow-cancel-watch", daemon=True)
    watcher.start()
    try:
        run_job(job, emit, None)
    finally:
        ended.set()
    if last:
        ray.get(last[0])  # the mailbox has every message before the driver sees the task end
    return job.state


class RayJobRunner:
    """Runs service jobs on the Ray cluster at ``address``: call it like ``run_job``."""

    def __init__(self, address: str, *, max_retries: int = 1) -> None:
        from ..batch.ray_connect import connect, require_ray

        ray = require_ray()
        self._started = connect(address)
        gpus = float(ray.cluster_resources().get("GPU", 0))
        self._mailbox = ray.remote(num_cpus=0)(_Mailbox).remote()
        self._task = ray.remote(_run_remote).options(num_gpus=1 if gpus else 0, num_cpus=1,
                                                       max_retries=max_retries, name="stillflow_service_job")
        log.info("jobs run on the Ray cluster at %s (%s per job)", address, "1 GPU" if gpus else "1 CPU")

    def __call__(self, job: Job, emit: Emit, device: str | None) -> None:
        """Run ``job`` on the cluster, relay its messages through ``emit``; same contract as ``run_job``."""
        import ray
        from ray.exceptions import TaskCancelledError

        spec = {name: getattr(job, name) for name in _SPEC_FIELDS}
        if device is not None and job.options.device == "auto":
            spec["options"] = dataclasses.replace(job.options, device=device)
        ref = self._task.remote(spec, self._mailbox)
        cancelled_at: float | None = None
        interrupted = False
        while True:
            if job.cancel.is_set() and cancelled_at is None:
                self._mailbox.cancel.remote(job.job_id)
                cancelled_at = time.monotonic()
            elif cancelled_at is not None and not interrupted and time.monotonic() - cancelled_at > _INTERRUPT_AFTER_S:
                log.warning("job %s did not stop %g s after its cancel: interrupting its Ray task",
                            job.job_id, _INTERRUPT_AFTER_S)
                ray.cancel(ref)
                interrupted = True
            ready, _ = ray.wait([ref], timeout=_POLL_S)
            self._relay(job, emit)
            if ready:
                break
        try:
            job.state = ray.get(ref)
            if job.state == "cancelled":
                log.info("job %s stopped on the cluster at its cancel", job.job_id)
        except TaskCancelledError:
            job.state = "cancelled"
            emit(job.owner, Message("cancelled", {"msg": "the job was cancelled; nothing was written"},
                                    job=job.job_id), True)
        except Exception as exc:  # the task's worker died more than max_retries times, or Ray failed it
            log.warning("job %s failed on the cluster: %s", job.job_id, exc)
            job.state = "failed"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            emit(job.owner, error_message(StillflowError(f"the job failed on the Ray cluster: {first}"[:300],
                                                         hint="see the backend log"), job=job.job_id), True)
        finally:
            self._relay(job, emit)
            self._mailbox.forget.remote(job.job_id)

    def _relay(self, job: Job, emit: Emit) -> None:
        """Forward the job's mailbox to the client, keeping the job's progress fields current."""
        import ray

        for message, reliable in ray.get(self._mailbox.take.remote(job.job_id)):
            if message.op == "progress":
                job.stage, job.done, job.total = (message.body.get(k) for k in ("stage", "done", "total"))
            emit(job.owner, message, reliable)

    def close(self) -> None:
        """Shut Ray down when this runner started it."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
