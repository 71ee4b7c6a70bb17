"""Install, update or repair the backend's private environment one non-blocking step at a time.

No ``bpy`` module use. ``Installer.step()`` is called from the add-on's timer (or in a loop by
``run()`` for ``blender -b`` scripts and tests); each call polls processes, reads the new part of
the install log and asks the disk how much is free, and returns within a few milliseconds.

Thread and process contract:
  - No threads. Everything heavy runs in child processes: ``core/install_worker.py`` (unpack,
    venv, pip, import check) in its own process group, and a remover (``shutil.rmtree`` in a
    child) for a cancelled or failed environment and for older ones after an install.
  - The new environment goes into a fresh folder under ``envs/``; only a finished, verified one
    is made live (``BackendHome.commit``), so Cancel or a failure keeps the previous environment.
  - ``cancel()`` kills the worker's whole process group, then the half-made folder is renamed
    aside and removed; the Installer is finished once it is gone. After a successful install the
    previous environment is renamed aside at once and removed without waiting for it.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from . import install_env, platforms
from .install_env import BackendHome, Bundle
from .install_progress import InstallProgress, failure_line
from .lib import load

log = logging.getLogger(__name__)

__all__ = ["InstallPlan", "Installer", "remove_later", "WORKER"]

_errors = load("errors")

WORKER = Path(__file__).with_name("install_worker.py")

_REMOVE = "import shutil, sys\nfor p in sys.argv[1:]: shutil.rmtree(p, ignore_errors=True)"


@dataclass(frozen=True)
class InstallPlan:
    """What to install from where: the add-on's wheel, an offline bundle or the package index."""

    home: BackendHome
    wheel: Path
    bundle: Bundle | None = None
    index_url: str = ""
    update: bool = False
    """Start from a copy of the live environment and keep what still fits (torch); else a fresh venv."""
    python: str = sys.executable
    """The interpreter that makes the venv and runs the worker: Blender's own."""

    @property
    def needed_bytes(self) -> int:
        """Disk the install may take at its peak."""
        if self.bundle is None:
            return install_env.ONLINE_BYTES
        unpacked = 0 if self.bundle.path.is_dir() else self.bundle.download_bytes
        return self.bundle.installed_bytes + unpacked

    def describe(self) -> str:
        """Where the packages come from, in words."""
        if self.bundle is not None:
            return f"the offline bundle {self.bundle.path.name}"
        return "the package index" + (f" and {self.index_url}" if self.index_url else "")


