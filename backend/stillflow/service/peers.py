"""Client bookkeeping of the service's I/O loop: who is connected, what waits to be sent, heartbeats.

Thread contract: used only by the thread that runs ``Server.serve()``; sending goes through the
``try_send`` callable the server hands in (one non-blocking send on its ROUTER socket). The
``Backlog`` it releases and the ``Watchdog`` it reads are shared with the workers (see flow.py).
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable

from ..link.protocol import Message
from .flow import Backlog, Watchdog, message_bytes
from .jobs import Job, JobQueue
from .wire import encode_safely

__all__ = ["Peers", "TrySend"]

log = logging.getLogger(__name__)

TrySend = Callable[[bytes, list[Any]], bool]
"""try_send(identity, frames): one non-blocking send; False when the peer is busy or not connected."""

_REPLIES_PER_CLIENT = 64
"""Recent replies kept per client for its retries: another client's traffic never evicts them."""
_REPLY_BYTES_PER_CLIENT = 2 << 20
_REPLY_CACHE_BYTES = 64 << 20
"""All clients' cached replies together; over it, the client holding the most loses its oldest."""
_MAX_CACHED_REPLY = 256 << 10
_MAX_WAITING_REPLIES = 256
_FINAL_OPS = frozenset({"result", "cancelled", "error"})


@dataclass
class _Waiting:
    """One message kept for a busy peer; ``counted`` bytes of it are in the Backlog."""

    frames: list[Any]
    counted: int = 0
    bounded: bool = False
    progress_of: str | None = None
    """The job whose progress this is: only its latest progress waits (a newer one replaces it)."""


@dataclass
class _Peer:
    """What the I/O loop knows about one client identity."""

    last_seen: float
    principal: bytes = b""
    outbox: deque[_Waiting] = field(default_factory=deque)
    bounded_waiting: int = 0
    """How many of the outbox's messages are replies (a client that sends without reading is capped)."""
    verified: bool = True
    """False after some connection dropped (keyed): events wait until this peer speaks with its key again."""
    replies: OrderedDict[str, list[Any]] = field(default_factory=OrderedDict)
    """This client's recent replies by request id, oldest first."""
    reply_bytes: int = 0


