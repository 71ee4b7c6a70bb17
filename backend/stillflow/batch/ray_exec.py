"""The Ray executor: one Ray task per item on an existing cluster (or a local one).

Each task asks for ``num_gpus=1`` when the cluster has GPUs (Ray sets CUDA_VISIBLE_DEVICES).
Shared storage (default): tasks read the inputs and write ``DIR/<name>/`` by path. Without it
the driver sends the input files' bytes through the object store, the task renders into its own
scratch folder and returns the result's files, and the driver writes them into place whole.
A worker that dies is retried by Ray (``max_retries``); an item's own failure is not retried.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import InputError
from .work import Outcome, Task, one_line, render_task

__all__ = ["RayExecutor", "require_ray", "connect"]

log = logging.getLogger(__name__)

_INSTALL_HINT = "install it with: pip install 'stillflow[ray]' (or pip install ray)"
_WAIT_S = 0.5


def require_ray() -> Any:
    """The ray module, or InputError (exit 2) saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray needs Ray, which is not installed", hint=_INSTALL_HINT) from None
    return ray


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (``auto`` = a running one, else start one; ``local`` = start one).

    Returns True when this call started Ray here (the caller then shuts it down). An already
    initialised Ray in this process is used as it is.
    """
    ray = require_ray()
    if ray.is_initialized():
        return False
    try:
        if address in (None, "", "local"):
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            try:
                ray.init(address=address, log_to_driver=False)
            except ConnectionError as exc:
                if address != "auto" or "could not find" not in str(exc).lower():
                    raise
                ray.init(include_dashboard=False, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise InputError(f"cannot connect to the Ray cluster at {address}: {one_line(exc)}",
                         hint="start it with `ray start --head` or pass --address local") from None
    return True


def _render_remote(task: Task, inputs: dict[str, tuple[str, bytes]] | None) -> tuple[Outcome, dict[str, bytes]]:
    """Ray task body: render by path, or from shipped input bytes into scratch (result files returned)."""
    if inputs is None:
        return render_task(task), {}
    scratch = Path(tempfile.mkdtemp(prefix=f"stillflow-batch-{task.name}-"))
    try:
        local: dict[str, str] = {}
        for role, (name, data) in inputs.items():
            path = scratch / "inputs" / role / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            local[role] = str(path)
        motion = dataclasses.replace(task.motion, path=local["motion"]) if "motion" in local else task.motion
        moved = dataclasses.replace(task, image=local["image"], mask=local.get("mask", task.mask),
                                    importance=local.get("importance"), motion=motion)
        result = scratch / "result"
        outcome = render_task(moved, out_dir=str(result))
        files = {p.name: p.read_bytes() for p in sorted(result.iterdir())} if outcome.status == "done" else {}
        return outcome, files
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _input_bytes(task: Task) -> dict[str, tuple[str, bytes]]:
    """The task's input files as (file name, bytes) by role (a motion clip folder is not supported)."""
    shipped = {}
    for role, path in (("image", task.image), ("mask", task.mask), ("importance", task.importance),
                       ("motion", task.motion.path)):
        if path in (None, "auto"):
            continue
        if Path(path).is_dir():
            raise InputError(f"{role} {path} is a folder; without shared storage send a video file instead")
        shipped[role] = (Path(path).name, Path(path).read_bytes())
    return shipped


def _write_result(task: Task, files: dict[str, bytes]) -> None:
    """Write a returned result into ``task.out_dir`` whole (manifest.json last inside the staging folder)."""
    from ..io.frames import atomic_dir

    with atomic_dir(task.out_dir) as staging:
        for name in sorted(files, key=lambda n: n == "manifest.json"):
            (staging / Path(name).name).write_bytes(files[name])


class RayExecutor:
    """Runs tasks as Ray tasks on the cluster at ``address``."""

    def __init__(self, address: str | None = "auto", *, shared_storage: bool = True, max_retries: int = 3,
                 in_flight: int | None = None) -> None:
        self.address = address
        self.shared_storage = shared_storage
        self.max_retries = max_retries
        self.in_flight = in_flight
        self._started = False
        self._gpus = 0.0
        self._capacity = 1

    def describe(self) -> str:
        """One line for the log: cluster and placement."""
        return (f"ray: {self._capacity} task(s) at once, {'1 GPU' if self._gpus else '1 CPU'} each, "
                f"{'shared storage' if self.shared_storage else 'inputs and results through the object store'}")

    def open(self) -> None:
        """Connect to the cluster and size the placement."""
        ray = require_ray()
        self._started = connect(self.address)
        resources = ray.cluster_resources()
        self._gpus = float(resources.get("GPU", 0))
        self._capacity = max(1, int(self._gpus or resources.get("CPU", 1)))

    def close(self) -> None:
        """Shut Ray down when this executor started it."""
        if self._started:
            require_ray().shutdown()
            self._started = False

    def run(self, tasks: Sequence[Task], report: Callable[[Outcome], None]) -> None:
        """Submit tasks (a bounded window at a time) and report each outcome; Ctrl+C cancels them."""
        ray = require_ray()
        if not tasks:
            return
        remote = ray.remote(_render_remote).options(
            num_gpus=1 if self._gpus else 0, num_cpus=1, max_retries=self.max_retries,
            name="stillflow_batch_item")
        window = self.in_flight or 2 * self._capacity
        queue = list(tasks)
        flying: dict[Any, Task] = {}
        try:
            while queue or flying:
                while queue and len(flying) < window:
                    task = queue.pop(0)
                    try:
                        inputs = None if self.shared_storage else _input_bytes(task)
                    except (OSError, InputError) as exc:
                        report(Outcome(task.name, "failed", 0.0, one_line(exc)))
                        continue
                    flying[remote.remote(task, inputs)] = task
                if not flying:
                    continue
                ready, _ = ray.wait(list(flying), num_returns=1, timeout=_WAIT_S)
                for ref in ready:
                    report(self._collect(ray, ref, flying.pop(ref)))
        except KeyboardInterrupt:
            for ref in flying:
                ray.cancel(ref)
            for ref, task in flying.items():
                try:
                    ray.get(ref)
                except Exception:  # cancelled or failed while stopping: nothing of it was moved into place
                    pass
            raise

    def _collect(self, ray: Any, ref: Any, task: Task) -> Outcome:
        """The outcome of a finished Ray task; the driver writes returned files into place."""
        try:
            outcome, files = ray.get(ref)
        except Exception as exc:  # the task died more often than max_retries, or Ray failed it
            return Outcome(task.name, "failed", 0.0, one_line(exc).split("\n")[0][:300])
        if outcome.status == "done" and files:
            try:
                _write_result(task, files)
            except OSError as exc:
                return Outcome(task.name, "failed", outcome.seconds, f"writing the result failed: {one_line(exc)}")
        return outcome
