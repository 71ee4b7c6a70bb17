"""Fuzzing a real `stillflow serve`: messages sent, explicit errors, drops, crashes and RSS growth.

Target (issue 11): no crash, no `internal` code, no unanswered message, bounded memory. The
seeded cases are those of tests/backend/fuzz_messages.py; the reference measured in the same run
is the rate of plain pings, so the fuzz rate is also given as a ratio to it.

    python bench/bench_fuzz.py [--messages 5000] [--seed 1] [--json]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "backend"))

from fuzz_messages import FuzzReport, cases, oversize_cases, rss_bytes, send_all  # noqa: E402

from stillflow import __version__  # noqa: E402
from stillflow.link.client import Client  # noqa: E402
from stillflow.link.launcher import start_local_backend  # noqa: E402

MAX_PART_MB = 1


def _ping_rate(endpoint: str, count: int) -> float:
    """Pings per second from one client (the reference)."""
    with Client(endpoint, timeout=5.0) as client:
        started = time.perf_counter()
        for _ in range(count):
            client.ping()
        return count / (time.perf_counter() - started)


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
        "log_bytes": log_bytes, "codes": report.codes,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:28s} {value:.1f}" if isinstance(value, float) else f"{key:28s} {value}")
    return 0 if not report.internal and not report.silent and figures["crashes"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
