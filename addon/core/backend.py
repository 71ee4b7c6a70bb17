"""How the add-on reaches a backend: a local process it starts, or an endpoint it connects to.

No ``bpy`` module use: preferences arrive as a plain ``BackendConfig``.

Thread and process contract:
  - Only Blender's main thread touches bpy; this module never imports it.
  - The one ``Client`` (a DEALER socket) is created, used and closed on the main thread
    (operators and timer ticks); it never crosses threads.
  - A local backend is a child process started with the configured interpreter
    (``python -m stillflow serve``); ``start_local_backend`` blocks until it answers ``hello``.
    ``Connection.close()`` (called from the add-on's unregister) stops it.
  - The add-on starts no Python threads; the engine runs in the backend process.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from . import handshake
from .lib import load

log = logging.getLogger(__name__)

__all__ = ["BackendConfig", "Connection", "find_backend_python", "python_has_stillflow", "describe_hello"]

_errors = load("errors")

RETRIES = 3
"""Tries per request (Lazy Pirate) before the backend counts as unavailable."""

PYTHON_ENV = "STILLFLOW_PYTHON"
"""Environment variable naming the backend interpreter; the only one the add-on reads."""


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

    @property
    def is_local(self) -> bool:
        """True when the add-on starts the backend itself (frames are shared through the file system)."""
        return self.mode == "LOCAL"


def python_has_stillflow(python: str, *, timeout: float = 30.0) -> bool:
    """True when ``python -c "import stillflow"`` succeeds (the backend package is importable there)."""
    if not python or not Path(python).is_file():
        return False
    try:
        done = subprocess.run([python, "-c", "import stillflow"], capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _candidates() -> list[str]:
    """Interpreters worth trying, most specific first."""
    found: list[str] = []
    if os.environ.get(PYTHON_ENV):
        found.append(os.environ[PYTHON_ENV])
    script = shutil.which("stillflow")
    if script:
        # the console script lives next to the interpreter of the environment it was installed in
        folder = Path(script).resolve().parent if not Path(script).is_symlink() else Path(script).parent
        for name in ("python", "python3", "python.exe"):
            if (folder / name).is_file():
                found.append(str(folder / name))
                break
    for name in ("python3", "python"):
        path = shutil.which(name)
        if path and Path(path).resolve() != Path(sys.executable).resolve():
            found.append(path)
    return list(dict.fromkeys(found))


def find_backend_python(configured: str = "") -> str:
    """The interpreter that runs the backend: the configured one, else the first candidate that imports stillflow.

    Raises:
        BackendUnavailable: no interpreter with the stillflow package was found.
    """
    if configured:
        if not python_has_stillflow(configured):
            raise _errors.BackendUnavailable(
                f"the backend interpreter {configured} cannot import stillflow",
                hint="install the backend there (pip install stillflow) or fix the path in the preferences")
        return configured
    for candidate in _candidates():
        if python_has_stillflow(candidate):
            return candidate
    raise _errors.BackendUnavailable(
        "no Python with the stillflow backend was found",
        hint=f"set the backend interpreter in the Stillflow preferences (or {PYTHON_ENV})")


def describe_hello(hello: dict[str, Any]) -> str:
    """One line for the artist from a ``hello`` answer: version, device and engines."""
    version = hello.get("version", "?")
    device = hello.get("device") or ", ".join(map(str, hello.get("devices", []))) or "?"
    engines = ", ".join(map(str, hello.get("engines", []))) or "?"
    return f"Stillflow backend {version} on {device}; engines: {engines}"


class Connection:
    """The add-on's one link to a backend: a Client and, in LOCAL mode, the backend process."""

    def __init__(self) -> None:
        self.config: BackendConfig | None = None
        self.client: Any | None = None
        self.backend: Any | None = None

    @property
    def log_path(self) -> str:
        """Where the local backend writes its log ('' when none was started)."""
        return str(self.backend.log_path) if self.backend is not None and self.backend.log_path else ""

    def get_client(self, config: BackendConfig) -> Any:
        """A Client for ``config``, starting a local backend first when needed.

        Raises:
            InputError: a CURVE key preference is empty, missing or not a key.
            BackendUnavailable: the interpreter is missing, the process would not start, the
                endpoint does not answer or refuses our keys; the message says which or where the log is.
        """
        if self.config != config or not self._is_alive():
            self.close()
            self.config = config
            self._open(config)
        return self.client

    def _is_alive(self) -> bool:
        """True while the client exists and a local backend process (if any) still runs."""
        if self.client is None:
            return False
        return self.backend is None or self.backend.process.poll() is None

    def _open(self, config: BackendConfig) -> None:
        """Start the local backend (LOCAL), or check the endpoint's handshake (REMOTE), and connect a Client.

        Raises:
            InputError: a CURVE key preference is empty, missing or not a key.
            BackendUnavailable: the backend does not start, answer or accept our keys.
        """
        client_mod = load("link.client")
        if config.is_local:
            python = find_backend_python(config.python)
            log_path = None
            if config.log_dir:
                Path(config.log_dir).mkdir(parents=True, exist_ok=True)
                log_path = str(Path(config.log_dir) / "backend.log")
            log.info("starting a local Stillflow backend with %s", python)
            self.backend = load("link.launcher").start_local_backend(
                python, log_path=log_path, timeout=config.start_timeout, results_dir=config.results_dir or None)
            endpoint = self.backend.endpoint
            self.client = client_mod.Client(endpoint, timeout=config.timeout, retries=RETRIES)
            return
        if not config.endpoint:
            raise _errors.BackendUnavailable("no backend endpoint is set",
                                             hint="enter one such as tcp://gpu-box:5555 in the Stillflow preferences")
        keys = handshake.load_keys(config.server_key, config.client_key_file)
        # a refused key only shows as silence to the Client; the probe says which preference is wrong
        handshake.check_handshake(config.endpoint, keys, timeout=config.timeout * RETRIES,
                                  client_key_file=config.client_key_file)
        server_key, client_keys = keys
        self.client = client_mod.Client(config.endpoint, timeout=config.timeout, retries=RETRIES,
                                        server_key=server_key, client_keys=client_keys,
                                        key_names=handshake.PREFERENCE_NAMES)

    def hello(self, config: BackendConfig) -> dict[str, Any]:
        """The backend's ``hello`` answer; BackendUnavailable names the endpoint and the log."""
        try:
            return self.get_client(config).hello()
        except _errors.BackendUnavailable as error:
            where = f"; backend log: {self.log_path}" if self.log_path else ""
            self.close()
            raise _errors.BackendUnavailable(f"{error}{where}") from None

    def close(self) -> None:
        """Close the client and stop a local backend this connection started."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.backend is not None:
            self.backend.stop()
            self.backend = None
        self.config = None
