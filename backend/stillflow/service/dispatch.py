"""Answers to the service's requests: hello, ping, status, submit, cancel, clear (heartbeat: none).

Thread contract: called only by the I/O thread (``Server.serve()``); job messages that must go out
from there (a queued job dropped by cancel or clear) are handed to ``finish``.

Isolation: every job belongs to the principal that submitted it (``wire.principal_of``: the CURVE
key when keyed, else the routing id); status, cancel and clear see only the caller's own jobs,
and a job of somebody else is answered exactly like a job that does not exist.
"""
from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from ..errors import BackendUnavailable, InputError, ProtocolError, StillflowError, shown
from ..gan.models_dir import describe_models
from ..io.headers import check_image_header
from ..stages.motion_file import check_motion_header
from ..options import ENGINES
from ..link.protocol import PROTOCOL_VERSION, Message, error_message
from ..link.wire_amplitude import FILE_CAPABILITY
from ..link.wire_regions import AMPLITUDE_CAPABILITY, REGIONS_CAPABILITY
from .config import ServerConfig
from .flow import JobCancel, Watchdog
from .jobs import Job, JobQueue, amplitude_input
from .submit import build_job
from .keys import is_local_endpoint
from .paths import PathPolicy
from .peers import Peers
from .results import ResultStore
from .wire import RefusalLog

__all__ = ["Dispatcher", "Finish"]

log = logging.getLogger(__name__)

Finish = Callable[[Job, Message], None]
"""finish(job, message): send a job's last message from the I/O thread."""


