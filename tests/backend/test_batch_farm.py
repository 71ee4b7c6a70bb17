"""`stillflow batch` as a farm meets it, on a real Ray cluster on 127.0.0.1 (batch_ray_helpers.py): loopback
only, a node without the output folder, SIGTERM, a dying head, wrong addresses and tokens, resume keys."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'stillflow[ray]')")
psutil = pytest.importorskip("psutil", reason="psutil is not installed (pip install 'stillflow[test]')")

from stillflow.batch.items import load_items  # noqa: E402
from stillflow.batch.ray_exec import RayExecutor  # noqa: E402
from stillflow.batch.run import NOT_SHARED, run_batch  # noqa: E402

from .batch_helpers import REPO, FAST, frames_of, no_leftovers, summary, write_still  # noqa: E402
from .batch_ray_helpers import (AUTH_TOKEN, RayCluster, is_loopback, kill_tree, ray_env, shared_cluster,  # noqa: E402
                                sockets, start_head)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(pytestconfig: pytest.Config) -> RayCluster:
    """The session's two-node Ray cluster on 127.0.0.1."""
    return shared_cluster(pytestconfig)


def _stills(folder: Path, count: int, height: int = 96, width: int = 128) -> Path:
    """``count`` seeded stills s0.. in ``folder``."""
    for index in range(count):
        write_still(folder / f"s{index}.png", index, height, width)
    return folder


def _batch(source: Path, out: Path, address: str, *extra: str) -> list[str]:
    """The command line of a Ray batch of long-enough items to stop in the middle."""
    return [sys.executable, "-m", "stillflow", "batch", str(source), "--out", str(out), "--executor", "ray",
            "--address", address, "--drift", "0,1", "--levels", "2", *extra]


