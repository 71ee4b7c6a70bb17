"""Client library against peers that misbehave: nothing listening, another protocol version, silence."""
from __future__ import annotations

import socket
import threading
import time
from typing import Callable, Iterator

import msgpack
import numpy as np
import pytest
import zmq

from stillflow.link.client import Client
from stillflow.errors import BackendUnavailable, InputError, ProtocolError
from stillflow.options import MotionSpec, RenderOptions
from stillflow.link.protocol import PROTOCOL_VERSION, REQUEST_OPS, Limits, Message, decode, encode


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def peer() -> Iterator[Callable[[Callable[[zmq.Socket, list[bytes]], None]], str]]:
    """A ROUTER on loopback answering each request with ``answer(router, frames)`` in a thread."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(answer: Callable[[zmq.Socket, list[bytes]], None]) -> str:
        router = zmq.Context.instance().socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        port = router.bind_to_random_port("tcp://127.0.0.1")

        def loop() -> None:
            try:
                while not stop.is_set():
                    if router.poll(50):
                        answer(router, router.recv_multipart())
            finally:
                router.close()

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        threads.append(thread)
        return f"tcp://127.0.0.1:{port}"

    yield start
    stop.set()
    for thread in threads:
        thread.join(5)


def _reply(router: zmq.Socket, identity: bytes, message: Message, version: int = PROTOCOL_VERSION) -> None:
    frames = encode(message)
    header = msgpack.unpackb(frames[0])
    header["v"] = version
    router.send_multipart([identity, msgpack.packb(header), *frames[1:]])


def test_no_backend_is_reported_after_the_retries() -> None:
    client = Client(f"tcp://127.0.0.1:{_free_port()}", timeout=0.3, retries=2)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="after 2 tries of 0.3 s"):
        client.hello()
    assert time.monotonic() - started < 3.0
    client.close()


class _NoPeerClient(Client):
    """A client whose socket has no peer to queue to until one connects, like after a refused handshake."""

    def _open(self) -> None:
        context = self._context
        self._context = _ImmediateContext(context)
        try:
            super()._open()
        finally:
            self._context = context


class _ImmediateContext:
    """Makes sockets that queue only to completed connections (ZMQ_IMMEDIATE, set before connect)."""

    def __init__(self, context: zmq.Context) -> None:
        self._context = context

    def socket(self, kind: int) -> zmq.Socket:
        socket = self._context.socket(kind)
        socket.setsockopt(zmq.IMMEDIATE, 1)
        return socket


def test_a_send_with_no_peer_fails_over_instead_of_blocking() -> None:
    client = _NoPeerClient(f"tcp://127.0.0.1:{_free_port()}", timeout=0.3, retries=2)
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(client.hello())
        except Exception as exc:  # noqa: BLE001 - the assertion below says what was expected
            outcome.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(10.0)
    assert not thread.is_alive(), "hello() blocked in send with no connected peer"
    assert isinstance(outcome[0], BackendUnavailable) and "after 2 tries" in str(outcome[0]), outcome
    client.close()


def test_other_protocol_version_is_a_clear_error(peer: Callable) -> None:
    def answer(router: zmq.Socket, frames: list[bytes]) -> None:
        request = decode(frames[1:], ops=REQUEST_OPS)
        _reply(router, frames[0], Message("hello", {"protocol": PROTOCOL_VERSION + 1}, req=request.req),
               version=PROTOCOL_VERSION + 1)

    with Client(peer(answer), timeout=1.0, retries=1) as client:
        with pytest.raises(ProtocolError, match="protocol version 2 is not supported"):
            client.hello()


def test_silent_backend_fails_the_job_on_poll(peer: Callable) -> None:
    def answer(router: zmq.Socket, frames: list[bytes]) -> None:
        request = decode(frames[1:], ops=REQUEST_OPS)
        if request.op == "hello":
            body = {"protocol": PROTOCOL_VERSION, "limits": Limits().to_wire(), "heartbeat_s": 0.2}
            _reply(router, frames[0], Message("hello", body, req=request.req))
        elif request.op == "submit":
            _reply(router, frames[0], Message("accepted", {"position": 0}, req=request.req, job="j1"))

    with Client(peer(answer), timeout=0.5, retries=2) as client:
        job = client.submit(np.zeros((8, 8, 3), np.uint8), motion=MotionSpec(kind="drift", drift=(0.0, 1.0)),
                            options=RenderOptions(frames=2))
        started = time.monotonic()
        assert client.poll(0.0) == []
        assert time.monotonic() - started < 0.2, "poll(0) blocked"
        events = []
        while not events and time.monotonic() - started < 5:
            events = client.poll(0.1)
        assert [e.kind for e in events] == ["error"] and job.state == "failed"
        assert 0.9 < time.monotonic() - started < 4.0
        with pytest.raises(BackendUnavailable, match="stopped answering"):
            client.wait(job)


def test_curve_needs_both_keys() -> None:
    with pytest.raises(InputError, match="both"):
        Client("tcp://127.0.0.1:1", server_key=zmq.curve_keypair()[0])
