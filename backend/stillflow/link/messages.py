"""Messages on the wire: the operation catalogue, ``Message``, the header codec and error messages.

Part of the wire protocol (see ``protocol.py`` for the convention); no torch, bundled into the
add-on. Frame 0 of every message is a msgpack map with string keys only,
``{v, op, req, job, body, parts}``; the binary parts after it are handled by ``parts``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Collection, Mapping, Sequence

import msgpack
import numpy as np

from ..errors import ERRORS_BY_WIRE_CODE, MAX_SHOWN_CHARS, InputError, JobFailed, ProtocolError, StillflowError, shown
from .parts import Limits, chunk_frames, frame_bytes, pack_parts, read_parts

__all__ = ["PROTOCOL_VERSION", "MESSAGE_TYPES", "REQUEST_OPS", "SERVER_OPS", "EVENT_OPS", "Message", "encode",
           "decode", "unpack_header", "peek_ids", "peek_raw_ids", "check_header", "error_message", "error_from_wire"]

PROTOCOL_VERSION = 1
"""Bumped on any incompatible change; both sides refuse a message with another version."""

MESSAGE_TYPES: dict[str, str] = {
    # client -> backend requests (each answered by exactly one reply carrying the same req)
    "hello": "version and capabilities (engines, devices, limits, models); reply hello",
    "ping": "liveness check; reply pong with the backend's clock",
    "status": "queue and worker state, or one job's state with job set; reply status",
    "submit": "image + mask + motion + render options; reply accepted {job} or rejected {code, msg}",
    "cancel": "stop job (queued: dropped, running: stopped between frames); reply ok",
    "clear": "drop this client's queued jobs (all clients' with body.all); reply ok {dropped}",
    "heartbeat": "either way, while a client has jobs: 'I am alive'; no reply (backend's lists job states)",
    # backend -> client replies
    "pong": "reply to ping",
    "accepted": "reply to submit: the job id and its queue position",
    "rejected": "reply to submit: the job was not queued, with code and msg",
    "ok": "reply to cancel and clear",
    "error": "a request or job failed: code (errors.py wire code) and a one-line msg",
    # backend -> client job events (carry job, no req)
    "progress": "stage, done, total and an optional small uint8 preview part",
    "part": "one piece of a remote result: a frame array or an encoded file's bytes",
    "result": "the job finished: out_dir and frame paths, or the count of parts sent before",
    "cancelled": "the job stopped before finishing; nothing was written",
}

REQUEST_OPS = frozenset({"hello", "ping", "status", "submit", "cancel", "clear", "heartbeat"})
"""Operations a client may send."""

EVENT_OPS = frozenset({"progress", "part", "result", "cancelled", "heartbeat"})
"""Backend messages that belong to a job (or to the client's jobs) rather than to a request."""

SERVER_OPS = frozenset({"hello", "pong", "status", "accepted", "rejected", "ok", "error"}) | EVENT_OPS
"""Operations the backend may send."""

_HEADER_KEYS = frozenset({"v", "op", "req", "job", "body", "parts"})
_MAX_DEPTH = 16
_MAX_ID_CHARS = 64


@dataclass(slots=True)
class Message:
    """One decoded message: operation, plain body and named arrays (read-only views of the frames)."""

    op: str
    body: dict[str, Any] = field(default_factory=dict)
    parts: dict[str, np.ndarray] = field(default_factory=dict)
    req: str | None = None
    job: str | None = None


def encode(message: Message, max_frame_bytes: int = 0) -> list[Any]:
    """Frames to send: the msgpack header then each part's buffer, whole or in chunks of at most
    ``max_frame_bytes`` (the receiver's advertised limit; 0 = whole). Send with copy=False.

    Raises:
        InputError: a part has a dtype outside WIRE_DTYPES or a body value msgpack cannot carry.
    """
    descriptors, buffers = pack_parts(message.parts)
    header = {"v": PROTOCOL_VERSION, "op": message.op, "req": message.req, "job": message.job,
              "body": message.body, "parts": descriptors}
    try:
        packed = msgpack.packb(header, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"message {message.op} cannot be encoded: {exc}") from None
    return [packed, *chunk_frames(buffers, max_frame_bytes)]


def decode(frames: Sequence[Any], *, limits: Limits = Limits(), ops: Collection[str] = SERVER_OPS) -> Message:
    """Decode a whole message (no identity frame); raises ProtocolError or InputError when invalid."""
    if not frames:
        raise ProtocolError("empty message", hint="send a msgpack header frame first")
    header = unpack_header(frames[0], limits)
    check_header(header, ops)
    parts = read_parts(header, frames[1:], limits)
    return Message(op=header["op"], body=header.get("body") or {}, parts=parts,
                   req=header.get("req"), job=header.get("job"))


def unpack_header(frame: Any, limits: Limits = Limits()) -> dict[str, Any]:
    """The header map of frame 0, checked to hold only plain msgpack values with string keys."""
    raw = frame_bytes(frame)
    if raw.nbytes > limits.max_header_bytes:
        raise ProtocolError(f"message header is {raw.nbytes} bytes; at most {limits.max_header_bytes} accepted")
    try:
        # no container may claim more entries than the whole header may hold values
        header = msgpack.unpackb(raw, raw=False, strict_map_key=True, ext_hook=_refuse_ext, timestamp=0,
                                 max_array_len=limits.max_header_values, max_map_len=limits.max_header_values)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError,
            UnicodeDecodeError) as exc:
        if "exceeds max_" in str(exc):
            raise _too_many_values(limits.max_header_values) from None
        raise ProtocolError(f"message header is not valid msgpack ({type(exc).__name__})",
                            hint="frame 0 must be a msgpack map with string keys") from None
    if not isinstance(header, dict):
        raise ProtocolError(f"message header is a {type(header).__name__}, not a map",
                            hint="frame 0 must be a msgpack map with string keys")
    _check_plain(header, limits.max_header_values)
    return header


