"""Find the interpreter that runs the backend without blocking, and read the backend log of this run.

No ``bpy`` module use.

Thread and process contract:
  - ``PythonFinder.step()`` starts or polls one short child process (``python -c "import stillflow"``)
    and returns at once; the child runs in an empty temporary folder so a ``stillflow/`` folder in
    Blender's working directory cannot pass for the package.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .lib import load

__all__ = ["PythonFinder", "candidates", "log_since", "last_error_line", "PYTHON_ENV", "PROBE_CODE"]

_errors = load("errors")

PYTHON_ENV = "STILLFLOW_PYTHON"
"""Environment variable naming the backend interpreter; the only one the add-on reads."""

PROBE_CODE = "import sys, stillflow; sys.exit(0 if getattr(stillflow, '__file__', None) else 3)"
"""Passes only for a real stillflow package (a bare folder imports as a namespace package without __file__)."""

PROBE_TIMEOUT_S = 30.0


def candidates(private: str = "") -> list[str]:
    """Interpreters worth trying, most specific first: the private environment Install Backend made leads."""
    found: list[str] = [private] if private else []
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


class PythonFinder:
    """Tries the configured interpreter (or each candidate) in turn; ``step()`` returns the one that works."""

    def __init__(self, configured: str = "", private: str = "") -> None:
        self.configured = configured
        self._queue = [configured] if configured else candidates(private)
        self._process: subprocess.Popen[bytes] | None = None
        self._current = ""
        self._started = 0.0
        self._folder = tempfile.mkdtemp(prefix="stillflow-probe-")

    def step(self) -> str:
        """The interpreter once found ('' while probing); BackendUnavailable when none works."""
        if self._process is None:
            self._next()
        assert self._process is not None
        code = self._process.poll()
        if code is None:
            if time.monotonic() - self._started > PROBE_TIMEOUT_S:
                self._process.kill()
                self._process.wait()
                self._process = None
            return ""
        self._process = None
        if code == 0:
            self._done()
            return self._current
        return ""

    def cancel(self) -> None:
        """Stop a probe still running."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None
        self._done()

    def _next(self) -> None:
        """Start the probe of the next interpreter, or raise when none is left."""
        while self._queue:
            python = self._queue.pop(0)
            if python and Path(python).is_file():
                self._current, self._started = python, time.monotonic()
                self._process = subprocess.Popen([python, "-c", PROBE_CODE], cwd=self._folder,
                                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                 stderr=subprocess.DEVNULL)
                return
        self._done()
        if self.configured and not Path(self.configured).is_file():
            raise _errors.BackendUnavailable(
                f"the Backend Python {self.configured} does not exist, so it cannot import stillflow",
                hint="fix the path in the Stillflow preferences (the python of the environment that has stillflow), "
                     "or clear it and press Install Backend")
        if self.configured:
            raise _errors.BackendUnavailable(
                f"the backend interpreter {self.configured} cannot import stillflow",
                hint="install the backend there (the wheel in the extension's backend/ folder, or pip install -e "
                     "of a Stillflow checkout), fix the path in the preferences, or clear it and press Install Backend")
        raise _errors.BackendUnavailable(
            "no Python with the stillflow backend was found",
            hint="press Install Backend in the Stillflow panel or preferences, or set the Backend Python of an "
                 f"existing environment there (or {PYTHON_ENV})")

    def _done(self) -> None:
        """Remove the neutral working folder."""
        shutil.rmtree(self._folder, ignore_errors=True)


def log_since(path: str, offset: int, lines: int = 3) -> str:
    """The last lines the backend wrote to ``path`` after byte ``offset`` (this run only), on one line."""
    try:
        with open(path, "rb") as stream:
            stream.seek(offset)
            text = stream.read().decode("utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(nothing in the log)"


ERROR_LINE_CHARS = 160
"""At most this much of a backend log line goes into a message (the log holds the rest)."""


def last_error_line(path: str, offset: int) -> str:
    """The backend's last error line in ``path`` after byte ``offset`` (this run only), shortened; '' when none."""
    try:
        with open(path, "rb") as stream:
            stream.seek(offset)
            lines = stream.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    found = next((line.strip() for line in reversed(lines) if " ERROR " in line or "error:" in line.lower()), "")
    return found if len(found) <= ERROR_LINE_CHARS else found[:ERROR_LINE_CHARS - 1] + "…"
