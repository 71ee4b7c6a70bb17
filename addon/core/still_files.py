"""Which saved stills the backend may decode itself, to the same bytes Blender shows (no bpy).

No ``bpy`` module use. A still that is an 8-bit grey or RGB PNG or JPEG, saved and unchanged in
Blender, decodes to the same bytes in Blender and in the backend (both read the file as it is:
no alpha, no EXIF rotation, no colour profile; checked for JPEG against libjpeg-turbo in Blender
and OpenCV). Sending the file lets Generate skip reading 8-megapixel pixel buffers on Blender's
main thread (issue 24, point 10); everything else is read through ``Image.pixels`` as before.
"""
from __future__ import annotations

__all__ = ["plain_8bit_size"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_GREY, _PNG_RGB = 0, 2
_JPEG_FRAMES = {0xC0, 0xC1, 0xC2}
"""Baseline, extended and progressive Huffman-coded JPEG frames (what OpenCV and Blender both decode)."""
_HEADER_BYTES = 1 << 16


def plain_8bit_size(path: str) -> tuple[int, int] | None:
    """(width, height) of an 8-bit grey or RGB PNG or an 8-bit grey or colour JPEG, from its header; else None."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(_HEADER_BYTES)
    except OSError:
        return None
    if head.startswith(_PNG_SIGNATURE):
        if len(head) >= 26 and head[12:16] == b"IHDR" and head[24] == 8 and head[25] in (_PNG_GREY, _PNG_RGB):
            return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        return None
    return _jpeg_size(head) if head.startswith(b"\xff\xd8") else None


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) when the JPEG's frame header says 8-bit samples and 1 or 3 components (no CMYK)."""
    offset = 2
    while offset + 4 <= len(head):
        if head[offset] != 0xFF:
            return None
        marker = head[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        length = int.from_bytes(head[offset + 2:offset + 4], "big")
        if marker in _JPEG_FRAMES:
            if offset + 10 > len(head) or head[offset + 4] != 8 or head[offset + 9] not in (1, 3):
                return None
            height = int.from_bytes(head[offset + 5:offset + 7], "big")
            return int.from_bytes(head[offset + 7:offset + 9], "big"), height
        if 0xC3 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # lossless, arithmetic, ...: not plain
            return None
        if marker == 0xDA:  # scan data before any frame header
            return None
        offset += 2 + length
    return None
