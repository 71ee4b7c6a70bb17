"""Bounded resources of a real backend: send backlog, reply cache, image headers, motion memory, log size.

Memory is the server process's resident set size read from /proc while the hostile client works.
"""
from __future__ import annotations

import math
import os
import struct
import sys
import time
import uuid
import zlib
from pathlib import Path
from typing import Iterator

import msgpack
import numpy as np
import pytest
import zmq

from stillflow.errors import InputError
from stillflow.link.client import Client
from stillflow.link.launcher import LocalBackend, start_local_backend
from stillflow.link.protocol import PROTOCOL_VERSION, SERVER_OPS, Message, decode, encode
from stillflow.options import MotionSpec, RenderOptions
from stillflow.tiles import MEMORY_ENV

from .fuzz_messages import rss_bytes
from .service_helpers import dealer as _dealer
from .service_helpers import reply_to as _reply
from .service_helpers import warm_up

pytestmark = pytest.mark.slow

BACKLOG_MB = 4
MIB = 1 << 20


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBackend]:
    log_path = tmp_path_factory.mktemp("limits") / "serve.log"
    saved = os.environ.get(MEMORY_ENV)
    os.environ[MEMORY_ENV] = "2"  # the backend may use 2 GiB for a render
    try:
        started = start_local_backend(sys.executable, log_path=str(log_path), timeout=120.0,
                                      results_dir=log_path.parent / "results",
                                      extra_args=("--client-backlog-mb", str(BACKLOG_MB), "--client-timeout", "8",
                                                  "--heartbeat", "0.5", "--log-max-mb", "0.01"))
    finally:
        if saved is None:
            os.environ.pop(MEMORY_ENV, None)
        else:
            os.environ[MEMORY_ENV] = saved
    yield started
    assert started.stop() == 0, Path(log_path).read_text()[-2000:]


def _log_text(backend: LocalBackend) -> str:
    folder = Path(backend.log_path).parent
    return "".join(path.read_text(errors="replace") for path in sorted(folder.glob("serve.log*")))


def _submit_and_wait_for_pause(backend: LocalBackend, reader: zmq.Socket, side: int, frames: int, req: str) -> Message:
    """Submit a static job of ``frames`` side x side frames on a reader that reads nothing; its
    accepted reply, once the backend logs that the job paused for its client."""
    image = np.random.default_rng(side + frames).integers(0, 256, (side, side, 3), dtype=np.uint8)
    body = {"options": RenderOptions(frames=frames, levels=1).to_dict(), "motion": {"kind": "none"}}
    reader.send_multipart(encode(Message("submit", body=body, parts={"image": image}, req=req)))
    accepted = _reply(reader, req)
    assert accepted.op == "accepted", accepted.body
    deadline = time.monotonic() + 60
    while f"job {accepted.job} paused" not in _log_text(backend) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert f"job {accepted.job} paused" in _log_text(backend)
    return accepted


def test_a_client_that_stops_reading_pauses_its_job(backend: LocalBackend) -> None:
    warm_up(backend.endpoint, 512, 512)
    reader = _dealer(backend.endpoint, RCVHWM=1, RCVBUF=64 << 10)
    try:
        before = rss_bytes(backend.process.pid)
        # 400 static frames of 768 KiB: 300 MiB of results that nobody reads
        accepted = _submit_and_wait_for_pause(backend, reader, 512, 400, "stalled")
        peak = before
        for _ in range(10):
            peak = max(peak, rss_bytes(backend.process.pid))
            time.sleep(0.2)
        assert peak - before < 120 * MIB, f"the backend grew by {(peak - before) / MIB:.0f} MiB"
        # the client stays silent: after --client-timeout the job is cancelled and the worker is free
        deadline = time.monotonic() + 60
        while f"job {accepted.job} cancelled" not in _log_text(backend) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert f"job {accepted.job} cancelled" in _log_text(backend)
    finally:
        reader.close()
    with Client(backend.endpoint) as client:
        assert client.status()["busy_workers"] == 0


def test_a_slow_reader_gets_every_frame_and_the_latest_progress_last(backend: LocalBackend) -> None:
    reader = _dealer(backend.endpoint, RCVHWM=1, RCVBUF=64 << 10)
    try:
        frames = 120  # 22 MiB of frames, over what the socket buffers and the 4 MiB backlog hold
        accepted = _submit_and_wait_for_pause(backend, reader, 256, frames, "slow")
        heard: list[Message] = []
        beat = 0.0
        deadline = time.monotonic() + 120
        while not heard or heard[-1].op not in ("result", "error", "cancelled"):
            assert time.monotonic() < deadline, [m.op for m in heard][-10:]
            if time.monotonic() - beat > 1.0:  # stay alive for --client-timeout while catching up
                reader.send_multipart(encode(Message("heartbeat", body={})))
                beat = time.monotonic()
            if reader.poll(1000):
                message = decode(reader.recv_multipart(), ops=SERVER_OPS)
                if message.job == accepted.job:
                    heard.append(message)
    finally:
        reader.close()
    assert heard[-1].op == "result", heard[-1].body
    indexes = [m.body["index"] for m in heard if m.op == "part"]
    assert indexes == list(range(frames)), "every frame arrives, in order"
    reports = [(m.body["stage"], m.body["done"]) for m in heard if m.op == "progress"]
    assert reports[-1] == ("render", frames), f"the last progress heard is the last frame's: {reports[-3:]}"
    done = [d for stage, d in reports if stage == "render"]
    assert done == sorted(done), "progress never goes back"


