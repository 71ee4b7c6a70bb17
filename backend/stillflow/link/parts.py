"""Binary parts of a message and the size caps: wire dtypes, Limits, part descriptors, image checks.

Part of the wire protocol (see ``protocol.py``); no torch, bundled into the add-on. Frames 1..
of a message are raw C-order little-endian buffers, in the order of the header's ``parts`` list of
``{name, dtype, shape}`` entries. A part travels as one frame or, above the receiver's
``max_frame_bytes``, as consecutive frames of at most that size (its chunks): the backend's
per-frame cap (ZMQ_MAXMSGSIZE) then bounds what any one frame of a hostile message can hold.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError, ProtocolError, shown
from ..options import MAX_FRAMES, MAX_IMAGE_SIDE

__all__ = ["WIRE_DTYPES", "MAX_HEADER_BYTES", "MAX_HEADER_VALUES", "REQUEST_HEADER_BYTES", "REQUEST_HEADER_VALUES",
           "MAX_PARTS", "DEFAULT_MAX_PART_BYTES", "DEFAULT_MAX_FRAME_BYTES", "Limits", "pack_parts", "chunk_frames",
           "read_parts", "frame_bytes", "check_image", "check_mask", "check_message_size", "to_wire_dtype"]

WIRE_DTYPES: dict[str, np.dtype] = {
    "uint8": np.dtype("|u1"),
    "float16": np.dtype("<f2"),
    "float32": np.dtype("<f4"),
}
"""The only element types a binary part may have."""

MAX_HEADER_BYTES = 1 << 20
"""Largest accepted msgpack header (1 MiB); hints and manifests fit with room to spare."""

MAX_HEADER_VALUES = 1 << 16
"""Most values (map entries and list items, nested ones included) one header may hold."""

REQUEST_HEADER_BYTES = 64 << 10
"""Largest request header the backend accepts (64 KiB: a submit with 1,024 arrows is under 50 KiB)."""

REQUEST_HEADER_VALUES = 8192
"""Most values a request header may hold: unpacking and checking one costs the I/O loop a few ms."""

MAX_PARTS = 16
"""Most binary parts in one message (a submit needs at most five)."""

DEFAULT_MAX_PART_BYTES = 1 << 30
"""Default largest binary part (1 GiB, e.g. 8192 x 8192 RGBA float32)."""

DEFAULT_MAX_FRAME_BYTES = 8 << 20
"""Largest frame a backend accepts (8 MiB): bigger parts come in chunks of this size."""

_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,200}")


@dataclass(frozen=True, slots=True)
class Limits:
    """Size caps the backend enforces and advertises in ``hello``."""

    max_image_side: int = MAX_IMAGE_SIDE
    max_frames: int = MAX_FRAMES
    max_part_bytes: int = DEFAULT_MAX_PART_BYTES
    max_header_bytes: int = MAX_HEADER_BYTES
    max_header_values: int = MAX_HEADER_VALUES
    max_parts: int = MAX_PARTS
    max_message_bytes: int = 0
    """All parts of one message together; 0 = twice max_part_bytes (an image with its mask and motion)."""
    max_frame_bytes: int = 0
    """Largest frame; a bigger part comes as several. 0 = each part in one frame (what a peer that
    does not advertise it reads)."""

    def __post_init__(self) -> None:
        if self.max_message_bytes <= 0:
            object.__setattr__(self, "max_message_bytes", 2 * self.max_part_bytes)

    def to_wire(self) -> dict[str, int]:
        """Plain values for the hello reply."""
        return {"max_image_side": self.max_image_side, "max_frames": self.max_frames,
                "max_part_bytes": self.max_part_bytes, "max_header_bytes": self.max_header_bytes,
                "max_header_values": self.max_header_values, "max_parts": self.max_parts,
                "max_message_bytes": self.max_message_bytes, "max_frame_bytes": self.max_frame_bytes}

    @property
    def max_data_frames(self) -> int:
        """Most part frames one message may carry under these limits."""
        if self.max_frame_bytes <= 0:
            return self.max_parts
        return self.max_parts + -(-self.max_message_bytes // self.max_frame_bytes)

    @classmethod
    def for_requests(cls, max_part_bytes: int = DEFAULT_MAX_PART_BYTES) -> "Limits":
        """The limits a backend enforces on what clients send (small headers, few values)."""
        return cls(max_part_bytes=max_part_bytes, max_header_bytes=REQUEST_HEADER_BYTES,
                   max_header_values=REQUEST_HEADER_VALUES,
                   max_frame_bytes=min(DEFAULT_MAX_FRAME_BYTES, max_part_bytes))

    @classmethod
    def from_wire(cls, values: Mapping[str, Any]) -> "Limits":
        """Read the limits from a hello reply (missing keys keep their defaults)."""
        known = {k: int(v) for k, v in values.items() if k in cls.__dataclass_fields__ and _is_int(v)}
        return cls(**known)


def pack_parts(parts: Mapping[str, np.ndarray]) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """The header's part descriptors and one contiguous little-endian buffer per part.

    Raises:
        InputError: a part has a dtype outside WIRE_DTYPES.
    """
    descriptors = []
    buffers = []
    for name, array in parts.items():
        dtype_name = _wire_dtype_name(array.dtype)
        if dtype_name is None:
            raise InputError(f"part {name} has dtype {array.dtype}; the wire carries {', '.join(WIRE_DTYPES)}")
        buffers.append(np.ascontiguousarray(array, dtype=WIRE_DTYPES[dtype_name]))
        descriptors.append({"name": name, "dtype": dtype_name, "shape": list(array.shape)})
    return descriptors, buffers


def chunk_frames(buffers: Sequence[np.ndarray], max_frame_bytes: int) -> list[memoryview | np.ndarray]:
    """The frames that carry ``buffers``: each whole, or in chunks of ``max_frame_bytes`` (0 = whole)."""
    frames: list[memoryview | np.ndarray] = []
    for buffer in buffers:
        if max_frame_bytes <= 0 or buffer.nbytes <= max_frame_bytes:
            frames.append(buffer)
            continue
        flat = memoryview(buffer).cast("B")
        frames.extend(flat[start:start + max_frame_bytes] for start in range(0, flat.nbytes, max_frame_bytes))
    return frames


def read_parts(header: Mapping[str, Any], frames: list[Any] | Sequence[Any], limits: Limits = Limits(), *,
               consume: bool = False) -> dict[str, np.ndarray]:
    """Named read-only arrays from ``frames`` (views of whole-part frames, chunks joined), each descriptor checked.

    ``consume``: drop each chunk from the list ``frames`` once copied, so that a message never
    costs its bytes twice over (the caller holds no other reference to them).
    """
    descriptors = header.get("parts") or []
    if len(descriptors) > limits.max_parts:
        raise ProtocolError(f"message declares {len(descriptors)} parts; at most {limits.max_parts} accepted")
    if len(frames) > limits.max_data_frames:
        raise ProtocolError(f"message carries {len(frames)} part frames; at most {limits.max_data_frames} accepted")
    sizes = [frame_bytes(frame).nbytes for frame in frames]
    if sum(sizes) > limits.max_message_bytes:
        raise ProtocolError(f"message parts hold {sum(sizes)} bytes together; at most {limits.max_message_bytes} "
                            "accepted", hint="send a smaller image")
    parts: dict[str, np.ndarray] = {}
    at = 0
    for descriptor in descriptors:
        name, dtype, shape = _check_descriptor(descriptor, limits)
        if name in parts:
            raise ProtocolError(f"part {name} appears twice")
        expected = math.prod(shape) * dtype.itemsize
        buffer, at = _take_part(frames, sizes, at, expected, name, limits, consume)
        array = np.frombuffer(buffer, dtype=dtype).reshape(shape)
        array.flags.writeable = False  # joined chunks too: no part is the receiver's to change
        parts[name] = array
    if at != len(sizes):
        raise ProtocolError(f"message declares {len(descriptors)} parts but carries {len(sizes) - at} frames more "
                            "than they hold")
    return parts


def _take_part(frames: Any, sizes: Sequence[int], at: int, expected: int, name: str, limits: Limits,
               consume: bool) -> tuple[memoryview | np.ndarray, int]:
    """The bytes of one part starting at frame ``at`` (one frame, or chunks joined) and the next frame's index."""
    if at >= len(sizes):
        raise ProtocolError(f"part {name} has no frame", hint="send one frame (or chunks) per declared part")
    if sizes[at] == expected:
        return frame_bytes(frames[at]), at + 1
    got, end = 0, at
    while end < len(sizes) and limits.max_frame_bytes > 0 and 0 < sizes[end] and got + sizes[end] <= expected:
        got += sizes[end]
        end += 1
        if got == expected:
            break
    if got != expected:
        raise ProtocolError(f"part {name} declares {expected} bytes but its frames hold {got or sizes[at]}",
                            hint="send each part whole or in chunks that add up to it")
    joined = np.empty(expected, np.uint8)  # untouched pages: resident only as chunks land, chunk for chunk
    offset = 0
    for index in range(at, end):
        joined[offset:offset + sizes[index]] = np.frombuffer(frame_bytes(frames[index]), np.uint8)
        offset += sizes[index]
        if consume:
            frames[index] = None
    return joined, end


