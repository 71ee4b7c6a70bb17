"""Real Ray clusters on 127.0.0.1 for the batch tests: one shared two-node cluster per test session
(Ray starts slowly on a busy machine), and throwaway heads for the tests that kill one.

The shared cluster's head runs in the pytest process (stillflow's start_local_ray), its second node
(ray_node.py) in a subprocess. Where mount namespaces are allowed, the second node sees an empty
tmpfs over ``hidden``: a folder the driver has and that node does not share.
"""
from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

NODE_SCRIPT = Path(__file__).with_name("ray_node.py")
AUTH_TOKEN = Path.home() / ".ray" / "auth_token"


@dataclass
class RayCluster:
    """A running test cluster: its address, its processes, the second node's id and its hidden folder."""

    address: str
    root: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    second_node: str | None = None
    hidden: Path | None = None
    token_existed: bool = False
    env: dict[str, str] = field(default_factory=dict)
    """Environment for the processes that join it (its token)."""

    def pids(self) -> set[int]:
        """This process's Ray children and every process of the helper nodes."""
        import psutil

        roots = [psutil.Process()] + [psutil.Process(p.pid) for p in self.processes if p.poll() is None]
        found = {p.pid for p in self.processes if p.poll() is None}
        for root in roots:
            found |= {child.pid for child in root.children(recursive=True)}
        return found

    def stop(self) -> None:
        """Stop the helper nodes (closing their stdin), then kill what is left, and remove the temp folder."""
        for process in self.processes:
            if process.poll() is None:
                process.stdin.close()
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


def _short_root() -> Path:
    """A short temp folder: Ray's unix socket paths inside it must stay under 107 characters."""
    return Path(tempfile.mkdtemp(prefix="sfray-", dir="/tmp"))


def _unshare() -> list[str]:
    """A private mount namespace (as root), else one inside a user namespace."""
    return ["unshare", "-m", "--propagation", "private"] if os.geteuid() == 0 else ["unshare", "-Urm"]


def _node(args: list[str], *, hide: Path | None = None, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ray_node.py (inside a mount namespace with ``hide`` covered by an empty tmpfs when given)."""
    command = [sys.executable, str(NODE_SCRIPT), *args]
    if hide is not None:
        command = [*_unshare(), "sh", "-c", 'mount -t tmpfs stillflow-hidden "$0" && exec "$@"', str(hide), *command]
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)


def _can_hide(folder: Path) -> bool:
    """Whether this machine lets a process mount a tmpfs over ``folder`` in its own mount namespace."""
    try:
        done = subprocess.run([*_unshare(), "sh", "-c", 'mount -t tmpfs stillflow-probe "$0" && echo ok', str(folder)],
                              capture_output=True, text=True, timeout=60)
    except OSError:  # no unshare here
        return False
    return done.stdout.strip() == "ok"


def start_shared_cluster() -> RayCluster:
    """Head in this process (1 CPU) and a second node in a subprocess (1 CPU), both on 127.0.0.1."""
    from stillflow.batch.ray_connect import start_local_ray

    root = _short_root()
    token_existed = AUTH_TOKEN.exists()
    address = start_local_ray(num_cpus=1, temp_dir=str(root / "ray"), object_store_memory=150 << 20)
    cluster = RayCluster(address=address, root=root, token_existed=token_existed, env=ray_env())
    hidden = root / "hidden"
    hidden.mkdir()
    hide = hidden if _can_hide(hidden) else None
    node = _node(["join", str(root / "ray"), "1", address], hide=hide)
    cluster.processes.append(node)
    cluster.second_node = node.stdout.readline().strip() or None
    cluster.hidden = hide
    return cluster


_shared: list[RayCluster] = []


def shared_cluster(config: pytest.Config) -> RayCluster:
    """The session's shared cluster, started on first use and stopped when the session ends."""
    if not _shared:
        import ray

        cluster = start_shared_cluster()
        _shared.append(cluster)

        def stop() -> None:
            ray.shutdown()
            cluster.stop()

        config.add_cleanup(stop)
    return _shared[0]


def start_head(cpus: int = 2, gpus: int = 0, *, second_node_cpus: int = 0) -> RayCluster:
    """A throwaway cluster in subprocesses (stillflow's start_local_ray; a second node when asked), for a test
    that kills its head or needs GPUs declared (Ray only counts them)."""
    root = _short_root()
    token = secrets.token_hex(32)
    env = ray_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    head = _node(["head", str(root / "ray"), str(cpus), str(gpus)], env=env)
    cluster = RayCluster(address=head.stdout.readline().strip(), root=root, processes=[head], env=env)
    if second_node_cpus:
        node = _node(["join", str(root / "ray"), str(second_node_cpus), cluster.address], env=env)
        cluster.processes.append(node)
        cluster.second_node = node.stdout.readline().strip() or None
    return cluster


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL a process and every process below it (a head dying with its GCS and raylet)."""
    import psutil

    root = psutil.Process(process.pid)
    for victim in root.children(recursive=True) + [root]:
        try:
            victim.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
    process.wait(timeout=60)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and their IPv4-mapped IPv6 forms."""
    ip: Any = ipaddress.ip_address(host.split("%")[0])
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def sockets(pids: set[int]) -> tuple[set[str], set[str]]:
    """(addresses listened on, peer addresses talked to) of the TCP sockets of ``pids``."""
    import psutil

    listening, peers = set(), set()
    for pid in pids:
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:  # a worker that ended meanwhile
            continue
        for connection in connections:
            if connection.status == psutil.CONN_LISTEN:
                listening.add(connection.laddr.ip)
            elif connection.raddr:
                peers.add(connection.raddr.ip)
    return listening, peers


def ray_env(**changes: str) -> dict[str, str]:
    """This process's environment (with the shared cluster's token) changed by ``changes``."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", **changes}
