"""Batch throughput: stills per minute for 1 and 2 local workers and for Ray on this machine, against
rendering the same items one after another in this process (the reference, measured in the same run),
and Ray's time against ``--workers 2`` (the issue's target: within 10 %).

Overhead per item = (executor wall time - reference wall time) / items: process or task start-up,
engine import in each worker, scheduling and (Ray without shared storage) the object store. Each
batch starts new local worker processes; Ray keeps its workers, so its first ("cold") batch
includes starting them and the next ("warm") does not. The reference runs again right before
each executor (the machine's load drifts), and each ratio uses the reference next to it. Ray runs
on this machine only (stillflow's start_local_ray: 127.0.0.1, one CPU per core) with each task's
thread share (sizing.py), as a farm node would.

    python bench/bench_batch.py [--items 6] [--size 128] [--frames 16] [--repeat 1] [--no-ray] [--json]
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from stillflow import __version__, render
from stillflow.batch.items import load_items
from stillflow.batch.local import LocalExecutor, cpu_count
from stillflow.batch.run import run_batch
from stillflow.options import MotionSpec, RenderOptions

DRIFT = MotionSpec(kind="drift", drift=(20.0, 1.0))


def _stills(folder: Path, count: int, size: int) -> None:
    """``count`` seeded blocky RGB stills of ``size`` px."""
    import cv2

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for index in range(count):
        small = rng.integers(0, 256, (max(1, size // 8), max(1, size // 8), 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"still{index:03d}.png"), cv2.resize(small, (size, size), interpolation=cv2.INTER_NEAREST))


def _timed(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=6)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=1, help="run the executors this many rounds (paired figures)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray executor")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    given = {"frames": args.frames, "levels": 3}
    work = Path(tempfile.mkdtemp(prefix="stillflow-bench-batch-"))
    ray_dir = tempfile.mkdtemp(prefix="sfray-")  # Ray's session, removed after (short: socket paths)
    try:
        _stills(work / "src", args.items, args.size)
        items, _ = load_items(work / "src")
        options = RenderOptions(**given)
        render(items[0].image, work / "warmup", motion=DRIFT, options=options)  # imports, kernels compiled

        def reference(folder: Path) -> float:
            return _timed(lambda: [render(i.image, folder / i.name, motion=DRIFT, options=options) for i in items])

        runs: list[tuple[str, Callable[[], Any]]] = [
            ("local, 1 worker", lambda: LocalExecutor(1, gpus=0)),
            ("local, 2 workers", lambda: LocalExecutor(2, gpus=0)),
        ]
        ray_started = False
        if not args.no_ray:
            try:
                import ray
            except ImportError:
                print("ray not installed: skipping the Ray executor", file=sys.stderr)
            else:
                from stillflow.batch.ray_connect import start_local_ray
                from stillflow.batch.ray_exec import RayExecutor

                start_local_ray(num_cpus=cpu_count(), temp_dir=ray_dir)
                ray_started = True
                runs += [("ray, shared storage (cold)", lambda: _opened(RayExecutor(None))),
                         ("ray, shared storage (warm)", lambda: _opened(RayExecutor(None))),
                         ("ray, object store (warm)", lambda: _opened(RayExecutor(None, shared_storage=False)))]
        rows = []
        later = [run for run in runs if "cold" not in run[0]]  # Ray's workers stay up after the first round
        for index, (label, make) in enumerate(runs + later * (max(1, args.repeat) - 1)):
            # the reference runs right before each executor: the machine's load drifts between rows
            serial = reference(work / f"ref-{index}")
            out = work / f"out-{index}"
            result: list = []
            seconds = _timed(lambda: result.append(run_batch(items, out, make(), given=given, default_motion=DRIFT)))
            done = sum(o.status == "done" for o in result[0].outcomes)
            rows.append({"executor": label, "reference_s": serial, "seconds": seconds, "done": done,
                         "stills_per_min": 60.0 * done / seconds,
                         "reference_stills_per_min": 60.0 * args.items / serial,
                         "overhead_per_item_s": (seconds - serial) / args.items,
                         "speedup_vs_reference": serial / seconds})
        if ray_started:
            ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(ray_dir, ignore_errors=True)
    report = {"stillflow": __version__, "python": platform.python_version(), "cpus": cpu_count(),
              "items": args.items, "size": args.size, "frames": args.frames, "rows": rows,
              "ratios": _ratios(rows)}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.items} stills of {args.size}^2 px, {args.frames} frames, {cpu_count()} CPU(s); reference = the "
          "same items one after another in this process, measured right before each executor")
    print(f"{'executor':<27} {'reference':>9} {'seconds':>8} {'stills/min':>11} {'(ref)':>6} "
          f"{'overhead/item':>14} {'vs reference':>13}")
    for row in rows:
        print(f"{row['executor']:<27} {row['reference_s']:8.1f}s {row['seconds']:8.1f} {row['stills_per_min']:11.1f} "
              f"{row['reference_stills_per_min']:6.1f} {row['overhead_per_item_s']:13.2f}s "
              f"{row['speedup_vs_reference']:12.2f}x")
    for name, value in report["ratios"].items():
        print(f"{name}: {value:.2f}")
    return 0


def _ratios(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Median time ratios of the executors that matter for the defaults (each over its own reference)."""
    def relative(label: str) -> list[float]:
        return [row["seconds"] / row["reference_s"] for row in rows if row["executor"] == label]

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    ratios = {}
    one, two, warm = relative("local, 1 worker"), relative("local, 2 workers"), relative("ray, shared storage (warm)")
    if one and two:
        ratios["time of --workers 1 / --workers 2 (median)"] = median([a / b for a, b in zip(one, two)])
    if warm and two:
        ratios["time of ray (warm) / --workers 2 (median; target <= 1.10)"] = median([a / b for a, b in zip(warm, two)])
    return ratios


def _opened(executor: Any) -> Any:
    """An executor after open() (Ray: connected to the runtime this script started)."""
    executor.open()
    return executor


if __name__ == "__main__":
    sys.exit(main())
