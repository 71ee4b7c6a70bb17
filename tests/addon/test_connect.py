"""addon/core/connect.py and probe.py: connecting step by step to real backend processes (plain Python).

Runs under the backend environment (``.venv``); every backend here is a real ``stillflow serve``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from addon.core import backend, probe
from addon.core.connect import Connect
from addon.core.lib import load

_errors = load("errors")
REPO = Path(__file__).resolve().parents[2]
STEP_BUDGET_S = 0.25
"""Generous bound for one step on a loaded 2-core machine; bench/bench_addon.py reports the real figures."""


def free_endpoint() -> str:
    """A loopback endpoint nobody listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def step_to_end(connect: Connect, limit: float = 90.0) -> tuple[list[str], float]:
    """Step until finished; the labels seen (in order, without repeats) and the slowest step in seconds."""
    labels: list[str] = []
    slowest = 0.0
    deadline = time.monotonic() + limit
    while True:
        started = time.perf_counter()
        more = connect.step()
        slowest = max(slowest, time.perf_counter() - started)
        label = connect.label().rstrip(" 0123456789s").rstrip()
        if not labels or labels[-1] != label:
            labels.append(label)
        if not more:
            return labels, slowest
        assert time.monotonic() < deadline, f"still {connect.state} after {limit} s"
        time.sleep(0.02)


class TestLocal:
    def test_feature_steps_to_a_working_client(self, backend_python: str, tmp_path: Path) -> None:
        connect = Connect(backend.BackendConfig(mode="LOCAL", python=backend_python, log_dir=str(tmp_path),
                                          results_dir=str(tmp_path / "results")))
        labels, slowest = step_to_end(connect)
        try:
            assert connect.state == "ready", connect.error
            assert labels[:3] == ["finding the backend's Python…", "starting backend…", "connecting…"]
            assert slowest < STEP_BUDGET_S
            assert connect.result.client.ping() > 0
            devices = connect.result.hello["devices"]  # the real device, not "auto"
            assert devices and all(d.split(":")[0] in ("cpu", "cuda", "mps") for d in devices), devices
            assert f"on {devices[0]};" in backend.describe_hello(connect.result.hello)
        finally:
            connect.result.client.close()
            connect.result.backend.stop()

    def test_feature_cancel_while_starting_stops_the_backend(self, backend_python: str, tmp_path: Path) -> None:
        connect = Connect(backend.BackendConfig(mode="LOCAL", python=backend_python, log_dir=str(tmp_path),
                                          results_dir=str(tmp_path / "results")))
        while connect.state != "starting":
            connect.step()
            time.sleep(0.01)
        process = connect._process
        started = time.perf_counter()
        connect.cancel()
        assert time.perf_counter() - started < 6.0
        assert connect.state == "cancelled" and not connect.step()
        assert process.wait(timeout=60) is not None  # asked to stop, waited for elsewhere (issue 24, 1)

    def test_exception_exit_reports_only_this_runs_log(self, backend_python: str, tmp_path: Path) -> None:
        (tmp_path / "backend.log").write_text("an old line from yesterday's run\n")
        config = backend.BackendConfig(mode="LOCAL", python=backend_python, log_dir=str(tmp_path),
                                       results_dir=str(tmp_path / "results"))
        connect = Connect(config, serve_args=("--device", "no-such-device"))
        step_to_end(connect)
        assert connect.state == "failed"
        message = str(connect.error)
        assert message.startswith("the backend exited with status")
        assert "no-such-device" in message and "yesterday" not in message

    def test_feature_backend_exits_when_its_parent_dies(self, backend_python: str, tmp_path: Path) -> None:
        # the "parent" is a child Python that connects like Blender does and is then SIGKILLed
        code = ("import sys, time; sys.path.insert(0, sys.argv[1]); from addon.core import backend; "
                "from addon.core.connect import Connect; "
                "c = Connect(backend.BackendConfig(mode='LOCAL', python=sys.argv[2], log_dir=sys.argv[3], "
                "results_dir=sys.argv[3] + '/results')); "
                "r = c.run(); print(r.backend.process.pid, flush=True); time.sleep(600)")
        parent = subprocess.Popen([sys.executable, "-c", code, str(REPO), backend_python, str(tmp_path)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            backend_pid = int(parent.stdout.readline())
            os.kill(parent.pid, signal.SIGKILL)
            parent.wait()
            killed_at = time.monotonic()
            while time.monotonic() - killed_at < 15.0 and _alive(backend_pid):
                time.sleep(0.1)
            assert not _alive(backend_pid), "the backend outlived its parent by 15 s"
            assert time.monotonic() - killed_at < 5.0
        finally:
            if parent.poll() is None:
                parent.kill()


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie whose parent died is reaped by init and counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class TestRemote:
    def test_exception_nobody_listening_never_blocks(self) -> None:
        endpoint = free_endpoint()
        connect = Connect(backend.BackendConfig(mode="REMOTE", endpoint=endpoint, timeout=0.3))
        labels, slowest = step_to_end(connect, limit=10.0)
        assert connect.state == "failed" and labels[0] == "connecting…"
        assert str(connect.error).startswith(f"no answer from the backend at {endpoint}")
        assert slowest < STEP_BUDGET_S

    def test_exception_no_endpoint(self) -> None:
        connect = Connect(backend.BackendConfig(mode="REMOTE", endpoint=""))
        assert not connect.step()
        assert str(connect.error).startswith("no backend endpoint is set")


class TestPythonProbe:
    def test_exception_not_fooled_by_a_stillflow_folder(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
        (tmp_path / "stillflow").mkdir()  # a plain folder imports as a namespace package from the cwd
        (tmp_path / "stillflow" / "__init__.py").write_text("")  # even a regular package in the cwd
        monkeypatch.chdir(tmp_path)
        system = "/usr/bin/python3"
        if not Path(system).is_file() or subprocess.run([system, "-c", "import stillflow"], cwd="/",
                                                        capture_output=True).returncode == 0:
            pytest.skip("no system python3 without stillflow")
        assert subprocess.run([system, "-c", "import stillflow"], cwd=tmp_path).returncode == 0  # the trap
        assert not backend.python_has_stillflow(system)
        with pytest.raises(_errors.BackendUnavailable, match="cannot import stillflow"):
            backend.find_backend_python(system)

    def test_feature_log_since(self, tmp_path: Path) -> None:
        log = tmp_path / "backend.log"
        log.write_text("old 1\nold 2\n")
        offset = log.stat().st_size
        with log.open("a") as stream:
            stream.write("new 1\nnew 2\n")
        assert probe.log_since(str(log), offset) == "new 1 | new 2"
        assert probe.log_since(str(log), log.stat().st_size) == "(nothing in the log)"
