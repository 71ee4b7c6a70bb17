"""Service overhead: a 1024^2 job through `stillflow serve` against calling the engine directly.

Target (issue 2): the service adds at most 10 % to the wall time. Both paths run in this
process's run, alternating, after a warm-up; median and IQR of each, and the ratio.

    python bench/bench_service.py [--size 1024] [--frames 8] [--repeats 3] [--mode shared|arrays] [--json]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from stillflow import __version__, render, render_frames
from stillflow.link.client import Client
from stillflow.io.images import to_uint8
from stillflow.link.launcher import start_local_backend
from stillflow.options import MotionSpec, RenderOptions


def _still(size: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded smooth-ish RGB still and a mask animating its upper half."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
    image = np.ascontiguousarray(np.repeat(np.repeat(small, 16, axis=0), 16, axis=1))
    mask = np.zeros((size, size), np.uint8)
    mask[: size // 2] = 255
    return image, mask


def _timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _summary(values: list[float]) -> dict[str, float]:
    quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"median_s": statistics.median(values), "iqr_s": quartiles[2] - quartiles[0], "runs": len(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mode", choices=("shared", "arrays"), default="shared",
                        help="shared: frames written to a folder (vs render); arrays: frames sent back (vs render_frames)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    image, mask = _still(args.size)
    options = RenderOptions(frames=args.frames, levels=4)
    motion = MotionSpec(kind="drift", drift=(20.0, 1.0))
    scratch = Path(tempfile.mkdtemp(prefix="stillflow-bench-"))
    backend = start_local_backend(sys.executable, log_path=str(scratch / "serve.log"), timeout=180)
    try:
        with Client(backend.endpoint, timeout=10.0) as client:
            if args.mode == "shared":
                def direct() -> None:
                    render(image, scratch / "direct", mask=mask, motion=motion, options=options)

                def service() -> None:
                    client.wait(client.submit(image, mask=mask, motion=motion, options=options,
                                              out_dir=scratch / "service"))
            else:
                def direct() -> None:
                    # The same result the service returns for an 8-bit job: the uint8 frames.
                    np.stack([to_uint8(f) for f in render_frames(image, mask=mask, motion=motion, options=options)])

                def service() -> None:
                    frames = client.wait(client.submit(image, mask=mask, motion=motion, options=options))["frames"]
                    assert frames.shape == (args.frames, args.size, args.size, 3)

            direct(), service()  # warm-up: kernels, caches, the backend's first job
            times: dict[str, list[float]] = {"direct": [], "service": []}
            for _ in range(args.repeats):
                times["direct"].append(_timed(direct))
                times["service"].append(_timed(service))
    finally:
        backend.stop()
    report = {
        "stillflow": __version__, "python": platform.python_version(), "machine": platform.machine(),
        "mode": args.mode, "size": args.size, "frames": args.frames,
        "direct": _summary(times["direct"]), "service": _summary(times["service"]),
    }
    report["ratio"] = report["service"]["median_s"] / report["direct"]["median_s"]
    report["overhead_pct"] = 100.0 * (report["ratio"] - 1.0)
    report["target_met"] = report["overhead_pct"] <= 10.0
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name in ("direct", "service"):
            stats = report[name]
            print(f"{name:>8}: median {stats['median_s'] * 1000:8.1f} ms  IQR {stats['iqr_s'] * 1000:6.1f} ms  "
                  f"({stats['runs']} runs, {args.size}x{args.size}, {args.frames} frames, mode {args.mode})")
        print(f"   ratio: {report['ratio']:.3f} (service overhead {report['overhead_pct']:+.1f} %, "
              f"target <= +10 %: {'met' if report['target_met'] else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
