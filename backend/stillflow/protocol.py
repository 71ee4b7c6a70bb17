"""The one definition of the Stillflow wire protocol between clients and the backend service.

No torch, no bpy, no cv2: this module imports only the standard library, numpy, msgpack
and ``stillflow.errors`` / ``stillflow.options``, because the add-on bundles it.

Convention:
    Transport is DEALER (client) <-> ROUTER (backend). Every message is multipart:
    frame 0 is a msgpack map with string keys only, ``{v, op, req, job, body, parts}``;
    frames 1.. are raw C-order little-endian buffers, one per entry of ``parts``
    (``{name, dtype, shape}``). No pickle, no msgpack extension types. The ROUTER's
    leading identity frame is handled by the server, never here.
    ``req`` is a client-chosen request id echoed in the reply (retries reuse it, and the
    server answers a repeated id from its cache instead of running it twice); ``job`` is
    the backend-chosen job id carried by job events.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Collection, Mapping, Sequence

import msgpack
import numpy as np

from .errors import ERRORS_BY_WIRE_CODE, InputError, JobFailed, ProtocolError, StillflowError
from .options import MAX_FRAMES, MAX_IMAGE_SIDE, MotionSpec, RenderOptions

__all__ = [
    "PROTOCOL_VERSION",
    "MESSAGE_TYPES",
    "REQUEST_OPS",
    "SERVER_OPS",
    "EVENT_OPS",
    "WIRE_DTYPES",
    "Limits",
    "Message",
    "encode",
    "decode",
    "unpack_header",
    "peek_ids",
    "check_header",
    "read_parts",
    "error_message",
    "error_from_wire",
    "options_to_wire",
    "options_from_wire",
    "motion_to_wire",
    "motion_from_wire",
    "check_image",
    "check_mask",
]

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

WIRE_DTYPES: dict[str, np.dtype] = {
    "uint8": np.dtype("|u1"),
    "float16": np.dtype("<f2"),
    "float32": np.dtype("<f4"),
}
"""The only element types a binary part may have."""

MAX_HEADER_BYTES = 1 << 20
"""Largest accepted msgpack header (1 MiB); hints and manifests fit with room to spare."""

MAX_PARTS = 16
"""Most binary parts in one message (a submit needs at most five)."""

DEFAULT_MAX_PART_BYTES = 1 << 30
"""Default largest binary part (1 GiB, e.g. 8192 x 8192 RGBA float32)."""

_MAX_DEPTH = 16
_MAX_ID_CHARS = 64
_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,200}")


@dataclass(frozen=True, slots=True)
class Limits:
    """Size caps the backend enforces and advertises in ``hello``."""

    max_image_side: int = MAX_IMAGE_SIDE
    max_frames: int = MAX_FRAMES
    max_part_bytes: int = DEFAULT_MAX_PART_BYTES
    max_header_bytes: int = MAX_HEADER_BYTES
    max_parts: int = MAX_PARTS

    def to_wire(self) -> dict[str, int]:
        """Plain values for the hello reply."""
        return {"max_image_side": self.max_image_side, "max_frames": self.max_frames,
                "max_part_bytes": self.max_part_bytes, "max_header_bytes": self.max_header_bytes,
                "max_parts": self.max_parts}

    @classmethod
    def from_wire(cls, values: Mapping[str, Any]) -> "Limits":
        """Read the limits from a hello reply (missing keys keep their defaults)."""
        known = {k: int(v) for k, v in values.items() if k in cls.__dataclass_fields__ and _is_int(v)}
        return cls(**known)


@dataclass(slots=True)
class Message:
    """One decoded message: operation, plain body and named arrays (read-only views of the frames)."""

    op: str
    body: dict[str, Any] = field(default_factory=dict)
    parts: dict[str, np.ndarray] = field(default_factory=dict)
    req: str | None = None
    job: str | None = None


def encode(message: Message) -> list[Any]:
    """Frames to send: the msgpack header then one contiguous buffer per part (send with copy=False).

    Raises:
        InputError: a part has a dtype outside WIRE_DTYPES or a body value msgpack cannot carry.
    """
    descriptors = []
    buffers = []
    for name, array in message.parts.items():
        dtype_name = _wire_dtype_name(array.dtype)
        if dtype_name is None:
            raise InputError(f"part {name} has dtype {array.dtype}; the wire carries {', '.join(WIRE_DTYPES)}")
        buffers.append(np.ascontiguousarray(array, dtype=WIRE_DTYPES[dtype_name]))
        descriptors.append({"name": name, "dtype": dtype_name, "shape": list(array.shape)})
    header = {"v": PROTOCOL_VERSION, "op": message.op, "req": message.req, "job": message.job,
              "body": message.body, "parts": descriptors}
    try:
        packed = msgpack.packb(header, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"message {message.op} cannot be encoded: {exc}") from None
    return [packed, *buffers]


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
    raw = _buffer(frame)
    if raw.nbytes > limits.max_header_bytes:
        raise ProtocolError(f"message header is {raw.nbytes} bytes; at most {limits.max_header_bytes} accepted")
    try:
        header = msgpack.unpackb(raw, raw=False, strict_map_key=True, ext_hook=_refuse_ext, timestamp=0)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError,
            UnicodeDecodeError) as exc:
        raise ProtocolError(f"message header is not valid msgpack ({type(exc).__name__})",
                            hint="frame 0 must be a msgpack map with string keys") from None
    if not isinstance(header, dict):
        raise ProtocolError(f"message header is a {type(header).__name__}, not a map",
                            hint="frame 0 must be a msgpack map with string keys")
    _check_plain(header, 0)
    return header


def peek_ids(header: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The (req, job) ids of a header when they are well-formed, else None (for error replies)."""
    return (_valid_id(header.get("req")), _valid_id(header.get("job")))


