"""Reach a backend one non-blocking step at a time: find Python, start it, wait for it, say hello.

No ``bpy`` module use. ``Connect.step()`` is called from the add-on's timer (or in a loop by
blocking callers such as ``blender -b`` scripts); each call returns within a few milliseconds.

Thread and process contract:
  - Everything runs on the calling (main) thread except the handshake diagnosis of a Connect
    endpoint, which runs ``stillflow.link.handshake.handshake_problem`` in a daemon thread; that
    thread owns its probe sockets, closes them itself and only hands back one string.
  - The hello probe is a plain DEALER socket owned by this object; the Client handed out at the
    end is created on the calling thread after the backend answered.
  - A local backend is a child process (``python -m stillflow serve --parent-pid <ours>``) started
    in a neutral working directory; ``cancel()`` stops it without waiting: ``stop_later`` sends
    SIGTERM and a daemon thread waits for the exit (and kills after a grace period); that thread
    touches only the process handle and the backend's temporary folder.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from . import handshake, install_env, probe
from .lib import load, stillflow

log = logging.getLogger(__name__)

__all__ = ["Connect", "Connected", "HELLO_RESEND_S", "stop_later"]

_errors = load("errors")
_protocol = load("link.protocol")

HELLO_RESEND_S = 1.0
"""Seconds a hello probe waits before it is sent again on a fresh socket."""

RETRIES = 3
"""Tries per request (Lazy Pirate) for the Client handed out at the end."""

STOP_GRACE_S = 15.0
"""Seconds a stopped local backend gets to shut down in order before it is killed."""


def stop_later(backend: Any, grace: float = STOP_GRACE_S) -> threading.Thread:
    """Ask a LocalBackend to stop (SIGTERM now) and wait for its exit on a daemon thread, never here."""
    if backend.process.poll() is None:
        backend.process.terminate()
    state_dir = getattr(backend, "state_dir", None)
    if state_dir and Path(backend.log_path).parent != Path(state_dir):
        # only its endpoint file is there, read at start: gone now, also when Blender quits before the exit
        shutil.rmtree(state_dir, ignore_errors=True)
    thread = threading.Thread(target=backend.stop, kwargs={"timeout": grace}, name="stillflow-backend-stop",
                              daemon=True)
    thread.start()
    return thread


@dataclass
class Connected:
    """What a finished Connect hands over: the Client, its hello answer and a local backend (or None)."""

    client: Any
    hello: dict[str, Any]
    backend: Any | None = None
    log_path: str = ""
    log_offset: int = 0


@dataclass
class _Hello:
    """One hello request in flight on its own DEALER socket."""

    socket: zmq.Socket
    req: str
    sent_at: float = field(default_factory=time.monotonic)


class Connect:
    """A backend connection being made; ``step()`` advances it, ``label()`` says where it stands."""

    def __init__(self, config: Any, *, parent_pid: int | None = None, serve_args: tuple[str, ...] = ()) -> None:
        self.config = config
        self.parent_pid = os.getpid() if parent_pid is None else parent_pid
        self.serve_args = serve_args
        self.state = "probing" if config.is_local else "keys"
        self.error: Exception | None = None
        self.result: Connected | None = None
        self.started = time.monotonic()
        self._phase_started = self.started
        self._finder: probe.PythonFinder | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._state_dir: Path | None = None
        self._log_path = ""
        self._log_offset = 0
        self._endpoint = ""
        self._keys: handshake.CurveKeys = (None, None)
        self._hello: _Hello | None = None
        self._diagnosis: list[str | None] = []
        self._deadline = 0.0

    @property
    def is_finished(self) -> bool:
        """True once the connection is made, has failed or was cancelled."""
        return self.state in ("ready", "failed", "cancelled")

    def label(self) -> str:
        """Where the connection stands, for the panel: 'starting backend… 3 s'."""
        waited = int(time.monotonic() - self._phase_started)
        text = {"probing": "finding the backend's Python…", "keys": "reading the CURVE keys…",
                "starting": "starting backend…", "connecting": "connecting…", "ready": "connected",
                "failed": f"cannot connect: {self.error}", "cancelled": "cancelled"}[self.state]
        return f"{text} {waited} s" if self.state in ("probing", "starting", "connecting") and waited else text

    def step(self) -> bool:
        """Advance one non-blocking step; True while more steps are needed."""
        if self.is_finished:
            return False
        try:
            getattr(self, f"_step_{self.state}")()
        except (_errors.StillflowError, OSError, zmq.ZMQError) as error:
            self._fail(error if isinstance(error, _errors.StillflowError)
                       else _errors.BackendUnavailable(f"cannot reach the backend: {error}"))
        return not self.is_finished

    def run(self, *, sleep: float = 0.02) -> Connected:
        """Step until finished (for callers that may block); the result, or raise its error."""
        try:
            while self.step():
                time.sleep(sleep)
        except KeyboardInterrupt:
            self.cancel()
            raise
        if self.result is None:
            raise self.error or _errors.Cancelled("connecting to the backend was cancelled")
        return self.result

    def cancel(self) -> None:
        """Stop connecting: close the probe and stop a backend this Connect started."""
        if self.is_finished:
            return
        self._cleanup(stop_backend=True)
        self.state = "cancelled"

    def _enter(self, state: str) -> None:
        """Move to ``state`` and restart its clock."""
        self.state = state
        self._phase_started = time.monotonic()

    def _fail(self, error: Exception) -> None:
        """End with ``error`` (after closing everything this Connect opened)."""
        self._cleanup(stop_backend=True)
        self.error = error
        self.state = "failed"
        log.info("connecting to the backend failed: %s", error)

    def _cleanup(self, *, stop_backend: bool) -> None:
        """Close the hello probe and, when asked, stop the local backend process."""
        if self._finder is not None:
            self._finder.cancel()
        if self._hello is not None:
            self._hello.socket.close(linger=0)
            self._hello = None
        if stop_backend and self._process is not None:
            stop_later(self._backend(), grace=5.0)
            self._process = None

    def _backend(self) -> Any:
        """The local backend as the launcher's LocalBackend (which knows how to stop it)."""
        return load("link.launcher").LocalBackend(process=self._process, endpoint=self._endpoint,
                                                  log_path=self._log_path, state_dir=str(self._state_dir))

    # LOCAL: probing -> starting -> connecting -> ready
    def _step_probing(self) -> None:
        """Run the 'import stillflow' probe of each candidate interpreter until one passes."""
        if self._finder is None:
            self._finder = probe.PythonFinder(self.config.python, private=self.config.private_python)
        python = self._finder.step()
        if python:
            self._launch(python)

    def _launch(self, python: str) -> None:
        """Start ``python -m stillflow serve`` in a neutral folder; its log is read from today's offset."""
        self._state_dir = Path(tempfile.mkdtemp(prefix="stillflow-backend-"))
        if self.config.log_dir:
            Path(self.config.log_dir).mkdir(parents=True, exist_ok=True)
            self._log_path = str(Path(self.config.log_dir) / "backend.log")
        else:
            self._log_path = str(self._state_dir / "serve.log")
        self._log_offset = _size(self._log_path)
        command = [python, "-m", "stillflow", "-q", "serve", "--bind", "tcp://127.0.0.1:*", "--log", self._log_path,
                   "--endpoint-file", str(self._state_dir / "endpoint"), "--parent-pid", str(self.parent_pid)]
        if self.config.results_dir:  # job folders live under the Output Folder; inputs travel as pixels
            command += ["--results", self.config.results_dir]
        command += self.serve_args
        log.info("starting a local Stillflow backend: %s", " ".join(command))
        with open(self._log_path, "ab") as stream:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=stream, stderr=stream,
                                             close_fds=True, cwd=self._state_dir)
        self._deadline = time.monotonic() + self.config.start_timeout
        self._enter("starting")

    def _step_starting(self) -> None:
        """Wait for the backend to write its endpoint file (or to exit, which is reported with its log)."""
        assert self._process is not None and self._state_dir is not None
        if self._process.poll() is not None:
            raise _errors.BackendUnavailable(
                f"the backend exited with status {self._process.returncode}: "
                f"{probe.log_since(self._log_path, self._log_offset)}", hint=f"see {self._log_path}")
        endpoint_file = self._state_dir / "endpoint"
        if endpoint_file.is_file() and (bound := endpoint_file.read_text().strip()):
            self._endpoint = bound
            self._enter("connecting")
        elif time.monotonic() > self._deadline:
            raise _errors.BackendUnavailable(f"the backend did not start within {self.config.start_timeout:g} s",
                                             hint=f"see {self._log_path}")

    # REMOTE: keys -> connecting -> ready
    def _step_keys(self) -> None:
        """Read the CURVE keys the preferences name, then start the hello and the handshake diagnosis."""
        if not self.config.endpoint:
            raise _errors.BackendUnavailable("no backend endpoint is set",
                                             hint="enter one such as tcp://gpu-box:5555 in the Stillflow preferences")
        self._keys = handshake.load_keys(self.config.server_key, self.config.client_key_file)
        self._endpoint = self.config.endpoint
        self._deadline = time.monotonic() + self.config.timeout * RETRIES
        threading.Thread(target=self._diagnose, args=(self._deadline - time.monotonic(),),
                         name="stillflow-handshake-probe", daemon=True).start()
        self._enter("connecting")

    def _diagnose(self, timeout: float) -> None:
        """Thread body: why the handshake fails (None when it works or nothing answered)."""
        server_key, client_keys = self._keys
        try:
            problem = load("link.handshake").handshake_problem(
                self._endpoint, server_key, client_keys, timeout=timeout, names=handshake.PREFERENCE_NAMES,
                client_key_file=self.config.client_key_file)
        except Exception as error:  # reported to the main thread as text, never raised in this thread
            problem = str(error)
        self._diagnosis.append(problem)

    def _step_connecting(self) -> None:
        """Send hello (again after HELLO_RESEND_S) and take the answer when it comes."""
        if self._diagnosis and self._diagnosis[0] is not None:
            raise _errors.BackendUnavailable(self._diagnosis[0])
        if self._process is not None and self._process.poll() is not None:
            raise _errors.BackendUnavailable(
                f"the backend exited with status {self._process.returncode}: "
                f"{probe.log_since(self._log_path, self._log_offset)}", hint=f"see {self._log_path}")
        now = time.monotonic()
        if self._hello is None or now - self._hello.sent_at > HELLO_RESEND_S:
            if now > self._deadline:
                waited = now - self._phase_started
                raise _errors.BackendUnavailable(
                    f"no answer from the backend at {self._endpoint} within {waited:.0f} s", hint=self._hint())
            self._send_hello()
            return
        socket = self._hello.socket
        while socket.poll(0):
            reply = _protocol.decode(socket.recv_multipart(copy=False), ops=_protocol.SERVER_OPS)
            if reply.req == self._hello.req:
                self._answered(reply)
                return

    def _hint(self) -> str:
        """What to do when the backend stops answering: a local one is the add-on's to start, so see its log."""
        if self._process is not None:
            return f"the backend Blender started has stopped or hangs: see its log {self._log_path}"
        return "start it with `stillflow serve`, check the endpoint and CURVE keys"

    def _send_hello(self) -> None:
        """A fresh DEALER socket (keys set) with one hello request on it."""
        if self._hello is not None:
            self._hello.socket.close(linger=0)
        socket = zmq.Context.instance().socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        server_key, client_keys = self._keys
        if server_key is not None and client_keys is not None:
            socket.curve_serverkey = server_key
            socket.curve_publickey, socket.curve_secretkey = client_keys
        socket.connect(self._endpoint)
        req = uuid.uuid4().hex
        try:
            socket.send_multipart(_protocol.encode(_protocol.Message(op="hello", req=req)), flags=zmq.NOBLOCK)
        except zmq.Again:
            pass  # no peer yet: the resend after HELLO_RESEND_S tries again
        self._hello = _Hello(socket=socket, req=req)

    def _answered(self, reply: Any) -> None:
        """Check the hello answer and hand over a Client for the endpoint."""
        if reply.op in ("error", "rejected"):
            raise _protocol.error_from_wire(reply.body)
        hello = dict(reply.body)
        if hello.get("protocol") != _protocol.PROTOCOL_VERSION:
            raise _errors.ProtocolError(
                f"backend at {self._endpoint} speaks protocol {hello.get('protocol')!r}; this add-on speaks "
                f"{_protocol.PROTOCOL_VERSION}", hint="install the same Stillflow version for the add-on and the backend")
        mismatch = install_env.version_problem(str(hello.get("version", "")), stillflow().__version__)
        if mismatch and self.config.is_local:
            raise _errors.BackendUnavailable(mismatch)
        if mismatch:
            log.warning("backend at %s: %s", self._endpoint, mismatch)
        server_key, client_keys = self._keys
        names = {} if self.config.is_local else {"key_names": handshake.PREFERENCE_NAMES}
        client = load("link.client").Client(self._endpoint, timeout=self.config.timeout, retries=RETRIES,
                                            server_key=server_key, client_keys=client_keys,
                                            unreachable_hint=self._hint(), **names)
        backend = self._backend() if self._process is not None else None
        self._cleanup(stop_backend=False)
        self.result = Connected(client=client, hello=hello, backend=backend, log_path=self._log_path,
                                log_offset=self._log_offset)
        self.state = "ready"
        log.info("connected to the Stillflow backend at %s after %.2f s", self._endpoint,
                 time.monotonic() - self.started)


def _size(path: str) -> int:
    """Size of a file in bytes (0 when it does not exist yet)."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
