"""Client bookkeeping of the service's I/O loop: who is connected, what waits to be sent, heartbeats.

Thread contract: used only by the thread that runs ``Server.serve()``; sending goes through the
``try_send`` callable the server hands in (one non-blocking send on its ROUTER socket).
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable

from ..link.protocol import Message, encode
from .jobs import Job, JobQueue

__all__ = ["Peers", "TrySend"]

log = logging.getLogger(__name__)

TrySend = Callable[[bytes, list[Any]], bool]
"""try_send(identity, frames): one non-blocking send; False when the peer is busy or not connected."""

_REPLY_CACHE = 1024
_FINAL_OPS = frozenset({"result", "cancelled", "error"})


@dataclass
class _Peer:
    """What the I/O loop knows about one client identity."""

    last_seen: float
    outbox: deque[list[Any]] = field(default_factory=deque)


class Peers:
    """The clients of one server: last contact, outboxes, job owners and the reply cache."""

    def __init__(self, jobs: JobQueue, try_send: TrySend, client_timeout_s: float) -> None:
        self._jobs = jobs
        self._try_send = try_send
        self._client_timeout_s = client_timeout_s
        self._peers: dict[bytes, _Peer] = {}
        self._owners: dict[str, bytes] = {}
        self._replies: OrderedDict[tuple[bytes, str], list[Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._peers)

    def seen(self, identity: bytes) -> None:
        """Note that a client just sent a message."""
        peer = self._peers.setdefault(identity, _Peer(last_seen=time.monotonic()))
        peer.last_seen = time.monotonic()

    def own(self, job_id: str, identity: bytes) -> None:
        """Remember who submitted a job, until its last message is sent."""
        self._owners[job_id] = identity

    def cached_reply(self, identity: bytes, req: str | None) -> list[Any] | None:
        """The encoded reply already sent for this request id, if any (a retry is answered from it)."""
        return self._replies.get((identity, req)) if req is not None else None

    def reply(self, identity: bytes, req: str | None, frames: list[Any]) -> None:
        """Send a reply reliably and keep it for retries of the same request id."""
        if req is not None:
            self._replies[(identity, req)] = frames
            while len(self._replies) > _REPLY_CACHE:
                self._replies.popitem(last=False)
        self.send(identity, frames, reliable=True)

    def deliver(self, owner: bytes, message: Message, reliable: bool) -> None:
        """Send a job's message; its last one (result, cancelled, error) ends the ownership."""
        if message.op in _FINAL_OPS:
            self._owners.pop(message.job or "", None)
        self.send(owner, encode(message), reliable)

    def send(self, identity: bytes, frames: list[Any], reliable: bool) -> None:
        """Send now, or keep a reliable message for later (peer busy or reconnecting); drop the rest."""
        peer = self._peers.get(identity)
        if peer is not None and peer.outbox:
            if reliable:
                peer.outbox.append(frames)
            return
        if not self._try_send(identity, frames) and reliable and peer is not None:
            peer.outbox.append(frames)

    def retry(self) -> None:
        """Send what waits in the outboxes, in order, until a peer is busy again."""
        for identity, peer in self._peers.items():
            while peer.outbox and self._try_send(identity, peer.outbox[0]):
                peer.outbox.popleft()

    def beat(self, now: float) -> None:
        """Heartbeat clients with jobs; forget clients silent for longer than client_timeout_s."""
        queued, running = self._jobs.snapshot()
        by_owner: dict[bytes, dict[str, str]] = {}
        for job in queued + running:
            by_owner.setdefault(job.owner, {})[job.job_id] = job.state
        for job_id, owner in self._owners.items():
            by_owner.setdefault(owner, {}).setdefault(job_id, "finishing")
        for identity, peer in list(self._peers.items()):
            silent = now - peer.last_seen
            if silent > self._client_timeout_s:
                self._forget(identity, running, silent)
                continue
            jobs = by_owner.get(identity)
            if jobs and not peer.outbox:
                self.send(identity, encode(Message("heartbeat", {"jobs": jobs})), reliable=False)

    def _forget(self, identity: bytes, running: list[Job], silent: float) -> None:
        """Drop a dead client's queued jobs, cancel its remote-delivery running jobs, and forget it."""
        dropped = self._jobs.remove(lambda job: job.owner == identity)
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
