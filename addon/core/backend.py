"""How the add-on reaches a backend: a local process it starts, or an endpoint it connects to.

No ``bpy`` module use: preferences arrive as a plain ``BackendConfig``.

Thread and process contract:
  - Only Blender's main thread touches bpy; this module never imports it.
  - The one ``Client`` (a DEALER socket) is created, used and closed on the main thread
    (operators and timer ticks); it never crosses threads.
  - Connecting is a ``core.connect.Connect`` state machine: ``Connection.begin()`` returns one for
    the timer to step (never blocking), ``adopt()`` takes its result; ``get_client()`` and
    ``hello()`` step it in a loop for callers that may block (``blender -b`` scripts, batch).
  - A local backend is a child process (``python -m stillflow serve --parent-pid <Blender>``) that
    exits by itself when Blender dies; ``Connection.close()`` (unregister, a changed setting) asks it
    to stop and returns at once (``connect.stop_later`` waits for the exit on a daemon thread).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Literal

from . import probe
from .connect import Connect, Connected, stop_later
from .lib import load

log = logging.getLogger(__name__)

__all__ = ["BackendConfig", "Connection", "find_backend_python", "python_has_stillflow", "describe_hello"]

_errors = load("errors")

PYTHON_ENV = probe.PYTHON_ENV


@dataclass(frozen=True, slots=True)
class BackendConfig:
    """Plain copy of the preferences that decide how to reach the backend."""

    mode: Literal["LOCAL", "REMOTE"] = "LOCAL"
    python: str = ""
    endpoint: str = ""
    server_key: str = ""
    client_key_file: str = ""
    log_dir: str = ""
    timeout: float = 2.5
    start_timeout: float = 60.0
    results_dir: str = ""
    """LOCAL: the folder the started backend writes results under (``serve --results``)."""
    private_python: str = ""
    """LOCAL: the interpreter of the environment Install Backend made (first candidate when ``python`` is empty)."""

    @property
    def is_local(self) -> bool:
        """True when the add-on starts the backend itself (frames are shared through the file system)."""
        return self.mode == "LOCAL"


def python_has_stillflow(python: str, *, timeout: float = 30.0) -> bool:
    """True when ``python`` imports the real stillflow package (probed from a neutral folder)."""
    finder = probe.PythonFinder(python)
    deadline = time.monotonic() + timeout
    try:
        while not finder.step():
            if time.monotonic() > deadline:
                finder.cancel()
                return False
            time.sleep(0.02)
    except _errors.BackendUnavailable:
        return False
    return True


def find_backend_python(configured: str = "") -> str:
    """The interpreter that runs the backend: the configured one, else the first candidate that imports stillflow.

    Raises:
        BackendUnavailable: no interpreter with the stillflow package was found.
    """
    finder = probe.PythonFinder(configured)
    while not (found := finder.step()):
        time.sleep(0.02)
    return found


def describe_hello(hello: dict[str, Any]) -> str:
    """One line for the artist from a ``hello`` answer: version, the devices it renders on, engines."""
    version = hello.get("version", "?")
    devices = [str(d) for d in hello.get("devices", []) if d] or ([str(hello["device"])] if hello.get("device") else [])
    engines = ", ".join(map(str, hello.get("engines", []))) or "?"
    return f"Stillflow backend {version} on {', '.join(devices) or '?'}; engines: {engines}"


class Connection:
    """The add-on's one link to a backend: a Client and, in LOCAL mode, the backend process."""

    def __init__(self) -> None:
        self.config: BackendConfig | None = None
        self.client: Any | None = None
        self.backend: Any | None = None
        self.hello_body: dict[str, Any] = {}
        self.log_offset = 0
        self.serve_args: tuple[str, ...] = ()

    @property
    def log_path(self) -> str:
        """Where the local backend writes its log ('' when none was started)."""
        return str(self.backend.log_path) if self.backend is not None and self.backend.log_path else ""

    def log_error(self) -> str:
        """The local backend's last error line since it was started, shortened ('' without one)."""
        return probe.last_error_line(self.log_path, self.log_offset) if self.log_path else ""

    def is_ready(self, config: BackendConfig) -> bool:
        """True when a Client for ``config`` exists and a local backend (if any) still runs."""
        if self.config != config or self.client is None:
            return False
        return self.backend is None or self.backend.process.poll() is None

    def reap(self) -> bool:
        """True when a local backend this connection started has exited (collecting its exit status)."""
        return self.backend is not None and self.backend.process.poll() is not None

    def begin(self, config: BackendConfig) -> Connect | None:
        """A Connect to step for ``config``, or None when the current connection already serves it."""
        if self.is_ready(config):
            return None
        self.close()
        return Connect(config, parent_pid=os.getpid(), serve_args=self.serve_args)

    def begin_check(self, config: BackendConfig) -> tuple[Connect, bool]:
        """A Connect for Check Backend and whether its result should replace this connection.

        A working connection for ``config`` is probed with a fresh hello on its endpoint (no restart);
        otherwise the Connect is the one a job would use (a local backend it starts is kept).
        """
        if not self.is_ready(config):
            self.close()
            return Connect(config, parent_pid=os.getpid(), serve_args=self.serve_args), True
        probe_config = config if not config.is_local else dataclasses.replace(
            config, mode="REMOTE", endpoint=self.client.endpoint, server_key="", client_key_file="")
        return Connect(probe_config), False

    def adopt(self, connect: Connect) -> Any:
        """Take a finished Connect's Client (and backend); raise its error when it failed."""
        if connect.result is None:
            raise connect.error or _errors.Cancelled("connecting to the backend was cancelled")
        done: Connected = connect.result
        self.close()
        self.config, self.client, self.backend = connect.config, done.client, done.backend
        self.hello_body, self.log_offset = done.hello, done.log_offset
        return self.client

    def get_client(self, config: BackendConfig) -> Any:
        """A Client for ``config``, starting a local backend first when needed (blocks; not for the timer).

        Raises:
            InputError: a CURVE key preference is empty, missing or not a key.
            BackendUnavailable: the interpreter is missing, the process would not start, the
                endpoint does not answer or refuses our keys; the message says which or where the log is.
        """
        connect = self.begin(config)
        if connect is not None:
            connect.run()
            self.adopt(connect)
        return self.client

    def hello(self, config: BackendConfig) -> dict[str, Any]:
        """The backend's ``hello`` answer (blocks; not for the timer)."""
        connect = self.begin(config)
        if connect is None:
            return self.client.hello()
        connect.run()
        self.adopt(connect)
        return self.hello_body

    def close(self) -> None:
        """Close the client and ask a local backend this connection started to stop (never waits for it)."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.backend is not None:
            stop_later(self.backend)
            self.backend = None
        self.config = None
        self.hello_body = {}
