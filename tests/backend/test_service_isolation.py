"""Clients of one backend are isolated: jobs, status, cancel, clear, routing ids, CURVE keys, queue shares."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import zmq
import zmq.auth

from stillflow.errors import BackendUnavailable, Cancelled, InputError, ProtocolError
from stillflow.link.client import Client
from stillflow.link.launcher import LocalBackend, start_local_backend
from stillflow.link.protocol import SERVER_OPS, Message, decode, encode
from stillflow.options import MotionSpec, RenderOptions

from .service_helpers import image, long_image, module_backend, wait_render

pytestmark = pytest.mark.slow

SLOW_MOTION = MotionSpec(kind="drift", drift=(30.0, 0.02))
LONG = RenderOptions(frames=1200, levels=1)
SHORT = RenderOptions(frames=2, levels=1)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBackend]:
    yield from module_backend(tmp_path_factory, "isolation", "--queue-size", "6", "--client-queue", "2",
                              "--heartbeat", "0.5")


def _finish(client: Client, *jobs: object) -> None:
    """Cancel ``jobs`` and wait until each has ended (cancelled, or done before the cancel reached it)."""
    for job in jobs:
        try:
            client.cancel(job)  # type: ignore[arg-type]
        except InputError:
            pass
        try:
            client.wait(job, timeout=60)  # type: ignore[arg-type]
        except Cancelled:
            pass


def test_status_cancel_and_clear_see_only_the_callers_jobs(backend: LocalBackend) -> None:
    with Client(backend.endpoint) as alice, Client(backend.endpoint) as bob:
        running = alice.submit(long_image(1), motion=SLOW_MOTION, options=LONG)
        wait_render(alice, running)
        queued = alice.submit(image(2), motion=SLOW_MOTION, options=SHORT)
        status = bob.status()
        assert status["running"] == [] and status["queued"] == []
        assert status["busy_workers"] == 1 and status["queue_length"] == 1
        for attempt in (lambda: bob.status(running), lambda: bob.cancel(running), lambda: bob.cancel(queued)):
            with pytest.raises(InputError, match=f"no queued or running job '{running.job_id}'|no queued or running"):
                attempt()
        assert bob.clear(everyone=True) == 0
        mine = alice.status()
        assert [j["job"] for j in mine["running"]] == [running.job_id]
        assert [j["job"] for j in mine["queued"]] == [queued.job_id]
        assert alice.status(running)["state"] == "running"
        assert alice.clear() == 1
        _finish(alice, running, queued)


def test_a_second_connection_with_a_clients_routing_id_gets_nothing(backend: LocalBackend) -> None:
    with Client(backend.endpoint) as alice:
        job = alice.submit(long_image(3), motion=SLOW_MOTION, options=LONG)
        wait_render(alice, job)
        intruder = zmq.Context.instance().socket(zmq.DEALER)
        intruder.setsockopt(zmq.LINGER, 0)
        intruder.setsockopt(zmq.ROUTING_ID, alice._identity)
        intruder.connect(backend.endpoint)
        try:
            intruder.send_multipart(encode(Message("status", req="intruder-1")))
            heard = []
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                if intruder.poll(100):
                    heard.append(decode(intruder.recv_multipart(), ops=SERVER_OPS))
                alice.poll(0)
            assert all(message.job != job.job_id for message in heard), heard
            assert not any(message.op in ("progress", "part", "heartbeat") for message in heard), heard
            before = job.done
            alice.poll(1.0)
            # she hears it advance, or hears it end (a quiet machine renders the whole job meanwhile)
            assert job.done > before or job.state in ("running", "done"), "alice stopped hearing her job"
        finally:
            intruder.close()
        _finish(alice, job)


def test_a_client_that_reconnects_is_heard_at_once(backend: LocalBackend) -> None:
    with Client(backend.endpoint, timeout=2.0, retries=1) as client:
        client.status()
        for _ in range(50):  # reconnecting at once (no pause) lost about 1 in 20 of them here
            client.reconnect()
            client.status()  # one try: a new connection that ZeroMQ ignored would raise BackendUnavailable


def test_one_client_cannot_fill_the_queue(backend: LocalBackend) -> None:
    with Client(backend.endpoint) as alice, Client(backend.endpoint) as bob:
        running = alice.submit(long_image(4), motion=SLOW_MOTION, options=LONG)
        wait_render(alice, running)
        queued = [alice.submit(image(5), motion=SLOW_MOTION, options=SHORT) for _ in range(2)]
        with pytest.raises(BackendUnavailable, match="the most one client may queue"):
            alice.submit(image(6), motion=SLOW_MOTION, options=SHORT)
        other = bob.submit(image(7), motion=SLOW_MOTION, options=SHORT)
        assert bob.status(other)["state"] == "queued"
        assert bob.clear() == 1 and alice.clear() == 2
        _finish(alice, running, *queued)
        _finish(bob, other)


def test_curve_jobs_belong_to_the_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    made = subprocess.run([sys.executable, "-m", "stillflow", "keys", str(keys), "--client", "alice", "--client",
                           "bob"], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    server_key = keys / "server.key"
    backend = start_local_backend(sys.executable, log_path=str(tmp_path / "serve.log"),
                                  timeout=120, extra_args=("--keys", str(keys), "--heartbeat", "0.5"),
                                  server_key=server_key, client_keys=keys / "alice.key_secret",
                                  results_dir=tmp_path / "results")
    endpoint = backend.endpoint  # keyed on loopback: tests never listen on the machine's network address
    try:
        with Client(endpoint, server_key=server_key, client_keys=keys / "alice.key_secret") as alice, \
                Client(endpoint, server_key=server_key, client_keys=keys / "bob.key_secret") as bob:
            job = alice.submit(long_image(8), motion=SLOW_MOTION, options=LONG)
            wait_render(alice, job)
            assert bob.status()["running"] == []
            with pytest.raises(InputError, match="no queued or running job"):
                bob.cancel(job)
            # bob's key on a socket that claims alice's routing id is refused while alice has jobs
            alice.close()
            reply = None
            deadline = time.monotonic() + 10
            while reply is None and time.monotonic() < deadline:
                # A fresh connection each try: until the backend has dropped alice's connection,
                # ZeroMQ ignores a second one with her routing id (and never looks at it again).
                impostor = zmq.Context.instance().socket(zmq.DEALER)
                impostor.setsockopt(zmq.LINGER, 0)
                impostor.setsockopt(zmq.ROUTING_ID, alice._identity)
                impostor.curve_serverkey = zmq.auth.load_certificate(str(server_key))[0]
                impostor.curve_publickey, impostor.curve_secretkey = zmq.auth.load_certificate(
                    str(keys / "bob.key_secret"))
                impostor.connect(endpoint)
                try:
                    impostor.send_multipart(encode(Message("cancel", req=f"x{time.monotonic()}", job=job.job_id)))
                    while impostor.poll(500):
                        message = decode(impostor.recv_multipart(), ops=SERVER_OPS)
                        assert message.job in (None, job.job_id) and message.op not in ("progress", "part")
                        if message.req is not None:
                            reply = message
                finally:
                    impostor.close()
            assert reply is not None and reply.op == "error"
            assert reply.body["code"] == ProtocolError.wire_code
            assert "belongs to another client" in reply.body["msg"]
    finally:
        assert backend.stop() == 0