def check_header(header: Mapping[str, Any], ops: Collection[str]) -> None:
    """Check version first, then operation, ids, body and part descriptors; raise ProtocolError."""
    version = header.get("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {version!r} is not supported; this side speaks {PROTOCOL_VERSION}",
                            hint="install the same Stillflow version for the add-on and the backend")
    op = header.get("op")
    if not isinstance(op, str) or op not in ops:
        raise ProtocolError(f"unknown operation {op!r}", hint=f"expected one of {', '.join(sorted(ops))}")
    for key in ("req", "job"):
        value = header.get(key)
        if value is not None and _valid_id(value) is None:
            raise ProtocolError(f"{key} must be a string of 1 to {_MAX_ID_CHARS} characters, got {value!r}"[:200])
    unknown = sorted(set(header) - {"v", "op", "req", "job", "body", "parts"})
    if unknown:
        raise ProtocolError(f"unknown header key(s): {', '.join(unknown)}"[:200])
    if not isinstance(header.get("body", {}) or {}, dict):
        raise ProtocolError("body must be a map")
    if not isinstance(header.get("parts", []) or [], list):
        raise ProtocolError("parts must be a list of {name, dtype, shape} maps")


def read_parts(header: Mapping[str, Any], frames: Sequence[Any], limits: Limits = Limits()) -> dict[str, np.ndarray]:
    """Named read-only arrays viewing ``frames``, after checking every descriptor against its frame."""
    descriptors = header.get("parts") or []
    if len(descriptors) > limits.max_parts:
        raise ProtocolError(f"message declares {len(descriptors)} parts; at most {limits.max_parts} accepted")
    if len(descriptors) != len(frames):
        raise ProtocolError(f"message declares {len(descriptors)} parts but carries {len(frames)} frames")
    parts: dict[str, np.ndarray] = {}
    for descriptor, frame in zip(descriptors, frames):
        name, dtype, shape = _check_descriptor(descriptor, limits)
        if name in parts:
            raise ProtocolError(f"part {name} appears twice")
        buffer = _buffer(frame)
        expected = math.prod(shape) * dtype.itemsize
        if buffer.nbytes != expected:
            raise ProtocolError(f"part {name} declares {expected} bytes ({shape} {dtype.name}) "
                                f"but its frame holds {buffer.nbytes}")
        parts[name] = np.frombuffer(buffer, dtype=dtype).reshape(shape)
    return parts


def error_message(error: StillflowError, *, req: str | None = None, job: str | None = None,
                  op: str = "error") -> Message:
    """An ``error`` (or ``rejected``) message carrying the error's wire code and one-line text."""
    return Message(op=op, body={"code": error.wire_code, "msg": str(error)}, req=req, job=job)


def error_from_wire(body: Mapping[str, Any]) -> StillflowError:
    """The error an ``error``/``rejected`` body describes; unknown codes become JobFailed."""
    code = body.get("code")
    text = str(body.get("msg") or "the backend reported an error without a message")
    cls = ERRORS_BY_WIRE_CODE.get(code) if isinstance(code, str) else None
    if cls is None or cls is StillflowError:
        cls = JobFailed
    return cls(text)


