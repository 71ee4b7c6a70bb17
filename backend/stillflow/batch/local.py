"""The local executor: K worker processes on this machine, one engine each.

Devices: with GPUs, worker i renders on cuda:(i mod GPUs) (jobs that name a device keep it); the
CPU threads are split evenly between the workers (torch.set_num_threads, NUMBA_NUM_THREADS).
Ctrl+C (or SIGTERM): workers ignore both; the driver sets a shared stop flag that the engine checks between
frames (Cancelled: nothing written), drops the queued items and waits for the running ones.
"""
from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import os
import signal
from typing import Any, Callable, Sequence

from .sizing import use_threads
from .work import Outcome, Task, one_line, render_task

__all__ = ["LocalExecutor", "cpu_count", "default_workers", "gpu_count", "worker_slots"]

_stop: Any = None
_device: str | None = None


def cpu_count() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def gpu_count() -> int:
    """CUDA devices visible here (imports torch)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def default_workers(gpus: int, cpus: int) -> int:
    """Workers when --workers is not given: one per GPU, else two on a machine with two or more cores."""
    # bench/bench_batch.py, 2 cores: 1 worker took 1.9x the time of 2 (docs/benchmarks.md, issue 25); two
    # processes with a thread each beat one with two threads, as numba's threads scale below linear.
    return gpus if gpus else min(2, max(1, cpus))


def worker_slots(workers: int, gpus: int, cpus: int) -> list[tuple[str | None, int]]:
    """(device, CPU threads) of each worker: GPUs dealt round-robin, CPU threads split evenly."""
    threads = max(1, cpus // max(1, workers))
    return [(f"cuda:{i % gpus}" if gpus else None, threads) for i in range(workers)]


def _init_worker(slots: Any, stop: Any) -> None:
    """Worker start: take a device and thread count, ignore Ctrl+C (the driver handles it), load the engine."""
    global _stop, _device
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a scheduler's SIGTERM to the group: the driver stops us
    _device, threads = slots.get()
    _stop = stop
    use_threads(threads)
    import stillflow.pipeline  # noqa: F401  (load the engine before the first item, not during it)


def _run(task: Task) -> Outcome:
    """Render one task in a worker process."""
    return render_task(task, device=_device, should_cancel=_stop.is_set)


class LocalExecutor:
    """Runs tasks on ``workers`` processes of this machine."""

    def __init__(self, workers: int = 1, *, gpus: int | None = None, cpus: int | None = None) -> None:
        self.workers = max(1, workers)
        self.slots = worker_slots(self.workers, gpu_count() if gpus is None else gpus, cpus or cpu_count())

    def describe(self) -> str:
        """One line for the log: workers and devices."""
        devices = sorted({d or "cpu" for d, _ in self.slots})
        return f"local: {self.workers} worker(s) on {', '.join(devices)}, {self.slots[0][1]} CPU thread(s) each"

    def run(self, tasks: Sequence[Task], report: Callable[[Outcome], None]) -> None:
        """Render every task and report each outcome as it finishes; KeyboardInterrupt stops cleanly."""
        if not tasks:
            return
        context = multiprocessing.get_context("spawn")
        slots = context.SimpleQueue()
        for slot in self.slots:
            slots.put(slot)
        stop = context.Event()
        pool = futures.ProcessPoolExecutor(max_workers=min(self.workers, len(tasks)), mp_context=context,
                                           initializer=_init_worker, initargs=(slots, stop))
        pending = {pool.submit(_run, task): task for task in tasks}
        reported: set[futures.Future] = set()
        try:
            for future in futures.as_completed(pending):
                reported.add(future)
                report(self._outcome(future, pending[future]))
        except KeyboardInterrupt:
            stop.set()
            for future in pending:
                future.cancel()
            running = [f for f in pending if f not in reported and not f.cancelled()]
            for future in futures.as_completed(running):
                report(self._outcome(future, pending[future]))
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def _outcome(future: futures.Future, task: Task) -> Outcome:
        """The worker's Outcome, or a failure when the worker process itself died."""
        try:
            return future.result()
        except futures.process.BrokenProcessPool as exc:
            return Outcome(task.name, "failed", 0.0, f"the worker process died ({one_line(exc)}); run the batch again")
