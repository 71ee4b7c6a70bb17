"""Running a batch: plan every item, skip finished ones, hand the rest to an executor, record the outcome.

The executor is anything with ``run(tasks, report)`` (LocalExecutor, RayExecutor); ``report`` is
called once per finished item. The driver counts an item done only when its result is complete
where the driver reads it (a node that does not share the output folder cannot fake one).
Ctrl+C: the executor stops its items cleanly, batch.json records what was finished and the
KeyboardInterrupt goes on to the caller; a rerun continues. So does BackendUnavailable (the
cluster went away).
"""
from __future__ import annotations

import glob
import logging
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from ..errors import BackendUnavailable, InputError
from ..options import MotionSpec
from .items import BatchItem
from .work import Outcome, Task, is_done, one_line, plan_task

__all__ = ["Executor", "BatchResult", "run_batch", "NOT_SHARED"]

NOT_SHARED = "does not share the output folder"
"""Part of the cause of a result that a node wrote where the driver cannot see it."""

log = logging.getLogger(__name__)


class Executor(Protocol):
    """Renders tasks and reports each outcome as it finishes."""

    def describe(self) -> str: ...

    def run(self, tasks: Sequence[Task], report: Callable[[Outcome], None]) -> None: ...


@dataclass
class BatchResult:
    """Every item's outcome in item order, where the summary went and how long it took."""

    outcomes: list[Outcome]
    summary: Path
    seconds: float


def run_batch(items: Sequence[BatchItem], out_root: str | Path, executor: Executor, *,
              common: dict[str, Any] | None = None, given: dict[str, Any] | None = None,
              default_motion: MotionSpec | None = None, default_mask: str | None = None, video: str | None = None,
              source: str = "", progress: Callable[[Outcome], None] | None = None) -> BatchResult:
    """Render every item into ``out_root/<name>/`` and write ``out_root/batch.json``."""
    from .report import write_summary

    started = time.perf_counter()
    out_root = Path(out_root).resolve()
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"output folder {out_root} cannot be created: {exc.strerror}") from None
    outcomes: dict[str, Outcome] = {}
    planned: dict[str, Task] = {}

    def record(outcome: Outcome) -> None:
        if outcome.status == "done" and outcome.name in planned and not is_done(planned[outcome.name]):
            outcome = _missing(outcome, out_root)
        elif outcome.status == "cancelled" and outcome.name in planned and is_done(planned[outcome.name]):
            # it finished before the cancel (or the cluster's end) reached the driver: its result is whole
            outcome = replace(outcome, status="done", cause=None)
        outcomes[outcome.name] = outcome
        if progress is not None:
            progress(outcome)

    pending: list[Task] = []
    for item in items:
        try:
            task = plan_task(item, out_root, common=common or {}, given=given or {}, default_motion=default_motion,
                             default_mask=default_mask, video=video)
        except (InputError, OSError) as exc:
            record(Outcome(item.name, "failed", 0.0, one_line(exc)))
            continue
        if is_done(task):
            record(Outcome(item.name, "skipped", 0.0))
        else:
            pending.append(task)
            planned[task.name] = task
    log.info("batch: %d item(s), %d to render, %s", len(items), len(pending), executor.describe())
    interrupted, stopped = False, None
    try:
        executor.run(pending, record)
    except KeyboardInterrupt:
        interrupted, stopped = True, "interrupted (Ctrl+C or SIGTERM)"
        raise
    except BackendUnavailable as exc:
        interrupted, stopped = True, str(exc)
        raise
    finally:
        _remove_leftovers(out_root, [t.name for t in pending])
        ordered = [outcomes.get(item.name) or _unreported(item.name, planned) for item in items]
        summary = write_summary(out_root, ordered, source=source, executor=executor.describe(),
                                seconds=time.perf_counter() - started, interrupted=interrupted, stopped=stopped)
    return BatchResult(ordered, summary, time.perf_counter() - started)


def _unreported(name: str, planned: dict[str, Task]) -> Outcome:
    """An item the executor never reported: done when its whole result is in place, else not run."""
    return Outcome(name, "done" if name in planned and is_done(planned[name]) else "not run")


def _missing(outcome: Outcome, out_root: Path) -> Outcome:
    """A reported success whose result the driver cannot find: a failure naming the node and the way out."""
    where = f"node {outcome.node}" if outcome.node else "the worker"
    return Outcome(outcome.name, "failed", outcome.seconds,
                   f"{where} reported it done, but {out_root / outcome.name} is not complete on this machine: "
                   f"that node {NOT_SHARED} (mount it at the same path on every node, or pass --no-shared-storage)",
                   node=outcome.node, retries=outcome.retries)


def _remove_leftovers(out_root: Path, names: Sequence[str]) -> None:
    """Delete staging folders a killed worker left behind (``.NAME.tmp-*``); none of ours is still writing."""
    for name in names:
        for leftover in out_root.glob(f".{glob.escape(Path(name).stem)}.tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
