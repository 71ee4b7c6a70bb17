"""Image dimensions read from a PNG, JPEG or OpenEXR header, so oversized files are refused undecoded.

No torch, no OpenCV: a few hundred bytes of the file are parsed by hand. A small file can
declare a huge image (a decompression bomb); the service checks this before anything decodes it.
"""
from __future__ import annotations

import struct
from pathlib import Path

from ..errors import InputError

__all__ = ["image_size", "check_image_header", "check_still_file", "HEADER_BYTES"]

HEADER_BYTES = 4 << 20
"""How much of a file is read to find its dimensions (JPEG metadata can come before the frame header)."""

_PNG = b"\x89PNG\r\n\x1a\n"
_EXR = b"\x76\x2f\x31\x01"
_TIFF = (b"II*\x00", b"MM\x00*")
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def image_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) declared by a PNG, JPEG or EXR header; None when the format is not one of them.

    Raises:
        InputError: the file starts like one of them but its header is cut short or malformed.
    """
    try:
        if head.startswith(_PNG):
            return _png_size(head)
        if head.startswith(b"\xff\xd8"):
            return _jpeg_size(head)
        if head.startswith(_EXR):
            return _exr_size(head)
    except (struct.error, IndexError, ValueError):
        raise InputError("the image file's header is cut short or malformed") from None
    return None


def check_image_header(source: bytes | memoryview | str | Path, what: str, max_side: int,
                       *, known_only: bool) -> None:
    """Raise InputError when the file (bytes or path) declares a side above ``max_side`` px.

    Args:
        known_only: refuse formats other than PNG, JPEG and EXR (for bytes sent by a client).
    """
    if isinstance(source, (str, Path)):
        try:
            with open(source, "rb") as handle:
                head = handle.read(HEADER_BYTES)
        except OSError:
            return  # the reader reports a missing or unreadable file in its own words
    else:
        head = bytes(memoryview(source)[:HEADER_BYTES])
    size = image_size(head)
    if size is None:
        if known_only:
            raise InputError(f"{what} is not a PNG, JPEG or OpenEXR file", hint="send PNG, JPEG or EXR bytes")
        return
    width, height = size
    if min(width, height) < 1 or max(width, height) > max_side:
        raise InputError(f"{what} is {width}x{height} px; sides must be 1 to {max_side} px",
                         hint="downscale the image before sending it")


def check_still_file(path: str | Path, what: str) -> None:
    """Raise InputError when the file at ``path`` is not a PNG, JPEG, TIFF or OpenEXR image (a missing one passes)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEADER_BYTES)
    except OSError:
        return  # the reader reports a missing or unreadable file in its own words
    if not head.startswith(_TIFF) and image_size(head) is None:
        raise InputError(f"{what} is not an image file (its content is not PNG, JPEG, TIFF or OpenEXR)",
                         hint="replace it with the still or remove it")


def _png_size(head: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk."""
    if head[12:16] != b"IHDR":
        raise ValueError("no IHDR")
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _jpeg_size(head: bytes) -> tuple[int, int]:
    """Width and height from the first start-of-frame segment."""
    index = 2
    while True:
        while head[index] != 0xFF:
            index += 1
        while head[index] == 0xFF:
            index += 1
        marker = head[index]
        index += 1
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        (length,) = struct.unpack(">H", head[index:index + 2])
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack(">HH", head[index + 3:index + 7])
            return width, height
        if length < 2:
            raise ValueError("bad segment length")
        index += length


def _exr_size(head: bytes) -> tuple[int, int]:
    """Width and height of the dataWindow attribute of the first header."""
    index = 8
    while head[index] != 0:
        name_end = head.index(b"\x00", index)
        type_end = head.index(b"\x00", name_end + 1)
        name = head[index:name_end]
        (size,) = struct.unpack("<i", head[type_end + 1:type_end + 5])
        value = type_end + 5
        if name == b"dataWindow":
            x_min, y_min, x_max, y_max = struct.unpack("<iiii", head[value:value + 16])
            return x_max - x_min + 1, y_max - y_min + 1
        if size < 0:
            raise ValueError("bad attribute size")
        index = value + size
    raise ValueError("no dataWindow")