class Peers:
    """The clients of one server: last contact, outboxes, job owners and the reply cache."""

    def __init__(self, jobs: JobQueue, try_send: TrySend, client_timeout_s: float, backlog: Backlog,
                 watchdog: Watchdog) -> None:
        self._jobs = jobs
        self._try_send = try_send
        self._client_timeout_s = client_timeout_s
        self._backlog = backlog
        self._watchdog = watchdog
        self._peers: dict[bytes, _Peer] = {}
        self._owners: dict[str, bytes] = {}
        self._reply_bytes = 0

    def __len__(self) -> int:
        return len(self._peers)

    def waiting(self) -> bool:
        """True while some connected peer's outbox still holds messages."""
        return any(peer.outbox and peer.verified for peer in self._peers.values())

    def seen(self, identity: bytes, principal: bytes) -> bool:
        """Note that a client just sent a message; False when ``identity`` belongs to another principal."""
        peer = self._peers.get(identity)
        if peer is None:
            peer = self._peers[identity] = _Peer(last_seen=time.monotonic(), principal=principal)
        elif peer.principal != principal:
            if self._has_jobs(identity):
                return False
            peer.principal = principal
            self._forget_replies(identity)  # the previous holder's replies are not the new one's
        peer.last_seen = time.monotonic()
        peer.verified = True
        return True

    def unverify_all(self) -> None:
        """Hold every peer's events until it speaks again: a dropped connection's routing id may be reused."""
        for peer in self._peers.values():
            peer.verified = False

    def own(self, job_id: str, identity: bytes) -> None:
        """Remember who submitted a job, until its last message is sent."""
        self._owners[job_id] = identity

    def cached_reply(self, identity: bytes, req: str | None) -> list[Any] | None:
        """The encoded reply already sent for this request id, if any (a retry is answered from it)."""
        peer = self._peers.get(identity)
        return peer.replies.get(req) if peer is not None and req is not None else None

    def reply(self, identity: bytes, req: str | None, frames: list[Any]) -> None:
        """Send a reply reliably and keep it (when small) for retries of the same request id."""
        peer = self._peers.get(identity)
        if peer is not None and req is not None:
            self._keep_reply(peer, req, frames)
        if peer is not None and not peer.verified:
            # the sender holds this routing id now; the events held for its rightful owner stay held
            self._try_send(identity, frames)
            return
        self.send(identity, frames, reliable=True)

    def deliver(self, owner: bytes, message: Message, reliable: bool, counted: int) -> None:
        """Send a job's message (``counted`` bytes of it in the Backlog); its last one ends the ownership."""
        if message.op in _FINAL_OPS:
            self._owners.pop(message.job or "", None)
        # A job's messages are bounded by its Backlog (parts) and by one final per job, so none is
        # dropped: a client that read slowly must still hear how its job ended. Its progress is
        # bounded by keeping only the latest: a burst (a Ray relay, a slow reader) still ends on
        # the client's bar at the last frame done.
        progress_of = message.job if message.op == "progress" else None
        self.send(owner, encode_safely(message), reliable, counted, bounded=False, progress_of=progress_of)

    def send(self, identity: bytes, frames: list[Any], reliable: bool, counted: int = 0,
             bounded: bool = True, progress_of: str | None = None) -> None:
        """Send now, or keep a reliable message (or a job's latest progress) for later; drop the rest.

        At most _MAX_WAITING_REPLIES ``bounded`` messages (replies) wait per peer; job messages always wait.
        """
        waiting = _Waiting(frames, counted, bounded, progress_of)
        peer = self._peers.get(identity)
        if peer is not None and (peer.outbox or not peer.verified):
            self._keep(identity, peer, waiting, reliable)
            return
        if self._try_send(identity, frames):
            self._backlog.release(identity, counted)
        elif peer is not None:
            self._keep(identity, peer, waiting, reliable)
        else:
            self._backlog.release(identity, counted)

    def retry(self) -> None:
        """Send what waits in the outboxes, in order, until a peer is busy again."""
        for identity, peer in self._peers.items():
            while peer.verified and peer.outbox and self._try_send(identity, peer.outbox[0].frames):
                sent = peer.outbox.popleft()
                peer.bounded_waiting -= sent.bounded
                self._backlog.release(identity, sent.counted)

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
                self.send(identity, encode_safely(Message("heartbeat", {"jobs": jobs})), reliable=False)

    def cancel_stalled(self, now: float) -> None:
        """Cancel running jobs whose clients gave the backend up while this loop did not run (SIGSTOP)."""
        _, running = self._jobs.snapshot()
        for job in running:
            if not job.cancel.is_set() and self._watchdog.stalled(job.owner, now):
                log.warning("job %s cancelled: its client heard nothing from the backend for longer than it waits "
                            "(%.1f s)", job.job_id, self._watchdog.dead_after(job.owner))
                job.cancel.set()

    def _keep(self, identity: bytes, peer: _Peer, waiting: _Waiting, reliable: bool) -> None:
        """Queue a reliable message (bounded ones up to a limit) or a job's latest progress; drop the rest."""
        if waiting.progress_of is not None and not reliable:
            for older in [w for w in peer.outbox if w.progress_of == waiting.progress_of]:
                peer.outbox.remove(older)
                self._backlog.release(identity, older.counted)
            peer.outbox.append(waiting)
        elif reliable and (not waiting.bounded or peer.bounded_waiting < _MAX_WAITING_REPLIES):
            peer.outbox.append(waiting)
            peer.bounded_waiting += waiting.bounded
        else:
            self._backlog.release(identity, waiting.counted)

    def _keep_reply(self, peer: _Peer, req: str, frames: list[Any]) -> None:
        """Cache a small reply on its client's own quota (then the global cap takes from the biggest holder)."""
        size = message_bytes(frames)
        if size > _MAX_CACHED_REPLY or req in peer.replies:
            return
        peer.replies[req] = frames
        peer.reply_bytes += size
        self._reply_bytes += size
        while len(peer.replies) > _REPLIES_PER_CLIENT or peer.reply_bytes > _REPLY_BYTES_PER_CLIENT:
            self._drop_oldest_reply(peer)
        while self._reply_bytes > _REPLY_CACHE_BYTES:
            self._drop_oldest_reply(max(self._peers.values(), key=lambda other: other.reply_bytes))

    def _drop_oldest_reply(self, peer: _Peer) -> None:
        """Forget ``peer``'s oldest cached reply."""
        _, dropped = peer.replies.popitem(last=False)
        size = message_bytes(dropped)
        peer.reply_bytes -= size
        self._reply_bytes -= size

    def _forget_replies(self, identity: bytes) -> None:
        """Drop the cached replies of ``identity``."""
        peer = self._peers.get(identity)
        while peer is not None and peer.replies:
            self._drop_oldest_reply(peer)

    def _has_jobs(self, identity: bytes) -> bool:
        """True while ``identity`` has queued, running or finishing jobs."""
        queued, running = self._jobs.snapshot()
        return any(job.owner == identity for job in queued + running) or identity in self._owners.values()

    def _forget(self, identity: bytes, running: list[Job], silent: float) -> None:
        """Drop a silent client's queued jobs, cancel its running ones (they write nothing) and forget it."""
        dropped = self._jobs.remove(lambda job: job.owner == identity)
        mine = [job for job in running if job.owner == identity]
        fresh = [job for job in mine if not job.cancel.is_set()]
        for job in fresh:
            job.cancel.set()
        if dropped or fresh:
            log.warning("client %s silent for %.0f s: dropped %d queued and cancelled %d running job(s)",
                        identity.hex()[:12], silent, len(dropped), len(fresh))
        for job in dropped:
            self._owners.pop(job.job_id, None)
        if not mine:
            self._forget_replies(identity)
            peer = self._peers.pop(identity)
            for waiting in peer.outbox:
                self._backlog.release(identity, waiting.counted)
            self._watchdog.forget(identity)
