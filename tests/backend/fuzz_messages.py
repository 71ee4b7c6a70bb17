"""Seeded hostile messages for the backend service, and a driver that sends them over a real socket.

Used by tests/backend/test_service_fuzz.py and bench/bench_fuzz.py. Every case is a list of raw
frames (no identity frame) and whether the backend must answer it (``reply``) or libzmq drops it
by design (``drop``: a frame above MAXMSGSIZE disconnects the peer).
"""
from __future__ import annotations

import math
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import msgpack
import numpy as np
import zmq

from stillflow.link.parts import DEFAULT_MAX_FRAME_BYTES
from stillflow.link.protocol import PROTOCOL_VERSION, SERVER_OPS, decode
from stillflow.options import RenderOptions

__all__ = ["CATEGORIES", "Case", "FuzzReport", "cases", "send_all", "rss_bytes", "peak_rss_bytes", "reset_peak_rss",
           "header_bombs", "frame_count_cases", "extreme_cases", "oversize_cases"]

OPTION_NAMES = tuple(RenderOptions.__dataclass_fields__)
HOSTILE_VALUES: tuple[Any, ...] = (
    1e308, -1e308, math.inf, -math.inf, math.nan, 2**63, 2**64 - 1, -2**63, 2**63 - 1, True, False, None, "",
    "x" * 5000, [], {}, [1, 2], {"a": 1}, 0, -1, 1.5, 10**6, -0.0, 5e-324, b"\x00\xff", "auto", "cuda:99", "../..",
)
SUBMIT_KEYS = ("options", "motion", "preview", "out_dir", "video", "deliver", "image_path", "image_name",
               "mask_path", "mask_name", "mask_auto", "importance_path", "importance_name", "junk")
_JOB_EVENTS = frozenset({"progress", "part", "result", "cancelled", "heartbeat"})
CATEGORIES = ("garbage", "header", "option", "motion", "submit", "parts", "oversize", "ops", "extreme")
EXTREME_OPTIONS: tuple[dict[str, Any], ...] = (
    {"speed": 1e30}, {"speed": 3.4e38}, {"speed": 1e39}, {"speed": 1e308}, {"fps": 5e-324}, {"fps": 1e-300},
    {"feather": 1e308}, {"importance_scale": 1e308}, {"loops": 2**62},
)
EXTREME_MOTIONS: tuple[dict[str, Any], ...] = (
    {"kind": "drift", "drift": [0.0, 1e39]}, {"kind": "drift", "drift": [1e308, 1.0]},
    {"kind": "drift", "drift": [0.0, 1.0], "anchors": [[1.0, 1.0]], "anchor_radius": 1e308},
    {"kind": "hints", "hints": [[0.0, 0.0, 1e308, 1e308]]}, {"kind": "hints", "hints": [[3.0, 3.0, 4.0, 4.0]] * 5000},
    {"kind": "drift", "drift": [0.0, 1.0], "anchors": [[1e300, -1e300]]}, {"kind": "none", "drift": [0.0, 1e39]},
)


@dataclass
class Case:
    """One message to send: its category, raw frames and whether an answer is due."""

    category: str
    frames: list[bytes]
    expect: str = "reply"


@dataclass
class FuzzReport:
    """What a fuzz run saw."""

    sent: int = 0
    explicit: int = 0
    internal: list[str] = field(default_factory=list)
    silent: list[str] = field(default_factory=list)
    dropped: int = 0
    accepted: int = 0
    codes: dict[str, int] = field(default_factory=dict)


def header(rng: random.Random, **fields: Any) -> dict[str, Any]:
    """A well-formed request header with ``fields`` replaced."""
    base = {"v": PROTOCOL_VERSION, "op": "submit", "req": uuid.UUID(int=rng.getrandbits(128)).hex, "job": None,
            "body": {}, "parts": []}
    base.update(fields)
    return base