class Dispatcher:
    """Turns one valid request into its reply, acting on the job queue and the client bookkeeping."""

    def __init__(self, config: ServerConfig, jobs: JobQueue, peers: Peers, finish: Finish,
                 watchdog: Watchdog, refusals: RefusalLog) -> None:
        self._config = config
        self._refusals = refusals
        self._jobs = jobs
        self._peers = peers
        self._finish = finish
        self._watchdog = watchdog
        from ..devices import resolved_name  # torch: serve has loaded the engine already

        self._devices = [resolved_name(d) for d in config.devices]  # hello says cpu/cuda, not auto
        # clients of a keyed backend (or one other machines reach) see paths relative to its results folder
        self._paths = PathPolicy(config.results_dir, config.allow_read, models=config.models,
                                 local=is_local_endpoint(config.bind) and config.keys is None)
        self.results = ResultStore(self._paths.results)
        self._started = time.monotonic()

    def reply(self, identity: bytes, principal: bytes, message: Message) -> Message | None:
        """The reply to one valid request from ``identity`` acting as ``principal`` (None for heartbeats)."""
        op, req = message.op, message.req
        if op == "heartbeat":
            self._heartbeat(identity, message.body)
            return None
        if op == "hello":
            return Message("hello", self._hello(), req=req)
        if op == "ping":
            return Message("pong", {"time": time.time()}, req=req)
        if op == "status":
            return Message("status", self._status(principal, message.job), req=req, job=message.job)
        if op == "submit":
            return self._submit(identity, principal, message)
        if op == "cancel":
            return Message("ok", {"state": self._cancel(principal, message.job)}, req=req, job=message.job)
        if op == "clear":
            return Message("ok", {"dropped": self._clear(principal, message.body)}, req=req)
        raise ProtocolError(f"operation {op} is not served here")

    def _heartbeat(self, identity: bytes, body: dict[str, Any]) -> None:
        """Note how long the client waits for a silent backend (``dead_after`` s) before failing its jobs."""
        seconds = body.get("dead_after")
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds == seconds:
            # never below three heartbeats: the I/O loop may pause that long under load
            self._watchdog.tell_dead_after(identity, min(3600.0, max(3.0 * self._config.heartbeat_s, seconds)))

    def _hello(self) -> dict[str, Any]:
        """Version, capabilities and limits."""
        config = self._config
        # What the models folder holds and what each engine/motion/mask option needs.
        models = describe_models(config.models) if config.models else None
        if models is not None and not self._paths.local:  # paths on this machine: of no use to a remote client
            models["path"] = None
            for described in models.get("files", {}).values():
                described["path"] = None
        return {"server": f"stillflow {__version__}", "version": __version__, "protocol": PROTOCOL_VERSION,
                "engines": list(ENGINES), "devices": self._devices, "workers": config.workers,
                "limits": config.limits.to_wire(), "queue_size": config.queue_size,
                "heartbeat_s": config.heartbeat_s, "models": models,
                "curve": config.keys is not None,
                "capabilities": ["shared_fs", "arrays", "files", "preview", REGIONS_CAPABILITY,
                                 AMPLITUDE_CAPABILITY, FILE_CAPABILITY],
                **self._paths.hello()}

    def _status(self, principal: bytes, job_id: str | None) -> dict[str, Any]:
        """The caller's queued and running jobs (others' only counted), or one of its jobs."""
        queued, running = self._jobs.snapshot()
        if job_id is not None:
            return self._own(principal, job_id).describe()
        return {"queued": [j.describe() for j in queued if j.principal == principal],
                "running": [j.describe() for j in running if j.principal == principal],
                "queue_length": len(queued), "busy_workers": len(running),
                "workers": self._config.workers, "devices": self._devices, "clients": len(self._peers),
                "uptime_s": time.monotonic() - self._started, "version": __version__}

    def _own(self, principal: bytes, job_id: str | None) -> Job:
        """The caller's queued or running job ``job_id``; InputError when there is none (or it is not theirs)."""
        job = self._jobs.find(job_id or "")
        if job is None or job.principal != principal:
            raise InputError(f"no queued or running job {shown(job_id)}", hint="it may have finished already")
        return job

    def _submit(self, identity: bytes, principal: bytes, message: Message) -> Message:
        """Queue a job (reply accepted) or reply rejected with the reason."""
        job_id = uuid.uuid4().hex[:16]
        try:
            seconds = message.body.get("dead_after", 1.0)
            if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 < seconds < float("inf"):
                raise InputError(f"dead_after must be a number of seconds, got {shown(seconds)}")
            self._heartbeat(identity, message.body)  # the submit says how long its client waits, too
            job = build_job(job_id, identity, message, self._config.limits, self._paths)
            job.principal = principal
            job.scratch_root = str(self.results.scratch)
            job.results_root = None if self._paths.local else str(self._paths.results)
            _check_input_headers(job, self._config.limits.max_image_side)
            job.cancel = JobCancel(lambda: self._watchdog.stalled(identity))
            self._check_client_queue(principal)
            self._claim(job, message.body)
            position = self._jobs.put(job)
        except StillflowError as exc:
            self._refusals.refused(identity, exc)
            return error_message(exc, req=message.req, op="rejected")
        self._peers.own(job_id, identity)
        log.info("job %s queued at %d (%dx%d frames=%d, %s)", job_id, position, *_size(job), job.options.frames,
                 "shared fs" if job.out_dir else job.deliver)
        return Message("accepted", {"position": position, "out_dir": job.shown(job.out_dir),
                                    "video": job.shown(job.video)}, req=message.req, job=job_id)

    def _claim(self, job: Job, body: dict[str, Any]) -> None:
        """Make the job's out_dir (and a video beside it) its client's result.

        InputError when out_dir is somebody else's (or no result). A video outside out_dir that
        would replace a file not the caller's goes to the first free name instead (job.video).
        """
        key = body.get("owner_key")
        if key is not None and not self.results.is_owner(key):
            raise InputError("owner_key is not the key of this backend's results folder",
                             hint="leave it out (a client replaces only its own results) or read it again")
        queued, running = self._jobs.snapshot()
        others = [other for other in queued + running if other.principal != job.principal]
        if job.out_dir is not None:
            pending = any(job.out_dir in (other.out_dir, other.video) for other in others)
            self.results.claim(job.out_dir, job.principal, "out_dir", str(body.get("out_dir")), pending=pending,
                               owner=key is not None)
            if job.video is not None and Path(job.out_dir) not in Path(job.video).parents:
                taken = {path for other in others for path in (other.out_dir, other.video) if path}
                job.video = self.results.claim_file(job.video, job.principal, taken, owner=key is not None)

    def _check_client_queue(self, principal: bytes) -> None:
        """BackendUnavailable when the caller already has its share of the queue."""
        limit = min(self._config.client_queue, self._jobs.capacity)
        queued, _ = self._jobs.snapshot()
        mine = sum(1 for job in queued if job.principal == principal)
        # a full queue says so first; the per-client share only matters while others have room
        if mine >= limit and len(queued) < self._jobs.capacity:
            raise BackendUnavailable(f"this client already has {mine} queued jobs, the most one client may queue",
                                     hint="wait for them to finish or cancel some (serve --client-queue)")

    def _cancel(self, principal: bytes, job_id: str | None) -> str:
        """Cancel one of the caller's queued or running jobs; returns its state before."""
        job = self._own(principal, job_id)
        state = job.state
        job.cancel.set()
        for dropped in self._jobs.remove(lambda j: j.job_id == job.job_id):
            self._finish(dropped, Message("cancelled", {"msg": "cancelled while queued"}, job=dropped.job_id))
        log.info("job %s cancel requested (%s)", job.job_id, state)
        return state

    def _clear(self, principal: bytes, body: dict[str, Any]) -> int:
        """Drop the caller's queued jobs (``all`` is accepted but never reaches other clients' jobs)."""
        if not isinstance(body.get("all", False), bool):
            raise InputError(f"clear's all must be true or false, got {shown(body.get('all'))}")
        dropped = self._jobs.remove(lambda job: job.principal == principal)
        for job in dropped:
            self._finish(job, Message("cancelled", {"msg": "dropped from the queue by clear"}, job=job.job_id))
        return len(dropped)


def _check_input_headers(job: Job, max_side: int) -> None:
    """Refuse image, mask, importance, amplitude and motion files that declare too large an array, before decoding."""
    names = [(name, f"{name}_file", name) for name in ("image", "mask", "importance")]
    names += [(amplitude_input(index), f"region {index + 1}'s amplitude image file",
               f"region {index + 1}'s amplitude image") for index in range(len(job.regions))]
    for name, sent, shared in names:
        value = job.inputs.get(name)
        if isinstance(value, tuple):  # (file name, bytes) sent by the client
            check_image_header(value[1], f"{sent} {shown(value[0])}", max_side, known_only=True)
        elif isinstance(value, str) and value != "auto":  # a path on a shared filesystem
            check_image_header(value, f"{shared} {shown(value)}", max_side, known_only=False)
    if job.motion.kind == "file":  # a .npy motion: its header says how much np.load would allocate
        name, source = job.inputs.get("motion_file") or (job.motion.path, str(job.motion.path))
        check_motion_header(source, f"motion file {shown(name)}", max_side)


def _size(job: Job) -> tuple[int, int]:
    """(width, height) of a job's image when it was sent as an array, else (0, 0)."""
    image = job.inputs.get("image")
    shape = getattr(image, "shape", None)
    return (int(shape[1]), int(shape[0])) if shape is not None else (0, 0)
