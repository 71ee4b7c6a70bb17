"""addon/core/backend.py: finding the backend interpreter and connecting (plain Python, real processes)."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from addon.core import backend
from addon.core.lib import load

BackendUnavailable = load("errors").BackendUnavailable
REPO = Path(__file__).resolve().parents[2]


def free_endpoint() -> str:
    """A loopback endpoint nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


class TestFindBackendPython:
    def test_feature_configured(self) -> None:
        python = REPO / ".venv" / "bin" / "python"
        if not python.is_file():
            pytest.skip("backend environment .venv is not set up")
        assert backend.find_backend_python(str(python)) == str(python)

    def test_feature_default_from_path(self, monkeypatch: pytest.MonkeyPatch) -> None:
        bin_dir = REPO / ".venv" / "bin"
        if not (bin_dir / "stillflow").is_file():
            pytest.skip("backend environment .venv with the stillflow command is not set up")
        monkeypatch.delenv(backend.PYTHON_ENV, raising=False)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        assert Path(backend.find_backend_python()).parent == bin_dir

    def test_exception_interpreter_without_stillflow(self, tmp_path: Path) -> None:
        fake = tmp_path / "python"
        fake.write_text("#!/bin/sh\nexit 1\n")
        fake.chmod(0o755)
        with pytest.raises(BackendUnavailable, match=f"the backend interpreter {fake} cannot import stillflow"):
            backend.find_backend_python(str(fake))

    def test_exception_none_found(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.delenv(backend.PYTHON_ENV, raising=False)
        monkeypatch.setenv("PATH", str(tmp_path))
        with pytest.raises(BackendUnavailable, match="no Python with the stillflow backend was found"):
            backend.find_backend_python()


class TestConnection:
    def test_exception_no_endpoint(self) -> None:
        with pytest.raises(BackendUnavailable, match="no backend endpoint is set"):
            backend.Connection().hello(backend.BackendConfig(mode="REMOTE", endpoint=""))

    def test_exception_nobody_listening(self) -> None:
        endpoint = free_endpoint()
        connection = backend.Connection()
        with pytest.raises(BackendUnavailable, match=endpoint.replace(".", "\\.")):
            connection.hello(backend.BackendConfig(mode="REMOTE", endpoint=endpoint, timeout=0.2))
        assert connection.client is None

    def test_feature_local(self, backend_python: str, tmp_path: Path) -> None:
        connection = backend.Connection()
        config = backend.BackendConfig(mode="LOCAL", python=backend_python, log_dir=str(tmp_path),
                                       results_dir=str(tmp_path / "results"))
        try:
            hello = connection.hello(config)
            assert connection.log_path == str(tmp_path / "backend.log")
            line = backend.describe_hello(hello)
            assert line.startswith("Stillflow backend ") and "loop" in line
            process = connection.backend.process
            assert connection.get_client(config) is connection.client  # reused, not restarted
        finally:
            connection.close()  # asks it to stop and returns at once (issue 24, 1)
        assert process.wait(timeout=60) is not None


class TestDescribeHello:
    def test_feature(self) -> None:
        line = backend.describe_hello({"version": "0.1.0", "device": "cpu", "engines": ["loop", "stylegan"]})
        assert line == "Stillflow backend 0.1.0 on cpu; engines: loop, stylegan"
