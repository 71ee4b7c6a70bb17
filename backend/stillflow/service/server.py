"""The backend service: a ROUTER socket served by one I/O loop, jobs run by worker threads.

The loop reads requests and sends replies here; ``dispatch`` answers them and ``peers`` keeps
the client bookkeeping (outboxes, reply cache, job owners, heartbeats).

Thread contract:
  - The ROUTER, the doorbell PULL socket, ``Peers`` and ``Dispatcher`` belong to the thread
    that calls ``serve()`` (the I/O loop); nothing else touches them.
  - Worker threads take jobs from the JobQueue, run the engine, and hand every outgoing
    message to the I/O loop through ``_outbound`` (a queue), ringing their own PUSH doorbell.
  - Cancellation is a threading.Event per job (``flow.JobCancel``), checked by the engine between
    frames, strips, bands and video frames; it sets itself when the I/O loop was stopped for
    longer than the job's client waits (SIGSTOP), so a job its client gave up writes nothing.
  - A reliable job message waits in ``Backlog.wait_room`` while its client's unsent bytes are
    over the limit: a client that stops reading pauses its job instead of growing the server.
  - ``request_stop()`` only sets a flag, so it is safe from a signal handler.
"""
from __future__ import annotations

import errno
import logging
import queue
import threading
import time
import uuid
from typing import Any

import zmq

from .. import __version__
from ..errors import BackendUnavailable, InputError, ProtocolError, StillflowError
from ..link.protocol import (PROTOCOL_VERSION, REQUEST_OPS, Message, check_header, error_message, peek_ids,
                             peek_raw_ids, read_parts, unpack_header)
from .config import ServerConfig
from .dispatch import Dispatcher
from .flow import Backlog, Watchdog
from .jobs import Job, JobQueue, run_job
from .keys import check_bind
from .peers import Peers
from .wire import RefusalLog, encode_safely, principal_of

__all__ = ["ServerConfig", "Server"]

log = logging.getLogger(__name__)

