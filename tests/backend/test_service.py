"""The backend service end to end: a real `stillflow serve` process, real sockets on loopback."""
from __future__ import annotations

import json
import subprocess
import re
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stillflow import render, render_frames
from stillflow.link.client import Client
from stillflow.errors import BackendUnavailable, Cancelled, InputError, ProtocolError
from stillflow.io.images import to_uint8
from stillflow.link.launcher import LocalBackend, start_local_backend
from stillflow.options import MotionSpec, RenderOptions
from stillflow.link.protocol import PROTOCOL_VERSION, SERVER_OPS, Message, decode, encode

from .service_helpers import long_image

pytestmark = pytest.mark.slow

OPTIONS = RenderOptions(frames=4, levels=2)
MOTION = MotionSpec(kind="drift", drift=(30.0, 1.5))
LONG = RenderOptions(frames=1200, levels=1)
LONG_MOTION = MotionSpec(kind="drift", drift=(30.0, 0.02))
"""A job that runs long through its frame count, not through a costly motion integration (load-proof)."""
MAX_PART_MB = 4


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBackend]:
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    # every test's tmp_path lies under the base temp: outputs and inputs there are the backend's to touch
    base = tmp_path_factory.getbasetemp()
    started = start_local_backend(sys.executable, log_path=str(log_path), timeout=120.0, results_dir=base,
                                  allow_read=(base,),
                                  extra_args=("--max-part-mb", str(MAX_PART_MB), "--client-timeout", "2",
                                              "--heartbeat", "0.5", "--queue-size", "4", "--client-backlog-mb", "1"))
    yield started
    assert started.stop() == 0, Path(log_path).read_text()[-2000:]


@pytest.fixture
def client(backend: LocalBackend) -> Iterator[Client]:
    with Client(backend.endpoint, timeout=5.0, retries=2) as connected:
        yield connected


def _image(seed: int, height: int = 48, width: int = 64) -> np.ndarray:
    """A seeded random RGB still."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _wait_for(client: Client, job: object, stage: str | None, timeout: float = 60.0) -> None:
    """Poll until the job reports progress in ``stage`` (None: any progress)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in client.poll(0.1):
            if event.kind == "progress" and stage in (None, event.data["stage"]):
                return
        if job.is_finished:  # type: ignore[attr-defined]
            break
    raise AssertionError(f"no {stage} progress (job state {job.state})")  # type: ignore[attr-defined]


def _same_folder(left: Path, right: Path) -> None:
    """Frames byte-identical and manifests equal apart from timings."""
    names = sorted(p.name for p in left.iterdir())
    assert names == sorted(p.name for p in right.iterdir())
    for name in names:
        if name == "manifest.json":
            a, b = (json.loads((d / name).read_text()) for d in (left, right))
            a.pop("timings"), b.pop("timings")
            assert a == b
        else:
            assert (left / name).read_bytes() == (right / name).read_bytes(), name


class TestHello:
    def test_hello_and_ping(self, client: Client) -> None:
        hello = client.hello()
        assert hello["protocol"] == PROTOCOL_VERSION
        assert hello["limits"]["max_part_bytes"] == MAX_PART_MB * 2**20
        assert "loop" in hello["engines"] and hello["devices"]
        assert 0 < client.ping() < 2.0

    def test_status_lists_nothing_when_idle(self, client: Client) -> None:
        status = client.status()
        assert status["queued"] == [] and status["running"] == []