def check_message_size(parts: Mapping[str, np.ndarray], limits: Limits) -> None:
    """InputError when the parts together exceed ``limits.max_message_bytes`` (checked before sending)."""
    total = sum(array.nbytes for array in parts.values())
    if total > limits.max_message_bytes:
        raise InputError(f"the inputs are {total / 2**20:.1f} MiB together; the backend accepts up to "
                         f"{limits.max_message_bytes / 2**20:.1f} MiB per job", hint="send a smaller image")


def frame_bytes(frame: Any) -> memoryview:
    """A flat byte view of a zmq.Frame, bytes or buffer without copying."""
    view = frame.buffer if hasattr(frame, "buffer") else memoryview(frame)
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


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


def to_wire_dtype(array: np.ndarray, what: str) -> np.ndarray:
    """``array`` in a wire dtype: uint16 scaled to float32 [0, 1], bool to 0/255, float64 to float32."""
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype.kind == "f" and array.dtype.itemsize == 8:
        return array.astype(np.float32)
    if array.dtype not in (np.uint8, np.float16, np.float32):
        raise InputError(f"{what} has dtype {array.dtype}; expected uint8, uint16 or float")
    return array


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
        raise ProtocolError(f"part name {shown(name)} is invalid", hint="use 1-200 of A-Z a-z 0-9 _ . : / -")
    dtype_name = descriptor["dtype"]
    if not isinstance(dtype_name, str) or dtype_name not in WIRE_DTYPES:
        raise ProtocolError(f"part {name} has dtype {shown(dtype_name)}",
                            hint=f"the wire carries {', '.join(WIRE_DTYPES)}")
    shape = descriptor["shape"]
    if (not isinstance(shape, list) or not 1 <= len(shape) <= 4
            or not all(_is_int(d) and d >= 0 for d in shape)):
        raise ProtocolError(f"part {name} has shape {shown(shape)}; expected 1 to 4 sizes >= 0")
    dtype = WIRE_DTYPES[dtype_name]
    # a zero-size part with huge other sides would still overflow numpy's shape arithmetic
    nbytes = math.prod(max(1, d) for d in shape) * dtype.itemsize
    if nbytes > limits.max_part_bytes:
        raise ProtocolError(f"part {name} declares {nbytes} bytes; at most {limits.max_part_bytes} accepted",
                            hint="send a smaller image or raise the backend's --max-part-mb")
    return name, dtype, tuple(shape)


def _wire_dtype_name(dtype: np.dtype) -> str | None:
    """The WIRE_DTYPES name of ``dtype`` (any byte order), or None when not carried."""
    for name, wire in WIRE_DTYPES.items():
        if dtype.kind == wire.kind and dtype.itemsize == wire.itemsize:
            return name
    return None


def _is_int(value: Any) -> bool:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)