_DRAIN_MAX = 128
_DRAIN_BUDGET_S = 0.05
"""Longest the I/O loop answers requests before it sends job messages and heartbeats again."""
_TICK_S = 0.1
_SEND_HWM = 8
"""Messages ZeroMQ queues per client before a send would block (then the server's outbox holds them)."""
_RECEIVE_HWM = 4
"""Messages ZeroMQ reads ahead per client: bounds what a flooding client holds in the server."""
_STOP_WAIT_S = 60.0
"""How long shutdown waits for running jobs to notice their cancellation."""
_DRAIN_WAIT_S = 2.0
"""How long shutdown goes on sending what waits for clients (the jobs' last messages) before closing."""


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
        self._monitor: zmq.Socket | None = None
        self._doorbell: zmq.Socket | None = None
        self._doorbell_address = f"inproc://stillflow-doorbell-{uuid.uuid4().hex}"
        self._auth: Any = None
        self._queue = JobQueue(config.queue_size)
        self._outbound: queue.SimpleQueue[tuple[bytes, Message, bool, int]] = queue.SimpleQueue()
        # a silent client is forgotten (its jobs cancelled) after client_timeout_s; the backlog's patience
        # is longer, so only a client that is alive but not reading has its job failed
        self._backlog = Backlog(config.client_backlog_bytes, 1.5 * config.client_timeout_s + 1.0)
        self._watchdog = Watchdog(3.0 * config.heartbeat_s)
        self._peers = Peers(self._queue, self._try_send, config.client_timeout_s, self._backlog, self._watchdog)
        self._refusals = RefusalLog()
        self._dispatcher = Dispatcher(config, self._queue, self._peers, self._queue_final, self._watchdog,
                                      self._refusals)
        self._workers: list[threading.Thread] = []
        self._stop = threading.Event()
        self._run_job: Any = run_job
        if config.ray is not None:
            from .ray_runner import RayJobRunner

            self._run_job = RayJobRunner(config.ray)

    def bind(self) -> str:
        """Open the sockets, start the workers and return the bound endpoint."""
        router = self._context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # No ROUTER_HANDOVER: a second connection with a connected client's routing id is ignored,
        # so nobody takes over another client's job events.
        router.setsockopt(zmq.SNDHWM, _SEND_HWM)
        router.setsockopt(zmq.RCVHWM, _RECEIVE_HWM)
        # libzmq drops (and disconnects) a peer sending a larger frame before holding it. It assembles
        # a whole multipart message before the backend sees any frame, so a small per-frame cap (big
        # parts come in chunks) is what bounds a hostile message's bytes (docs/protocol.md).
        limits = self.config.limits
        frame_cap = limits.max_frame_bytes if limits.max_frame_bytes > 0 else limits.max_part_bytes
        router.setsockopt(zmq.MAXMSGSIZE, max(frame_cap, limits.max_header_bytes) + (1 << 16))
        if _is_ipv6(self.config.bind):
            router.setsockopt(zmq.IPV6, 1)
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
        if self.config.keys is not None:
            # a dropped connection frees its routing id for anybody: hold events until peers speak again
            self._monitor = router.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self.endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
        self._doorbell = self._context.socket(zmq.PULL)
        self._doorbell.bind(self._doorbell_address)
        devices = self.config.devices
        for index in range(self.config.workers):
            device = devices[index % len(devices)]
            worker = threading.Thread(target=self._work, args=(device,), name=f"stillflow-worker-{index}",
                                      daemon=True)
            worker.start()
            self._workers.append(worker)
        log.info("stillflow %s backend on %s (protocol %d, %d worker(s) on %s, CURVE %s)", __version__,
                 self.endpoint, PROTOCOL_VERSION, self.config.workers, ",".join(devices),
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
        if self._monitor is not None:
            poller.register(self._monitor, zmq.POLLIN)
        next_beat = time.monotonic()
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll(int(_TICK_S * 1000)))
                self._tick()
                self._check_disconnects()
                if self._router in ready:
                    self._drain()
                if self._doorbell in ready:
                    while self._doorbell.poll(0):
                        self._doorbell.recv()
                self._check_disconnects()
                self._flush_outbound()
                now = time.monotonic()
                if now >= next_beat:
                    self._peers.beat(now)
                    next_beat = now + self.config.heartbeat_s
        finally:
            self._shutdown()

    def _drain(self) -> None:
        """Answer waiting requests for at most _DRAIN_BUDGET_S (or _DRAIN_MAX of them).

        The loop around it then flushes job messages and heartbeats, so a client that floods the
        backend delays the others' events by one budget, not by its whole backlog.
        """
        budget_end = time.monotonic() + _DRAIN_BUDGET_S
        for _ in range(_DRAIN_MAX):
            self._handle(*self._receive())
            self._tick()
            if time.monotonic() >= budget_end or not self._router.poll(0):
                break

    def _work(self, device: str) -> None:
        """Worker thread: take jobs and run them one at a time."""
        doorbell = self._context.socket(zmq.PUSH)
        doorbell.setsockopt(zmq.LINGER, 0)
        doorbell.connect(self._doorbell_address)

        current: list[Job] = []

        def emit(owner: bytes, message: Message, reliable: bool) -> None:
            size = sum(part.nbytes for part in message.parts.values())
            if reliable and current and message.op == "part":
                job = current[0]
                self._backlog.wait_room(owner, job.cancel.is_set, lambda pending: log.info(
                    "job %s paused: %.1f MiB wait for its client to read", job.job_id, pending / 2**20))
            self._backlog.add(owner, size)
            self._outbound.put((owner, message, reliable, size))
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
                current[:] = [job]
                try:
                    self._run_job(job, emit, None if device == "auto" else device)
                finally:
                    current.clear()
                    self._queue.finish(job)
                log.info("job %s %s after %.2f s", job.job_id, job.state, time.perf_counter() - started)
        finally:
            doorbell.close()

    def _receive(self) -> tuple[list[zmq.Frame], int]:
        """One incoming message: its first frames (identity, header and at most max_data_frames + 1 more)
        and how many it had. Frames beyond those are read and dropped one by one, never held together."""
        router = self._router
        keep = self.config.limits.max_data_frames + 3
        frames = [router.recv(copy=False)]
        while frames[-1].more and len(frames) < keep:
            frames.append(router.recv(copy=False))
        count = len(frames)
        frame = frames[-1]
        recv = router.recv
        while frame.more:
            frame = recv(copy=False)
            count += 1
        return frames, count

    def _handle(self, frames: list[zmq.Frame], count: int) -> None:
        """Answer one incoming message of ``count`` frames; every failure becomes an error reply, never a crash."""
        identity = frames[0].bytes
        req = job_id = None
        try:
            if len(frames) < 2:
                raise ProtocolError("empty message", hint="send a msgpack header frame first")
            if count > len(frames):
                raise ProtocolError(f"message carries {count - 2} binary frames; at most "
                                    f"{self.config.limits.max_data_frames} accepted")
            principal = principal_of(identity, frames[1], self.config.keys is not None)
            if not self._peers.seen(identity, principal):
                raise ProtocolError("this routing id belongs to another client",
                                    hint="every client needs its own routing id")
            header = unpack_header(frames[1], self.config.limits)
            req, job_id = peek_ids(header)
            cached = self._peers.cached_reply(identity, req)
            if cached is not None:
                self._peers.send(identity, cached, reliable=True)
                return
            check_header(header, REQUEST_OPS)
            message = Message(op=header["op"], body=header.get("body") or {},
                              parts=self._read_parts(header, frames), req=req, job=job_id)
            reply = self._dispatcher.reply(identity, principal, message)
        except StillflowError as exc:
            self._refusals.refused(identity, exc)
            if req is None and len(frames) > 1:  # a header refused unread still names its request
                req, job_id = peek_raw_ids(frames[1])
            reply = error_message(exc, req=req, job=job_id)
        except Exception as exc:  # the outermost layer of the I/O loop: keep serving, log, tell the client
            log.exception("request from %s failed", identity.hex()[:12])
            reply = error_message(StillflowError(f"internal error in the backend: {type(exc).__name__}",
                                                 hint=f"see {self.config.log_path or 'the backend log'}"),
                                  req=req, job=job_id)
        if reply is None:
            return
        self._peers.reply(identity, req, encode_safely(reply))

    def _read_parts(self, header: dict[str, Any], frames: list[zmq.Frame]) -> dict[str, Any]:
        """The message's parts; chunks are freed as they are joined (``frames`` keeps identity and header)."""
        data = frames[2:]
        del frames[2:]
        return read_parts(header, data, self.config.limits, consume=True)

    def _check_disconnects(self) -> None:
        """After any dropped connection (keyed), every peer must speak again before it gets events."""
        if self._monitor is None or not self._monitor.poll(0):
            return
        while self._monitor.poll(0):
            self._monitor.recv_multipart()
        self._peers.unverify_all()

    def _tick(self) -> None:
        """Cancel jobs whose clients gave up while this loop was stopped, then note that it runs."""
        now = time.monotonic()
        if now - self._watchdog.last_tick > self._watchdog.default_dead_after_s / 3:
            self._peers.cancel_stalled(now)
        self._watchdog.last_tick = now

    def _queue_final(self, job: Job, message: Message) -> None:
        """Send a job's last message from the I/O thread."""
        self._outbound.put((job.owner, message, True, 0))

    def _flush_outbound(self) -> None:
        """Send what the workers produced, then retry messages waiting for slow peers."""
        while True:
            try:
                owner, message, reliable, counted = self._outbound.get_nowait()
            except queue.Empty:
                break
            self._peers.deliver(owner, message, reliable, counted)
        self._peers.retry()

    def _try_send(self, identity: bytes, frames: list[Any]) -> bool:
        """One non-blocking send; False when the peer's queue is full or it is not connected."""
        now = time.monotonic()
        if self._watchdog.stalled(identity, now):
            # This thread was stopped (SIGSTOP) past the client's patience, maybe inside this very
            # loop turn, before its tick could see it: the client gave its jobs up, so they end
            # before this send makes it look reached.
            self._peers.cancel_stalled(now)
        try:
            self._router.send_multipart([identity, *frames], flags=zmq.NOBLOCK, copy=False)
            self._watchdog.reached(identity, now)
            return True
        except zmq.Again:
            self._watchdog.reached(identity, now)  # its queue is full: the client has messages to read
            return False
        except zmq.ZMQError as exc:
            if exc.errno == errno.EHOSTUNREACH:
                return False
            raise

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
        # Keep delivering the workers' last messages and heartbeating while they reach their
        # next cancellation check, so clients hear "cancelled" instead of timing out.
        deadline = next_beat = time.monotonic()
        deadline += _STOP_WAIT_S
        while any(w.is_alive() for w in self._workers) and time.monotonic() < deadline:
            for worker in self._workers:
                worker.join(timeout=_TICK_S)
            self._tick()
            self._flush_outbound()
            if time.monotonic() >= next_beat:
                self._peers.beat(time.monotonic())
                next_beat = time.monotonic() + self.config.heartbeat_s
        stuck = False
        for worker in self._workers:
            if worker.is_alive():
                log.error("%s did not stop within %g s", worker.name, _STOP_WAIT_S)
                stuck = True
        # The jobs' last messages ("cancelled") may still wait in outboxes or in ZeroMQ's queues:
        # LINGER 0 at once would drop them, and their clients would wait for a silent backend.
        drained_by = time.monotonic() + _DRAIN_WAIT_S
        self._flush_outbound()
        while self._peers.waiting() and time.monotonic() < drained_by:
            time.sleep(_TICK_S / 10)
            self._flush_outbound()
        if self._monitor is not None:
            self._router.disable_monitor()
            self._monitor.close(linger=0)
        self._router.close(linger=int(max(0.0, drained_by - time.monotonic()) * 1000))
        self._doorbell.close(linger=0)
        self._shutdown_auth()
        getattr(self._run_job, "close", lambda: None)()
        if not stuck:  # a stuck worker may still read its uploaded inputs
            self._dispatcher.results.close()
        if not stuck:  # term() would wait for a stuck worker's doorbell socket forever
            self._context.term()
        log.info("stopped")

    def _shutdown_auth(self) -> None:
        """Stop the CURVE authenticator thread if it runs."""
        if self._auth is not None:
            self._auth.stop()
            self._auth = None


def _is_ipv6(endpoint: str) -> bool:
    """True for a tcp:// endpoint whose host is an IPv6 address (``tcp://[::1]:5555``)."""
    return endpoint.startswith("tcp://[")

