"""No client starves the others and every value is bounded: header budgets, extreme numbers, reply quotas.

Each test talks to a real backend process over loopback.
"""
from __future__ import annotations

import io
import sys
import threading
import uuid
from pathlib import Path
from typing import Any, Iterator

import msgpack
import numpy as np
import pytest

from stillflow.errors import BackendUnavailable, EncoderFailed, InputError
from stillflow.io.video import encode_video
from stillflow.link.client import Client
from stillflow.link.launcher import LocalBackend, start_local_backend
from stillflow.link.protocol import PROTOCOL_VERSION, Message, encode
from stillflow.options import MotionSpec, RenderOptions

from .service_helpers import dealer, image, reply_to, wait_render

pytestmark = pytest.mark.slow

SMALL = {"frames": 2, "levels": 1}


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBackend]:
    folder = tmp_path_factory.mktemp("bounds")
    started = start_local_backend(sys.executable, log_path=str(folder / "serve.log"), timeout=120.0,
                                  results_dir=folder / "results")
    yield started
    assert started.stop() == 0, Path(started.log_path).read_text()[-2000:]


def _ask(endpoint: str, op: str, body: dict[str, Any], parts: dict[str, np.ndarray] | None = None,
         req: str | None = None) -> Message:
    """Send one raw request and return its reply."""
    socket = dealer(endpoint)
    try:
        req = req or uuid.uuid4().hex
        socket.send_multipart(encode(Message(op, body=body, parts=parts or {}, req=req)))
        return reply_to(socket, req)
    finally:
        socket.close()


def _raw(endpoint: str, header: dict[str, Any]) -> Message:
    """Send a hand-packed header and return the reply."""
    socket = dealer(endpoint)
    try:
        socket.send_multipart([msgpack.packb(header, use_bin_type=True)])
        return reply_to(socket, header["req"])
    finally:
        socket.close()


def _rejected(endpoint: str, body: dict[str, Any], parts: dict[str, np.ndarray] | None = None) -> str:
    """The message of a submit the backend must reject as bad input."""
    reply = _ask(endpoint, "submit", body, {"image": image(1, 8, 8), **(parts or {})})
    assert reply.op == "rejected" and reply.body["code"] == InputError.wire_code, reply
    return str(reply.body["msg"])


class TestHeaderBudget:
    def test_a_header_of_many_small_values_is_refused_unread(self, backend: LocalBackend) -> None:
        header = {"v": PROTOCOL_VERSION, "op": "ping", "req": "bomb", "body": {"x": [{}] * 20000}}
        reply = _raw(backend.endpoint, header)
        assert reply.op == "error" and reply.body["code"] == "protocol", reply
        assert "more than 8192 values" in reply.body["msg"]

    def test_a_header_above_64_kib_is_refused(self, backend: LocalBackend) -> None:
        header = {"v": PROTOCOL_VERSION, "op": "ping", "req": "big", "body": {"pad": "z" * (70 << 10)}}
        reply = _raw(backend.endpoint, header)
        assert reply.op == "error" and "at most 65536 accepted" in reply.body["msg"], reply
        assert _ask(backend.endpoint, "ping", {}).op == "pong"

    def test_a_message_of_many_frames_is_refused_without_holding_them(self, backend: LocalBackend) -> None:
        socket = dealer(backend.endpoint)
        try:
            header = {"v": PROTOCOL_VERSION, "op": "ping", "req": "frames"}
            socket.send_multipart([msgpack.packb(header)] + [b""] * 300_000)
            reply = reply_to(socket, "frames", timeout=300)
        finally:
            socket.close()
        assert reply.op == "error" and reply.body["code"] == "protocol", reply
        # named by its count: read and dropped one by one, never held as 300,000 objects
        assert "message carries 300000 binary frames; at most 272 accepted" in reply.body["msg"]
        assert _ask(backend.endpoint, "ping", {}).op == "pong"

    def test_a_client_told_its_job_failed_finds_nothing_written(self, tmp_path: Path) -> None:
        # Header bombs from six connections keep the I/O loop busy; whatever the client then
        # concludes, the result folder must agree with it.
        backend = start_local_backend(sys.executable, log_path=str(tmp_path / "serve.log"), timeout=120.0,
                                      results_dir=tmp_path / "results")
        bomb = msgpack.packb({"v": PROTOCOL_VERSION, "op": "ping", "req": "b", "body": {"x": [{}] * 60000}})
        stop = threading.Event()

        def flood() -> None:
            socket = dealer(backend.endpoint)
            try:
                while not stop.is_set():
                    for _ in range(5):
                        socket.send_multipart([bomb])
                    for _ in range(5):
                        if not socket.poll(30000):
                            return
                        socket.recv_multipart()
            finally:
                socket.close()

        floods = [threading.Thread(target=flood) for _ in range(6)]
        try:
            with Client(backend.endpoint, timeout=1.0, retries=2) as client:
                job = client.submit(image(2, 96, 128), motion=MotionSpec(kind="drift", drift=(30.0, 0.5)),
                                    options=RenderOptions(frames=300, levels=1), out_dir="loop")
                wait_render(client, job)
                for thread in floods:
                    thread.start()
                try:
                    client.wait(job, timeout=600)
                    failed = False
                except BackendUnavailable:
                    failed = True
            stop.set()
            for thread in floods:
                thread.join(60)
            # once the backend answers again, a job its client gave up has written nothing
            with Client(backend.endpoint, timeout=30.0) as probe:
                probe.ping()
            written = (tmp_path / "results" / "loop").is_dir()
            assert written != failed, f"client failed: {failed}, result written: {written}"
            assert not failed, "six flooding connections starved a client"
        finally:
            stop.set()
            assert backend.stop() == 0


