"""What a batch tells its user: a progress bar over items, the summary table and ``DIR/batch.json``."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence, TextIO

from ..io.frames import atomic_file
from .work import Outcome

__all__ = ["ItemBar", "summary_table", "write_summary", "counts"]

STATUSES = ("done", "skipped", "failed", "cancelled", "not run")


def counts(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """How many items ended in each status."""
    return {status: sum(o.status == status for o in outcomes) for status in STATUSES}


class ItemBar:
    """Progress over items on stderr: a bar on a terminal, one plain line per item elsewhere."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.stream = stream
        self.is_tty = stream.isatty()
        self.finished: list[Outcome] = []
        self._started = time.perf_counter()

    def __call__(self, outcome: Outcome) -> None:
        """Count one finished item and redraw."""
        self.finished.append(outcome)
        done = len(self.finished)
        elapsed = time.perf_counter() - self._started
        tally = counts(self.finished)
        if not self.is_tty:
            cause = f": {outcome.cause}" if outcome.cause else ""
            retried = f" (retried {outcome.retries}x)" if outcome.retries else ""
            self.stream.write(f"batch {done}/{self.total} {outcome.name} {outcome.status} "
                              f"{outcome.seconds:.1f}s{retried}{cause}\n")
        else:
            width = 30
            filled = int(width * done / max(1, self.total))
            self.stream.write(f"\rbatch [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
                              f"done {tally['done']} skipped {tally['skipped']} failed {tally['failed']} "
                              f"{elapsed:6.1f}s")
            if done >= self.total:
                self.stream.write("\n")
        self.stream.flush()


def summary_table(outcomes: Sequence[Outcome]) -> str:
    """The terminal summary: one row per item (name, status, seconds, cause) and the totals."""
    width = max([4] + [len(o.name) for o in outcomes])
    lines = [f"{'item':<{width}}  {'status':<9} {'seconds':>8} {'retries':>7}  cause"]
    for outcome in outcomes:
        lines.append(f"{outcome.name:<{width}}  {outcome.status:<9} {outcome.seconds:8.1f} {outcome.retries:7d}  "
                     f"{outcome.cause or ''}".rstrip())
    tally = counts(outcomes)
    retries = sum(o.retries for o in outcomes)
    lines.append(", ".join([f"{n} {status}" for status, n in tally.items() if n or status in ("done", "failed")]
                           + ([f"{retries} retried after a worker died"] if retries else [])))
    return "\n".join(lines)


def write_summary(out_root: Path, outcomes: Sequence[Outcome], *, source: str, executor: str, seconds: float,
                  interrupted: bool, stopped: str | None = None) -> Path:
    """Write ``out_root/batch.json`` atomically: counts, retries, seconds, why it stopped early, one entry per item."""
    body: dict[str, Any] = {"source": source, "executor": executor, "seconds": round(seconds, 3),
                            "interrupted": interrupted, "stopped": stopped, "counts": counts(outcomes),
                            "retries": sum(o.retries for o in outcomes), "items": [o.to_dict() for o in outcomes]}
    target = out_root / "batch.json"
    with atomic_file(target) as staging:
        staging.write_text(json.dumps(body, indent=2), encoding="utf-8")
    return target