def _spawn(command: list[str], log_stream: IO[bytes] | int) -> subprocess.Popen[bytes]:
    """Start a child in its own process group (so Cancel can stop it with all its children)."""
    if sys.platform == "win32":
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_stream, stderr=log_stream,
                                creationflags=subprocess.CREATE_NEW_PROCESS_GROUP)
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_stream, stderr=log_stream,
                            start_new_session=True)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a child started by ``_spawn`` and everything it started (returns at once)."""
    if process.poll() is not None:
        return
    if sys.platform == "win32":
        subprocess.Popen(["taskkill", "/F", "/T", "/PID", str(process.pid)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def remove_later(python: str, folders: list[Path]) -> subprocess.Popen[bytes]:
    """Remove folders in a child process (an environment has thousands of files); poll it to know when."""
    return _spawn([python, "-I", "-c", _REMOVE, *map(str, folders)], subprocess.DEVNULL)


class Installer:
    """One install: ``start()``, then ``step()`` until it returns False; ``state`` and ``message`` say how it ended.

    States: 'ready' → 'running' → 'done', or → ('stopping' →) 'removing' → 'failed' | 'cancelled'.
    """

    def __init__(self, plan: InstallPlan) -> None:
        self.plan = plan
        self.state = "ready"
        self.message = ""
        self.env_dir: Path | None = None
        self.progress = InstallProgress(expected_packages=len(plan.bundle.wheels) if plan.bundle else 20,
                                        expected_bytes=plan.bundle.installed_bytes if plan.bundle else 2_500_000_000)
        self.started = 0.0
        self.seconds = 0.0
        self._worker: subprocess.Popen[bytes] | None = None
        self._removers: list[subprocess.Popen[bytes]] = []
        self._log: IO[bytes] | None = None
        self._outcome = ""
        self._free_at_start = 0

    @property
    def is_finished(self) -> bool:
        """True once installed, failed or cancelled (and every folder to remove is gone)."""
        return self.state in ("done", "failed", "cancelled")

    @property
    def ending(self) -> str:
        """'cancelled' or 'failed' while the half-made environment is being removed, else ''."""
        return self._outcome if self.state in ("stopping", "removing") else ""

    @property
    def log_path(self) -> Path:
        """The install log (pip's output)."""
        return self.plan.home.log_path

    def start(self) -> None:
        """Check the disk, start removing leftovers and start the worker.

        Raises:
            InputError: not enough free space, or the add-on has no backend wheel; one line each.
        """
        home = self.plan.home
        home.root.mkdir(parents=True, exist_ok=True)
        problem = install_env.space_problem(home.root, self.plan.needed_bytes)
        if problem:
            raise _errors.InputError(problem)
        if not self.plan.wheel.is_file():
            raise _errors.InputError(f"the backend wheel {self.plan.wheel} is missing; reinstall the extension")
        live = home.current()
        if self.plan.update and live is None:
            raise _errors.InputError("no backend is installed to update; press Install Backend")
        self._remove([p if p.name.startswith(".trash-") else home.trash(p) for p in home.leftovers()])
        self.env_dir = home.new_env_dir()
        command = [self.plan.python, "-I", str(WORKER), "--env", str(self.env_dir), "--wheel", str(self.plan.wheel)]
        if self.plan.bundle is not None:
            command += ["--bundle", str(self.plan.bundle.path)]
        elif self.plan.index_url:
            command += ["--index-url", self.plan.index_url]
        if self.plan.update and live is not None:
            command += ["--clone", str(live.env_dir)]
        with open(self.log_path, "wb") as stream:
            stream.write(f"Stillflow backend install from {self.plan.describe()} into {self.env_dir}\n".encode())
            stream.flush()
            self._worker = _spawn(command, stream)
        self._log = open(self.log_path, "rb")
        self._free_at_start = shutil.disk_usage(home.root).free
        self.started = time.monotonic()
        self.state = "running"
        log.info("installing the Stillflow backend: %s", " ".join(command))

    def step(self) -> bool:
        """Advance without blocking; True while more steps are needed."""
        if self.state == "running":
            self._read_log()
            assert self._worker is not None
            if (code := self._worker.poll()) is not None:
                self._read_log()
                self._worker_ended(code)
        elif self.state == "stopping":
            assert self._worker is not None
            if self._worker.poll() is not None:
                self._discard()
        if self.state == "removing" and all(remover.poll() is not None for remover in self._removers):
            self._removers.clear()
            self._end(self._outcome)
        return not self.is_finished

    def cancel(self) -> None:
        """Stop the install; the half-made environment is removed and the live one is kept."""
        if self.state != "running":
            return
        assert self._worker is not None
        _kill_group(self._worker)
        self.message = "Install Backend was cancelled; " + (
            "the previous backend is kept" if self.plan.home.current() is not None else "nothing was installed")
        self._outcome = "cancelled"
        self.state = "stopping"
        self.step()

    def run(self, *, sleep: float = 0.1, timeout: float | None = None) -> None:
        """Step until finished (blocks; for ``blender -b`` and tests). Ctrl+C cancels, then re-raises."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while self.step():
                if deadline is not None and time.monotonic() > deadline and self.state == "running":
                    self.cancel()
                    self.message = f"Install Backend took longer than {timeout:g} s and was stopped"
                    self._outcome = "failed"
                time.sleep(sleep)
        except KeyboardInterrupt:
            self.cancel()
            while self.step():
                time.sleep(sleep)
            raise

    def _read_log(self) -> None:
        """Feed the log's new text and the bytes written so far to the progress."""
        if self._log is not None:
            self.progress.feed(self._log.read().decode("utf-8", errors="replace"))
        self.progress.written = max(self.progress.written,
                                    self._free_at_start - shutil.disk_usage(self.plan.home.root).free)

    def _worker_ended(self, code: int) -> None:
        """Make a verified environment live, or say why it failed and remove it."""
        assert self.env_dir is not None
        self.seconds = time.monotonic() - self.started
        if code == 0 and self.progress.version:
            previous = self.plan.home.current()
            self.plan.home.commit(self.env_dir, self.progress.version)
            self.message = (f"Stillflow backend {self.progress.version} installed from {self.plan.describe()} "
                            f"in {self.seconds:.0f} s")
            log.info("%s into %s", self.message, self.env_dir)
            if previous is not None and previous.env_dir != self.env_dir:
                # not waited for: the new environment is live, and a leftover is removed by the next install
                remove_later(self.plan.python, [self.plan.home.trash(previous.env_dir)])
            self._end("done")
            return
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        line = failure_line(text, offline=self.plan.bundle is not None,
                            platform=platforms.file_name(platforms.this_platform()),
                            python=f"{sys.version_info.major}.{sys.version_info.minor}")
        self.message = f"Install Backend failed: {line}; install log: {self.log_path}"
        log.error("%s", self.message)
        self._outcome = "failed"
        self._discard()

    def _discard(self) -> None:
        """Rename the half-made environment aside and remove it in the background."""
        folders = []
        if self.env_dir is not None and self.env_dir.exists():
            try:
                folders.append(self.plan.home.trash(self.env_dir))
            except OSError:  # still in use (Windows): remove it where it is
                folders.append(self.env_dir)
        unpacked = self.env_dir.parent / f".{self.env_dir.name}.bundle" if self.env_dir is not None else None
        if unpacked is not None and unpacked.exists():
            folders.append(unpacked)
        self._remove(folders)
        self.state = "removing"

    def _remove(self, folders: list[Path]) -> None:
        """Remove folders in a child process (an environment has thousands of files)."""
        if folders:
            self._removers.append(remove_later(self.plan.python, folders))

    def _end(self, outcome: str) -> None:
        """Finish in ``outcome`` and close the log."""
        if self._log is not None:
            self._log.close()
            self._log = None
        self.state = outcome
