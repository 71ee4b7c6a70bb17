"""What runs on a Ray worker for one batch item, and the files that travel without shared storage.

The task takes its thread share and memory budget (sizing.py) before rendering, counts its
attempt with a small actor on the driver's node (so retries after a dead worker are visible),
asks that actor between frames whether the driver stopped the batch, and says which node
rendered it. Ctrl+C and SIGTERM stop tasks through that flag, not ``ray.cancel``: a cancel that
races a task's completion aborts the driver inside Ray 2.60 ("Tried to complete task that was
not pending"). Shared storage: it renders into ``DIR/<name>/`` by path.
Without: the driver ships the input files' bytes, the task renders into scratch and returns the
result's files, which the driver writes into place whole.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError
from ..options import SwaySpec
from .sizing import TaskSize, use_threads
from .work import Outcome, Task, region_files, render_task

__all__ = ["Attempts", "render_remote", "input_bytes", "write_result"]

Files = dict[str, bytes]


class Attempts:
    """How often each item's task started, and whether the driver stopped the batch (a Ray actor)."""

    def __init__(self) -> None:
        self._started: dict[str, int] = {}
        self._stopped = False

    def stop(self) -> None:
        """Tell every running task to end at its next frame (nothing is written)."""
        self._stopped = True

    def stopped(self) -> bool:
        """True once the driver stopped the batch."""
        return self._stopped

    def begin(self, name: str) -> int:
        """Count one start of ``name``; returns its number (1 = the first)."""
        self._started[name] = self._started.get(name, 0) + 1
        return self._started[name]

    def count(self, name: str) -> int:
        """Starts of ``name`` so far."""
        return self._started.get(name, 0)


def render_remote(task: Task, inputs: dict[str, tuple[str, bytes]] | None, size: TaskSize,
                  attempts: Any) -> tuple[Outcome, Files]:
    """Ray task body: render by path, or from shipped input bytes into scratch (result files returned)."""
    import ray

    from ..tiles import MEMORY_ENV

    try:
        attempt = ray.get(attempts.begin.remote(task.name), timeout=30)
    except Exception:  # the counter is bookkeeping: never fail an item over it
        attempt = 1
    use_threads(size.threads)
    os.environ[MEMORY_ENV] = f"{size.budget / 2**30:.3f}"
    outcome, files = _render(task, inputs, _stop_flag(attempts))
    node = f"{ray.util.get_node_ip_address()} (node {ray.get_runtime_context().get_node_id()[:8]})"
    return dataclasses.replace(outcome, node=node, retries=attempt - 1), files


def _stop_flag(attempts: Any, every_s: float = 0.25) -> Callable[[], bool]:
    """A should_cancel that asks the driver's actor at most every ``every_s`` seconds."""
    import ray

    last = [0.0, False]

    def stopped() -> bool:
        now = time.monotonic()
        if not last[1] and now - last[0] >= every_s:
            last[0] = now
            try:
                last[1] = bool(ray.get(attempts.stopped.remote(), timeout=30))
            except Exception:  # the driver's node is gone: nobody is left to take the result
                last[1] = True
        return bool(last[1])
    return stopped


def _render(task: Task, inputs: dict[str, tuple[str, bytes]] | None,
            should_cancel: Callable[[], bool]) -> tuple[Outcome, Files]:
    """Render by path (``inputs`` None) or from shipped bytes in a scratch folder."""
    if inputs is None:
        return render_task(task, should_cancel=should_cancel), {}
    scratch = Path(tempfile.mkdtemp(prefix=f"stillflow-batch-{task.name}-"))
    try:
        local: dict[str, str] = {}
        for role, (name, data) in inputs.items():
            path = scratch / "inputs" / role / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            local[role] = str(path)
        motion = dataclasses.replace(task.motion, path=local["motion"]) if "motion" in local else task.motion
        regions = tuple(dataclasses.replace(
            region, mask=local.get(f"region_{index}_mask", region.mask),
            motion=dataclasses.replace(region.motion, path=local.get(f"region_{index}_motion", region.motion.path),
                                       sway=_local_sway(region.motion.sway,
                                                        local.get(f"region_{index}_amplitude_image"))))
            for index, region in enumerate(task.regions, start=1))
        moved = dataclasses.replace(task, image=local["image"], mask=local.get("mask", task.mask),
                                    importance=local.get("importance"), motion=motion, regions=regions)
        result = scratch / "result"
        outcome = render_task(moved, out_dir=str(result), should_cancel=should_cancel)
        files = {p.name: p.read_bytes() for p in sorted(result.iterdir())} if outcome.status == "done" else {}
        return outcome, files
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _local_sway(sway: SwaySpec | None, amplitude_image: str | None) -> SwaySpec | None:
    """A region's sway reading its amplitude image from the task's shipped copy (when it has one)."""
    if sway is None or amplitude_image is None:
        return sway
    return dataclasses.replace(sway, amplitude_image=amplitude_image)


def input_bytes(task: Task) -> dict[str, tuple[str, bytes]]:
    """The task's input files as (file name, bytes) by role (a motion clip folder is not supported)."""
    shipped = {}
    for role, path in (("image", task.image), ("mask", task.mask), ("importance", task.importance),
                       ("motion", task.motion.path), *region_files(task.regions)):
        if path in (None, "auto"):
            continue
        if Path(path).is_dir():
            raise InputError(f"{role} {path} is a folder; without shared storage send a video file instead")
        shipped[role] = (Path(path).name, Path(path).read_bytes())
    return shipped


def write_result(task: Task, files: Files) -> None:
    """Write a returned result into ``task.out_dir`` whole (manifest.json last inside the staging folder)."""
    from ..io.frames import atomic_dir

    with atomic_dir(task.out_dir) as staging:
        for name in sorted(files, key=lambda n: n == "manifest.json"):
            (staging / Path(name).name).write_bytes(files[name])