def test_huge_operation_names_do_not_fill_the_reply_cache(backend: LocalBackend) -> None:
    socket = _dealer(backend.endpoint)
    try:
        before = rss_bytes(backend.process.pid)
        for index in range(300):
            req = f"big-{index}"
            name = "o" * (900 << 10)
            socket.send(msgpack.packb({"v": PROTOCOL_VERSION, "op": name, "req": req, "body": {}, "parts": []}))
            reply = _reply(socket, req)
            assert reply.op == "error" and reply.body["code"] == "protocol" and len(reply.body["msg"]) <= 400
        grown = rss_bytes(backend.process.pid) - before
        assert grown < 64 * MIB, f"the backend grew by {grown / MIB:.0f} MiB"
    finally:
        socket.close()


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk declaring width x height, then a few junk bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) \
        + bytes(256)


def test_image_files_are_sized_from_their_header(backend: LocalBackend, tmp_path: Path) -> None:
    with Client(backend.endpoint) as client:
        (tmp_path / "bomb.png").write_bytes(_png_claiming(100_000, 90_000))
        with pytest.raises(InputError, match=r"image_file '[^']+\.png' is 100000x90000 px; sides must be 1 to"):
            client.submit(tmp_path / "bomb.png", options=RenderOptions(frames=2))
        (tmp_path / "still.tiff").write_bytes(b"II*\x00" + bytes(200))
        with pytest.raises(InputError, match="is not a PNG, JPEG or OpenEXR file"):
            client.submit(tmp_path / "still.tiff", options=RenderOptions(frames=2))


def test_fast_motion_on_a_small_still_is_refused_before_memory_runs_out(backend: LocalBackend) -> None:
    image = np.random.default_rng(2).integers(0, 256, (192, 256, 3), dtype=np.uint8)
    with Client(backend.endpoint) as client:
        before = rss_bytes(backend.process.pid)
        job = client.submit(image, motion=MotionSpec(kind="drift", drift=(0.0, 256.0)),
                            options=RenderOptions(frames=60, levels=2))
        with pytest.raises(InputError, match=f"even in strips.*2.0 GiB may be used here.*{MEMORY_ENV}"):
            client.wait(job, timeout=120)
        assert rss_bytes(backend.process.pid) - before < 500 * MIB


@pytest.mark.parametrize("options, message", [
    ({"seed": 1e308}, "option seed has the wrong type"),
    ({"seed": 2**64 - 1}, "seed must be an integer from 0 to 2^63-1"),
    ({"frames": math.inf}, "option frames has the wrong type"),
    ({"fps": math.nan}, "option fps must be a finite number"),
    ({"loops": True}, "option loops has the wrong type"),
    ({"format": "p" * 50000}, "format must be one of png, png16, exr, got 'ppp"),
])
def test_out_of_range_options_are_refused_and_the_backend_keeps_serving(
        backend: LocalBackend, options: dict, message: str) -> None:
    socket = _dealer(backend.endpoint)
    try:
        req = uuid.uuid4().hex
        image = np.zeros((8, 8, 3), np.uint8)
        socket.send_multipart(encode(Message("submit", body={"options": options}, parts={"image": image}, req=req)))
        reply = _reply(socket, req)
        assert reply.op == "rejected" and reply.body["code"] == "bad_input", reply.body
        assert message in reply.body["msg"] and len(reply.body["msg"]) <= 400
    finally:
        socket.close()
    with Client(backend.endpoint) as client:
        assert client.ping() < 5.0


@pytest.mark.parametrize("version", [1.0, True, "1", 2])
def test_only_the_integer_version_1_is_accepted(backend: LocalBackend, version: object) -> None:
    socket = _dealer(backend.endpoint)
    try:
        socket.send(msgpack.packb({"v": version, "op": "hello", "req": "v", "body": {}, "parts": []}))
        reply = _reply(socket, "v")
        assert reply.op == "error" and reply.body["code"] == "protocol"
        assert f"protocol version {version!r} is not supported" in reply.body["msg"]
    finally:
        socket.close()


def test_the_log_is_rotated_by_size(backend: LocalBackend) -> None:
    with Client(backend.endpoint) as client:
        for index in range(60):  # three log lines each
            client.wait(client.submit(np.zeros((8, 8, 3), np.uint8), options=RenderOptions(frames=2)), timeout=60)
    folder = Path(backend.log_path).parent
    rotated = sorted(folder.glob("serve.log.*"))
    assert rotated, "no rotated log file"
    assert len(rotated) <= 3
    assert all(path.stat().st_size < 0.01 * MIB + 4096 for path in rotated)
