"""Faults: a stopped backend, a silent client, cancel inside a frame and during video encoding, IPv6."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from stillflow import render, render_frames
from stillflow.errors import BackendUnavailable, Cancelled
from stillflow.io.video import encode_video
from stillflow.link.client import Client
from stillflow.link.launcher import start_local_backend
from stillflow.options import MotionSpec, RenderOptions

from .service_helpers import image, long_image, snapshot, wait_job_end, wait_log, wait_render

pytestmark = pytest.mark.slow

SLOW_MOTION = MotionSpec(kind="drift", drift=(30.0, 0.02))
LONG = RenderOptions(frames=1200, levels=1)
SHORT = RenderOptions(frames=2, levels=1)


def test_a_job_its_client_gave_up_during_sigstop_writes_nothing(tmp_path: Path) -> None:
    backend = start_local_backend(sys.executable, log_path=str(tmp_path / "serve.log"), timeout=120,
                                  results_dir=tmp_path,
                                  extra_args=("--heartbeat", "0.5"))
    out = tmp_path / "loop"
    try:
        with Client(backend.endpoint, timeout=1.0, retries=2) as client:
            client.wait(client.submit(image(1), motion=SLOW_MOTION, options=SHORT, out_dir=out), timeout=60)
            before = snapshot(out)
            job = client.submit(long_image(2), motion=SLOW_MOTION, options=LONG, out_dir=out)
            wait_render(client, job)
            client.poll(1.5)  # a heartbeat carrying the client's patience reaches the backend
            os.kill(backend.process.pid, signal.SIGSTOP)
            try:
                with pytest.raises(BackendUnavailable, match="stopped answering"):
                    client.wait(job, timeout=30)
                time.sleep(0.5)
            finally:
                os.kill(backend.process.pid, signal.SIGCONT)
            wait_log(backend.log_path, f"job {job.job_id} cancelled")
            assert snapshot(out) == before
            assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".loop")] == []
            assert client.status()["busy_workers"] == 0
    finally:
        assert backend.stop() == 0


def test_a_silent_clients_shared_folder_job_is_cancelled_and_writes_nothing(tmp_path: Path) -> None:
    backend = start_local_backend(sys.executable, log_path=str(tmp_path / "serve.log"), timeout=120,
                                  results_dir=tmp_path,
                                  extra_args=("--heartbeat", "0.5", "--client-timeout", "2"))
    out = tmp_path / "loop"
    try:
        leaving = Client(backend.endpoint)  # the earlier result is its own: it may replace it
        leaving.wait(leaving.submit(image(3), motion=SLOW_MOTION, options=SHORT, out_dir=out), timeout=60)
        before = snapshot(out)
        job = leaving.submit(long_image(4), motion=SLOW_MOTION, options=LONG, out_dir=out)
        wait_render(leaving, job)
        leaving.close()
        wait_log(backend.log_path, f"job {job.job_id} cancelled")
        assert snapshot(out) == before
    finally:
        assert backend.stop() == 0


def test_a_client_that_reads_late_still_gets_every_frame_and_the_result(tmp_path: Path) -> None:
    # The whole loop is rendered and queued for the client (far more messages than ZeroMQ buffers)
    # before the client reads anything: none of it, least of all the result, may be dropped.
    # A busy machine may hold the backend back for seconds (the first job compiles kernels with the
    # GIL held); the stop below stands for that, and the job must survive it: its client said in
    # the submit that it waits 7.5 s. Every wait is on an event, with room for a very slow machine.
    backend = start_local_backend(sys.executable, log_path=str(tmp_path / "serve.log"), timeout=120,
                                  extra_args=("--heartbeat", "0.5", "--client-timeout", "900"),
                                  results_dir=tmp_path / "results")
    try:
        with Client(backend.endpoint) as client:
            job = client.submit(image(5), motion=SLOW_MOTION, options=LONG)
            os.kill(backend.process.pid, signal.SIGSTOP)
            try:
                time.sleep(2.0)
            finally:
                os.kill(backend.process.pid, signal.SIGCONT)
            assert wait_job_end(backend.log_path, job.job_id, timeout=900) == "done"
            result = client.wait(job, timeout=900)
            assert result["frames"].shape == (LONG.frames, 48, 64, 3)
            assert client.status()["busy_workers"] == 0
    finally:
        assert backend.stop() == 0


def test_cancel_is_heard_while_the_motion_is_integrated() -> None:
    asked = []

    def should_cancel() -> bool:
        asked.append(time.monotonic())
        return len(asked) > 5

    started = time.monotonic()
    frames = render_frames(image(5, 96, 128), motion=MotionSpec(kind="drift", drift=(30.0, 1.5)),
                           options=RenderOptions(frames=600, levels=2), should_cancel=should_cancel)
    with pytest.raises(Cancelled):
        next(iter(frames))
    assert len(asked) == 6, "cancel was not checked between integration steps"
    assert time.monotonic() - started < 20


def test_cancel_is_heard_between_the_bands_of_a_frame() -> None:
    from stillflow.loop import LoopPlan, LoopRenderer

    still = image(6, 96, 128).astype(np.float32) / 255
    motion = np.zeros((2, 96, 128), np.float32)
    motion[0] = 0.5
    cancel = [False]
    plan = LoopPlan.from_options(RenderOptions(frames=8, levels=3))
    renderer = LoopRenderer(still, np.ones((96, 128), np.float32), motion, plan,
                            device=__import__("torch").device("cpu"), should_cancel=lambda: cancel[0])
    renderer.frame(1)
    cancel[0] = True
    with pytest.raises(Cancelled):
        renderer.frame(2)


def test_cancel_stops_video_encoding_and_writes_nothing(tmp_path: Path) -> None:
    frames = [image(i) for i in range(4)]
    asked = []

    def should_cancel() -> bool:
        asked.append(True)
        return len(asked) > 10

    with pytest.raises(Cancelled, match="encoding the video"):
        encode_video(tmp_path / "loop.mp4", 4, lambda i: frames[i], fps=30, loops=20, should_cancel=should_cancel)
    assert list(tmp_path.iterdir()) == []
    reports = []

    def cancel_in_video() -> bool:
        return any(report.stage == "video" for report in reports)

    with pytest.raises(Cancelled):
        render(image(7), tmp_path / "out", motion=SLOW_MOTION, options=RenderOptions(frames=4, loops=50),
               video=tmp_path / "out.mp4", progress=reports.append, should_cancel=cancel_in_video)
    assert not (tmp_path / "out.mp4").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_an_ipv6_loopback_endpoint_binds(tmp_path: Path) -> None:
    backend = start_local_backend(sys.executable, endpoint="tcp://[::1]:*", timeout=120,
                                  results_dir=tmp_path / "results")
    try:
        assert backend.endpoint.startswith("tcp://[::1]:")
        with Client(backend.endpoint) as client:
            assert client.hello()["protocol"] == 1
    finally:
        assert backend.stop() == 0
