"""The backend service: a ROUTER socket served by one I/O loop, jobs run by worker threads.

Thread contract:
  - The ROUTER, the doorbell PULL socket and all client bookkeeping belong to the thread
    that calls ``serve()`` (the I/O loop); nothing else touches them.
  - Worker threads take jobs from the JobQueue, run the engine, and hand every outgoing
    message to the I/O loop through ``_outbound`` (a queue), ringing their own PUSH doorbell.
  - Cancellation is a threading.Event per job, checked by the engine between frames.
  - ``request_stop()`` only sets a flag, so it is safe from a signal handler.
"""
from __future__ import annotations

import errno
import logging
import os
import queue
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import zmq

from .. import __version__
from ..errors import BackendUnavailable, InputError, ProtocolError, StillflowError
from ..gan.models_dir import describe_models
from ..options import ENGINES
from ..protocol import (PROTOCOL_VERSION, REQUEST_OPS, Limits, Message, check_header, encode, error_message,
                        peek_ids, read_parts, unpack_header)
from .jobs import Job, JobQueue, build_job, run_job
from .keys import ServerKeys, check_bind

__all__ = ["ServerConfig", "Server"]

log = logging.getLogger(__name__)

_REPLY_CACHE = 1024
_DRAIN_MAX = 128
_TICK_S = 0.1


@dataclass(frozen=True)
class ServerConfig:
    """How the service binds, which devices it drives and its limits."""

    bind: str = "tcp://127.0.0.1:5555"
    devices: tuple[str, ...] = ("auto",)
    workers: int = 1
    queue_size: int = 16
    limits: Limits = field(default_factory=Limits)
    keys: ServerKeys | None = None
    heartbeat_s: float = 1.0
    client_timeout_s: float = 60.0
    log_path: str | None = None
    models: str | None = None


@dataclass
class _Peer:
    """What the I/O loop knows about one client identity."""

    last_seen: float
    outbox: deque[list[Any]] = field(default_factory=deque)


