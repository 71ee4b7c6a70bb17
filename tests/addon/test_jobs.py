"""addon/core/jobs.py: the per-tick logic the add-on's timer calls, against a real backend process.

Plain Python (either environment); the backend runs with ``<repo>/.venv/bin/python``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from addon.core.jobs import JobRequest, JobTracker
from addon.core.lib import load

_client = load("link.client")
_launcher = load("link.launcher")
_errors = load("errors")
_options = load("options")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(backend_python: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Client connected to a freshly started local backend."""
    log = tmp_path_factory.mktemp("backend") / "serve.log"
    # every test's tmp_path lies under the base temp, the backend's results folder here
    backend = _launcher.start_local_backend(backend_python, log_path=str(log), timeout=120,
                                            results_dir=tmp_path_factory.getbasetemp())
    connection = _client.Client(backend.endpoint)
    yield connection
    connection.close()
    backend.stop()


def request(tmp_path: Path, frames: int, size: tuple[int, int] = (48, 32)) -> JobRequest:
    """A small job: smooth image, left half animated, one arrow to the right."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([0.5 + 0.4 * np.sin(xx / 3.0), 0.5 + 0.4 * np.cos(yy / 4.0), np.full_like(xx, 0.5, float)],
                     axis=2).astype(np.float32)
    mask = np.zeros((height, width), np.float32)
    mask[:, : width // 2] = 1.0
    motion = _options.MotionSpec(kind="hints", hints=((2.0, height / 2, 2.0 + 50.0, height / 2),))
    options = _options.RenderOptions(frames=frames, levels=2, device="cpu")
    return JobRequest(image=image, mask=mask, motion=motion, options=options, out_dir=str(tmp_path / "out"),
                      label="test")


class TestTick:
    def test_feature_runs_to_done(self, client: Any, tmp_path: Path) -> None:
        updates: list[float] = []
        finished: list[str] = []
        tracker = JobTracker(client, request(tmp_path, 4), on_update=lambda t: updates.append(t.fraction),
                             on_finish=lambda t: finished.append(t.state))
        tracker.submit()
        ticks = 0
        deadline = time.monotonic() + 120
        while (delay := tracker.tick()) is not None:
            assert delay == tracker.interval
            ticks += 1
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert finished == ["done"] and tracker.state == "done" and tracker.fraction == 1.0
        assert updates == sorted(updates)
        paths = [Path(p) for p in tracker.result["frame_paths"]]
        assert [p.name for p in paths] == [f"frame_{i:04d}.png" for i in range(4)] and all(p.is_file() for p in paths)
        assert tracker.tick() is None and finished == ["done"]

    def test_feature_cancel(self, client: Any, tmp_path: Path) -> None:
        tracker = JobTracker(client, request(tmp_path, 240, size=(160, 120)))
        tracker.submit()
        while tracker.tick() is not None and tracker.state != "running":
            time.sleep(0.02)
        tracker.cancel()
        deadline = time.monotonic() + 60
        while tracker.tick() is not None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert tracker.state == "cancelled"
        assert not (tmp_path / "out").exists()
        with pytest.raises(_errors.Cancelled):
            tracker.wait(1.0)

    def test_exception_no_client_no_connect(self, tmp_path: Path) -> None:
        with pytest.raises(RuntimeError, match="tick\\(\\) without a client or a Connect"):
            JobTracker(None, request(tmp_path, 4)).tick()

    def test_feature_first_tick_submits(self, client: Any, tmp_path: Path) -> None:
        tracker = JobTracker(client, request(tmp_path, 4))
        assert tracker.tick() is not None and tracker.job is not None
        tracker.wait(60.0)
        assert tracker.state == "done" and tracker.fraction == 1.0


class TestWait:
    def test_feature(self, client: Any, tmp_path: Path) -> None:
        tracker = JobTracker(client, request(tmp_path, 4))
        tracker.submit()
        result = tracker.wait(120)
        assert len(result["frame_paths"]) == 4

    def test_exception_timeout(self, client: Any, tmp_path: Path) -> None:
        tracker = JobTracker(client, request(tmp_path, 240, size=(160, 120)))
        tracker.submit()
        with pytest.raises(_errors.BackendUnavailable, match="did not finish 'test' within 0.05 s"):
            tracker.wait(0.05)
        assert tracker.state == "failed" and tracker.is_finished
