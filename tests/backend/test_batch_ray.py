"""Batch and service on a real local Ray cluster: the session's two nodes on 127.0.0.1 (batch_ray_helpers.py)."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'stillflow[ray]')")

from stillflow import render, render_frames  # noqa: E402
from stillflow.batch.items import BatchItem, load_items  # noqa: E402
from stillflow.batch.ray_exec import RayExecutor  # noqa: E402
from stillflow.batch.run import run_batch  # noqa: E402
from stillflow.errors import Cancelled  # noqa: E402
from stillflow.io.images import to_uint8  # noqa: E402
from stillflow.link.client import Client  # noqa: E402
from stillflow.link.launcher import start_local_backend  # noqa: E402
from stillflow.options import MotionSpec, RenderOptions  # noqa: E402

from .batch_helpers import frames_of, make_folder, no_leftovers, stillflow, summary, write_still  # noqa: E402
from .batch_ray_helpers import shared_cluster  # noqa: E402

pytestmark = pytest.mark.slow

GIVEN = {"frames": 3, "levels": 2}
DRIFT = MotionSpec(kind="drift", drift=(0.0, 1.0))


@pytest.fixture(scope="module")
def cluster(pytestconfig: pytest.Config) -> str:
    """The session's Ray cluster (head in this process, a second node beside it); its address."""
    return shared_cluster(pytestconfig).address


def _ray_task_pids(name: str) -> list[int]:
    """PIDs of Ray workers whose process title says they run task ``name``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if title.startswith(f"ray::{name}"):
                found.append(int(entry.name))
    return found


def test_bad_item_in_the_middle_is_recorded_and_the_rest_render(cluster: str, tmp_path: Path) -> None:
    source = make_folder(tmp_path / "src", 3, bad="still1b")
    items, _ = load_items(source)
    result = run_batch(items, tmp_path / "out", RayExecutor(cluster), given=GIVEN, default_motion=DRIFT)
    assert [o.status for o in result.outcomes] == ["done", "done", "failed", "done"]
    assert result.outcomes[2].name == "still1b" and "\n" not in result.outcomes[2].cause
    direct = render(source / "still2.png", tmp_path / "direct", motion=items[3].motion, options=RenderOptions(**GIVEN))
    assert frames_of(tmp_path / "out" / "still2") == frames_of(direct.out_dir)
    again = run_batch(items, tmp_path / "out", RayExecutor(cluster), given=GIVEN, default_motion=DRIFT)
    assert [o.status for o in again.outcomes] == ["skipped", "skipped", "failed", "skipped"]


def test_cli_without_shared_storage_ships_bytes(cluster: str, tmp_path: Path) -> None:
    source = make_folder(tmp_path / "src", 3)
    done = stillflow("batch", str(source), "--out", str(tmp_path / "out"), "--executor", "ray", "--address", cluster,
                     "--no-shared-storage", "--drift", "0,1", "--frames", "3", "--levels", "2")
    assert done.returncode == 0, done.stderr
    assert {name: item["status"] for name, item in summary(tmp_path / "out").items()} == dict.fromkeys(
        ["still0", "still1", "still2"], "done")
    items, _ = load_items(source)
    direct = render(source / "still1.png", tmp_path / "direct", motion=items[1].motion, options=RenderOptions(**GIVEN))
    assert frames_of(tmp_path / "out" / "still1") == frames_of(direct.out_dir)
    assert no_leftovers(tmp_path / "out") == []


def test_worker_killed_mid_item_is_retried_and_nothing_is_lost(cluster: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    item = BatchItem(name="victim", image=write_still(tmp_path / "victim.png", 7, 96, 128))
    given = {"frames": 60, "levels": 2}
    finished: list = []
    runner = threading.Thread(target=lambda: finished.append(
        run_batch([item], out, RayExecutor(cluster, max_retries=2), given=given, default_motion=DRIFT)))
    runner.start()
    killed = None
    deadline = time.monotonic() + 240
    while killed is None and time.monotonic() < deadline and runner.is_alive():
        pids = _ray_task_pids("stillflow_batch_item")
        if pids and list(out.glob(".victim.tmp-*")):  # the worker is writing frames: mid-item
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    runner.join(timeout=300)
    assert killed is not None, "never saw the task rendering"
    assert finished and finished[0].outcomes[0].status == "done", finished and finished[0].outcomes
    assert finished[0].outcomes[0].retries == 1, "the retry after the killed worker is counted"
    assert summary(out)["victim"]["retries"] == 1
    assert len(frames_of(out / "victim")) == 60
    assert no_leftovers(out) == [], "the killed attempt's staging folder is cleaned up"


@pytest.fixture(scope="module")
def serve_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the module's `stillflow serve --ray` process logs."""
    return tmp_path_factory.mktemp("serve-ray") / "serve.log"


@pytest.fixture(scope="module")
def endpoint(cluster: str, serve_log: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `stillflow serve --ray` process using the module's cluster."""
    log_path = serve_log
    backend = start_local_backend(sys.executable, log_path=str(log_path), timeout=180.0,
                                  results_dir=tmp_path_factory.getbasetemp(),
                                  extra_args=("--ray", cluster, "--workers", "2"))
    yield backend.endpoint
    assert backend.stop() == 0, log_path.read_text()[-2000:]


class TestServeOnRay:
    def test_job_runs_on_the_cluster_with_progress(self, endpoint: str) -> None:
        image = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        options = RenderOptions(frames=4, levels=2)
        with Client(endpoint, timeout=5.0, retries=2) as client:
            job = client.submit(image, motion=DRIFT, options=options)
            events = []
            while not job.is_finished:
                events += client.poll(0.2)
            result = client.wait(job, timeout=120)
        np.testing.assert_array_equal(result["frames"],
                                      to_uint8(np.stack(list(render_frames(image, motion=DRIFT, options=options)))))
        # the relay forwards in bursts; a burst's older progress may be replaced, never its latest
        reports = [(e.data["stage"], e.data["done"]) for e in events if e.kind == "progress"]
        assert reports[-1] == ("render", options.frames) and events[-1].kind == "result", reports

    def test_cancel_stops_the_ray_task(self, endpoint: str, serve_log: Path, tmp_path: Path) -> None:
        image = np.random.default_rng(4).integers(0, 256, (96, 128, 3), dtype=np.uint8)
        with Client(endpoint, timeout=5.0, retries=2) as client:
            job = client.submit(image, motion=DRIFT, options=RenderOptions(frames=600, levels=2),
                                out_dir=tmp_path / "loop")
            deadline = time.monotonic() + 180
            while job.stage != "render" and time.monotonic() < deadline and not job.is_finished:
                client.poll(0.1)
            assert job.stage == "render", job.state
            client.cancel(job)
            started = time.monotonic()
            with pytest.raises(Cancelled):
                client.wait(job, timeout=60)
        assert time.monotonic() - started < 30
        assert not (tmp_path / "loop").exists() and no_leftovers(tmp_path) == []
        # The task saw the cancel through the mailbox and stopped at the engine's next check; an
        # interrupt alone (ray.cancel) does nothing where the workers inherited SIGINT ignored (a test
        # run or a cluster started in the background), and the task ran on.
        stopped = f"job {job.job_id} stopped on the cluster at its cancel"
        deadline = time.monotonic() + 60  # the client hears the task's own message before the runner logs
        while stopped not in serve_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stopped in serve_log.read_text(), serve_log.read_text()[-2000:]
