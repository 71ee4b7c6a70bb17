"""Helpers shared by the service tests: seeded stills, folder snapshots, waiting on a job or the log."""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import zmq

from stillflow import MotionSpec, RenderOptions
from stillflow.link.client import Client
from stillflow.link.launcher import LocalBackend, start_local_backend
from stillflow.link.protocol import SERVER_OPS, Message, decode

__all__ = ["image", "long_image", "snapshot", "wait_log", "wait_render", "module_backend", "dealer", "reply_to",
           "wait_job_end"]


def image(seed: int, height: int = 48, width: int = 64) -> np.ndarray:
    """A seeded random RGB still."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def long_image(seed: int) -> np.ndarray:
    """A still big enough that a 1200-frame loop of it renders for several seconds, not one.

    Jobs that a test stops, abandons or freezes must still be running when it does so; at 64x48
    a whole loop renders in about a second, faster than the client timeouts under test.
    """
    return image(seed, 288, 384)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of ``folder`` by name."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def wait_log(log_path: str, text: str, timeout: float = 60.0) -> None:
    """Wait until the backend's log holds ``text``; fail with the log's end otherwise."""
    deadline = time.monotonic() + timeout
    while text not in Path(log_path).read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert text in Path(log_path).read_text(), Path(log_path).read_text()[-3000:]


def wait_job_end(log_path: str, job_id: str, timeout: float = 600.0) -> str:
    """Wait until the backend's log says how job ``job_id`` ended; returns done, cancelled or failed."""
    pattern = re.compile(rf"job {job_id} (done|cancelled|failed) after")
    deadline = time.monotonic() + timeout
    while not (found := pattern.search(Path(log_path).read_text())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert found, Path(log_path).read_text()[-3000:]
    return found.group(1)


def wait_render(client: Client, job: object, timeout: float = 60.0) -> None:
    """Poll until ``job`` reports render progress."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and job.stage != "render":  # type: ignore[attr-defined]
        client.poll(0.1)
    assert job.stage == "render", job  # type: ignore[attr-defined]


def module_backend(factory: pytest.TempPathFactory, name: str, *args: str) -> Iterator[LocalBackend]:
    """A backend for one test module (``serve ARGS``), stopped cleanly at the end."""
    log_path = factory.mktemp(name) / "serve.log"
    started = start_local_backend(sys.executable, log_path=str(log_path), timeout=120.0, extra_args=args,
                                  results_dir=log_path.parent / "results")
    yield started
    assert started.stop() == 0, Path(log_path).read_text()[-2000:]


def warm_up(endpoint: str, height: int = 64, width: int = 64) -> None:
    """Run one small moving job so one-time costs (kernel loading, lazy imports) precede a memory baseline."""
    with Client(endpoint, timeout=10.0) as client:
        job = client.submit(image(99, height, width), motion=MotionSpec(kind="drift", drift=(0.0, 1.0)),
                            options=RenderOptions(frames=2))
        client.wait(job, timeout=120)


def dealer(endpoint: str, **options: int) -> zmq.Socket:
    """A raw DEALER connected to ``endpoint`` (LINGER 0, plus ``options`` by zmq name)."""
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    for name, value in options.items():
        socket.setsockopt(getattr(zmq, name), value)
    socket.connect(endpoint)
    return socket


def reply_to(socket: zmq.Socket, req: str, timeout: float = 60.0) -> Message:
    """The reply carrying ``req`` (or an error without one), skipping job events."""
    deadline = time.monotonic() + timeout
    while socket.poll(int(max(0.0, deadline - time.monotonic()) * 1000) + 1):
        message = decode(socket.recv_multipart(), ops=SERVER_OPS)
        if message.req in (req, None) and message.op not in ("progress", "part", "heartbeat", "result"):
            return message
    raise AssertionError(f"no reply to {req}")