class Server:
    """The job server: bind(), then serve() until request_stop()."""

    def __init__(self, config: ServerConfig) -> None:
        check_bind(config.bind, config.keys)
        if config.workers < 1 or config.queue_size < 1:
            raise InputError("--workers and --queue-size must be at least 1")
        self.config = config
        self.endpoint = ""
        self._context = zmq.Context()
        self._router: zmq.Socket | None = None
        self._doorbell: zmq.Socket | None = None
        self._doorbell_address = f"inproc://stillflow-doorbell-{uuid.uuid4().hex}"
        self._auth: Any = None
        self._queue = JobQueue(config.queue_size)
        self._outbound: queue.SimpleQueue[tuple[bytes, Message, bool]] = queue.SimpleQueue()
        self._peers: dict[bytes, _Peer] = {}
        self._owners: dict[str, bytes] = {}
        self._replies: OrderedDict[tuple[bytes, str], list[Any]] = OrderedDict()
        self._workers: list[threading.Thread] = []
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._devices: list[str] = []

    def bind(self) -> str:
        """Open the sockets, start the workers and return the bound endpoint."""
        router = self._context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        router.setsockopt(zmq.ROUTER_HANDOVER, 1)
        router.setsockopt(zmq.SNDHWM, 16)
        router.setsockopt(zmq.RCVHWM, 16)
        # libzmq drops (and disconnects) a peer sending a larger frame: a second line behind read_parts
        router.setsockopt(zmq.MAXMSGSIZE, self.config.limits.max_part_bytes + (1 << 16))
        if self.config.keys is not None:
            from zmq.auth.thread import ThreadAuthenticator

            self._auth = ThreadAuthenticator(self._context, log=logging.getLogger(f"{__name__}.auth"))
            self._auth.start()
            self._auth.configure_curve(domain="*", location=str(self.config.keys.allowed_dir))
            router.curve_publickey = self.config.keys.public
            router.curve_secretkey = self.config.keys.secret
            router.curve_server = True
        try:
            router.bind(self.config.bind)
        except zmq.ZMQError as exc:
            router.close()
            self._shutdown_auth()
            raise InputError(f"cannot bind {self.config.bind}: {exc.strerror}",
                             hint="choose another --bind address or port") from None
        self._router = router
        self.endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
        self._doorbell = self._context.socket(zmq.PULL)
        self._doorbell.bind(self._doorbell_address)
        self._devices = list(self.config.devices)
        for index in range(self.config.workers):
            device = self._devices[index % len(self._devices)]
            worker = threading.Thread(target=self._work, args=(device,), name=f"stillflow-worker-{index}",
                                      daemon=True)
            worker.start()
            self._workers.append(worker)
        log.info("stillflow %s backend on %s (protocol %d, %d worker(s) on %s, CURVE %s)", __version__,
                 self.endpoint, PROTOCOL_VERSION, self.config.workers, ",".join(self._devices),
                 "on" if self.config.keys else "off")
        return self.endpoint

    def request_stop(self) -> None:
        """Ask serve() to shut down (safe from signal handlers and other threads)."""
        self._stop.set()

    def serve(self) -> None:
        """Run the I/O loop until request_stop(); then cancel jobs, tell clients and close."""
        assert self._router is not None and self._doorbell is not None, "call bind() first"
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._doorbell, zmq.POLLIN)
        next_beat = time.monotonic()
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll(int(_TICK_S * 1000)))
                if self._router in ready:
                    for _ in range(_DRAIN_MAX):
                        self._handle(self._router.recv_multipart(copy=False))
                        if not self._router.poll(0):
                            break
                if self._doorbell in ready:
                    while self._doorbell.poll(0):
                        self._doorbell.recv()
                self._flush_outbound()
                now = time.monotonic()
                if now >= next_beat:
                    self._beat(now)
                    next_beat = now + self.config.heartbeat_s
        finally:
            self._shutdown()

    def _work(self, device: str) -> None:
        """Worker thread: take jobs and run them one at a time."""
        doorbell = self._context.socket(zmq.PUSH)
        doorbell.setsockopt(zmq.LINGER, 0)
        doorbell.connect(self._doorbell_address)

        def emit(owner: bytes, message: Message, reliable: bool) -> None:
            self._outbound.put((owner, message, reliable))
            try:
                doorbell.send(b"", zmq.NOBLOCK)
            except zmq.Again:
                pass  # the I/O loop already has rings pending

        try:
            while not self._stop.is_set():
                job = self._queue.take(_TICK_S * 2)
                if job is None:
                    continue
                log.info("job %s started on %s", job.job_id, device)
                started = time.perf_counter()
                try:
                    run_job(job, emit, None if device == "auto" else device)
                finally:
                    self._queue.finish(job)
                log.info("job %s %s after %.2f s", job.job_id, job.state, time.perf_counter() - started)
        finally:
            doorbell.close()

    def _handle(self, frames: list[zmq.Frame]) -> None:
        """Answer one incoming message; every failure becomes an error reply, never a crash."""
        identity = frames[0].bytes
        peer = self._peers.setdefault(identity, _Peer(last_seen=time.monotonic()))
        peer.last_seen = time.monotonic()
        req = job_id = None
        try:
            if len(frames) < 2:
                raise ProtocolError("empty message", hint="send a msgpack header frame first")
            header = unpack_header(frames[1], self.config.limits)
            req, job_id = peek_ids(header)
            cached = self._replies.get((identity, req)) if req is not None else None
            if cached is not None:
                self._send(identity, cached, reliable=True)
                return
            check_header(header, REQUEST_OPS)
            message = Message(op=header["op"], body=header.get("body") or {},
                              parts=read_parts(header, frames[2:], self.config.limits), req=req, job=job_id)
            reply = self._dispatch(identity, message)
        except StillflowError as exc:
            log.info("request from %s refused: %s", identity.hex()[:12], exc)
            reply = error_message(exc, req=req, job=job_id)
        except Exception as exc:  # the outermost layer of the I/O loop: keep serving, log, tell the client
            log.exception("request from %s failed", identity.hex()[:12])
            reply = error_message(StillflowError(f"internal error in the backend: {type(exc).__name__}",
                                                 hint=f"see {self.config.log_path or 'the backend log'}"),
                                  req=req, job=job_id)
        if reply is None:
            return
        encoded = encode(reply)
        if req is not None:
            self._replies[(identity, req)] = encoded
            while len(self._replies) > _REPLY_CACHE:
                self._replies.popitem(last=False)
        self._send(identity, encoded, reliable=True)

    def _dispatch(self, identity: bytes, message: Message) -> Message | None:
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
            everyone = bool(message.body.get("all", False))
            dropped = self._queue.remove(lambda job: everyone or job.owner == identity)
            for job in dropped:
                self._queue_final(job, Message("cancelled", {"msg": "dropped from the queue by clear"},
                                               job=job.job_id))
            return Message("ok", {"dropped": len(dropped)}, req=req)
        raise ProtocolError(f"operation {op} is not served here")

    def _hello(self) -> dict[str, Any]:
        """Version, capabilities and limits."""
        # What the models folder holds and what each engine/motion/mask option needs.
        models = describe_models(self.config.models) if self.config.models else None
        return {"server": f"stillflow {__version__}", "version": __version__, "protocol": PROTOCOL_VERSION,
                "engines": list(ENGINES), "devices": self._devices, "workers": self.config.workers,
                "limits": self.config.limits.to_wire(), "queue_size": self.config.queue_size,
                "heartbeat_s": self.config.heartbeat_s, "models": models,
                "curve": self.config.keys is not None, "capabilities": ["shared_fs", "arrays", "files", "preview"]}

    def _status(self, job_id: str | None) -> dict[str, Any]:
        """Queue state, or one job's state."""
        queued, running = self._queue.snapshot()
        if job_id is not None:
            job = next((j for j in queued + running if j.job_id == job_id), None)
            if job is None:
                raise InputError(f"no queued or running job {job_id}", hint="it may have finished already")
            return job.describe()
        return {"queued": [j.describe() for j in queued], "running": [j.describe() for j in running],
                "workers": self.config.workers, "devices": self._devices, "clients": len(self._peers),
                "uptime_s": time.monotonic() - self._started, "version": __version__}

    def _submit(self, identity: bytes, message: Message) -> Message:
        """Queue a job (reply accepted) or reply rejected with the reason."""
        job_id = uuid.uuid4().hex[:16]
        try:
            job = build_job(job_id, identity, message, self.config.limits)
            position = self._queue.put(job)
        except StillflowError as exc:
            log.info("submit rejected: %s", exc)
            return error_message(exc, req=message.req, op="rejected")
        self._owners[job_id] = identity
        log.info("job %s queued at %d (%dx%d frames=%d, %s)", job_id, position, *_size(job), job.options.frames,
                 "shared fs" if job.out_dir else job.deliver)
        return Message("accepted", {"position": position}, req=message.req, job=job_id)

    def _cancel(self, job_id: str | None) -> str:
        """Cancel a queued or running job; returns its state before."""
        job = self._queue.find(job_id or "")
        if job is None:
            raise InputError(f"no queued or running job {job_id}", hint="it may have finished already")
        state = job.state
        job.cancel.set()
        for dropped in self._queue.remove(lambda j: j.job_id == job.job_id):
            self._queue_final(dropped, Message("cancelled", {"msg": "cancelled while queued"}, job=dropped.job_id))
        log.info("job %s cancel requested (%s)", job.job_id, state)
        return state

    def _queue_final(self, job: Job, message: Message) -> None:
        """Send a job's last message from the I/O thread."""
        self._outbound.put((job.owner, message, True))

    def _flush_outbound(self) -> None:
        """Send what the workers produced, then retry messages waiting for slow peers."""
        while True:
            try:
                owner, message, reliable = self._outbound.get_nowait()
            except queue.Empty:
                break
            if message.op in ("result", "cancelled", "error"):
                self._owners.pop(message.job or "", None)
            self._send(owner, encode(message), reliable)
        for identity, peer in self._peers.items():
            while peer.outbox and self._try_send(identity, peer.outbox[0]):
                peer.outbox.popleft()

    def _send(self, identity: bytes, frames: list[Any], reliable: bool) -> None:
        """Send now, or keep a reliable message for later (peer busy or reconnecting); drop the rest."""
        peer = self._peers.get(identity)
        if peer is not None and peer.outbox:
            if reliable:
                peer.outbox.append(frames)
            return
        if not self._try_send(identity, frames) and reliable and peer is not None:
            peer.outbox.append(frames)

    def _try_send(self, identity: bytes, frames: list[Any]) -> bool:
        """One non-blocking send; False when the peer's queue is full or it is not connected."""
        try:
            self._router.send_multipart([identity, *frames], flags=zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:
            if exc.errno == errno.EHOSTUNREACH:
                return False
            raise

    def _beat(self, now: float) -> None:
        """Heartbeat clients with jobs; forget clients silent for longer than client_timeout_s."""
        queued, running = self._queue.snapshot()
        by_owner: dict[bytes, dict[str, str]] = {}
        for job in queued + running:
            by_owner.setdefault(job.owner, {})[job.job_id] = job.state
        for job_id, owner in self._owners.items():
            by_owner.setdefault(owner, {}).setdefault(job_id, "finishing")
        for identity, peer in list(self._peers.items()):
            silent = now - peer.last_seen
            if silent > self.config.client_timeout_s:
                self._forget(identity, queued, running, silent)
                continue
            jobs = by_owner.get(identity)
            if jobs and not peer.outbox:
                self._send(identity, encode(Message("heartbeat", {"jobs": jobs})), reliable=False)

    def _forget(self, identity: bytes, queued: list[Job], running: list[Job], silent: float) -> None:
        """Drop a dead client's queued jobs, cancel its remote-delivery running jobs, and forget it."""
        dropped = self._queue.remove(lambda job: job.owner == identity)
        for job in running:
            # a shared-filesystem job still lands on disk for the user; a remote one has nowhere to go
            if job.owner == identity and job.out_dir is None:
                job.cancel.set()
        if dropped or any(job.owner == identity for job in running):
            log.warning("client %s silent for %.0f s: dropped %d queued job(s)", identity.hex()[:12], silent,
                        len(dropped))
        for job in dropped:
            self._owners.pop(job.job_id, None)
        if not any(job.owner == identity for job in running):
            del self._peers[identity]

    def _shutdown(self) -> None:
        """Cancel running jobs, drop queued ones, tell their clients, stop workers and close sockets."""
        log.info("shutting down")
        dropped = self._queue.close()
        _, running = self._queue.snapshot()
        for job in running:
            job.cancel.set()
        for job in dropped:
            self._queue_final(job, Message("error", {"code": BackendUnavailable.wire_code,
                                                     "msg": "the backend shut down before the job started"},
                                           job=job.job_id))
        self._stop.set()
        stuck = False
        for worker in self._workers:
            worker.join(timeout=60.0)
            if worker.is_alive():
                log.error("%s did not stop within 60 s", worker.name)
                stuck = True
        self._flush_outbound()
        self._router.close(linger=0)
        self._doorbell.close(linger=0)
        self._shutdown_auth()
        if not stuck:  # term() would wait for a stuck worker's doorbell socket forever
            self._context.term()
        log.info("stopped")

    def _shutdown_auth(self) -> None:
        """Stop the CURVE authenticator thread if it runs."""
        if self._auth is not None:
            self._auth.stop()
            self._auth = None


def _size(job: Job) -> tuple[int, int]:
    """(width, height) of a job's image when it was sent as an array, else (0, 0)."""
    image = job.inputs.get("image")
    shape = getattr(image, "shape", None)
    return (int(shape[1]), int(shape[0])) if shape is not None else (0, 0)