class TestResults:
    def test_float_formats_travel_as_float32(self, client: Client) -> None:
        image = _image(5)
        options = replace(OPTIONS, format="exr")
        result = client.wait(client.submit(image, motion=MOTION, options=options), timeout=60)
        assert result["frames"].dtype == np.float32
        np.testing.assert_array_equal(result["frames"], np.stack(list(render_frames(image, motion=MOTION, options=options))))

    def test_arrays_equal_direct_engine(self, client: Client) -> None:
        image = _image(1)
        job = client.submit(image, motion=MOTION, options=OPTIONS)
        events = []
        while not job.is_finished:
            events += client.poll(0.2)
        result = client.wait(job)
        direct = np.stack(list(render_frames(image, motion=MOTION, options=OPTIONS)))
        assert result["frames"].dtype == np.uint8, "8-bit jobs travel as the values render() writes"
        np.testing.assert_array_equal(result["frames"], to_uint8(direct))
        reports = [(e.data["stage"], e.data["done"]) for e in events if e.kind == "progress"]
        assert reports[-1] == ("render", OPTIONS.frames) and events[-1].kind == "result", reports
        assert job.preview is not None and job.preview.dtype == np.uint8
        assert job.job_id not in client._jobs, "a finished job (and its frames) is not kept by the client"

    def test_shared_folder_equals_direct_render(self, client: Client, tmp_path: Path) -> None:
        image = _image(2)
        mask = np.zeros((48, 64), np.uint8)
        mask[10:40] = 255
        job = client.submit(image, mask=mask, motion=MOTION, options=OPTIONS, out_dir=tmp_path / "service")
        result = client.wait(job, timeout=60)
        render(image, tmp_path / "direct", mask=mask, motion=MOTION, options=OPTIONS)
        assert result["out_dir"] == str(tmp_path / "service")
        assert [Path(p).name for p in result["frame_paths"]] == [f"frame_{i:04d}.png" for i in range(4)]
        _same_folder(tmp_path / "service", tmp_path / "direct")

    def test_remote_files_equal_direct_render(self, client: Client, tmp_path: Path) -> None:
        image = _image(3)
        hints = MotionSpec(kind="hints", hints=((10.0, 20.0, 60.0, 20.0),))
        job = client.submit(image, motion=hints, options=OPTIONS, deliver="files")
        files = client.wait(job, timeout=60)["files"]
        render(image, tmp_path / "direct", motion=hints, options=OPTIONS)
        for name, data in files.items():
            if not name.endswith(".json"):
                assert (tmp_path / "direct" / Path(name).name).read_bytes() == data, name
        assert len(files) == OPTIONS.frames + 1

    def test_input_files_are_sent_as_bytes(self, client: Client, tmp_path: Path) -> None:
        import cv2

        image = _image(4)
        cv2.imwrite(str(tmp_path / "still.png"), image[:, :, ::-1])
        job = client.submit(tmp_path / "still.png", motion=MOTION, options=OPTIONS)
        frames = client.wait(job, timeout=60)["frames"]
        np.testing.assert_array_equal(frames, to_uint8(np.stack(list(render_frames(image, motion=MOTION, options=OPTIONS)))))

    def test_two_clients_get_their_own_results(self, backend: LocalBackend) -> None:
        with Client(backend.endpoint) as first, Client(backend.endpoint) as second:
            images = [_image(10), _image(11)]
            jobs = [first.submit(images[0], motion=MOTION, options=OPTIONS),
                    second.submit(images[1], motion=MOTION, options=OPTIONS)]
            results = [second.wait(jobs[1], timeout=60), first.wait(jobs[0], timeout=60)][::-1]
        for image, result in zip(images, results):
            np.testing.assert_array_equal(result["frames"],
                                          to_uint8(np.stack(list(render_frames(image, motion=MOTION, options=OPTIONS)))))


