"""Wire protocol: header codec, part validation, options and motion on the wire (no sockets)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stillflow.errors import BackendUnavailable, Cancelled, InputError, JobFailed, ProtocolError, StillflowError
from stillflow.options import MotionSpec, RenderOptions
from stillflow.link.protocol import (MESSAGE_TYPES, PROTOCOL_VERSION, REQUEST_OPS, SERVER_OPS, Limits, Message, check_image,
                                check_mask, decode, encode, error_from_wire, error_message, motion_from_wire,
                                motion_to_wire, options_from_wire, options_to_wire)

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_extension.py"


def _header(**fields: object) -> bytes:
    """A packed header with the given fields over a valid hello request."""
    header = {"v": PROTOCOL_VERSION, "op": "hello", "req": "r1", "job": None, "body": {}, "parts": []}
    header.update(fields)
    return msgpack.packb(header, use_bin_type=True)


class TestEncodeDecode:
    @pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.float32], ids=["uint8", "float16", "float32"])
    def test_round_trip(self, dtype: type) -> None:
        rng = np.random.default_rng(0)
        image = (rng.random((5, 7, 3)) * 200).astype(dtype)
        message = Message("submit", body={"options": {"frames": 4}}, parts={"image": image}, req="abc")
        decoded = decode(encode(message), ops=REQUEST_OPS)
        assert (decoded.op, decoded.req, decoded.job, decoded.body) == ("submit", "abc", None, {"options": {"frames": 4}})
        assert decoded.parts["image"].dtype == dtype
        np.testing.assert_array_equal(decoded.parts["image"], image)

    def test_non_contiguous_part_is_sent_in_c_order(self) -> None:
        image = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2]
        decoded = decode(encode(Message("x", parts={"a": image})), ops={"x"})
        np.testing.assert_array_equal(decoded.parts["a"], image)

    def test_encode_refuses_other_dtypes(self) -> None:
        with pytest.raises(InputError, match="dtype float64"):
            encode(Message("submit", parts={"image": np.zeros((2, 2, 3))}))

    def test_every_op_has_a_meaning(self) -> None:
        assert REQUEST_OPS <= set(MESSAGE_TYPES) and SERVER_OPS <= set(MESSAGE_TYPES)
        assert all(MESSAGE_TYPES.values())


class TestHeaderValidation:
    def test_version_is_checked_first(self) -> None:
        with pytest.raises(ProtocolError, match="protocol version 99 is not supported"):
            decode([_header(v=99, op="nonsense")], ops=REQUEST_OPS)

    @pytest.mark.parametrize("frame, match", [
        (b"\xc1", "not valid msgpack"),
        (msgpack.packb([1, 2]), "not a map"),
        (msgpack.packb({1: 2}), "not valid msgpack"),
        (_header()[:-3], "not valid msgpack"),
        (msgpack.packb({"v": 1, "op": "hello", "body": {"x": msgpack.ExtType(5, b"zz")}}), "not valid msgpack"),
        (_header(op="explode"), "unknown operation"),
        (_header(req=7), "req must be a string"),
        (_header(extra=1), "unknown header key"),
        (_header(body=[1]), "body must be a map"),
    ], ids=["reserved-byte", "list", "int-key", "truncated", "ext-type", "unknown-op", "req-type", "extra-key",
            "body-type"])
    def test_malformed_header(self, frame: bytes, match: str) -> None:
        with pytest.raises(ProtocolError, match=match):
            decode([frame], ops=REQUEST_OPS)

    def test_header_size_cap(self) -> None:
        with pytest.raises(ProtocolError, match="header is"):
            decode([_header(body={"pad": "x" * 2000})], limits=Limits(max_header_bytes=1000), ops=REQUEST_OPS)

    def test_empty_message(self) -> None:
        with pytest.raises(ProtocolError, match="empty message"):
            decode([], ops=REQUEST_OPS)


class TestParts:
    def _parts(self, descriptors: list[object], frames: list[bytes], limits: Limits = Limits()) -> dict:
        return decode([_header(parts=descriptors), *frames], limits=limits, ops=REQUEST_OPS).parts

    def test_views_without_copy(self) -> None:
        frame = bytearray(np.arange(6, dtype=np.float32).tobytes())
        array = self._parts([{"name": "m", "dtype": "float32", "shape": [2, 3]}], [frame])["m"]
        assert np.shares_memory(array, np.frombuffer(frame, dtype=np.uint8))

    @pytest.mark.parametrize("descriptor, frame, match", [
        ({"name": "a", "dtype": "float64", "shape": [2]}, bytes(16), "dtype 'float64'"),
        ({"name": "a", "dtype": "uint8", "shape": [3, 3]}, bytes(8), "declares 9 bytes"),
        ({"name": "a", "dtype": "uint8", "shape": [-1]}, bytes(1), "shape"),
        ({"name": "a", "dtype": "uint8", "shape": [1, 1, 1, 1, 1]}, bytes(1), "shape"),
        ({"name": "a", "dtype": "uint8", "shape": [True]}, bytes(1), "shape"),
        ({"name": "a b", "dtype": "uint8", "shape": [1]}, bytes(1), "name"),
        ({"name": "a", "dtype": "uint8"}, bytes(1), "exactly name, dtype and shape"),
        ({"name": "a", "dtype": "float32", "shape": [1 << 40, 1 << 40]}, bytes(4), "declares .* bytes; at most"),
    ], ids=["dtype", "length", "negative", "ndim", "bool-dim", "name", "missing-shape", "huge"])
    def test_bad_descriptor(self, descriptor: dict, frame: bytes, match: str) -> None:
        with pytest.raises(ProtocolError, match=match):
            self._parts([descriptor], [frame])

    def test_frame_count_must_match(self) -> None:
        with pytest.raises(ProtocolError, match="declares 1 parts but carries 1 frames more"):
            self._parts([{"name": "a", "dtype": "uint8", "shape": [1]}], [b"x", b"y"])

    def test_duplicate_name(self) -> None:
        part = {"name": "a", "dtype": "uint8", "shape": [1]}
        with pytest.raises(ProtocolError, match="twice"):
            self._parts([part, part], [b"x", b"y"])

    def test_part_size_cap(self) -> None:
        with pytest.raises(ProtocolError, match="at most 10 accepted"):
            self._parts([{"name": "a", "dtype": "uint8", "shape": [11]}], [bytes(11)], Limits(max_part_bytes=10))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(st.binary(max_size=64), min_size=1, max_size=4))
def test_random_frames_never_crash(frames: list[bytes]) -> None:
    """Arbitrary bytes decode or raise ProtocolError/InputError, nothing else."""
    try:
        decode(frames, ops=REQUEST_OPS)
    except (ProtocolError, InputError):
        pass


class TestOptionsAndMotion:
    def test_options_round_trip(self) -> None:
        options = RenderOptions(frames=12, speed=0.5, format="exr", refine_mask=False)
        assert options_from_wire(options_to_wire(options)) == options

    def test_options_must_be_a_map(self) -> None:
        with pytest.raises(InputError, match="options must be a map"):
            options_from_wire([1, 2])

    def test_bad_option_is_named(self) -> None:
        with pytest.raises(InputError, match="frames must be"):
            options_from_wire({"frames": 0})

    @pytest.mark.parametrize("motion", [
        MotionSpec(kind="hints", hints=((1.0, 2.0, 30.0, 4.0),), anchors=((5.0, 6.0),), anchor_radius=8.0),
        MotionSpec(kind="drift", drift=(90.0, 1.5)),
        MotionSpec(kind="file", path="/data/wind.npy"),
        MotionSpec(kind="auto"),
        MotionSpec(),
    ], ids=["hints", "drift", "file", "auto", "none"])
    def test_motion_round_trip(self, motion: MotionSpec) -> None:
        body, parts = motion_to_wire(motion)
        decoded = decode(encode(Message("x", body={"motion": body}, parts=parts)), ops={"x"})
        assert motion_from_wire(decoded.body["motion"], decoded.parts) == motion

    def test_field_round_trip(self) -> None:
        field = np.random.default_rng(1).normal(size=(2, 6, 8)).astype(np.float32)
        body, parts = motion_to_wire(MotionSpec(kind="field", field=field))
        decoded = decode(encode(Message("x", body={"motion": body}, parts=parts)), ops={"x"})
        np.testing.assert_array_equal(motion_from_wire(decoded.body["motion"], decoded.parts).field, field)

    def test_non_finite_field_is_refused(self) -> None:
        field = np.zeros((2, 4, 4), np.float32)
        field[0, 1, 1] = np.nan
        field[1, 2, 2] = np.inf
        with pytest.raises(InputError, match="2 non-finite value"):
            motion_from_wire({"kind": "field"}, {"motion": field})

    @pytest.mark.parametrize("body, parts, match", [
        ({"kind": "hints", "hints": [[1, 2, 3]]}, {}, "needs 4 finite numbers"),
        ({"kind": "hints", "hints": [[1, 2, 3, float("nan")]]}, {}, "needs 4 finite numbers"),
        ({"kind": "drift", "drift": [0, -1]}, {}, "drift speed"),
        ({"kind": "none"}, {"motion": np.zeros((2, 2, 2), np.float32)}, "set kind to field"),
        ({"kind": "field"}, {"motion": np.zeros((3, 2, 2), np.float32)}, "expected \\(2, h, w\\)"),
        ({"kind": "warp"}, {}, "motion kind must be"),
        ({"kind": "none", "speed": 3}, {}, "unknown motion key"),
        ([], {}, "motion must be a map"),
    ], ids=["short-hint", "nan-hint", "negative-drift", "stray-field", "field-shape", "kind", "extra-key", "type"])
    def test_bad_motion(self, body: object, parts: dict, match: str) -> None:
        with pytest.raises(InputError, match=match):
            motion_from_wire(body, parts)


class TestImageChecks:
    def test_image_shape(self) -> None:
        with pytest.raises(InputError, match="expected \\(H, W, 3\\)"):
            check_image(np.zeros((4, 4, 2), np.uint8))

    def test_image_side_cap(self) -> None:
        with pytest.raises(InputError, match="sides must be 1 to 8 px"):
            check_image(np.zeros((4, 9, 3), np.uint8), Limits(max_image_side=8))

    def test_non_finite_image(self) -> None:
        image = np.zeros((2, 2, 3), np.float32)
        image[0, 0, 0] = np.inf
        with pytest.raises(InputError, match="1 non-finite"):
            check_image(image)

    def test_mask_shape(self) -> None:
        with pytest.raises(InputError, match="mask has shape"):
            check_mask(np.zeros((4, 4, 3), np.uint8))


class TestErrors:
    @pytest.mark.parametrize("error", [InputError("bad"), ProtocolError("bad"), BackendUnavailable("bad"),
                                       Cancelled("bad"), JobFailed("bad")], ids=lambda e: type(e).__name__)
    def test_error_round_trip(self, error: StillflowError) -> None:
        decoded = decode(encode(error_message(error, req="r")), ops=SERVER_OPS)
        back = error_from_wire(decoded.body)
        assert type(back) is type(error) and str(back) == "bad"

    def test_internal_becomes_job_failed(self) -> None:
        assert isinstance(error_from_wire({"code": "internal", "msg": "boom"}), JobFailed)
        assert isinstance(error_from_wire({"code": 5}), JobFailed)


def test_protocol_and_client_import_without_torch() -> None:
    code = ("import sys; import stillflow.link.protocol, stillflow.link.client, stillflow.io.frames; "
            "bad = [m for m in ('torch', 'cv2', 'bpy', 'stillflow.pipeline') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_protocol_and_client_modules_are_vendored() -> None:
    """Every stillflow module the protocol, client and frame writer load is in the add-on's VENDORED list."""
    code = ("import pathlib, sys, stillflow, stillflow.link.protocol, stillflow.link.client, stillflow.link.launcher, "
            "stillflow.io.frames; "
            "root = pathlib.Path(stillflow.__file__).parent; "
            "print(*(pathlib.Path(m.__file__).relative_to(root).as_posix() for n, m in list(sys.modules.items()) "
            "if n.startswith('stillflow.') and getattr(m, '__file__', None)))")
    done = subprocess.run([sys.executable, "-c", code], check=True, timeout=60, capture_output=True, text=True)
    spec = importlib.util.spec_from_file_location("build_extension", BUILD_SCRIPT)
    build = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BUILD_SCRIPT.parent))  # the script imports its sibling modules
    try:
        spec.loader.exec_module(build)
    finally:
        sys.path.remove(str(BUILD_SCRIPT.parent))
    packages = tuple(name for name in build.VENDORED if name.endswith("/"))
    missing = {m for m in done.stdout.split() if m not in build.VENDORED and not m.startswith(packages)}
    assert not missing, f"add {sorted(missing)} to VENDORED in scripts/build_extension.py"
