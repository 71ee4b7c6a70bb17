"""A seeded fuzz run against a real `stillflow serve`: every hostile message gets an explicit answer."""
from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Iterator

import pytest

from stillflow.link.client import Client
from stillflow.link.launcher import LocalBackend

from .service_helpers import module_backend, warm_up
from .fuzz_messages import CATEGORIES, FuzzReport, cases, oversize_cases, rss_bytes, send_all

pytestmark = pytest.mark.slow

SEED = 20261201
COUNT = 2100
MAX_PART_MB = 1


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBackend]:
    yield from module_backend(tmp_path_factory, "fuzz", "--max-part-mb", str(MAX_PART_MB), "--queue-size", "4",
                              "--heartbeat", "0.5")


def test_every_fuzzed_message_gets_an_explicit_answer(backend: LocalBackend) -> None:
    warm_up(backend.endpoint)
    before = rss_bytes(backend.process.pid)
    report = send_all(backend.endpoint, cases(SEED, COUNT), FuzzReport())
    assert backend.process.poll() is None, "the backend stopped"
    assert report.internal == [], report.internal[:5]
    assert report.silent == [], report.silent[:5]
    assert report.sent == COUNT and report.explicit >= COUNT - COUNT // len(CATEGORIES), report.codes
    assert set(report.codes) <= {"bad_input", "protocol", "unavailable", "model_missing", "accepted", "hello",
                                 "pong", "status", "ok"}, report.codes
    with Client(backend.endpoint, timeout=5.0) as client:
        assert client.ping() < 5.0
        # accepted fuzz jobs (e.g. 1000 px/frame drift: a 4000 px canvas) may still be running; what
        # must not grow is the memory the backend keeps once it is idle again
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = client.status()
            if state["queue_length"] == 0 and state["busy_workers"] == 0:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the backend is still busy 120 s after the fuzz: {state}")
    grown = rss_bytes(backend.process.pid) - before
    assert grown < 200 << 20, f"the backend grew by {grown / 2**20:.0f} MiB"


def test_oversize_messages_are_refused_or_dropped(backend: LocalBackend) -> None:
    report = send_all(backend.endpoint, oversize_cases(random.Random(SEED), MAX_PART_MB << 20), FuzzReport())
    assert report.internal == [] and report.silent == [], (report.internal, report.silent)
    assert report.codes == {"protocol": 2}, report.codes  # header over 1 MiB; parts over the message cap
    assert report.dropped == 1  # one frame above MAXMSGSIZE: libzmq disconnects that peer
    assert backend.process.poll() is None
    with Client(backend.endpoint, timeout=5.0) as client:
        assert client.hello()["limits"]["max_message_bytes"] == 2 * MAX_PART_MB << 20


def test_refusals_are_logged_cut_short_and_rate_limited(backend: LocalBackend) -> None:
    send_all(backend.endpoint, cases(SEED + 1, 300), FuzzReport())
    lines = Path(backend.log_path).read_text().splitlines()
    refused = [line for line in lines if " refused: " in line]
    assert refused and max(len(line) for line in refused) < 400
    assert any("were not logged" in line for line in lines) or len(refused) <= 20 * 8