class TestControl:
    def test_cancel_mid_job_keeps_previous_result(self, client: Client, tmp_path: Path) -> None:
        out = tmp_path / "loop"
        client.wait(client.submit(_image(5), motion=MOTION, options=OPTIONS, out_dir=out), timeout=60)
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        job = client.submit(long_image(6), motion=LONG_MOTION, options=LONG, out_dir=out)
        _wait_for(client, job, "render")
        assert client.cancel(job) == "running"
        started = time.monotonic()
        with pytest.raises(Cancelled, match="cancelled"):
            client.wait(job, timeout=30)
        assert time.monotonic() - started < 10
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
        assert not [p for p in tmp_path.iterdir() if p.name != "loop"], "staging folder left behind"

    def test_clear_drops_queued_jobs(self, client: Client) -> None:
        running = client.submit(long_image(7), motion=LONG_MOTION, options=LONG)
        _wait_for(client, running, None)
        queued = [client.submit(_image(8), motion=MOTION, options=OPTIONS) for _ in range(2)]
        assert client.clear() == 2
        client.cancel(running)
        for job in [running, *queued]:
            with pytest.raises(Cancelled):
                client.wait(job, timeout=30)

    def test_queue_is_bounded(self, client: Client) -> None:
        jobs = [client.submit(long_image(9), motion=LONG_MOTION, options=LONG)]
        _wait_for(client, jobs[0], None)
        jobs += [client.submit(_image(9), motion=MOTION, options=OPTIONS) for _ in range(4)]
        try:
            with pytest.raises(BackendUnavailable, match="queue is full"):
                client.submit(_image(9), motion=MOTION, options=OPTIONS)
        finally:
            client.clear()
            client.cancel(jobs[0])
            for job in jobs:
                with pytest.raises(Cancelled):
                    client.wait(job, timeout=30)

    def test_client_disconnect_mid_job_frees_the_worker(self, backend: LocalBackend, client: Client) -> None:
        # The gone client's frames pile up in its 1 MiB send backlog and the job pauses there: it cannot
        # finish before the backend forgets the silent client (2 s) and cancels it, however slow the machine.
        leaving = Client(backend.endpoint)
        job = leaving.submit(_image(12, 96, 128), motion=MotionSpec(kind="drift", drift=(30.0, 0.02)),
                             options=RenderOptions(frames=1200, levels=1))
        _wait_for(leaving, job, "render")
        leaving.close()
        # cancelled when the backend forgets the silent client, or failed by its full backlog first: both end it
        ended = re.compile(rf"job {job.job_id} (cancelled|failed)")
        deadline = time.monotonic() + 120
        while not ended.search(Path(backend.log_path).read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ended.search(Path(backend.log_path).read_text())
        assert client.status()["busy_workers"] == 0
        result = client.wait(client.submit(_image(13), motion=MOTION, options=OPTIONS), timeout=60)
        assert result["frames"].shape == (4, 48, 64, 3)

    def test_rejected_submit_names_the_problem(self, client: Client) -> None:
        with pytest.raises(InputError, match="image /nonexistent/still.png cannot be read"):
            client.submit("/nonexistent/still.png", motion=MOTION, options=OPTIONS, out_dir="never")

    def test_oversize_part_is_refused_before_sending(self, client: Client) -> None:
        big = np.zeros((1100, 1100, 4), np.uint8)  # 4.6 MiB > 4 MiB
        with pytest.raises(InputError, match="accepts parts up to 4.0 MiB"):
            client.submit(big, motion=MOTION, options=OPTIONS)


def _raw_request(endpoint: str, frames: list[bytes], timeout: float = 3.0) -> Message | None:
    """Send raw frames from a fresh DEALER; the decoded reply, or None after ``timeout`` s."""
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(endpoint)
    try:
        socket.send_multipart(frames)
        if not socket.poll(int(timeout * 1000)):
            return None
        return decode(socket.recv_multipart(), ops=SERVER_OPS)
    finally:
        socket.close()


def _packed(**fields: object) -> bytes:
    header = {"v": PROTOCOL_VERSION, "op": "submit", "req": uuid.uuid4().hex, "job": None, "body": {}, "parts": []}
    header.update(fields)
    return msgpack.packb(header, use_bin_type=True)


_BAD_MESSAGES = st.one_of(
    st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=3),
    st.builds(lambda cut: [_packed()[:cut]], st.integers(1, 20)),
    st.builds(lambda v: [_packed(v=v)], st.integers(-2**63, 2**63 - 1).filter(lambda v: v != PROTOCOL_VERSION)),
    st.builds(lambda op: [_packed(op=op)], st.text(max_size=12).filter(
        lambda op: op not in {"hello", "ping", "status", "submit", "cancel", "clear", "heartbeat"})),
    st.builds(lambda dtype, shape: [_packed(parts=[{"name": "image", "dtype": dtype, "shape": shape}]), bytes(12)],
              st.sampled_from(["uint8", "float32", "float64", "int64", "", "U8"]),
              st.lists(st.integers(-3, 2**40), min_size=0, max_size=5)),
    st.builds(lambda body: [_packed(body=body)], st.dictionaries(
        st.sampled_from(["options", "motion", "preview", "out_dir", "video", "deliver", "image_path", "junk"]),
        st.one_of(st.none(), st.integers(-2**40, 2**40), st.text(max_size=5), st.lists(st.integers(-9, 9), max_size=3)),
        max_size=4)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                               HealthCheck.too_slow])
