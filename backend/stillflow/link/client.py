"""Client library for the Stillflow backend service: blocking calls for scripts, poll() for the add-on.

No torch, no bpy, no cv2: imports only the standard library, numpy, msgpack, pyzmq and
stillflow's errors / options / protocol modules, because the add-on bundles this file.

Thread and process contract:
  - A Client and its DEALER socket belong to the thread that created it; never share one.
  - poll(0) never blocks; state of JobHandle objects changes only inside poll()/wait()/requests.
  - Requests follow Lazy Pirate: wait ``timeout`` s, reopen the socket (same routing id, so
    running jobs' events still reach us), resend the same request id, give up after ``retries``.
  - While jobs are active the client sends heartbeats and expects the backend's; silence longer
    than ``timeout * retries`` (at least three backend heartbeats) fails the jobs as unavailable.
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from typing import Any, Literal, Sequence

import numpy as np
import zmq

from .client_jobs import Event, JobHandle, apply_job_event, fail_job
from .client_inputs import add_input, add_motion_file, add_outputs, add_regions, check_parts
from .owner_key import read_owner_key
from ..errors import BackendUnavailable, Cancelled, InputError, ProtocolError, StillflowError
from .handshake import API_NAMES, KeyNames, handshake_problem, load_key_pair, load_public_key
from ..options import MotionSpec, Region, RenderOptions
from .protocol import (PROTOCOL_VERSION, SERVER_OPS, Limits, Message, decode, encode,
                       error_from_wire, motion_to_wire, options_to_wire)

__all__ = ["Client", "JobHandle", "Event", "load_key_pair", "load_public_key"]

log = logging.getLogger(__name__)

_CLIENT_LIMITS = Limits(max_part_bytes=1 << 40)
_HEARTBEAT_S = 1.0
_DRAIN_MAX = 256
_RECONNECT_PAUSE_S = 0.2
"""Wait between dropping a connection and opening the next with the same routing id.

