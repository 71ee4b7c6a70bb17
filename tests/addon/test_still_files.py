"""addon/core/still_files.py: which still files the backend may decode itself (plain Python, real header bytes)."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from addon.core.still_files import plain_8bit_size


def _png(path: Path, width: int, height: int, depth: int, colour_type: int) -> Path:
    """A PNG file's signature and IHDR chunk (all the check reads)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
                     + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)))
    return path


def _jpeg(path: Path, width: int, height: int, precision: int, components: int, frame: int = 0xC0) -> Path:
    """A JPEG's SOI, an APP0 segment and a frame header."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + bytes(9)
    sof = bytes([0xFF, frame]) + struct.pack(">HBHHB", 8 + 3 * components, precision, height, width, components)
    path.write_bytes(b"\xff\xd8" + app0 + sof + bytes(3 * components))
    return path


class TestPlain8BitSize:
    @pytest.mark.parametrize("colour_type", [0, 2], ids=["grey", "rgb"])
    def test_feature_png(self, tmp_path: Path, colour_type: int) -> None:
        assert plain_8bit_size(str(_png(tmp_path / "a.png", 3264, 2448, 8, colour_type))) == (3264, 2448)

    @pytest.mark.parametrize(("depth", "colour_type"), [(16, 2), (8, 6), (8, 3), (8, 4)],
                             ids=["16-bit", "rgba", "palette", "grey-alpha"])
    def test_exception_png_read_through_blender(self, tmp_path: Path, depth: int, colour_type: int) -> None:
        assert plain_8bit_size(str(_png(tmp_path / "a.png", 64, 48, depth, colour_type))) is None

    @pytest.mark.parametrize("frame", [0xC0, 0xC2], ids=["baseline", "progressive"])
    def test_feature_jpeg(self, tmp_path: Path, frame: int) -> None:
        assert plain_8bit_size(str(_jpeg(tmp_path / "a.jpg", 640, 480, 8, 3, frame))) == (640, 480)

    @pytest.mark.parametrize(("precision", "components", "frame"), [(8, 4, 0xC0), (12, 3, 0xC1), (8, 3, 0xC3)],
                             ids=["cmyk", "12-bit", "lossless"])
    def test_exception_jpeg_read_through_blender(self, tmp_path: Path, precision: int, components: int,
                                                  frame: int) -> None:
        assert plain_8bit_size(str(_jpeg(tmp_path / "a.jpg", 64, 48, precision, components, frame))) is None

    def test_exception_other_files(self, tmp_path: Path) -> None:
        (tmp_path / "a.exr").write_bytes(b"\x76\x2f\x31\x01" + bytes(60))
        assert plain_8bit_size(str(tmp_path / "a.exr")) is None
        assert plain_8bit_size(str(tmp_path / "missing.png")) is None