def options_to_wire(options: RenderOptions) -> dict[str, Any]:
    """Render options as plain values keyed by option name."""
    return options.to_dict()


def options_from_wire(values: Any) -> RenderOptions:
    """Validated RenderOptions from a wire map; raises InputError naming the bad option."""
    if not isinstance(values, dict):
        raise InputError(f"options must be a map of option name to value, got {type(values).__name__}")
    return RenderOptions.from_dict(values)


def motion_to_wire(motion: MotionSpec) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The motion source as a plain map plus, for kind field, a ``motion`` part (2, h, w) float32."""
    body = {
        "kind": motion.kind,
        "hints": [[float(v) for v in hint] for hint in motion.hints],
        "anchors": [[float(v) for v in anchor] for anchor in motion.anchors],
        "anchor_radius": motion.anchor_radius,
        "path": motion.path,
        "drift": [float(v) for v in motion.drift] if motion.drift is not None else None,
    }
    parts = {}
    if motion.field is not None:
        parts["motion"] = np.ascontiguousarray(motion.field, dtype=np.float32)
    return body, parts


def motion_from_wire(body: Any, parts: Mapping[str, np.ndarray], limits: Limits = Limits()) -> MotionSpec:
    """A validated MotionSpec from a wire map and the optional ``motion`` part.

    Args:
        body: map with kind, hints [[x0, y0, x1, y1], ...] px, anchors [[x, y], ...] px,
            anchor_radius px, path, drift [angle deg, speed px/frame].
        parts: may hold ``motion``: (2, h, w) float16/float32, px/frame at width w.

    Raises:
        InputError: wrong types, non-finite numbers, or a field without its part.
    """
    if not isinstance(body, dict):
        raise InputError(f"motion must be a map, got {type(body).__name__}")
    unknown = sorted(set(body) - {"kind", "hints", "anchors", "anchor_radius", "path", "drift"})
    if unknown:
        raise InputError(f"unknown motion key(s): {', '.join(unknown)}")
    kind = body.get("kind", "none")
    field_part = parts.get("motion")
    if field_part is not None and kind != "field":
        raise InputError(f"a motion part was sent but motion kind is {kind!r}", hint="set kind to field")
    motion_field = None
    if field_part is not None:
        if field_part.ndim != 3 or field_part.shape[0] != 2 or field_part.dtype == np.uint8:
            raise InputError(f"motion part has shape {field_part.shape} {field_part.dtype}; "
                             "expected (2, h, w) float32 in px/frame")
        if max(field_part.shape[1:]) > limits.max_image_side or min(field_part.shape[1:]) < 1:
            raise InputError(f"motion part is {field_part.shape[2]}x{field_part.shape[1]}; "
                             f"sides must be 1 to {limits.max_image_side}")
        bad = int(np.count_nonzero(~np.isfinite(field_part)))
        if bad:
            raise InputError(f"motion part holds {bad} non-finite values", hint="replace NaN/Inf by 0")
        motion_field = field_part.astype(np.float32)
    return MotionSpec(
        kind=kind if isinstance(kind, str) else repr(kind),
        hints=tuple(_numbers(h, 4, "hint") for h in _list(body.get("hints"), "hints")),
        anchors=tuple(_numbers(a, 2, "anchor") for a in _list(body.get("anchors"), "anchors")),
        anchor_radius=_optional_number(body.get("anchor_radius"), "anchor_radius"),
        path=_optional_str(body.get("path"), "motion path"),
        drift=_numbers(body["drift"], 2, "drift") if body.get("drift") is not None else None,
        field=motion_field,
    ).validate()


def check_image(image: np.ndarray, limits: Limits = Limits(), what: str = "image") -> None:
    """Raise InputError unless ``image`` is (H, W, 3|4) uint8/float16/float32, finite, within the caps."""
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise InputError(f"{what} has shape {tuple(image.shape)}; expected (H, W, 3) RGB or (H, W, 4) RGBA")
    _check_sides(image.shape[:2], limits, what)
    _check_finite(image, what)


def check_mask(mask: np.ndarray, limits: Limits = Limits()) -> None:
    """Raise InputError unless ``mask`` is (H, W) uint8/float16/float32, finite, within the caps."""
    if mask.ndim != 2:
        raise InputError(f"mask has shape {tuple(mask.shape)}; expected (H, W) grayscale, white = animate")
    _check_sides(mask.shape, limits, "mask")
    _check_finite(mask, "mask")


def _check_sides(shape: Sequence[int], limits: Limits, what: str) -> None:
    """Raise InputError when a side is 0 or above the cap."""
    height, width = shape
    if min(height, width) < 1 or max(height, width) > limits.max_image_side:
        raise InputError(f"{what} is {width}x{height} px; sides must be 1 to {limits.max_image_side} px")


def _check_finite(array: np.ndarray, what: str) -> None:
    """Raise InputError when a float array holds NaN or Inf."""
    if array.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise InputError(f"{what} holds {bad} non-finite values")


def _check_descriptor(descriptor: Any, limits: Limits) -> tuple[str, np.dtype, tuple[int, ...]]:
    """(name, dtype, shape) of a part descriptor; ProtocolError when malformed or too large."""
    if not isinstance(descriptor, dict) or set(descriptor) != {"name", "dtype", "shape"}:
        raise ProtocolError("a part descriptor must be a map with exactly name, dtype and shape")
    name = descriptor["name"]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ProtocolError(f"part name {name!r} is invalid"[:200], hint="use 1-200 of A-Z a-z 0-9 _ . : / -")
    dtype_name = descriptor["dtype"]
    if dtype_name not in WIRE_DTYPES:
        raise ProtocolError(f"part {name} has dtype {dtype_name!r}"[:200],
                            hint=f"the wire carries {', '.join(WIRE_DTYPES)}")
    shape = descriptor["shape"]
    if (not isinstance(shape, list) or not 1 <= len(shape) <= 4
            or not all(_is_int(d) and d >= 0 for d in shape)):
        raise ProtocolError(f"part {name} has shape {shape!r}; expected 1 to 4 sizes >= 0"[:200])
    dtype = WIRE_DTYPES[dtype_name]
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > limits.max_part_bytes:
        raise ProtocolError(f"part {name} declares {nbytes} bytes; at most {limits.max_part_bytes} accepted",
                            hint="send a smaller image or raise the backend's --max-part-mb")
    return name, dtype, tuple(shape)


def _check_plain(value: Any, depth: int) -> None:
    """Raise ProtocolError unless ``value`` is nil/bool/int/float/str/bin/list/str-keyed map, not too deep."""
    if depth > _MAX_DEPTH:
        raise ProtocolError(f"message header nests deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return
    if isinstance(value, list):
        for item in value:
            _check_plain(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ProtocolError("message header has a non-string map key")
            _check_plain(item, depth + 1)
        return
    raise ProtocolError(f"message header holds a {type(value).__name__} value", hint="no extension types")


def _refuse_ext(code: int, data: bytes) -> Any:
    """msgpack ext_hook: extension types are not part of the protocol."""
    raise ValueError(f"msgpack extension type {code} is not allowed")


def _buffer(frame: Any) -> memoryview:
    """A flat byte view of a zmq.Frame, bytes or buffer without copying."""
    view = frame.buffer if hasattr(frame, "buffer") else memoryview(frame)
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _wire_dtype_name(dtype: np.dtype) -> str | None:
    """The WIRE_DTYPES name of ``dtype`` (any byte order), or None when not carried."""
    for name, wire in WIRE_DTYPES.items():
        if dtype.kind == wire.kind and dtype.itemsize == wire.itemsize:
            return name
    return None


def _valid_id(value: Any) -> str | None:
    """``value`` when it is a usable request/job id, else None."""
    return value if isinstance(value, str) and 1 <= len(value) <= _MAX_ID_CHARS else None


def _is_int(value: Any) -> bool:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """True for a finite int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _list(value: Any, what: str) -> list[Any]:
    """``value`` as a list (None = empty); InputError otherwise."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(f"motion {what} must be a list, got {type(value).__name__}")
    return value


def _numbers(value: Any, count: int, what: str) -> tuple[float, ...]:
    """A tuple of ``count`` finite floats; InputError naming ``what`` otherwise."""
    if not isinstance(value, list) or len(value) != count or not all(_is_number(v) for v in value):
        raise InputError(f"a motion {what} needs {count} finite numbers, got {value!r}"[:200])
    return tuple(float(v) for v in value)


def _optional_number(value: Any, what: str) -> float | None:
    """None or a finite float; InputError otherwise."""
    if value is None:
        return None
    if not _is_number(value):
        raise InputError(f"motion {what} must be a finite number, got {value!r}"[:200])
    return float(value)


def _optional_str(value: Any, what: str) -> str | None:
    """None or a string; InputError otherwise."""
    if value is not None and not isinstance(value, str):
        raise InputError(f"{what} must be a string, got {type(value).__name__}")
    return value
