"""Exact checks of what a client sends (no sockets): header, parts, options, echoes and image headers."""
from __future__ import annotations

import math
from pathlib import Path

import msgpack
import numpy as np
import pytest

from stillflow.errors import InputError, ProtocolError, StillflowError, shown
from stillflow.io.headers import check_image_header, image_size
from stillflow.link.protocol import (PROTOCOL_VERSION, REQUEST_OPS, Limits, Message, decode, encode, error_message,
                                     options_from_wire)
from stillflow.options import RenderOptions


def _frames(parts: list, frames: list[bytes], **fields: object) -> list[bytes]:
    header = {"v": PROTOCOL_VERSION, "op": "submit", "req": "r", "body": {}, "parts": parts}
    header.update(fields)
    return [msgpack.packb(header, use_bin_type=True), *frames]


@pytest.mark.parametrize("version", [1.0, True, "1", None, 2**64 - 1])
def test_version_must_be_the_integer_one(version: object) -> None:
    with pytest.raises(ProtocolError, match="is not supported"):
        decode(_frames([], [], v=version), ops=REQUEST_OPS)


@pytest.mark.parametrize("descriptor", [
    {"name": "image", "dtype": ["uint8"], "shape": [1]},
    {"name": "image", "dtype": {"a": 1}, "shape": [1]},
    {"name": "image", "dtype": "uint8", "shape": [0, 2**62, 2**62]},
    {"name": "image", "dtype": "uint8", "shape": [0, 2**63 - 1]},
    {"name": "image", "dtype": "uint8", "shape": [-1, 2]},
    {"name": "image", "dtype": "uint8", "shape": [True, 2]},
])
def test_bad_part_descriptors_are_protocol_errors(descriptor: dict) -> None:
    with pytest.raises(ProtocolError):
        decode(_frames([descriptor], [b""]), ops=REQUEST_OPS)


def test_all_parts_together_are_capped() -> None:
    limits = Limits(max_part_bytes=100)
    parts = [{"name": f"p{i}", "dtype": "uint8", "shape": [80]} for i in range(3)]
    with pytest.raises(ProtocolError, match="240 bytes together; at most 200"):
        decode(_frames(parts, [bytes(80)] * 3), limits=limits, ops=REQUEST_OPS)
    assert Limits.from_wire(limits.to_wire()) == limits


@pytest.mark.parametrize("options, match", [
    ({"seed": 1e308}, "option seed has the wrong type"),
    ({"seed": 2**63}, "seed must be an integer from 0 to 2"),
    ({"seed": -1}, "seed must be an integer"),
    ({"frames": 4.0}, "option frames has the wrong type"),
    ({"frames": True}, "option frames has the wrong type"),
    ({"fps": math.inf}, "option fps must be a finite number"),
    ({"min_region_frac": math.nan}, "option min_region_frac must be a finite number"),
    ({"once": 1}, "option once has the wrong type"),
    ({"engine": ["loop"]}, "option engine has the wrong type"),
    ({"models": "m" * 5000}, "models must be a folder path of 1 to 4096"),
    ({"device": "d" * 100}, "device must be auto"),
])
def test_options_have_exact_types_and_ranges(options: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        options_from_wire(options)


def test_valid_options_still_round_trip() -> None:
    options = RenderOptions(frames=8, fps=12, seed=2**63 - 1)
    assert options_from_wire(options.to_dict()) == options
    assert options_from_wire({"fps": 24}).fps == 24.0


def test_echoes_are_cut_short() -> None:
    assert len(shown("x" * 10**6)) == 60 and shown("x" * 10**6).endswith("...")
    assert shown(1.5) == "1.5"
    with pytest.raises(InputError) as caught:
        options_from_wire({"format": "p" * 10**6})
    assert len(str(caught.value)) < 200
    reply = error_message(StillflowError("y" * 10**5))
    assert len(reply.body["msg"]) == 400
    assert len(encode(reply)[0]) < 600


def test_unencodable_values_are_an_input_error() -> None:
    with pytest.raises(InputError, match="cannot be encoded"):
        encode(Message("result", {"seed": 2**64}))


def test_image_sizes_come_from_the_headers(tmp_path: Path) -> None:
    import cv2

    from stillflow.io.images import save_frame

    pixels = np.zeros((37, 53, 3), np.uint8)
    for suffix in (".png", ".jpg"):
        assert image_size(cv2.imencode(suffix, pixels)[1].tobytes()) == (53, 37)
    # a JPEG with a large metadata segment before its frame header
    jpeg = cv2.imencode(".jpg", pixels)[1].tobytes()
    app = b"\xff\xe1" + (40002).to_bytes(2, "big") + bytes(40000)
    assert image_size(jpeg[:2] + app + jpeg[2:]) == (53, 37)
    save_frame(tmp_path / "a.exr", pixels.astype(np.float32), "exr")
    assert image_size((tmp_path / "a.exr").read_bytes()) == (53, 37)
    assert image_size(b"GIF89a" + bytes(20)) is None
    with pytest.raises(InputError, match="cut short or malformed"):
        image_size(cv2.imencode(".png", pixels)[1].tobytes()[:14])
    with pytest.raises(InputError, match="53x37 px; sides must be 1 to 40 px"):
        check_image_header(tmp_path / "a.exr", "image", 40, known_only=False)
    with pytest.raises(InputError, match="not a PNG, JPEG or OpenEXR"):
        check_image_header(b"BM" + bytes(60), "image_file", 40, known_only=True)
    check_image_header(b"BM" + bytes(60), "image", 40, known_only=False)
