"""Batch throughput: stills per minute for 1 and 2 local workers and for Ray on this machine, against
rendering the same items one after another in this process (the reference, measured in the same run).

Overhead per item = (executor wall time - reference wall time) / items: process or task start-up,
engine import in each worker, scheduling and (Ray without shared storage) the object store. Each
executor runs twice on fresh output folders: "cold" includes starting its workers, "warm" reuses
the machine's warm file caches (local workers are new processes each batch; Ray keeps its workers).

    python bench/bench_batch.py [--items 8] [--size 128] [--frames 24] [--no-ray] [--json]
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
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray executor")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    given = {"frames": args.frames, "levels": 3}
    work = Path(tempfile.mkdtemp(prefix="stillflow-bench-batch-"))
    try:
        _stills(work / "src", args.items, args.size)
        items, _ = load_items(work / "src")
        options = RenderOptions(**given)
        render(items[0].image, work / "warmup", motion=DRIFT, options=options)  # imports, kernels compiled
        reference = _timed(lambda: [render(i.image, work / "ref" / i.name, motion=DRIFT, options=options)
                                    for i in items])
        executors: dict[str, Callable[[], Any]] = {
            "local, 1 worker": lambda: LocalExecutor(1, gpus=0),
            "local, 2 workers": lambda: LocalExecutor(2, gpus=0),
        }
        ray_started = False
        if not args.no_ray:
            try:
                import ray
            except ImportError:
                print("ray not installed: skipping the Ray executor", file=sys.stderr)
            else:
                from stillflow.batch.ray_exec import RayExecutor

                ray.init(num_cpus=min(2, cpu_count()), include_dashboard=False, log_to_driver=False)
                ray_started = True
                executors["ray, shared storage"] = lambda: _opened(RayExecutor(None))
                executors["ray, object store"] = lambda: _opened(RayExecutor(None, shared_storage=False))
        rows = []
        for label, make in executors.items():
            for run in ("cold", "warm"):
                out = work / f"out-{len(rows)}"
                result: list = []
                seconds = _timed(lambda: result.append(run_batch(items, out, make(), given=given,
                                                                 default_motion=DRIFT)))
                done = sum(o.status == "done" for o in result[0].outcomes)
                rows.append({"executor": label, "run": run, "seconds": seconds, "done": done,
                             "stills_per_min": 60.0 * done / seconds,
                             "overhead_per_item_s": (seconds - reference) / args.items,
                             "speedup_vs_reference": reference / seconds})
        if ray_started:
            ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {"stillflow": __version__, "python": platform.python_version(), "cpus": cpu_count(),
              "items": args.items, "size": args.size, "frames": args.frames,
              "reference": {"seconds": reference, "stills_per_min": 60.0 * args.items / reference}, "rows": rows}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.items} stills of {args.size}^2 px, {args.frames} frames, {cpu_count()} CPU(s); "
          f"reference (one after another in this process): {reference:.1f} s = "
          f"{report['reference']['stills_per_min']:.1f} stills/min")
    print(f"{'executor':<22} {'run':<5} {'seconds':>8} {'stills/min':>11} {'overhead/item':>14} {'vs reference':>13}")
    for row in rows:
        print(f"{row['executor']:<22} {row['run']:<5} {row['seconds']:8.1f} {row['stills_per_min']:11.1f} "
              f"{row['overhead_per_item_s']:13.2f}s {row['speedup_vs_reference']:12.2f}x")
    return 0


def _opened(executor: Any) -> Any:
    """An executor after open() (Ray: connected to the runtime this script started)."""
    executor.open()
    return executor


if __name__ == "__main__":
    sys.exit(main())
