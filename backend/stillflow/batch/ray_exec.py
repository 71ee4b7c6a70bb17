"""The Ray executor: one Ray task per item on a cluster (ray_connect.py joins or starts it).

Each task asks for its share of a node (sizing.py: CPU threads and memory from the still's size).
Placement (``--placement``): ``auto`` runs GPU tasks (``num_gpus=1``) on the nodes with GPUs and
CPU tasks on the nodes without, both at once; ``gpu`` only GPU tasks; ``cpu`` only CPU tasks.
A worker that dies is retried by Ray (``max_retries``; retries are counted); an item's own failure
is not retried. Ctrl+C (or SIGTERM) cancels the running tasks and collects each one's real end
(finished ones are kept). A head that stops answering ends the batch with ClusterLost.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from ..errors import InputError
from .ray_connect import ClusterLost, ClusterWatch, connect, gcs_address, require_ray
from .ray_task import Attempts, input_bytes, render_remote, write_result
from .sizing import RESERVE, TaskSize, task_size
from .work import Outcome, Task, one_line

__all__ = ["RayExecutor", "PLACEMENTS", "require_ray", "connect"]

log = logging.getLogger(__name__)

PLACEMENTS = ("auto", "gpu", "cpu")
_WAIT_S = 0.5
_STOP_S = 120.0
"""How long Ctrl+C waits for the cancelled tasks to report their end, all together."""
_NO_END = "did not report its end in time after the cancel"


@dataclass
class _Node:
    """A node's CPUs and GPUs, and the CPU tasks this driver has placed on it."""

    node_id: str
    cpus: float
    gpus: float
    flying: int = 0


