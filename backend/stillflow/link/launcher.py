"""Starting a Stillflow backend process on this machine and waiting until it answers.

No torch, no bpy, no cv2 (bundled into the add-on with client.py).

Thread and process contract:
  - start_local_backend() blocks the calling thread until the backend answers ``hello`` or the
    timeout passes; the add-on calls it from an operator, never from a timer tick.
  - The backend is a separate process (``python -m stillflow serve``) with its own log file;
    LocalBackend.stop() sends SIGTERM and kills it after a grace period, then removes the
    temporary folder (endpoint file, default log) made for it.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .client import Client
from ..errors import BackendUnavailable

__all__ = ["LocalBackend", "start_local_backend"]

log = logging.getLogger(__name__)


@dataclass
class LocalBackend:
    """A backend process started by start_local_backend()."""

    process: subprocess.Popen[bytes]
    endpoint: str
    log_path: str
    state_dir: str | None = None
    """Temporary folder made for this backend (endpoint file, default log); removed once it exited."""

    def stop(self, timeout: float = 15.0) -> int:
        """Ask the backend to shut down (SIGTERM; kill after ``timeout`` s); returns its exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        return int(self.process.returncode)


def start_local_backend(python: str, *, endpoint: str | None = None, log_path: str | None = None,
                        timeout: float = 60.0, extra_args: tuple[str, ...] = (),
                        server_key: bytes | str | os.PathLike[str] | None = None,
                        client_keys: tuple[bytes, bytes] | str | os.PathLike[str] | None = None,
                        results_dir: str | os.PathLike[str] | None = None,
                        allow_read: Sequence[str | os.PathLike[str]] = ()) -> LocalBackend:
    """Start ``python -m stillflow serve`` on this machine and wait until it answers hello.

    ``endpoint`` None picks a free loopback port; ``extra_args`` go to ``serve`` (with
    ``--keys``, pass the keys the hello check connects with). ``results_dir`` (``--results``)
    is the folder job outputs go under (None: the backend's per-user default) and each
    ``allow_read`` folder (``--allow-read``) one whose files jobs may name as input paths.
    Raises BackendUnavailable (with the log's last lines) when the process exits or does not
    answer within ``timeout`` s; the temporary folder made for it then stays only when it holds the log.
    """
    state = Path(tempfile.mkdtemp(prefix="stillflow-backend-"))
    log_path = log_path or str(state / "serve.log")
    endpoint_file = state / "endpoint"
    # -q: the service logs to log_path itself; its stderr (same file) then only carries crashes
    command = [python, "-m", "stillflow", "-q", "serve", "--bind", endpoint or "tcp://127.0.0.1:*",
               "--log", log_path, "--endpoint-file", str(endpoint_file)]
    if results_dir is not None:
        command += ["--results", os.fspath(results_dir)]
    for folder in allow_read:
        command += ["--allow-read", os.fspath(folder)]
    command += extra_args
    with open(log_path, "ab") as stream:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=stream, stderr=stream,
                                   close_fds=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _forget(state, log_path)
            raise BackendUnavailable(f"the backend exited with status {process.returncode}: {_tail(log_path)}",
                                     hint=f"see {log_path}")
        if endpoint_file.is_file() and (bound := endpoint_file.read_text().strip()):
            client = Client(bound, timeout=1.0, retries=1, server_key=server_key, client_keys=client_keys)
            try:
                client.hello()
            except BackendUnavailable:
                log.debug("backend at %s does not answer yet; polling again", bound)
            else:
                return LocalBackend(process=process, endpoint=bound, log_path=log_path, state_dir=str(state))
            finally:
                client.close()
        time.sleep(0.1)
    LocalBackend(process=process, endpoint=endpoint or "", log_path=log_path).stop()
    _forget(state, log_path)
    raise BackendUnavailable(f"the backend did not answer within {timeout:g} s", hint=f"see {log_path}")


def _forget(state: Path, log_path: str) -> None:
    """Remove a failed start's temporary folder unless the log the error points to is in it."""
    if Path(log_path).parent != state:
        shutil.rmtree(state, ignore_errors=True)


def _tail(path: str, lines: int = 3) -> str:
    """The last lines of a log file, joined on one line."""
    try:
        text = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"
