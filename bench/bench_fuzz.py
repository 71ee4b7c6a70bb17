"""Fuzzing a real `stillflow serve`: messages sent, explicit errors, drops, crashes and RSS growth.

Target (issue 11): no crash, no `internal` code, no unanswered message, bounded memory. The
seeded cases are those of tests/backend/fuzz_messages.py; the reference measured in the same run
is the rate of plain pings, so the fuzz rate is also given as a ratio to it.

Issue 26 adds three categories sent while a bystander client pings the backend without pause:
header bombs (six connections sending five each), frame counts and extreme values. Targets: the
bystander's worst ping <= 0.5 s, and the backend's peak RSS growth for one message <= 1.25x the
advertised max_message_bytes. The frame counts go to a second backend started as the issue
measured it, with --max-part-mb 64 (max_message_bytes 128 MiB, max_frame_bytes 8 MiB): 300,000
empty frames, 16 frames of a whole 64 MiB part, and a valid 90 MiB message (a 60 MiB still, mask
and importance map) sent in chunks by the Client (the reference: what a message within the limits
costs).

    python bench/bench_fuzz.py [--messages 5000] [--seed 1] [--json]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "backend"))

from fuzz_messages import (Case, FuzzReport, cases, extreme_cases, frame_count_cases, header_bombs,  # noqa: E402
                           oversize_cases, peak_rss_bytes, reset_peak_rss, rss_bytes, send_all)

import numpy as np  # noqa: E402

from stillflow import __version__  # noqa: E402
from stillflow.errors import InputError  # noqa: E402
from stillflow.options import RenderOptions  # noqa: E402
from stillflow.link.client import Client  # noqa: E402
from stillflow.link.launcher import start_local_backend  # noqa: E402

MAX_PART_MB = 1
FRAME_COUNT_PART_MB = 64


def _ping_rate(endpoint: str, count: int) -> float:
    """Pings per second from one client (the reference)."""
    with Client(endpoint, timeout=5.0) as client:
        started = time.perf_counter()
        for _ in range(count):
            client.ping()
        return count / (time.perf_counter() - started)


class Bystander:
    """A client in its own process (so this one's threads cannot slow it) that pings without pause.

    ``worst(since)`` is its slowest round trip that started after ``since`` (time.time()).
    """

    def __init__(self, endpoint: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_ping_until, args=(endpoint, self._stop, send), daemon=True)
        self.samples: list[tuple[float, float]] = []

    def __enter__(self) -> "Bystander":
        self._process.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._receive.poll(120):
            self.samples = self._receive.recv()
        self._process.join(30)

    def worst(self, since: float, until: float) -> float:
        """Slowest ping in flight at any time between ``since`` and ``until`` (NaN when none was)."""
        return max((seconds for started, seconds in self.samples if started <= until and started + seconds >= since),
                   default=float("nan"))

    def count(self, since: float, until: float) -> int:
        """Pings in flight at any time between ``since`` and ``until``."""
        return sum(1 for started, seconds in self.samples if started <= until and started + seconds >= since)


def _ping_until(endpoint: str, stop: Any, send: Any) -> None:
    """Bystander process: ping until ``stop`` is set, then send [(start time, seconds)] back."""
    samples = []
    with Client(endpoint, timeout=30.0, retries=1) as client:
        while not stop.is_set():
            started = time.time()
            try:
                client.ping()
                samples.append((started, time.time() - started))
            except Exception:  # a lost ping counts as the whole wait
                samples.append((started, time.time() - started))
            time.sleep(0.01)
    send.send(samples)


def _flood(endpoint: str, frames: list[Any], report: FuzzReport, connections: int = 6, each: int = 5) -> None:
    """Send ``frames`` ``each`` times from ``connections`` connections at once, as fast as they are answered."""
    reports = [FuzzReport() for _ in range(connections)]
    threads = [threading.Thread(target=send_all, args=(endpoint, iter([Case("header-bomb", frames)] * each), mine))
               for mine in reports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    for mine in reports:
        report.sent += mine.sent
        report.explicit += mine.explicit
        report.internal += mine.internal
        report.silent += mine.silent
        for code, count in mine.codes.items():
            report.codes[code] = report.codes.get(code, 0) + count


def _new_categories(endpoint: str, seed: int) -> dict[str, Any]:
    """Header bombs, frame counts and extreme values while a bystander pings: its worst ping, peak RSS per message."""
    rng = random.Random(seed)
    report = FuzzReport()
    phases: dict[str, tuple[float, float]] = {}
    _wait_idle(endpoint)  # jobs the seeded fuzz accepted must not be counted against the new categories
    with Bystander(endpoint) as bystander:
        time.sleep(2.0)  # the bystander's process starts and connects
        started = time.time()
        for bomb in header_bombs(rng):
            _flood(endpoint, bomb.frames, report)
        phases["header_bomb"], started = (started, time.time()), time.time()
        send_all(endpoint, extreme_cases(rng, 200), report)
        _wait_idle(endpoint)
        phases["extreme"] = (started, time.time())
    return {"new_categories_sent": report.sent, "new_internal": len(report.internal),
            "new_unanswered": len(report.silent), "new_codes": report.codes,
            "bystander_pings": len(bystander.samples),
            **{f"bystander_worst_ping_s_{name}": bystander.worst(*span) for name, span in phases.items()},
            **{f"bystander_pings_during_{name}": bystander.count(*span) for name, span in phases.items()},
            **{f"seconds_{name}": span[1] - span[0] for name, span in phases.items()},
            **_frame_counts(rng)}


def _frame_counts(rng: random.Random) -> dict[str, Any]:
    """Peak RSS growth per message (and a bystander's worst ping) on a backend with --max-part-mb 64."""
    log_path = Path(tempfile.mkdtemp(prefix="bench-frames-")) / "serve.log"
    backend = start_local_backend(sys.executable, log_path=str(log_path), timeout=180.0,
                                  extra_args=("--max-part-mb", str(FRAME_COUNT_PART_MB)))
    pid, endpoint = backend.process.pid, backend.endpoint
    growths: dict[str, float] = {}
    report = FuzzReport()

    def measure(name: str, send: Any) -> None:
        before = rss_bytes(pid)
        reset_peak_rss(pid)
        send()
        growths[name] = (peak_rss_bytes(pid) - before) / 2**20

    try:
        with Client(endpoint, timeout=30.0) as client:
            limits = client.hello()["limits"]
        with Bystander(endpoint) as bystander:
            time.sleep(2.0)
            started = time.time()
            for case in frame_count_cases(rng, FRAME_COUNT_PART_MB << 20):
                measure(f"{len(case.frames) - 1}_frames", lambda: send_all(endpoint, iter([case]), report))
            measure("valid_90MiB_chunked", lambda: _valid_message(endpoint))
            ended = time.time()
        worst, during = bystander.worst(started, ended), bystander.count(started, ended)  # samples come at exit
    finally:
        backend.stop()
    advertised = limits["max_message_bytes"] / 2**20
    return {"frame_count_new_internal": len(report.internal), "frame_count_codes": report.codes,
            "bystander_worst_ping_s_frame_count": worst, "bystander_pings_during_frame_count": during,
            **{f"peak_rss_mib_{name}": value for name, value in growths.items()},
            "advertised_max_message_mib": advertised, "max_frame_mib": limits["max_frame_bytes"] / 2**20,
            "peak_rss_to_advertised": max(growths.values()) / advertised}


def _valid_message(endpoint: str) -> None:
    """Send a 60 MiB still with a mask and an importance map (90 MiB, chunked by the Client).

    Its preview size is out of range, so the backend refuses it after reading every part: what is
    measured is the message, not a render (bench_memory.py measures renders).
    """
    image = np.zeros((2048, 1920, 4), np.float32)
    plane = np.zeros((2048, 1920), np.float32)
    with Client(endpoint, timeout=60.0) as client:
        try:
            client.submit(image, mask=plane, importance=plane, options=RenderOptions(frames=2), preview=100_000)
        except InputError as refused:
            assert "preview must be" in str(refused), refused


def _wait_idle(endpoint: str) -> None:
    """Wait until the backend has no queued or running job."""
    with Client(endpoint, timeout=30.0) as client:
        while (state := client.status())["queue_length"] or state["busy_workers"]:
            time.sleep(0.2)


def main() -> int:
    """Run the fuzz campaign and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    log_path = Path(tempfile.mkdtemp(prefix="bench-fuzz-")) / "serve.log"
    backend = start_local_backend(sys.executable, log_path=str(log_path), timeout=180.0,
                                  extra_args=("--max-part-mb", str(MAX_PART_MB), "--queue-size", "4"))
    try:
        pings = _ping_rate(backend.endpoint, 200)
        before = rss_bytes(backend.process.pid)
        peak = before
        report = FuzzReport()
        started = time.perf_counter()
        batch = 500
        for first in range(0, args.messages, batch):
            send_all(backend.endpoint, cases(args.seed + first, min(batch, args.messages - first)), report)
            peak = max(peak, rss_bytes(backend.process.pid))
        seconds = time.perf_counter() - started
        send_all(backend.endpoint, oversize_cases(random.Random(args.seed), MAX_PART_MB << 20), report)
        peak = max(peak, rss_bytes(backend.process.pid))
        added = _new_categories(backend.endpoint, args.seed)
        alive = backend.process.poll() is None
        after = rss_bytes(backend.process.pid) if alive else 0
        log_bytes = sum(p.stat().st_size for p in log_path.parent.glob("serve.log*"))
    finally:
        status = backend.stop()
    figures = {
        "version": __version__, "messages_sent": report.sent, "explicit_errors_or_replies": report.explicit,
        "internal": len(report.internal), "unanswered": len(report.silent), "dropped_by_libzmq": report.dropped,
        "accepted_jobs": report.accepted, "crashes": 0 if alive and status == 0 else 1,
        "rss_before_mib": before / 2**20, "rss_peak_growth_mib": (peak - before) / 2**20,
        "rss_end_growth_mib": (after - before) / 2**20, "fuzz_msgs_per_s": (report.sent - 3) / seconds,
        "ping_per_s_reference": pings, "fuzz_to_ping_rate": (report.sent - 3) / seconds / pings,
        "log_bytes": log_bytes, "codes": report.codes, **added,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:28s} {value:.1f}" if isinstance(value, float) else f"{key:28s} {value}")
    clean = not report.internal and not report.silent and not added["new_internal"] and not added["new_unanswered"]
    return 0 if clean and figures["crashes"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
