"""Answers to the service's requests: hello, ping, status, submit, cancel, clear (heartbeat: none).

Thread contract: called only by the I/O thread (``Server.serve()``); job messages that must go out
from there (a queued job dropped by cancel or clear) are handed to ``finish``.
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Callable

from .. import __version__
from ..errors import InputError, ProtocolError, StillflowError
from ..gan.models_dir import describe_models
from ..options import ENGINES
from ..link.protocol import PROTOCOL_VERSION, Message, error_message
from .config import ServerConfig
from .jobs import Job, JobQueue, build_job
from .keys import is_local_endpoint
from .paths import PathPolicy
from .peers import Peers

__all__ = ["Dispatcher", "Finish"]

log = logging.getLogger(__name__)

Finish = Callable[[Job, Message], None]
"""finish(job, message): send a job's last message from the I/O thread."""


class Dispatcher:
    """Turns one valid request into its reply, acting on the job queue and the client bookkeeping."""

    def __init__(self, config: ServerConfig, jobs: JobQueue, peers: Peers, finish: Finish) -> None:
        self._config = config
        self._jobs = jobs
        self._peers = peers
        self._finish = finish
        from ..devices import resolved_name  # torch: serve has loaded the engine already

        self._devices = [resolved_name(d) for d in config.devices]  # hello says cpu/cuda, not auto
        self._paths = PathPolicy(config.results_dir, config.allow_read, models=config.models,
                                 local=is_local_endpoint(config.bind))
        self._started = time.monotonic()

    def reply(self, identity: bytes, message: Message) -> Message | None:
        """The reply to one valid request (None for heartbeats)."""
        op, req = message.op, message.req
        if op == "heartbeat":
            return None
        if op == "hello":
            return Message("hello", self._hello(), req=req)
        if op == "ping":
            return Message("pong", {"time": time.time()}, req=req)
        if op == "status":
            return Message("status", self._status(message.job), req=req, job=message.job)
        if op == "submit":
            return self._submit(identity, message)
        if op == "cancel":
            return Message("ok", {"state": self._cancel(message.job)}, req=req, job=message.job)
        if op == "clear":
            return Message("ok", {"dropped": self._clear(identity, bool(message.body.get("all", False)))}, req=req)
        raise ProtocolError(f"operation {op} is not served here")

    def _hello(self) -> dict[str, Any]:
        """Version, capabilities and limits."""
        config = self._config
        # What the models folder holds and what each engine/motion/mask option needs.
        models = describe_models(config.models) if config.models else None
        return {"server": f"stillflow {__version__}", "version": __version__, "protocol": PROTOCOL_VERSION,
                "engines": list(ENGINES), "devices": self._devices, "workers": config.workers,
                "limits": config.limits.to_wire(), "queue_size": config.queue_size,
                "heartbeat_s": config.heartbeat_s, "models": models,
                "curve": config.keys is not None, "capabilities": ["shared_fs", "arrays", "files", "preview"],
                **self._paths.hello()}

    def _status(self, job_id: str | None) -> dict[str, Any]:
        """Queue state, or one job's state."""
        queued, running = self._jobs.snapshot()
        if job_id is not None:
            job = next((j for j in queued + running if j.job_id == job_id), None)
            if job is None:
                raise InputError(f"no queued or running job {job_id}", hint="it may have finished already")
            return job.describe()
        return {"queued": [j.describe() for j in queued], "running": [j.describe() for j in running],
                "workers": self._config.workers, "devices": self._devices, "clients": len(self._peers),
                "uptime_s": time.monotonic() - self._started, "version": __version__}

    def _submit(self, identity: bytes, message: Message) -> Message:
        """Queue a job (reply accepted) or reply rejected with the reason."""
        job_id = uuid.uuid4().hex[:16]
        try:
            job = build_job(job_id, identity, message, self._config.limits, self._paths)
            position = self._jobs.put(job)
        except StillflowError as exc:
            log.info("submit rejected: %s", exc)
            return error_message(exc, req=message.req, op="rejected")
        self._peers.own(job_id, identity)
        log.info("job %s queued at %d (%dx%d frames=%d, %s)", job_id, position, *_size(job), job.options.frames,
                 "shared fs" if job.out_dir else job.deliver)
        return Message("accepted", {"position": position, "out_dir": job.out_dir, "video": job.video},
                       req=message.req, job=job_id)

    def _cancel(self, job_id: str | None) -> str:
        """Cancel a queued or running job; returns its state before."""
        job = self._jobs.find(job_id or "")
        if job is None:
            raise InputError(f"no queued or running job {job_id}", hint="it may have finished already")
        state = job.state
        job.cancel.set()
        for dropped in self._jobs.remove(lambda j: j.job_id == job.job_id):
            self._finish(dropped, Message("cancelled", {"msg": "cancelled while queued"}, job=dropped.job_id))
        log.info("job %s cancel requested (%s)", job.job_id, state)
        return state

    def _clear(self, identity: bytes, everyone: bool) -> int:
        """Drop the client's queued jobs (everyone's when asked); returns how many."""
        dropped = self._jobs.remove(lambda job: everyone or job.owner == identity)
        for job in dropped:
            self._finish(job, Message("cancelled", {"msg": "dropped from the queue by clear"}, job=job.job_id))
        return len(dropped)


def _size(job: Job) -> tuple[int, int]:
    """(width, height) of a job's image when it was sent as an array, else (0, 0)."""
    image = job.inputs.get("image")
    shape = getattr(image, "shape", None)
    return (int(shape[1]), int(shape[0])) if shape is not None else (0, 0)