def peek_ids(header: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The (req, job) ids of a header when they are well-formed, else None (for error replies)."""
    return (_valid_id(header.get("req")), _valid_id(header.get("job")))


def peek_raw_ids(frame: Any) -> tuple[str | None, str | None]:
    """The (req, job) ids of a header frame that ``unpack_header`` refused (too big, too many values),
    read without building the rest: other top-level values are skipped in C. (None, None) when unreadable."""
    raw = frame_bytes(frame)
    found: dict[str, Any] = {}
    try:
        unpacker = msgpack.Unpacker(max_buffer_size=raw.nbytes + 1, max_str_len=_MAX_ID_CHARS * 4,
                                    max_bin_len=0, max_ext_len=0, raw=False)
        unpacker.feed(raw)
        for _ in range(min(unpacker.read_map_header(), len(_HEADER_KEYS))):
            key = unpacker.unpack()
            if key in ("req", "job"):
                found[key] = unpacker.unpack()
            else:
                unpacker.skip()
    except Exception:  # whatever could not be read stays None
        pass
    return _valid_id(found.get("req")), _valid_id(found.get("job"))


def check_header(header: Mapping[str, Any], ops: Collection[str]) -> None:
    """Check version first, then operation, ids, body and part descriptors; raise ProtocolError."""
    version = header.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:  # 1.0 and True are not 1
        raise ProtocolError(f"protocol version {shown(version)} is not supported; this side speaks {PROTOCOL_VERSION}",
                            hint="install the same Stillflow version for the add-on and the backend")
    op = header.get("op")
    if not isinstance(op, str) or op not in ops:
        raise ProtocolError(f"unknown operation {shown(op)}", hint=f"expected one of {', '.join(sorted(ops))}")
    for key in ("req", "job"):
        value = header.get(key)
        if value is not None and _valid_id(value) is None:
            raise ProtocolError(f"{key} must be a string of 1 to {_MAX_ID_CHARS} characters, got {shown(value)}")
    unknown = sorted(set(header) - _HEADER_KEYS)
    if unknown:
        raise ProtocolError(f"unknown header key(s): {shown(', '.join(unknown), 120, quote=False)}")
    if not isinstance(header.get("body", {}) or {}, dict):
        raise ProtocolError("body must be a map")
    if not isinstance(header.get("parts", []) or [], list):
        raise ProtocolError("parts must be a list of {name, dtype, shape} maps")


def error_message(error: StillflowError, *, req: str | None = None, job: str | None = None,
                  op: str = "error") -> Message:
    """An ``error`` (or ``rejected``) message carrying the error's wire code and one-line text (cut short)."""
    return Message(op=op, body={"code": error.wire_code, "msg": shown(str(error), 2 * MAX_SHOWN_CHARS, quote=False)},
                   req=req, job=job)


def error_from_wire(body: Mapping[str, Any]) -> StillflowError:
    """The error an ``error``/``rejected`` body describes; unknown codes become JobFailed."""
    code = body.get("code")
    text = shown(body.get("msg") or "the backend reported an error without a message", 2 * MAX_SHOWN_CHARS,
                 quote=False)
    cls = ERRORS_BY_WIRE_CODE.get(code) if isinstance(code, str) else None
    if cls is None or cls is StillflowError:
        cls = JobFailed
    return cls(text)


def _check_plain(header: dict[str, Any], budget: int) -> None:
    """Raise ProtocolError unless the header holds only nil/bool/int/float/str/bin/lists/str-keyed maps,
    at most ``budget`` values in all and nested at most _MAX_DEPTH deep.

    The walk stops at the budget, so a header of a million empty maps costs the I/O loop no more
    than one of ``budget`` values.
    """
    pending: list[tuple[Any, int]] = [(header, 0)]
    queued = 1
    while pending:
        value, depth = pending.pop()
        if depth > _MAX_DEPTH:
            raise ProtocolError(f"message header nests deeper than {_MAX_DEPTH} levels")
        if value is None or isinstance(value, (bool, int, float, str, bytes)):
            continue
        if not isinstance(value, (list, dict)):
            raise ProtocolError(f"message header holds a {type(value).__name__} value", hint="no extension types")
        queued += len(value)
        if queued > budget:
            raise _too_many_values(budget)
        if isinstance(value, dict):
            if not all(isinstance(key, str) for key in value):
                raise ProtocolError("message header has a non-string map key")
            value = value.values()
        pending.extend((item, depth + 1) for item in value)


def _too_many_values(budget: int) -> ProtocolError:
    """The refusal of a header with more than ``budget`` values."""
    return ProtocolError(f"message header holds more than {budget} values", hint="send fewer hints, anchors or fields")


def _refuse_ext(code: int, data: bytes) -> Any:
    """msgpack ext_hook: extension types are not part of the protocol."""
    raise ValueError(f"msgpack extension type {code} is not allowed")


def _valid_id(value: Any) -> str | None:
    """``value`` when it is a usable request/job id, else None."""
    return value if isinstance(value, str) and 1 <= len(value) <= _MAX_ID_CHARS else None
