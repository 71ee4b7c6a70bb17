"""Backend failures and security: SIGKILL and SIGTERM mid-job, refused binds, CURVE allow-list."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from stillflow.link.client import Client
from stillflow.link.launcher import start_local_backend
from stillflow.errors import BackendUnavailable, Cancelled, InputError
from stillflow.options import MotionSpec, RenderOptions
from stillflow.service.keys import check_bind, generate_keys, is_local_endpoint

from .service_helpers import long_image, wait_log

pytestmark = pytest.mark.slow

MOTION = MotionSpec(kind="drift", drift=(30.0, 1.5))
SHORT = RenderOptions(frames=4, levels=2)
LONG = RenderOptions(frames=1200, levels=1)
LONG_MOTION = MotionSpec(kind="drift", drift=(30.0, 0.02))
"""A job that runs long through its frame count, not through a costly motion integration (load-proof)."""


def _image(seed: int, height: int = 96, width: int = 128) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _start_long_job(client: Client, out: Path) -> object:
    """Render a good result into ``out``, then start a long job into the same folder; wait until it renders."""
    client.wait(client.submit(_image(1), motion=MOTION, options=SHORT, out_dir=out), timeout=60)
    job = client.submit(long_image(2), motion=LONG_MOTION, options=LONG, out_dir=out)
    deadline = time.monotonic() + 60
    while job.stage != "render" and time.monotonic() < deadline:
        client.poll(0.1)
    assert job.stage == "render"
    return job


def test_sigkill_mid_job_is_reported_and_previous_result_survives(tmp_path: Path) -> None:
    backend = start_local_backend(sys.executable, log_path=str(tmp_path / "serve.log"), timeout=120,
                                  results_dir=tmp_path)
    out = tmp_path / "loop"
    try:
        with Client(backend.endpoint, timeout=1.0, retries=2) as client:
            job = _start_long_job(client, out)
            before = _snapshot(out)
            os.kill(backend.process.pid, signal.SIGKILL)
            killed = time.monotonic()
            with pytest.raises(BackendUnavailable, match="stopped answering"):
                client.wait(job, timeout=30)
            assert time.monotonic() - killed < 6.0
            assert _snapshot(out) == before
            with pytest.raises(BackendUnavailable, match="no answer from the backend"):
                client.ping()
    finally:
        backend.stop()


def test_sigterm_cancels_the_running_job_and_exits_cleanly(tmp_path: Path) -> None:
    backend = start_local_backend(sys.executable, log_path=str(tmp_path / "serve.log"), timeout=120,
                                  results_dir=tmp_path)
    out = tmp_path / "loop"
    try:
        with Client(backend.endpoint) as client:
            job = _start_long_job(client, out)
            before = _snapshot(out)
            backend.process.send_signal(signal.SIGTERM)
            with pytest.raises(Cancelled):
                client.wait(job, timeout=30)
        assert backend.process.wait(30) == 0
        assert _snapshot(out) == before
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".loop")] == []
        assert "shutting down" in (tmp_path / "serve.log").read_text()
    finally:
        backend.stop()


def test_sigterm_still_tells_a_client_that_fell_behind(tmp_path: Path) -> None:
    # The client reads nothing while its frames pile up in the backend (the job pauses at the
    # backlog), so "cancelled" is queued behind tens of MiB when the backend is told to stop.
    backend = start_local_backend(sys.executable, log_path=str(tmp_path / "serve.log"), timeout=120,
                                  results_dir=tmp_path / "results")
    try:
        with Client(backend.endpoint) as client:
            job = client.submit(long_image(3), motion=LONG_MOTION, options=LONG)
            deadline = time.monotonic() + 60
            while job.stage != "render" and time.monotonic() < deadline:
                client.poll(0.1)
            wait_log(backend.log_path, f"job {job.job_id} paused")
            backend.process.send_signal(signal.SIGTERM)
            with pytest.raises(Cancelled):
                client.wait(job, timeout=30)
        assert backend.process.wait(30) == 0
    finally:
        backend.stop()


class TestBindRule:
    @pytest.mark.parametrize("endpoint, local", [
        ("tcp://127.0.0.1:5555", True), ("tcp://127.1.2.3:5555", True), ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True), ("ipc:///tmp/stillflow.sock", True), ("tcp://*:5555", False),
        ("tcp://0.0.0.0:5555", False), ("tcp://192.168.1.20:5555", False), ("tcp://eth0:5555", False),
    ])
    def test_is_local_endpoint(self, endpoint: str, local: bool) -> None:
        assert is_local_endpoint(endpoint) is local

    def test_check_bind_refuses_without_keys(self) -> None:
        with pytest.raises(InputError, match="without encryption"):
            check_bind("tcp://0.0.0.0:5555", None)

    def test_cli_refuses_non_loopback_bind(self) -> None:
        run = subprocess.run([sys.executable, "-m", "stillflow", "serve", "--bind", "tcp://*:0"],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == InputError.exit_code
        assert "create keys with `stillflow keys DIR`" in run.stderr


def test_curve_admits_known_keys_only(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    made = subprocess.run([sys.executable, "-m", "stillflow", "keys", str(keys), "--client", "alice"],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert (keys / "allowed" / "alice.key").is_file() and (keys / "alice.key_secret").is_file()
    with pytest.raises(InputError, match="already exist"):
        generate_keys(keys, ("alice",))
    backend = start_local_backend(sys.executable, log_path=str(tmp_path / "serve.log"),
                                  timeout=120, extra_args=("--keys", str(keys)), results_dir=tmp_path / "results",
                                  server_key=keys / "server.key", client_keys=keys / "alice.key_secret")
    endpoint = backend.endpoint  # keyed on loopback: tests never listen on the machine's network address
    try:
        with Client(endpoint, server_key=keys / "server.key", client_keys=keys / "alice.key_secret") as alice:
            assert alice.hello()["curve"] is True
            result = alice.wait(alice.submit(_image(3, 48, 64), motion=MOTION, options=SHORT), timeout=60)
            assert result["frames"].shape == (4, 48, 64, 3)
        stranger_keys = zmq.curve_keypair()
        with Client(endpoint, timeout=1.0, retries=1, server_key=keys / "server.key",
                    client_keys=stranger_keys) as stranger:
            # ZeroMQ only times out on keys that do not fit; the client's probe says which.
            with pytest.raises(BackendUnavailable, match="does not accept this computer's key"):
                stranger.hello()
        with Client(endpoint, timeout=1.0, retries=1) as plain:
            with pytest.raises(BackendUnavailable, match="requires CURVE keys; set server_key"):
                plain.hello()
        _assert_cli_fails(["ping", "--endpoint", endpoint, "--timeout", "1", "--retries", "1"],
                          f"the backend at {endpoint} requires CURVE keys; set --server-key (its server.key) and "
                          f"--client-key (your NAME.key_secret)")
        made = subprocess.run([sys.executable, "-m", "stillflow", "keys", str(tmp_path / "other"), "--client", "eve"],
                              capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        _assert_cli_fails(["ping", "--endpoint", endpoint, "--timeout", "1", "--retries", "1",
                           "--server-key", str(keys / "server.key"), "--client-key", str(tmp_path / "other" / "eve.key_secret")],
                          f"({tmp_path / 'other' / 'eve.key_secret'} is not in its allowed keys)")
        _assert_cli_fails(["ping", "--endpoint", endpoint, "--timeout", "1", "--retries", "1",
                           "--server-key", str(tmp_path / "other" / "server.key"), "--client-key", str(keys / "alice.key_secret")],
                          "rejected the encrypted handshake: --server-key is not that backend's server.key")
    finally:
        assert backend.stop() == 0


def _assert_cli_fails(args: list[str], message: str) -> None:
    """``stillflow ARGS`` exits with BackendUnavailable's code and one stderr line holding ``message``."""
    run = subprocess.run([sys.executable, "-m", "stillflow", *args], capture_output=True, text=True, timeout=60)
    assert run.returncode == BackendUnavailable.exit_code, run.stderr
    assert message in run.stderr, run.stderr