@given(frames=_BAD_MESSAGES)
def test_malformed_messages_get_an_error_reply(backend: LocalBackend, frames: list[bytes]) -> None:
    reply = _raw_request(backend.endpoint, frames)
    assert reply is not None, "no reply to a malformed message"
    assert reply.op in ("error", "rejected") and reply.body["code"] and reply.body["msg"]


def test_server_keeps_serving_after_fuzzing_and_oversize(backend: LocalBackend, client: Client) -> None:
    oversize = np.zeros(MAX_PART_MB * 2**20 + 2**17, np.uint8)
    frames = encode(Message("submit", parts={"image_file": oversize}, req="big"))
    # libzmq drops a frame above MAXMSGSIZE and the peer with it: no reply, but no crash either
    assert _raw_request(backend.endpoint, frames, timeout=1.0) is None
    declared = _raw_request(backend.endpoint, [_packed(parts=[{"name": "image", "dtype": "uint8",
                                                                 "shape": [2**20, 2**20, 3]}]), b"x"])
    assert declared is not None and declared.op == "error" and "at most" in declared.body["msg"]
    assert client.hello()["protocol"] == PROTOCOL_VERSION


def test_wrong_version_gets_protocol_error(backend: LocalBackend) -> None:
    reply = _raw_request(backend.endpoint, [_packed(v=PROTOCOL_VERSION + 1, op="hello")])
    assert reply is not None and reply.body["code"] == ProtocolError.wire_code
    assert "protocol version 2 is not supported" in reply.body["msg"]


def test_retried_submit_runs_once(backend: LocalBackend, client: Client) -> None:
    body = {"options": OPTIONS.to_dict(), "motion": {"kind": "drift", "drift": [0.0, 1.0]}}
    frames = encode(Message("submit", body=body, parts={"image": _image(14)}, req="retry-" + uuid.uuid4().hex[:8]))
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(backend.endpoint)
    try:
        replies, results = [], 0
        for _ in range(2):
            socket.send_multipart(frames)
            while True:
                assert socket.poll(5000)
                message = decode(socket.recv_multipart(), ops=SERVER_OPS)
                results += message.op == "result"  # a warm backend can finish before the retry is answered
                if message.op == "accepted":
                    replies.append(message.job)
                    break
        assert replies[0] == replies[1]
        # Wait for the result however long the first render takes (a fresh backend compiles its
        # kernels first), then long enough for a second run of the same small job to report.
        deadline = time.monotonic() + (3.0 if results else 60.0)
        while time.monotonic() < deadline:
            if socket.poll(200) and decode(socket.recv_multipart(), ops=SERVER_OPS).op == "result":
                results += 1
                deadline = min(deadline, time.monotonic() + 3.0)
        assert results == 1
    finally:
        socket.close()


def test_cli_ping_and_submit(backend: LocalBackend, tmp_path: Path) -> None:
    import cv2

    image = _image(15)
    cv2.imwrite(str(tmp_path / "still.png"), image[:, :, ::-1])
    ping = subprocess.run([sys.executable, "-m", "stillflow", "ping", "--endpoint", backend.endpoint],
                          capture_output=True, text=True, timeout=60)
    assert ping.returncode == 0, ping.stderr
    assert '"protocol": 1' in ping.stdout and "round trip" in ping.stdout
    args = ["--drift", "30,1.5", "--frames", "4", "--levels", "2"]
    for mode, extra in (("shared", []), ("remote", ["--remote"])):
        run = subprocess.run([sys.executable, "-m", "stillflow", "submit", str(tmp_path / "still.png"),
                              "--endpoint", backend.endpoint, "--out", str(tmp_path / mode), *extra, *args],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert "wrote 4 frames" in run.stdout
    direct = subprocess.run([sys.executable, "-m", "stillflow", "render", str(tmp_path / "still.png"),
                             "--out", str(tmp_path / "direct"), *args], capture_output=True, text=True, timeout=120)
    assert direct.returncode == 0, direct.stderr
    _same_folder(tmp_path / "shared", tmp_path / "direct")
    _same_folder(tmp_path / "remote", tmp_path / "direct")