def pack(value: Any) -> bytes:
    """msgpack bytes of ``value``."""
    return msgpack.packb(value, use_bin_type=True)


def _image_part(height: int = 8, width: int = 8) -> tuple[dict[str, Any], bytes]:
    """A small valid image part descriptor and its bytes."""
    return {"name": "image", "dtype": "uint8", "shape": [height, width, 3]}, bytes(height * width * 3)


def _submit(rng: random.Random, body: dict[str, Any], parts: list[tuple[dict[str, Any], bytes]] | None = None,
            category: str = "submit") -> Case:
    """A submit of ``body`` with an 8x8 image (unless ``parts`` says otherwise)."""
    parts = [_image_part()] if parts is None else parts
    frames = [pack(header(rng, body=body, parts=[d for d, _ in parts]))] + [data for _, data in parts]
    return Case(category, frames)


def _cheap_options(**overrides: Any) -> dict[str, Any]:
    """Options of a job that renders at once (two static frames), with ``overrides``."""
    values: dict[str, Any] = {"frames": 2, "levels": 1}
    values.update(overrides)
    return values


def _garbage(rng: random.Random) -> Case:
    frames = [rng.randbytes(rng.randint(0, 300)) for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.3:
        frames[0] = pack(header(rng))[: rng.randint(1, 30)]
    return Case("garbage", frames)


def _header_case(rng: random.Random) -> Case:
    key = rng.choice(("v", "op", "req", "job", "body", "parts", "extra", "root"))
    value = rng.choice(HOSTILE_VALUES + (1.0, "1", 2, PROTOCOL_VERSION + 1, "y" * 70000))
    if key == "root":
        return Case("header", [pack(rng.choice([[1, 2], "text", 7, None, {1: 2}, {"v": {"v": [[[[[[]]]]]]}}]))])
    fields = {key: value} if key != "extra" else {"x" * rng.randint(1, 500): value}
    if key == "op" and rng.random() < 0.5:
        fields["op"] = "".join(rng.choice("abcdefghij_") for _ in range(rng.randint(0, 100000)))
    fields.setdefault("op", rng.choice(("hello", "ping", "status", "submit")))
    return Case("header", [pack(header(rng, **fields))])


def _option(rng: random.Random) -> Case:
    name = rng.choice(OPTION_NAMES)
    return _submit(rng, {"options": _cheap_options(**{name: rng.choice(HOSTILE_VALUES)})}, category="option")


def _motion(rng: random.Random) -> Case:
    motion: dict[str, Any] = {"kind": rng.choice(("none", "hints", "drift", "field", "file", "clip", "auto", 3,
                                                   None, "x" * 9000))}
    key = rng.choice(("hints", "anchors", "anchor_radius", "path", "drift", "kind", "junk"))
    motion[key] = rng.choice(HOSTILE_VALUES + ([[1.0, 2.0, 3.0, math.inf]], [[0, 0, 1e308, 1e308]],
                                               [[1, 2]] * 5000, [0.0, 1e9], [0.0, 1000.0]))
    return _submit(rng, {"options": _cheap_options(), "motion": motion}, category="motion")


def _submit_body(rng: random.Random) -> Case:
    body: dict[str, Any] = {"options": _cheap_options()}
    for key in rng.sample(SUBMIT_KEYS, rng.randint(1, 3)):
        body[key] = rng.choice(HOSTILE_VALUES + ("/", "/etc/passwd", "relative/x", "a.mp4", "/tmp/../tmp",
                                                 "files", "arrays"))
    parts = [_image_part()] if rng.random() < 0.7 else []
    return _submit(rng, body, parts, category="submit")


def _parts(rng: random.Random) -> Case:
    choice = rng.randrange(10)
    descriptor: Any = {"name": "image", "dtype": "uint8", "shape": [8, 8, 3]}
    data = bytes(192)
    if choice == 0:
        descriptor["dtype"] = rng.choice((["uint8"], {"a": 1}, 8, None, "float64", "int64", "U8", "<u1", ""))
    elif choice == 1:
        descriptor["shape"] = rng.choice(([0, 2**62, 2**62], [0, 2**63 - 1], [-1, 8, 3], [8, -8, 3], [2**64 - 1],
                                          [1, 1, 1, 1, 1], [], {"h": 8}, "8,8,3", [8.0, 8, 3], [True, 8, 3],
                                          [0, 0, 0], [2**40, 2**40, 3]))
        data = b""
    elif choice == 2:
        descriptor = rng.choice(([], "image", {"name": "image"}, {"name": "image", "dtype": "uint8", "shape": [1],
                                                                   "x": 1}))
    elif choice == 3:
        descriptor["name"] = rng.choice(("", "a" * 300, "\x00", 5, None, "../x", "image file"))
    elif choice == 4:  # a frame that does not match its descriptor
        data = bytes(rng.randint(0, 400))
    elif choice == 5:  # shapes that decode but are not images or masks
        name, shape, dtype = rng.choice((("image", [8, 8], "uint8"), ("image", [8, 8, 5], "uint8"),
                                         ("mask", [8, 8, 3], "uint8"), ("motion", [3, 8, 8], "float32"),
                                         ("motion", [2, 8, 8], "uint8"), ("image_file", [4, 4], "uint8"),
                                         ("image", [0, 8, 3], "uint8"), ("image", [1, 20000, 3], "uint8")))
        descriptor = {"name": name, "dtype": dtype, "shape": shape}
        data = bytes(int(np.prod(shape)) * np.dtype(dtype).itemsize)
        if name != "image":
            return _submit(rng, {"options": _cheap_options(), "motion": {"kind": "field"}},
                           [_image_part(), (descriptor, data)], category="parts")
    elif choice == 6:  # non-finite float pixels
        values = np.full((8, 8, 3), rng.choice((np.nan, np.inf, -np.inf)), np.float32)
        descriptor = {"name": "image", "dtype": "float32", "shape": [8, 8, 3]}
        data = values.tobytes()
    elif choice == 7:  # file bytes that are not the image they claim to be
        blob = rng.choice((rng.randbytes(200), b"\x89PNG\r\n\x1a\n" + rng.randbytes(60), _huge_png_header()))
        return _submit(rng, {"options": _cheap_options(), "image_name": rng.choice(("a.png", "a.jpg", "a.exr"))},
                       [({"name": "image_file", "dtype": "uint8", "shape": [len(blob)]}, blob)], category="parts")
    elif choice == 8:  # the same part twice, or more parts than frames
        frames = [pack(header(rng, parts=[descriptor, descriptor])), data, data]
        return Case("parts", frames if rng.random() < 0.5 else frames[:2])
    else:  # too many parts
        count = rng.randint(17, 40)
        frames = [pack(header(rng, parts=[{"name": f"p{i}", "dtype": "uint8", "shape": [1]} for i in range(count)]))]
        return Case("parts", frames + [b"\x00"] * count)
    return _submit(rng, {"options": _cheap_options()}, [(descriptor, data)], category="parts")


def _huge_png_header() -> bytes:
    """The first bytes of a PNG that claims to be 100000 x 100000 pixels."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + bytes(64)


def oversize_cases(rng: random.Random, max_part_bytes: int) -> Iterator[Case]:
    """Messages above the caps: header, total parts, and one frame above MAXMSGSIZE (dropped)."""
    yield Case("oversize", [pack(header(rng, op="hello", body={"pad": "z" * (1 << 20)}))])
    third = max_part_bytes * 3 // 4
    parts = [({"name": f"p{i}", "dtype": "uint8", "shape": [third]}, bytes(third)) for i in range(3)]
    yield _submit(rng, {}, parts, category="oversize")
    big = max_part_bytes + (1 << 17)
    yield Case("oversize", [pack(header(rng, parts=[{"name": "image_file", "dtype": "uint8", "shape": [big]}])),
                            bytes(big)], expect="drop")


def _ops(rng: random.Random) -> Case:
    op = rng.choice(("cancel", "status", "clear", "hello", "ping", "heartbeat", "result", "progress", "accepted",
                     "error", "SUBMIT", "submit ", "\u00e9", ""))
    fields: dict[str, Any] = {"op": op, "body": rng.choice(({}, {"all": rng.choice(HOSTILE_VALUES)},
                                                             {"dead_after": rng.choice(HOSTILE_VALUES)}))}
    if rng.random() < 0.6:
        fields["job"] = rng.choice(("0" * 16, "nonexistent", "x" * 64, uuid.uuid4().hex[:16]))
    case = Case("ops", [pack(header(rng, **fields))])
    if op == "heartbeat":
        case.expect = "none"  # heartbeats are never answered; the test checks the server is still up after
    return case


def _extreme(rng: random.Random) -> Case:
    """Numbers far outside any physical range, NaN motion and a .npy declaring 75 GiB in 128 bytes."""
    choice = rng.randrange(5)
    if choice == 0:
        return _submit(rng, {"options": _cheap_options(**rng.choice(EXTREME_OPTIONS)),
                             "motion": {"kind": "drift", "drift": [0.0, 1.0]}}, category="extreme")
    if choice == 1:
        return _submit(rng, {"options": _cheap_options(), "motion": rng.choice(EXTREME_MOTIONS)}, category="extreme")
    if choice == 2:  # a motion field of huge or non-finite values, with a mask
        value = rng.choice((1e39, 3e38, np.nan, -np.inf))
        field = np.full((2, 8, 8), value, np.float32)
        mask = np.full((8, 8), 255, np.uint8)
        return _submit(rng, {"options": _cheap_options(speed=rng.choice((1.0, 100.0))), "motion": {"kind": "field"}},
                       [_image_part(), ({"name": "motion", "dtype": "float32", "shape": [2, 8, 8]}, field.tobytes()),
                        ({"name": "mask", "dtype": "uint8", "shape": [8, 8]}, mask.tobytes())], category="extreme")
    if choice == 3:
        blob = _npy_bomb(rng.choice(((2, 100000, 100000), (1, 2, 50000, 50000), (2, 8, 8))))
        return _submit(rng, {"options": _cheap_options(), "motion": {"kind": "file", "path": "m.npy"}},
                       [_image_part(), ({"name": "motion_file", "dtype": "uint8", "shape": [len(blob)]}, blob)],
                       category="extreme")
    return _submit(rng, {"options": _cheap_options(), "motion": {"kind": "drift", "drift": [0.0, 1.0]},
                         rng.choice(("image_name", "mask_name", "importance_name")): rng.choice(HOSTILE_VALUES)},
                   category="extreme")


def extreme_cases(rng: random.Random, count: int) -> Iterator[Case]:
    """``count`` cases of the extreme-value category."""
    for _ in range(count):
        yield _extreme(rng)


def _npy_bomb(shape: tuple[int, ...]) -> bytes:
    """A .npy header declaring ``shape`` float32 with at most a few bytes of data after it."""
    import io

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return header.getvalue() + bytes(16)


def header_bombs(rng: random.Random) -> Iterator[Case]:
    """Cheap headers that are costly to unpack: a million empty maps (1 MB), then ones just under the caps."""
    for body in ({"x": [{}] * 1_000_000}, {"x": [{}] * 60_000}, {"x": [[0] * 1000] * 60}, {"x": "y" * 60_000}):
        yield Case("header-bomb", [pack(header(rng, op="ping", body=body))])


def frame_count_cases(rng: random.Random, max_part_bytes: int) -> Iterator[Case]:
    """Messages whose frames, not their header, hold the memory: 300,000 empty frames; 16 frames of a whole part."""
    yield Case("frame-count", [pack(header(rng, op="ping"))] + [b""] * 300_000)
    part = max_part_bytes
    descriptors = [{"name": f"p{i}", "dtype": "uint8", "shape": [part]} for i in range(16)]
    # a whole part above the backend's per-frame cap: libzmq drops the connection at its first frame
    dropped = part > DEFAULT_MAX_FRAME_BYTES
    yield Case("frame-count", [pack(header(rng, parts=descriptors))] + [bytes(part)] * 16,
               expect="drop" if dropped else "reply")


_MAKERS: dict[str, Callable[[random.Random], Case]] = {
    "garbage": _garbage, "header": _header_case, "option": _option, "motion": _motion, "submit": _submit_body,
    "parts": _parts, "ops": _ops, "extreme": _extreme,
}


def cases(seed: int, count: int) -> Iterator[Case]:
    """``count`` seeded cases spread over the categories (oversize ones come separately)."""
    rng = random.Random(seed)
    names = sorted(_MAKERS)
    for index in range(count):
        yield _MAKERS[names[index % len(names)]](rng)


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Resident set size of a process (or another /proc status ``field``, e.g. VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for process {pid}")


def peak_rss_bytes(pid: int) -> int:
    """The highest resident set size of a process since start or the last ``reset_peak_rss``."""
    return rss_bytes(pid, "VmHWM")


def reset_peak_rss(pid: int) -> None:
    """Start a new peak measurement (Linux: writing 5 to clear_refs resets VmHWM to the current RSS)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def send_all(endpoint: str, batch: Iterator[Case], report: FuzzReport, timeout: float = 10.0) -> FuzzReport:
    """Send each case from one DEALER and classify its answer (a case expecting drop gets its own socket)."""
    context = zmq.Context.instance()
    socket = _dealer(context, endpoint)
    jobs: set[str] = set()
    try:
        for case in batch:
            report.sent += 1
            if case.expect == "drop":
                lone = _dealer(context, endpoint)
                lone.send_multipart(case.frames)
                if lone.poll(500):
                    report.explicit += 1
                else:
                    report.dropped += 1
                lone.close()
                continue
            req = _req_of(case.frames[0])
            socket.send_multipart(case.frames)
            if case.expect == "none":
                continue
            reply = _answer(socket, req, jobs, timeout)
            label = f"{case.category}: {case.frames[0][:120]!r}"
            if reply is None:
                report.silent.append(label)
                continue
            code = reply.body.get("code") if reply.op in ("error", "rejected") else reply.op
            report.codes[str(code)] = report.codes.get(str(code), 0) + 1
            if code == "internal":
                report.internal.append(f"{label} -> {reply.body.get('msg')}")
            else:
                report.explicit += 1
            if reply.op == "accepted" and reply.job:
                report.accepted += 1
                jobs.add(reply.job)
    finally:
        socket.close()
    return report


def _dealer(context: zmq.Context, endpoint: str) -> zmq.Socket:
    """A connected DEALER with LINGER 0."""
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(endpoint)
    return socket


def _req_of(frame: bytes) -> str | None:
    """The req id in a packed header, when there is one."""
    try:
        value = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except Exception:
        return None
    req = value.get("req") if isinstance(value, dict) else None
    return req if isinstance(req, str) and 1 <= len(req) <= 64 else None


def _answer(socket: zmq.Socket, req: str | None, jobs: set[str], timeout: float) -> Any:
    """The reply to the last request: same req, or (without one) an error that is not a job event."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        if not socket.poll(int(remaining * 1000) + 1):
            return None
        message = decode(socket.recv_multipart(), ops=SERVER_OPS)
        if req is not None and message.req == req:
            return message
        # a header the backend could not read (or one without req) is answered without a req
        if message.req is None and message.op not in _JOB_EVENTS and message.job not in jobs:
            return message
    return None
