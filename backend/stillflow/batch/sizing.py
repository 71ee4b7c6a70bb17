"""What one item asks of a shared machine: CPU threads and memory, from the still's size.

A task's engine is held to its own memory budget (instead of half the node's RAM, which every
task on the node would plan for at once) and to its own share of threads (numba and torch would
otherwise start one per core of the node in every task). Larger stills get more threads so a big
item finishes in reasonable time; the memory request lets Ray place no more tasks on a node than
fit, and a still larger than the budget renders in strips (tiles.py).
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass

from ..io.headers import HEADER_BYTES, image_size
from .work import Task

__all__ = ["TaskSize", "task_size", "use_threads", "MIN_BUDGET", "MAX_BUDGET", "RESERVE"]

MIN_BUDGET = 1 << 30
"""Smallest engine budget a task gets (the engine's own floor, imports, kernels and a small still fit)."""
MAX_BUDGET = 8 << 30
"""Largest engine budget a task asks for; larger stills render in strips within it."""
_HEADROOM = 1.25
"""Budget over the renderer's own estimate: the loop's padding around the still."""
_HELD_PER_PIXEL = 16
"""Bytes per pixel held beside the renderer: the prepared still, mask and motion, the frame writer."""
RESERVE = 1.5
"""Memory reserved from Ray per byte of budget: what the process holds beyond the engine's budget."""
_THREAD_STEPS = ((4_000_000, 1), (16_000_000, 2))
"""(up to this many pixels, threads): more above the last step."""
_MOST_THREADS = 4
_GUESS_PIXELS = 4_000_000


@dataclass(frozen=True)
class TaskSize:
    """CPU threads, the engine's memory budget and the memory to reserve (budget + still, motion, encoder)."""

    threads: int
    budget: int
    memory: int


def _pixels(image: str) -> int:
    """Pixels of a still from its header (no decode); 4 MP when it cannot be read."""
    try:
        with open(image, "rb") as stream:
            size = image_size(stream.read(HEADER_BYTES))
    except Exception:  # unreadable or malformed: the render reports that, the planner guesses
        size = None
    return size[0] * size[1] if size else _GUESS_PIXELS


def task_size(task: Task, *, threads: int | None = None) -> TaskSize:
    """The share of a node ``task`` needs; ``threads`` overrides the size-based thread count."""
    from .. import tiles

    pixels = _pixels(task.image)
    if threads is None:
        threads = next((n for limit, n in _THREAD_STEPS if pixels <= limit), _MOST_THREADS)
    side = math.isqrt(pixels)
    floor = getattr(tiles, "ENGINE_FLOOR_BYTES", 0)  # the process's own share, where the engine counts it
    need = floor + _HEADROOM * tiles.renderer_bytes(side, side) + _HELD_PER_PIXEL * pixels
    budget = int(min(MAX_BUDGET, max(MIN_BUDGET, need)))
    return TaskSize(threads=max(1, threads), budget=budget, memory=int(RESERVE * budget))


def use_threads(threads: int) -> None:
    """Hold this process's numba, OpenMP and torch pools to ``threads`` (call before rendering)."""
    for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)  # read when numba or torch starts in this process
    if "numba" in sys.modules:  # already started by an earlier task in this worker: lower its pool
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    import torch

    torch.set_num_threads(threads)
