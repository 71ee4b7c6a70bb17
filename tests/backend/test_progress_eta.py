"""Progress outside a terminal: log lines with the time left; a warning before a very long render (issue 30)."""
from __future__ import annotations

import io
import logging

import pytest

from stillflow.cli import ProgressBar
from stillflow.progress import Pace, Progress, format_duration


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _bar() -> tuple[ProgressBar, Clock, io.StringIO]:
    """A ProgressBar writing to a non-terminal stream, on a hand-moved clock."""
    stream, clock = io.StringIO(), Clock()
    bar = ProgressBar(stream)
    bar.pace = Pace(clock=clock)
    return bar, clock, stream


def test_a_long_render_is_warned_about_after_its_first_frame(caplog: pytest.LogCaptureFixture) -> None:
    bar, clock, stream = _bar()
    bar(Progress("motion", 0, 1))
    clock.now = 5.0
    bar(Progress("motion", 1, 1))
    clock.now = 65.0  # the first frame took a minute
    with caplog.at_level(logging.INFO, logger="stillflow"):
        bar(Progress("render", 1, 60))
    assert ("stillflow: warning: this render will take about 1 h 0 min (60 frames at about 1 min 0 s each)"
            in stream.getvalue())
    assert "render 1/60 (1 min 0 s so far, about 59 min 0 s left)" in caplog.text


def test_without_a_terminal_the_time_left_is_logged_every_half_minute(caplog: pytest.LogCaptureFixture) -> None:
    bar, clock, stream = _bar()
    bar(Progress("motion", 1, 1))
    with caplog.at_level(logging.INFO, logger="stillflow"):
        for done in range(1, 11):
            clock.now = 10.0 * done
            bar(Progress("render", done, 10))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("render")]
    assert lines == ["render 1/10 (10 s so far, about 1 min 30 s left)",
                     "render 4/10 (40 s so far, about 1 min 0 s left)",
                     "render 7/10 (1 min 10 s so far, about 30 s left)", "render 10/10 (1 min 40 s so far)"]
    assert "warning" not in stream.getvalue()  # 100 s in all: not a long render


def test_durations_read_naturally() -> None:
    assert [format_duration(s) for s in (8.4, 125, 3780)] == ["8 s", "2 min 5 s", "1 h 3 min"]
