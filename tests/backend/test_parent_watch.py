"""``stillflow serve --parent-pid PID`` ends when that process does (real processes)."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from stillflow.service.parent_watch import is_alive


def test_feature_serve_exits_after_its_parent(tmp_path: Path) -> None:
    parent = subprocess.Popen(["sleep", "600"])
    endpoint_file = tmp_path / "endpoint"
    serve = subprocess.Popen([sys.executable, "-m", "stillflow", "-q", "serve", "--bind", "tcp://127.0.0.1:*",
                              "--endpoint-file", str(endpoint_file), "--log", str(tmp_path / "serve.log"),
                              "--results", str(tmp_path / "results"), "--parent-pid", str(parent.pid)])
    try:
        deadline = time.monotonic() + 120
        while not endpoint_file.is_file() and time.monotonic() < deadline:
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        time.sleep(1.0)
        assert serve.poll() is None  # still serving while the parent lives
        parent.kill()
        parent.wait()
        gone = time.monotonic()
        serve.wait(timeout=15)
        assert time.monotonic() - gone < 5.0
        assert "parent process" in (tmp_path / "serve.log").read_text()
    finally:
        for process in (parent, serve):
            if process.poll() is None:
                process.kill()


def test_feature_is_alive() -> None:
    probe = subprocess.Popen(["sleep", "600"])
    assert is_alive(probe.pid)
    probe.kill()
    probe.wait()
    assert not is_alive(probe.pid)
