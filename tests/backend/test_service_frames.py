"""What one message can make the backend hold: big parts travel in chunks under a small per-frame cap.

Each test talks to a real backend process over loopback.
"""
from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Iterator

import msgpack
import numpy as np
import pytest

from stillflow.io.images import load_image
from stillflow.link.client import Client
from stillflow.link.launcher import LocalBackend, start_local_backend
from stillflow.link.protocol import PROTOCOL_VERSION
from stillflow.options import MotionSpec, RenderOptions

from .fuzz_messages import peak_rss_bytes, reset_peak_rss, rss_bytes
from .service_helpers import dealer, reply_to

pytestmark = pytest.mark.slow

PART_MB = 64


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBackend]:
    folder = tmp_path_factory.mktemp("frames")
    started = start_local_backend(sys.executable, log_path=str(folder / "serve.log"), timeout=120.0,
                                  results_dir=folder / "results", extra_args=("--max-part-mb", str(PART_MB)))
    yield started
    assert started.stop() == 0, Path(started.log_path).read_text()[-2000:]


def test_hello_advertises_a_frame_cap_below_the_part_cap(backend: LocalBackend) -> None:
    with Client(backend.endpoint, timeout=10.0) as client:
        limits = client.hello()["limits"]
    assert limits["max_part_bytes"] == PART_MB << 20 and limits["max_message_bytes"] == 2 * PART_MB << 20
    assert limits["max_frame_bytes"] == 8 << 20


def test_frames_above_the_cap_are_dropped_before_they_are_held(backend: LocalBackend) -> None:
    pid = backend.process.pid
    frame = bytes(PART_MB << 20)
    descriptors = [{"name": f"p{k}", "dtype": "uint8", "shape": [PART_MB << 20]} for k in range(16)]
    header = {"v": PROTOCOL_VERSION, "op": "submit", "req": "big", "body": {}, "parts": descriptors}
    before = rss_bytes(pid)
    reset_peak_rss(pid)
    socket = dealer(backend.endpoint)
    try:
        # 16 whole 64 MiB parts: each within max_part_bytes, together 8x max_message_bytes
        socket.send_multipart([msgpack.packb(header)] + [frame] * 16, copy=False)
        assert not socket.poll(3000), "a message of frames above max_frame_bytes was answered"
    finally:
        socket.close()
    with Client(backend.endpoint, timeout=10.0) as client:  # the backend serves on
        client.ping()
    grown = (peak_rss_bytes(pid) - before) / 2**20
    assert grown < 2 * 8 + 32, f"the backend held {grown:.0f} MiB for a message it refuses"


def test_a_part_above_the_frame_cap_travels_in_chunks(backend: LocalBackend, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    still = rng.integers(0, 256, (1800, 1800, 3), dtype=np.uint8)  # 9.3 MiB: two chunks
    assert still.nbytes > 8 << 20
    with Client(backend.endpoint, timeout=10.0) as client:
        job = client.submit(still, motion=MotionSpec(kind="drift", drift=(0.0, 1.0)),
                            options=RenderOptions(frames=2, levels=1), out_dir="chunked")
        done = client.wait(job, timeout=600)
    first = sorted(Path(done["out_dir"]).glob("frame_*"))[0]
    assert np.array_equal(np.round(load_image(first)[..., :3] * 255).astype(np.uint8), still)


def test_chunks_that_do_not_add_up_to_their_part_are_refused(backend: LocalBackend) -> None:
    socket = dealer(backend.endpoint)
    req = uuid.uuid4().hex
    try:
        header = {"v": PROTOCOL_VERSION, "op": "submit", "req": req, "body": {},
                  "parts": [{"name": "image", "dtype": "uint8", "shape": [4, 4, 3]}]}
        socket.send_multipart([msgpack.packb(header), bytes(20), bytes(20)])
        reply = reply_to(socket, req)
    finally:
        socket.close(linger=0)
    assert reply.op == "error" and reply.body["code"] == "protocol"
    assert "part image declares 48 bytes but its frames hold" in reply.body["msg"]
