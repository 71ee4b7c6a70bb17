"""A backend that dies or is replaced never holds Blender's main thread (issue 24, points 1, 2 and 8), in real bpy.

The backend is a real ``stillflow serve`` started by the add-on with ``<repo>/.venv/bin/python``;
it is SIGKILLed mid-render (point 1), SIGSTOPped so that it cannot exit while a setting change
replaces it (point 2), and orphaned by SIGKILLing the Blender process that started it (point 8).
The Answer Timeout is raised to 20 s so that any wait on the network would show as a minute.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

bpy = pytest.importorskip("bpy")

from tests.addon.conftest import BACKEND_PYTHON, REPO  # noqa: E402
from tests.addon.test_blender_responsive import _job, _tick, prefs, ticking  # noqa: E402,F401

pytestmark = [pytest.mark.blender, pytest.mark.slow]

NETWORK_WAIT_S = 20.0
"""The Answer Timeout these tests set: three tries of it would block the old Cancel for a minute."""
RETURNS_WITHIN_S = 10.0
"""A bound far above what sending and forgetting takes and far below one network wait."""


def _running_then_killed(sf: ModuleType, prefs: Any, scene: Any, tmp_path: Path) -> Any:
    """Start a longer job from the operator, tick until it renders, SIGKILL its backend; the tracker."""
    _job(scene, tmp_path, size=(480, 360), frames=120)
    prefs.timeout = NETWORK_WAIT_S
    sf.runner.CONNECTION.close()
    assert bpy.ops.stillflow.generate() == {"FINISHED"}
    tracker = sf.runner.active_tracker()
    _tick(sf, until=lambda: tracker.state == "running", limit=180)
    process = sf.runner.CONNECTION.backend.process
    process.kill()
    process.wait()
    for scratch in Path(tempfile.gettempdir()).glob(f"stillflow-job-{tracker.job.job_id}-*"):
        shutil.rmtree(scratch)  # what a SIGKILLed backend cannot remove itself
    return tracker


class TestKilledBackend:
    def test_cancel_moves_on_at_once(self, sf: ModuleType, prefs: Any, ticking: None, scene: Any,
                                     tmp_path: Path) -> None:
        tracker = _running_then_killed(sf, prefs, scene, tmp_path)
        started = time.monotonic()
        assert bpy.ops.stillflow.cancel() == {"FINISHED"}
        assert time.monotonic() - started < RETURNS_WITHIN_S
        assert tracker.is_finished and tracker.state == "cancelled", tracker.error
        assert scene.stillflow.status == "Cancelled" and not scene.stillflow.is_running
        assert sf.runner.active_tracker() is None and bpy.ops.stillflow.generate.poll()

    def test_loading_a_file_moves_on_at_once(self, sf: ModuleType, prefs: Any, ticking: None,
                                             tmp_path: Path) -> None:
        scene = bpy.data.scenes.new("load after kill")
        bpy.context.window.scene = scene
        tracker = _running_then_killed(sf, prefs, scene, tmp_path)
        started = time.monotonic()
        bpy.ops.wm.read_homefile()  # File > New: the session stays unsaved for the tests after this one
        assert time.monotonic() - started < RETURNS_WITHIN_S
        assert tracker.is_finished and tracker.state == "cancelled", tracker.error
        assert sf.runner.active_tracker() is None

    def test_disabling_the_add_on_moves_on_at_once(self, sf: ModuleType, prefs: Any, ticking: None, scene: Any,
                                                   tmp_path: Path) -> None:
        tracker = _running_then_killed(sf, prefs, scene, tmp_path)
        started = time.monotonic()
        sf.runner.shutdown()  # what unregister() (disable, quit) runs
        assert time.monotonic() - started < RETURNS_WITHIN_S
        assert tracker.is_finished and tracker.state == "cancelled", tracker.error
        assert sf.runner.CONNECTION.client is None and sf.runner.CONNECTION.backend is None


class TestReplacedBackend:
    def test_a_changed_output_folder_does_not_wait_for_the_old_backend(self, sf: ModuleType, prefs: Any,
                                                                       ticking: None, scene: Any,
                                                                       tmp_path: Path) -> None:
        _job(scene, tmp_path)
        connection = sf.runner.CONNECTION
        connection.get_client(sf.properties.backend_config(bpy.context))
        old = connection.backend.process
        os.kill(old.pid, signal.SIGSTOP)  # it cannot exit until SIGCONT: waiting for it would hang here
        try:
            prefs.output_dir = str(tmp_path / "moved")
            assert bpy.ops.stillflow.generate() == {"FINISHED"}
            assert old.poll() is None  # asked to stop, not waited for
        finally:
            os.kill(old.pid, signal.SIGCONT)
        assert old.wait(timeout=60) is not None
        tracker = sf.runner._active
        _tick(sf)
        assert tracker.state == "done", scene.stillflow.status
        assert Path(bpy.path.abspath(scene.stillflow.result_dir)).resolve().is_relative_to((tmp_path / "moved").resolve())


_ORPHAN_SCRIPT = """
import sys, time
sys.path[:0] = [sys.argv[1]]
import bpy
import addon_utils
from tests.addon.test_blender_responsive import _job
addon_utils.enable("addon", default_set=True)
module = sys.modules["addon"]
prefs = bpy.context.preferences.addons["addon"].preferences
prefs.backend_mode, prefs.python_path, prefs.output_dir = "LOCAL", sys.argv[2], sys.argv[3] + "/out"
from pathlib import Path
_job(bpy.context.scene, Path(sys.argv[3]), size=(480, 360), frames=120)
module.runner.WAIT_IN_BACKGROUND = False
bpy.ops.stillflow.generate()
tracker = module.runner.active_tracker()
deadline = time.monotonic() + 180
while tracker.state not in ("running", "done", "failed") and time.monotonic() < deadline:
    module.runner._timer()
    time.sleep(0.02)
print("BACKEND", module.runner.CONNECTION.backend.process.pid, module.runner.CONNECTION.log_path, flush=True)
time.sleep(600)
"""


def test_an_orphaned_backend_exits_without_draining(sf: ModuleType, backend_python: str, tmp_path: Path) -> None:
    """SIGKILL the Blender process mid-render: its backend exits at once instead of telling a dead client."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "BLENDER_USER_RESOURCES": str(tmp_path / "user")}
    blender = subprocess.Popen([sys.executable, "-c", _ORPHAN_SCRIPT, str(REPO), str(BACKEND_PYTHON), str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = ""
        for line in blender.stdout:
            if line.startswith("BACKEND "):
                break
        assert line.startswith("BACKEND "), "the Blender process ended before its job ran"
        _, pid, log_path = line.split(maxsplit=2)
        blender.kill()
        blender.wait()
        deadline = time.monotonic() + 60
        while _exists(int(pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _exists(int(pid)), "the orphaned backend still runs a minute after Blender died"
    finally:
        if blender.poll() is None:
            blender.kill()
            blender.wait()
    log = Path(log_path.strip()).read_text()
    assert "is gone; exiting now" in log
    assert "shutting down" not in log  # no orderly shutdown that drains 'cancelled' to the dead client


def _exists(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has exited: whoever adopted it may not reap it soon)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return fields[0] != "Z"
