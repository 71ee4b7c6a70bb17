"""addon/core/preview_worker.py: the live preview's planning thread (no bpy; real threads, waited on with deadlines)."""
from __future__ import annotations

import threading
from typing import Callable

import pytest

from addon.core.lib import load
from addon.core.preview_worker import Planner

_errors = load("errors")

DEADLINE_S = 60.0
"""Generous wait for a thread on a busy 2-core machine."""


def _gated(gate: threading.Event, seen: list[bool], value: str) -> Callable[[Callable[[], bool]], str]:
    """A job that waits for ``gate``, records whether it was cancelled by then and stops if so."""
    def work(should_cancel: Callable[[], bool]) -> str:
        assert gate.wait(DEADLINE_S)
        seen.append(should_cancel())
        if should_cancel():
            raise _errors.Cancelled("superseded")
        return value
    return work


def _threads(name: str) -> list[threading.Thread]:
    """Live threads with this name."""
    return [thread for thread in threading.enumerate() if thread.name == name]


class TestPlanner:
    def test_value_arrives_from_another_thread(self) -> None:
        planner: Planner[int] = Planner("sf-test-value")
        ran_on: list[int] = []
        gate = threading.Event()

        def work(should_cancel: Callable[[], bool]) -> int:
            ran_on.append(threading.get_ident())
            assert gate.wait(DEADLINE_S)
            return 42

        planner.submit("k", work)
        assert planner.pending() == "k" and planner.take() is None  # submit returned before the value exists
        gate.set()
        assert planner.wait(DEADLINE_S)
        assert planner.pending() == "k"  # finished, not taken yet
        outcome = planner.take()
        assert (outcome.key, outcome.value, outcome.error) == ("k", 42, None)
        assert planner.take() is None and planner.pending() is None
        assert ran_on and ran_on[0] != threading.get_ident()
        assert not _threads("sf-test-value")  # no thread lingers once the work is done

    def test_a_newer_job_supersedes_the_running_one(self) -> None:
        planner: Planner[str] = Planner("sf-test-supersede")
        gate, seen = threading.Event(), []
        planner.submit("old", _gated(gate, seen, "old"))
        planner.submit("new", _gated(gate, seen, "new"))
        assert planner.pending() in {"old", "new"}
        gate.set()
        assert planner.wait(DEADLINE_S)
        outcome = planner.take()
        assert outcome.key == "new" and outcome.value == "new"
        # the old job ran only if it had started, and then it saw it was cancelled; only the new one is ever taken
        assert seen[-1] is False and all(seen[:-1]) and planner.take() is None

    def test_an_error_is_handed_back(self) -> None:
        planner: Planner[None] = Planner("sf-test-error")

        def work(should_cancel: Callable[[], bool]) -> None:
            raise ValueError("the preview sways at most 4 different Cycles")

        planner.submit("k", work)
        assert planner.wait(DEADLINE_S)
        outcome = planner.take()
        assert outcome.key == "k" and outcome.value is None
        assert isinstance(outcome.error, ValueError) and "at most 4" in str(outcome.error)

    def test_a_cancelled_job_still_running_is_not_pending(self) -> None:
        planner: Planner[str] = Planner("sf-test-cancel-running")
        started, gate, seen = threading.Event(), threading.Event(), []
        late = _gated(gate, seen, "late")

        def work(should_cancel: Callable[[], bool]) -> str:
            started.set()
            return late(should_cancel)

        planner.submit("k", work)
        assert started.wait(DEADLINE_S)  # the worker runs it: cancel lands mid-job
        planner.cancel()
        assert planner.pending() is None, "a cancelled job counted as pending until it noticed"
        gate.set()
        assert planner.wait(DEADLINE_S)
        assert planner.take() is None and seen == [True]

    def test_cancel_drops_the_job_and_its_thread_ends(self) -> None:
        planner: Planner[str] = Planner("sf-test-cancel")
        gate, seen = threading.Event(), []
        planner.submit("k", _gated(gate, seen, "late"))
        planner.cancel()
        assert planner.pending() is None
        gate.set()
        assert planner.wait(DEADLINE_S)
        assert planner.take() is None and seen in ([], [True])
        assert not _threads("sf-test-cancel")

    @pytest.mark.parametrize("jobs", [3, 20])
    def test_a_burst_of_edits_gives_the_last_value(self, jobs: int) -> None:
        planner: Planner[int] = Planner("sf-test-burst")
        for index in range(jobs):
            planner.submit(index, lambda should_cancel, index=index: index)
        assert planner.wait(DEADLINE_S)
        outcome = planner.take()
        assert outcome.key == outcome.value == jobs - 1
