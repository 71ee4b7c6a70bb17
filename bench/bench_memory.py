"""Memory benchmark: peak resident memory of a whole ``stillflow render`` against $STILLFLOW_MEMORY_GB.

Each configuration runs ``python -m stillflow render`` in its own process on a synthetic still
(smooth noise, a drift over the whole frame, frames and an .mp4) and reads that process's peak
resident set (``wait4``'s ru_maxrss): the engine's strips, the still, its mask and motion, the
pyramid, the chunk of frames, the PNG writer and the video encoder's pipe all count. The figure is
peak / cap; the target (issue 30) is <= 1.1. The floor measured in the same run is the resident
memory of a process that has only imported the engine (torch, OpenCV, numba), which no cap can
go below.

Usage: python bench/bench_memory.py [--frames 4] [--cases 2048x1536@1.25 2048x1536@1.5 4096x3072@2]

A cap too small for the still is refused with one line before anything is allocated; such a case
prints "refused" and is left out of the worst ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CASES = ("2048x1536@1.25", "2048x1536@1.5", "4096x3072@2.25")
TARGET = 1.1


def make_still(path: Path, width: int, height: int) -> None:
    """A smooth-noise RGB still of width x height saved as PNG."""
    import cv2

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
    cv2.imwrite(str(path), cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC))


def peak_of(command: list[str], env: dict[str, str]) -> tuple[int, float, int, str]:
    """Run ``command``; its peak resident bytes, wall seconds, exit status and stderr's end."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace")[-600:]
    return usage.ru_maxrss * 1024, time.perf_counter() - started, process.returncode, tail


def main() -> None:
    """Measure each case and print peak RSS against the cap."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), metavar="WxH@GiB")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "STILLFLOW_MEMORY_GB"}
    floor, _, _, _ = peak_of([sys.executable, "-c", "import stillflow.pipeline, stillflow.loop, stillflow.tiles"], env)
    print(f"floor: a process that only imports the engine peaks at {floor / 2**30:.2f} GiB")
    print(f"{'still':>10} {'cap GiB':>8} {'peak GiB':>9} {'peak/cap':>9} {'wall s':>7}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as scratch:
        for case in args.cases:
            size, cap = case.split("@")
            width, height = (int(v) for v in size.split("x"))
            still = Path(scratch) / f"still-{width}x{height}.png"
            if not still.exists():
                make_still(still, width, height)
            out = Path(scratch) / f"out-{case}"
            command = [sys.executable, "-m", "stillflow", "-q", "render", str(still), "--drift", "0,2",
                       "--frames", str(args.frames), "--out", str(out), "--video", str(out) + ".mp4"]
            peak, wall, code, tail = peak_of(command, {**env, "STILLFLOW_MEMORY_GB": cap})
            ratio = peak / (float(cap) * 2**30)
            rows.append({"width": width, "height": height, "cap_gib": float(cap), "peak_gib": peak / 2**30,
                         "ratio": ratio, "wall_s": wall, "exit": code})
            verdict = "" if code == 0 else f"  refused (exit {code}): {(tail.strip().splitlines() or [''])[-1][:160]}"
            print(f"{size:>10} {float(cap):8.2f} {peak / 2**30:9.2f} {ratio:9.2f} {wall:7.0f}"
                  f"{'  over ' + str(TARGET) if ratio > TARGET else ''}{verdict}", flush=True)
    rendered = [r["ratio"] for r in rows if r["exit"] == 0]
    print(f"worst peak/cap of {len(rendered)} renders: {max(rendered, default=float('nan')):.2f} (target <= {TARGET})")
    if args.json:
        Path(args.json).write_text(json.dumps({"floor_gib": floor / 2**30, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
