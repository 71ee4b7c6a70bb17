"""The I/O loop's side of the wire: who sent a message, safe encoding, and rate-limited refusal logs.

Thread contract: used only by the thread that runs ``Server.serve()``.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import zmq

from ..errors import MAX_SHOWN_CHARS, StillflowError, shown
from ..link.protocol import Message, encode, error_message

__all__ = ["encode_safely", "principal_of", "RefusalLog"]

log = logging.getLogger(__name__)


def encode_safely(message: Message) -> list[Any]:
    """``encode(message)``, or an encoded error reply in its place when it cannot be encoded."""
    try:
        return encode(message)
    except Exception as exc:  # a reply the server built must never end the I/O loop
        log.error("reply %s could not be encoded: %s", message.op, shown(str(exc), MAX_SHOWN_CHARS, quote=False))
        error = StillflowError(f"the backend could not encode its {message.op} reply",
                               hint="see the backend log")
        return encode(error_message(error, req=message.req, job=message.job))


def principal_of(identity: bytes, frame: Any, keyed: bool) -> bytes:
    """Who sent a message: the CURVE public key (ZAP user id) when keyed, else the routing id."""
    if keyed:
        try:
            user = frame.get("User-Id")
        except (zmq.ZMQError, AttributeError):
            user = None
        if user:
            return b"key:" + str(user).encode("ascii", "replace")
    return b"id:" + identity


class RefusalLog:
    """Logs refused requests, cut short, at most ``burst`` lines per ``window_s`` (then a count)."""

    def __init__(self, burst: int = 20, window_s: float = 10.0) -> None:
        self.burst = burst
        self.window_s = window_s
        self._window_start = time.monotonic()
        self._logged = 0
        self._skipped = 0

    def refused(self, identity: bytes, error: StillflowError) -> None:
        """Log one refused request (or count it when over the rate)."""
        now = time.monotonic()
        if now - self._window_start >= self.window_s:
            if self._skipped:
                log.info("%d more refused request(s) in %.0f s were not logged", self._skipped,
                         now - self._window_start)
            self._window_start, self._logged, self._skipped = now, 0, 0
        if self._logged >= self.burst:
            self._skipped += 1
            return
        self._logged += 1
        log.info("request from %s refused: %s", identity.hex()[:12], shown(str(error), MAX_SHOWN_CHARS, quote=False))