class RayExecutor:
    """Runs tasks as Ray tasks on the cluster at ``address``."""

    def __init__(self, address: str | None = "auto", *, shared_storage: bool = True, max_retries: int = 3,
                 in_flight: int | None = None, placement: str = "auto", threads: int | None = None,
                 lost_after_s: float = 10.0) -> None:
        if placement not in PLACEMENTS:
            raise InputError(f"--placement must be one of {', '.join(PLACEMENTS)}, got {placement!r}")
        self.address = address
        self.shared_storage = shared_storage
        self.max_retries = max_retries
        self.in_flight = in_flight
        self.placement = placement
        self.threads = threads
        self.lost_after_s = lost_after_s
        self._started = False
        self._nodes: list[_Node] = []
        self._largest: dict[str, float] = {}
        self._watch: ClusterWatch | None = None
        self._attempts: Any = None

    @property
    def _gpus(self) -> float:
        return sum(n.gpus for n in self._nodes)

    @property
    def _cpu_nodes(self) -> list[_Node]:
        return [n for n in self._nodes if not n.gpus]

    def _uses_gpus(self) -> bool:
        return self.placement != "cpu" and self._gpus > 0

    def describe(self) -> str:
        """One line for the log and batch.json: cluster, placement and storage."""
        if self._uses_gpus():
            cpu_nodes = len(self._cpu_nodes) if self.placement == "auto" else 0
            where = f"GPU tasks on {self._gpus:g} GPU(s)" + (f", CPU tasks on {cpu_nodes} CPU-only node(s)"
                                                              if cpu_nodes else "")
        else:
            where = f"CPU tasks on {sum(n.cpus for n in self._nodes):g} CPU(s)"
        storage = "shared storage" if self.shared_storage else "inputs and results through the object store"
        return f"ray: {len(self._nodes)} node(s), {where}, threads and memory per task by still size, {storage}"

    def open(self) -> None:
        """Connect to the cluster, read its nodes and start the attempt counter on this node."""
        ray = require_ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._started = connect(self.address)
        self._watch = ClusterWatch(gcs_address(), grace_s=self.lost_after_s)
        alive = [n for n in ray.nodes() if n.get("Alive")]
        self._nodes = [_Node(n["NodeID"], float(n["Resources"].get("CPU", 0)), float(n["Resources"].get("GPU", 0)))
                       for n in alive]
        self._largest = {key: max((float(n["Resources"].get(key, 0)) for n in alive), default=0.0)
                         for key in ("CPU", "memory")}
        if self.placement == "gpu" and not self._gpus:
            raise InputError("--placement gpu, but the Ray cluster has no GPUs", hint="use --placement auto or cpu")
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        self._attempts = ray.remote(num_cpus=0)(Attempts).options(scheduling_strategy=here).remote()

    def close(self) -> None:
        """Shut Ray down when this executor started it."""
        if self._started:
            require_ray().shutdown()
            self._started = False

    def _fit(self, size: TaskSize) -> TaskSize:
        """``size`` shrunk to what the largest node offers (Ray would wait forever for more)."""
        threads = min(size.threads, max(1, int(self._largest.get("CPU", 1))))
        memory = self._largest.get("memory", 0)
        if memory and size.memory > memory:
            return TaskSize(threads=threads, budget=int(memory / RESERVE), memory=int(memory))
        return replace(size, threads=threads)

    def _window(self) -> int:
        """Tasks handed to Ray at once: twice what the cluster runs together."""
        if self.in_flight:
            return self.in_flight
        if not self._uses_gpus():
            slots = sum(n.cpus for n in self._nodes)
        else:
            slots = self._gpus + (sum(n.cpus for n in self._cpu_nodes) if self.placement == "auto" else 0)
        return max(2, int(2 * slots))

    def _place(self, gpu_flying: int) -> tuple[dict[str, Any], _Node | None]:
        """Ray options placing the next task (GPU while GPUs are free, else a CPU-only node), and that node."""
        if not self._uses_gpus():
            return {"num_gpus": 0}, None
        cpu_nodes = self._cpu_nodes if self.placement == "auto" else []
        if cpu_nodes and gpu_flying >= 2 * self._gpus:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            node = min(cpu_nodes, key=lambda n: n.flying / max(1.0, n.cpus))
            return {"num_gpus": 0, "scheduling_strategy": NodeAffinitySchedulingStrategy(node.node_id, soft=True)}, node
        return {"num_gpus": 1}, None

    def run(self, tasks: Sequence[Task], report: Callable[[Outcome], None]) -> None:
        """Submit tasks (a bounded window at a time) and report each outcome; Ctrl+C cancels them."""
        ray = require_ray()
        if not tasks:
            return
        if self._watch is None:
            self.open()
        assert self._watch is not None
        remote = ray.remote(render_remote)
        queue = list(tasks)
        flying: dict[Any, tuple[Task, _Node | None, bool]] = {}
        try:
            while queue or flying:
                self._watch.check()
                while queue and len(flying) < self._window():
                    task = queue.pop(0)
                    try:
                        inputs = None if self.shared_storage else input_bytes(task)
                    except (OSError, InputError) as exc:
                        report(Outcome(task.name, "failed", 0.0, one_line(exc)))
                        continue
                    size = self._fit(task_size(task, threads=self.threads))
                    placed, node = self._place(sum(gpu for _, _, gpu in flying.values()))
                    memory = {"memory": size.memory} if self._largest.get("memory") else {}
                    ref = remote.options(num_cpus=size.threads, max_retries=self.max_retries,
                                         name="stillflow_batch_item", **memory, **placed).remote(
                        task, inputs, size, self._attempts)
                    if node is not None:
                        node.flying += 1
                    flying[ref] = (task, node, placed["num_gpus"] > 0)
                if not flying:
                    continue
                ready, _ = ray.wait(list(flying), num_returns=1, timeout=_WAIT_S)
                for ref in ready:
                    report(self._collect(ray, ref, self._land(flying, ref)))
        except KeyboardInterrupt:
            self._stop(ray, flying, report)
            raise
        except ClusterLost:
            for task, _, _ in flying.values():
                report(Outcome(task.name, "cancelled", cause="the Ray cluster went away while it rendered"))
            raise

    @staticmethod
    def _land(flying: dict[Any, tuple[Task, _Node | None, bool]], ref: Any) -> Task:
        """Take a finished task out of flight (and off its node's count)."""
        task, node, _ = flying.pop(ref)
        if node is not None:
            node.flying -= 1
        return task

    def _stop(self, ray: Any, flying: dict[Any, tuple[Task, _Node | None, bool]],
              report: Callable[[Outcome], None]) -> None:
        """Stop the running tasks at their next frame and report how each really ended (a finished one is kept)."""
        try:
            ray.get(self._attempts.stop.remote(), timeout=10)
        except Exception:  # Ray is going away: each task's end is collected (or times out) below
            pass
        deadline = time.monotonic() + _STOP_S
        for ref in list(flying):
            task = self._land(flying, ref)
            outcome = self._collect(ray, ref, task, timeout=max(1.0, deadline - time.monotonic()))
            if outcome.cause == _NO_END:
                try:
                    ray.cancel(ref, force=True)  # still running after the deadline: its worker is ended
                except Exception:  # it ended meanwhile, or Ray is going away
                    pass
            report(outcome)

    def _collect(self, ray: Any, ref: Any, task: Task, timeout: float | None = None) -> Outcome:
        """The outcome of a finished Ray task; the driver writes returned files into place."""
        from ray.exceptions import GetTimeoutError, TaskCancelledError

        try:
            outcome, files = ray.get(ref, timeout=timeout)
        except TaskCancelledError:
            return Outcome(task.name, "cancelled", retries=self._retries(ray, task))
        except GetTimeoutError:
            return Outcome(task.name, "cancelled", cause=_NO_END)
        except Exception as exc:  # the task died more often than max_retries, or Ray failed it
            return Outcome(task.name, "failed", 0.0, one_line(exc).split("\n")[0][:300],
                           retries=self._retries(ray, task))
        if outcome.status == "done" and files:
            try:
                write_result(task, files)
            except OSError as exc:
                return replace(outcome, status="failed", cause=f"writing the result failed: {one_line(exc)}")
        return outcome

    def _retries(self, ray: Any, task: Task) -> int:
        """Times ``task`` was started again (0 when the counter cannot be asked)."""
        try:
            return max(0, ray.get(self._attempts.count.remote(task.name), timeout=10) - 1)
        except Exception:  # bookkeeping only
            return 0