def _wait_for_a_result(process: subprocess.Popen, out: Path) -> None:
    """Block until one item's result is in place (generous deadline), the batch still running."""
    deadline = time.monotonic() + 300
    while not list(out.glob("*/manifest.json")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()


def _complete(out: Path, name: str, frames: int) -> bool:
    """A whole result of ``frames`` frames is in ``out/name``."""
    return (out / name / "manifest.json").is_file() and len(frames_of(out / name)) == frames


def test_every_ray_process_binds_and_advertises_loopback_only(cluster: RayCluster) -> None:
    ray.get([ray.remote(lambda: None).options(num_cpus=1).remote() for _ in range(4)])  # workers on both nodes
    listening, peers = sockets(cluster.pids())
    assert listening, "found no listening Ray process"
    assert all(is_loopback(ip) for ip in listening), f"listening beyond loopback: {sorted(listening)}"
    assert all(is_loopback(ip) for ip in peers), f"talking beyond loopback: {sorted(peers)}"
    nodes = [n for n in ray.nodes() if n["Alive"]]
    assert len(nodes) == 2 and {n["NodeManagerAddress"] for n in nodes} == {"127.0.0.1"}
    assert cluster.address.startswith("127.0.0.1:") and ray.get_runtime_context().gcs_address == cluster.address
    assert cluster.token_existed or not AUTH_TOKEN.exists(), "starting Ray wrote ~/.ray/auth_token"


def test_a_node_without_the_output_folder_is_named_and_nothing_counts_as_done(cluster: RayCluster,
                                                                              tmp_path: Path) -> None:
    if cluster.hidden is None:
        pytest.skip("this machine allows no mount namespace to hide a folder from the second node")
    source = _stills(tmp_path / "src", 4, 48, 64)
    done = subprocess.run(_batch(source, cluster.hidden, cluster.address, *FAST), capture_output=True, text=True,
                          timeout=600, env=ray_env())
    recorded = summary(cluster.hidden)
    elsewhere = [name for name, item in recorded.items() if cluster.second_node[:8] in (item["node"] or "")]
    assert elsewhere, f"no item ran on the second node: {recorded}"
    for name, item in recorded.items():
        if name in elsewhere:
            assert item["status"] == "failed" and NOT_SHARED in item["cause"], item
        else:
            assert item["status"] == "done" and _complete(cluster.hidden, name, 3), item
    assert done.returncode == 1, done.stderr
    assert f"is not shared with 127.0.0.1 (node {cluster.second_node[:8]})" in done.stderr


def test_sigterm_is_ctrl_c_and_in_flight_items_are_cancelled(cluster: RayCluster, tmp_path: Path) -> None:
    source, out = _stills(tmp_path / "src", 6), tmp_path / "out"
    process = subprocess.Popen(_batch(source, out, cluster.address, "--frames", "40"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=ray_env(), cwd=REPO)
    _wait_for_a_result(process, out)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "run the same command again" in stderr
    body = json.loads((out / "batch.json").read_text())
    assert body["interrupted"] and "SIGTERM" in body["stopped"]
    statuses = {item["name"]: item["status"] for item in body["items"]}
    for name, status in statuses.items():
        assert (status == "done") == _complete(out, name, 40), (name, status)
    assert "cancelled" in statuses.values(), statuses
    assert no_leftovers(out) == []


def test_head_death_is_named_recorded_and_exits_4(tmp_path: Path) -> None:
    head = start_head(cpus=2)
    try:
        source, out = _stills(tmp_path / "src", 6), tmp_path / "out"
        process = subprocess.Popen(_batch(source, out, head.address, "--frames", "40"), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=head.env, cwd=REPO)
        _wait_for_a_result(process, out)
        kill_tree(head.processes[0])
        _, stderr = process.communicate(timeout=300)
    finally:
        head.stop()
    assert process.returncode == 4, stderr
    assert "the Ray cluster went away" in stderr
    body = json.loads((out / "batch.json").read_text())
    assert body["interrupted"] and "went away" in body["stopped"]
    statuses = {item["name"]: item["status"] for item in body["items"]}
    assert "done" in statuses.values() and "cancelled" in statuses.values(), statuses
    assert all((status == "done") == _complete(out, name, 40) for name, status in statuses.items()), statuses
    assert no_leftovers(out) == [], "the lost tasks' staging folders are removed"


def test_wrong_address_fails_at_once_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    source = _stills(tmp_path / "src", 1, 48, 64)
    started = time.monotonic()
    done = subprocess.run(_batch(source, tmp_path / "out", f"127.0.0.1:{port}", *FAST), capture_output=True,
                          text=True, timeout=600, env=ray_env())
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0, done.stderr
    assert f"cannot reach a Ray cluster at 127.0.0.1:{port}" in done.stderr
    assert time.monotonic() - started < 120, "Ray's three minutes of retries are not waited for"


def test_a_wrong_token_is_named(cluster: RayCluster, tmp_path: Path) -> None:
    source = _stills(tmp_path / "src", 1, 48, 64)
    done = subprocess.run(_batch(source, tmp_path / "out", cluster.address, *FAST), capture_output=True, text=True,
                          timeout=600, env=ray_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 64))
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("stillflow: error:") and "RAY_AUTH_TOKEN" in last, last


def test_resume_keys_do_not_depend_on_number_formatting(cluster: RayCluster, tmp_path: Path) -> None:
    write_still(tmp_path / "a.png", 5)
    (tmp_path / "ints.json").write_text(json.dumps({"options": {"frames": 3, "levels": 2},
                                                    "items": [{"image": "a.png", "hints": [[10, 20, 60, 20]]}]}))
    (tmp_path / "floats.csv").write_text('image,hints,frames,levels\na.png,"10.0,20,60.0,20.0",3,2\n')
    out = tmp_path / "out"
    items, common = load_items(tmp_path / "ints.json")
    first = run_batch(items, out, RayExecutor(cluster.address), common=common)
    assert [o.status for o in first.outcomes] == ["done"], first.outcomes
    items, common = load_items(tmp_path / "floats.csv")
    again = run_batch(items, out, RayExecutor(cluster.address), common=common)
    assert [o.status for o in again.outcomes] == ["skipped"], again.outcomes


def test_one_gpu_does_not_make_every_task_a_gpu_task(tmp_path: Path) -> None:
    farm = start_head(cpus=1, gpus=1, second_node_cpus=1)
    try:
        source = _stills(tmp_path / "src", 4, 48, 64)
        done = subprocess.run(_batch(source, tmp_path / "out", farm.address, *FAST), capture_output=True, text=True,
                              timeout=600, env=farm.env)
    finally:
        farm.stop()
    assert done.returncode == 0, done.stderr
    assert "GPU tasks on 1 GPU(s), CPU tasks on 1 CPU-only node(s)" in done.stderr
    nodes = {item["node"] for item in summary(tmp_path / "out").values()}
    assert any(farm.second_node[:8] in node for node in nodes), f"the CPU-only node stayed idle: {nodes}"