ZeroMQ's ROUTER ignores, for good, a connection whose routing id a live connection still holds:
against a real backend on loopback, reconnecting at once lost 5 of 100 new connections; 0.2 s lost none."""


class Client:
    """A connection to one backend endpoint (DEALER socket with a stable routing id)."""

    def __init__(self, endpoint: str, *, timeout: float = 2.5, retries: int = 3,
                 server_key: bytes | str | os.PathLike[str] | None = None,
                 client_keys: tuple[bytes, bytes] | str | os.PathLike[str] | None = None,
                 key_names: KeyNames = API_NAMES, unreachable_hint: str = "", as_owner: bool = True) -> None:
        """``unreachable_hint``: what to do when the backend does not answer (default: start `stillflow serve`).

        ``as_owner``: send the results folder's owner key when this user can read it (link/owner_key.py),
        so that this client may replace any result there, as the backend's own user could by hand.
        """
        if (server_key is None) != (client_keys is None):
            raise InputError("CURVE needs both the server's public key and this client's key pair")
        self.endpoint = endpoint
        self.timeout = float(timeout)
        self.retries = max(1, int(retries))
        self._server_key = load_public_key(server_key) if server_key is not None else None
        self._client_keys = load_key_pair(client_keys) if client_keys is not None else None
        self._key_names = key_names
        self._unreachable_hint = unreachable_hint
        self._as_owner = as_owner
        self._key_file = "" if client_keys is None or isinstance(client_keys, tuple) else os.fspath(client_keys)
        self._heard = False
        self._identity = f"sf-{uuid.uuid4().hex}".encode("ascii")
        self._context = zmq.Context.instance()
        self._socket: zmq.Socket | None = None
        self._jobs: dict[str, JobHandle] = {}
        self._events: list[Event] = []
        self._hello: dict[str, Any] | None = None
        self._heartbeat_s = _HEARTBEAT_S
        self._last_heard = time.monotonic()
        self._last_sent = 0.0
        self._open()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def dead_after(self) -> float:
        """Seconds of silence after which an active job's backend is taken for dead."""
        return max(self.timeout * self.retries, 3.0 * self._heartbeat_s)

    def hello(self) -> dict[str, Any]:
        """The backend's version, capabilities and limits; raises ProtocolError on a version mismatch."""
        body = self._request("hello").body
        if body.get("protocol") != PROTOCOL_VERSION:
            raise ProtocolError(f"backend at {self.endpoint} speaks protocol {body.get('protocol')!r}; "
                                f"this client speaks {PROTOCOL_VERSION}",
                                hint="install the same Stillflow version for the add-on and the backend")
        heartbeat = body.get("heartbeat_s")
        if isinstance(heartbeat, (int, float)) and heartbeat > 0:
            self._heartbeat_s = float(heartbeat)
        self._hello = body
        return body

    def capabilities(self) -> list[str]:
        """What the backend's hello lists in ``capabilities`` (asks hello once)."""
        self._limits()
        return [str(name) for name in (self._hello or {}).get("capabilities") or []]

    def ping(self) -> float:
        """Round-trip time of one ping in seconds."""
        start = time.perf_counter()
        self._request("ping")
        return time.perf_counter() - start

    def status(self, job: JobHandle | str | None = None) -> dict[str, Any]:
        """Queue and worker state, or one job's state."""
        return self._request("status", job=_job_id(job) if job is not None else None).body

    def submit(self, image: np.ndarray | str | os.PathLike[str], *,
               mask: np.ndarray | str | os.PathLike[str] | None = None,
               motion: MotionSpec = MotionSpec(), options: RenderOptions = RenderOptions(),
               out_dir: str | os.PathLike[str] | None = None, video: str | os.PathLike[str] | None = None,
               deliver: Literal["arrays", "files"] = "arrays", preview: int = 128,
               importance: np.ndarray | str | os.PathLike[str] | None = None,
               regions: Sequence[Region] | None = None) -> JobHandle:
        """Queue a render; returns its handle or raises the backend's rejection.

        Args:
            image: (H, W, C) uint8/uint16/float array (C = 3 or 4), or an image file path.
            mask: (h, w) array (white / 1 = animate), a mask file path, "auto" (predicted by the
                backend's models) or None (animate everything).
            out_dir: a folder in the backend's results folder (``serve --results``): a relative
                name (the backend puts it there) or an absolute path inside it (a backend on this
                machine); the backend writes the frames there atomically. None: the frames come
                back as parts (``deliver`` arrays or files).
            video: optional .mp4/.webm/.gif: with ``out_dir`` a name or path in the results folder
                like ``out_dir``, else a file name returned as bytes.
            preview: longest side of the preview frames sent with progress (0 = none).
            importance: optional (h, w) map or file for softmax splatting (white wins).
            regions: motion regions instead of ``mask`` and ``motion`` (masks as arrays; motion
                none, hints, drift or sway; a sway's amplitude image an array or a file name, which
                needs "region_amplitude_file"); needs a backend that lists "regions" in its capabilities.

        Input files go as paths only when the backend said (in ``hello``) that it may read the
        folder that holds them (``serve --allow-read``); otherwise their bytes are sent.
        """
        limits = self._limits()
        # dead_after: the backend stops the job as soon as this client must have given it up
        body: dict[str, Any] = {"options": options_to_wire(options.validate()), "preview": int(preview),
                                "dead_after": self.dead_after}
        motion_body, parts = motion_to_wire(motion.validate())
        body["motion"] = motion_body
        hello = self._hello or {}
        readable = hello.get("allow_read")
        if regions is not None:
            add_regions(regions, body, parts, hello.get("capabilities") or [], readable)
        add_input("image", image, body, parts, limits, readable)
        for name, value in (("mask", mask), ("importance", importance)):
            if value is not None:
                add_input(name, value, body, parts, limits, readable)
        if motion.kind in ("file", "clip"):
            add_motion_file(motion.path or "", motion_body, parts, readable)
        # this machine's user may replace a result another connection made (link/owner_key.py)
        owner_key = read_owner_key(hello.get("results_dir")) if self._as_owner else None
        add_outputs(body, out_dir, video, deliver, owner_key)
        check_parts(parts, limits)
        extra = sum(a.nbytes for a in parts.values()) / 50e6  # allow 50 MB/s for the upload itself
        reply = self._request("submit", body=body, parts=parts, extra_wait=extra)
        handle = JobHandle(job_id=str(reply.job), out_dir=_optional_str(reply.body.get("out_dir")),
                           video=_optional_str(reply.body.get("video")))
        self._jobs[handle.job_id] = handle
        self._last_heard = time.monotonic()
        return handle

    def poll(self, timeout: float = 0.0) -> list[Event]:
        """Events that arrived (waiting at most ``timeout`` s for the first); updates the job handles."""
        socket = self._ensure_socket()
        if socket.poll(max(0, int(timeout * 1000))):
            for _ in range(_DRAIN_MAX):
                self._receive(socket)
                if not socket.poll(0):
                    break
        self._check_alive()
        # The caller holds the handles; finished ones (and their frames) need not stay here.
        self._jobs = {job_id: handle for job_id, handle in self._jobs.items() if not handle.is_finished}
        events, self._events = self._events, []
        return events

    def wait(self, job: JobHandle, timeout: float | None = None) -> dict[str, Any]:
        """Block until ``job`` finishes; its result, or raise JobFailed / Cancelled / BackendUnavailable."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not job.is_finished:
            step = 0.2
            if deadline is not None:
                step = min(step, deadline - time.monotonic())
                if step <= 0:
                    raise StillflowError(f"job {job.job_id} is still {job.state} after {timeout:g} s",
                                         hint="wait longer or cancel it")
            self.poll(step)
        if job.state == "done":
            return job.result or {}
        if job.state == "cancelled":
            raise Cancelled(f"job {job.job_id} was cancelled; nothing was written")
        raise job.error or StillflowError(f"job {job.job_id} failed")

    def cancel(self, job: JobHandle | str) -> str:
        """Ask the backend to stop a job; returns the state it had. A cancelled event follows."""
        return str(self._request("cancel", job=_job_id(job)).body.get("state", ""))

    def cancel_nowait(self, job: JobHandle | str) -> bool:
        """Send a cancel request without waiting for its reply (never blocks); False when no backend took it.

        The reply is dropped when poll() reads it; the job's ``cancelled`` event follows as with cancel().
        """
        frames = encode(Message(op="cancel", req=uuid.uuid4().hex, job=_job_id(job)))
        try:
            self._ensure_socket().send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            return False
        self._last_sent = time.monotonic()
        return True

    def clear(self, *, everyone: bool = False) -> int:
        """Drop this client's queued jobs; returns how many (``everyone`` never reaches others' jobs)."""
        return int(self._request("clear", body={"all": bool(everyone)}).body.get("dropped", 0))

    def close(self) -> None:
        """Close the socket at once (LINGER 0); the client cannot be used afterwards."""
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def reconnect(self) -> None:
        """Drop the connection and open a new one under the same identity (this client's jobs stay its own)."""
        self.close()
        time.sleep(_RECONNECT_PAUSE_S)
        self._open()

    def _open(self) -> None:
        """Create and connect the DEALER socket."""
        socket = self._context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.ROUTING_ID, self._identity)
        socket.setsockopt(zmq.SNDHWM, 16)
        socket.setsockopt(zmq.RCVHWM, 64)
        # A DEALER blocks in send while it has no live peer (a refused CURVE handshake): bound it.
        socket.setsockopt(zmq.SNDTIMEO, max(1, int(self.timeout * 1000)))
        if self._server_key is not None and self._client_keys is not None:
            socket.curve_serverkey = self._server_key
            socket.curve_publickey, socket.curve_secretkey = self._client_keys
        if self.endpoint.startswith("tcp://["):  # ZeroMQ resolves IPv6 addresses only when asked to
            socket.setsockopt(zmq.IPV6, 1)
        socket.connect(self.endpoint)
        self._socket = socket

    def _ensure_socket(self) -> zmq.Socket:
        """The open socket; InputError when the client was closed."""
        if self._socket is None:
            raise InputError("this client is closed", hint="create a new Client")
        return self._socket

    def _limits(self) -> Limits:
        """The backend's limits (asks hello once)."""
        if self._hello is None:
            self.hello()
        return Limits.from_wire(self._hello.get("limits") or {}) if self._hello else Limits()

    def _request(self, op: str, *, body: dict[str, Any] | None = None, parts: dict[str, np.ndarray] | None = None,
                 job: str | None = None, extra_wait: float = 0.0) -> Message:
        """Send one request and return its reply (Lazy Pirate retries); raise the error it carries."""
        req = uuid.uuid4().hex
        # big parts go in the chunks the backend's per-frame cap admits
        chunk = self._limits().max_frame_bytes if parts else 0
        frames = encode(Message(op=op, body=body or {}, parts=parts or {}, req=req, job=job), chunk)
        for attempt in range(self.retries):
            socket = self._ensure_socket()
            try:
                socket.send_multipart(frames, copy=False)
                wait = self.timeout + extra_wait
            except zmq.Again:  # no connected peer took it within SNDTIMEO: reconnect like a lost reply
                wait = 0.0
            self._last_sent = time.monotonic()
            deadline = time.monotonic() + wait
            while (remaining := deadline - time.monotonic()) > 0:
                if not socket.poll(int(remaining * 1000) + 1):
                    break
                reply = self._receive(socket)
                if reply is not None and reply.req == req:
                    if reply.op in ("error", "rejected"):
                        raise error_from_wire(reply.body)
                    return reply
            log.info("no reply to %s from %s (try %d of %d); reconnecting", op, self.endpoint, attempt + 1,
                     self.retries)
            self.reconnect()
        if not self._heard:
            # Keys that do not fit fail silently in ZeroMQ: a probe says which side is wrong.
            problem = handshake_problem(self.endpoint, self._server_key, self._client_keys,
                                        timeout=min(self.timeout, 2.0), names=self._key_names,
                                        client_key_file=self._key_file)
            if problem is not None:
                raise BackendUnavailable(problem)
        raise BackendUnavailable(f"no answer from the backend at {self.endpoint} after {self.retries} tries "
                                 f"of {self.timeout:g} s",
                                 hint=self._unreachable_hint
                                 or "start it with `stillflow serve`, check the endpoint and CURVE keys")

    def _receive(self, socket: zmq.Socket) -> Message | None:
        """Read one message: job events update handles and return None; replies are returned."""
        message = decode(socket.recv_multipart(copy=False), limits=_CLIENT_LIMITS, ops=SERVER_OPS)
        self._last_heard = time.monotonic()
        self._heard = True
        if message.req is not None:
            return message
        if message.op == "heartbeat":
            self._on_heartbeat(message.body)
            return None
        handle = self._jobs.get(message.job or "")
        if handle is not None and not handle.is_finished:
            apply_job_event(handle, message, self._events)
        return None

    def _on_heartbeat(self, body: dict[str, Any]) -> None:
        """Fail jobs the backend no longer knows (it restarted or dropped us)."""
        known = body.get("jobs")
        if not isinstance(known, dict):
            return
        for handle in list(self._jobs.values()):
            if not handle.is_finished and handle.job_id not in known:
                fail_job(handle, BackendUnavailable(f"the backend at {self.endpoint} lost job {handle.job_id}",
                                                    hint="it may have restarted; submit again"), {}, self._events)

    def _check_alive(self) -> None:
        """Send a heartbeat when due; fail active jobs after too long a silence from the backend."""
        active = [h for h in self._jobs.values() if not h.is_finished]
        if not active:
            return
        now = time.monotonic()
        if now - self._last_sent >= self._heartbeat_s:
            # dead_after lets the backend cancel what this client gave up while the backend was stopped
            frames = encode(Message(op="heartbeat", body={"dead_after": self.dead_after}))
            try:
                self._ensure_socket().send_multipart(frames, flags=zmq.NOBLOCK)
            except zmq.Again:
                log.debug("heartbeat not sent: send queue full")
            self._last_sent = now
        silence = now - self._last_heard
        if silence > self.dead_after:
            error = BackendUnavailable(f"the backend at {self.endpoint} stopped answering ({silence:.1f} s "
                                       "without a heartbeat)",
                                       hint=self._unreachable_hint or "check that `stillflow serve` is still running")
            for handle in active:
                fail_job(handle, error, {"code": error.wire_code, "msg": str(error)}, self._events)

def _job_id(job: JobHandle | str) -> str:
    """The id of a handle or id."""
    return job.job_id if isinstance(job, JobHandle) else str(job)


def _optional_str(value: Any) -> str | None:
    """A string from a reply, or None."""
    return value if isinstance(value, str) else None