class TestExtremeValues:
    @pytest.mark.parametrize("options, motion, expected", [
        ({"speed": 1e30}, {}, "speed must be 0 to 100"),
        ({"speed": 3.4e38}, {}, "speed must be 0 to 100"),
        ({"fps": 5e-324}, {}, "fps must be 0.01 to 240"),
        ({}, {"kind": "drift", "drift": [0.0, 1e39]}, "drift speed 0 to 256"),
        ({}, {"kind": "hints", "hints": [[0, 0, 1e308, 1e308]]}, "within +-32768 px"),
        ({}, {"kind": "drift", "drift": [0, 1], "anchors": [[1, 1]], "anchor_radius": 1e308}, "anchor_radius"),
        ({}, {"kind": "hints", "hints": [[0, 0, 1, 1]] * 1025}, "at most 1024 arrows"),
        ({}, {"kind": "none", "drift": [1e300, 1.0]}, "drift angle"),  # unused by kind none, checked anyway
    ], ids=["speed", "speed-max-float", "fps-denormal", "drift", "hint", "anchor-radius", "many-hints", "unused"])
    def test_out_of_range_numbers_are_rejected(self, backend: LocalBackend, options: dict, motion: dict,
                                               expected: str) -> None:
        assert expected in _rejected(backend.endpoint, {"options": {**SMALL, **options}, "motion": motion})

    def test_a_motion_field_beyond_range_is_rejected(self, backend: LocalBackend) -> None:
        field = np.full((2, 8, 8), 1e30, np.float32)
        message = _rejected(backend.endpoint, {"options": SMALL, "motion": {"kind": "field"}}, {"motion": field})
        assert "beyond 256 px/frame" in message

    def test_a_motion_file_is_checked_from_its_header(self, backend: LocalBackend) -> None:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (2, 100000, 100000)})
        data = np.frombuffer(header.getvalue(), np.uint8)
        assert data.nbytes == 128
        message = _rejected(backend.endpoint, {"options": SMALL, "motion": {"kind": "file", "path": "m.npy"}},
                            {"motion_file": data})
        assert "is 100000x100000; sides must be 1 to" in message
        cut = io.BytesIO()
        np.save(cut, np.zeros((2, 64, 64), np.float32))
        short = np.frombuffer(cut.getvalue()[:-8], np.uint8)
        message = _rejected(backend.endpoint, {"options": SMALL, "motion": {"kind": "file", "path": "m.npy"}},
                            {"motion_file": short})
        assert "cut short" in message

    def test_an_unused_name_field_is_rejected(self, backend: LocalBackend) -> None:
        assert "send both or neither" in _rejected(backend.endpoint, {"options": SMALL, "mask_name": 5})

    def test_an_encoder_failure_has_its_own_code(self, tmp_path: Path) -> None:
        frames = [image(i, 16, 16) for i in range(2)]
        with pytest.raises(EncoderFailed, match="ffmpeg could not encode"):
            encode_video(tmp_path / "loop.mp4", 2, lambda i: frames[i], fps=1e-300, loops=1)
        assert EncoderFailed.wire_code == "encoder_failed" and list(tmp_path.iterdir()) == []


def test_a_retried_submit_is_answered_from_the_clients_own_cache(backend: LocalBackend) -> None:
    body = {"options": SMALL, "motion": {"kind": "drift", "drift": [0.0, 1.0]}}
    parts = {"image": image(3, 16, 16)}
    req = uuid.uuid4().hex
    socket = dealer(backend.endpoint)
    try:
        socket.send_multipart(encode(Message("submit", body=body, parts=parts, req=req)))
        first = reply_to(socket, req)
        assert first.op == "accepted", first
        with Client(backend.endpoint, timeout=10.0) as busy:
            for _ in range(1100):
                busy.ping()
        socket.send_multipart(encode(Message("submit", body=body, parts=parts, req=req)))
        again = reply_to(socket, req)
        assert again.op == "accepted" and again.job == first.job, "the retry ran as a second job"
    finally:
        socket.close()
