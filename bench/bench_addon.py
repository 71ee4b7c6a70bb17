"""Add-on responsiveness: how long Generate's operator holds Blender, and the time to the first preview frame.

Runs in real bpy 5.0.1 (background mode) with the add-on enabled from this checkout and a real local
backend (``.venv/bin/python -m stillflow serve``). Timers do not fire in background mode, so the
script calls the add-on's timer body itself, as Blender's event loop would, and times every call.
Reference measured in the same run: the blocking connect that the operator used to do itself
(``Connection.get_client``: find the Python, start the backend, wait for hello).

    .venv-blender/bin/python bench/bench_addon.py [--size 512] [--frames 12] [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "addon"))

from blender_scenes import region_mask, saved_still  # noqa: E402


def _enable() -> object:
    """The add-on enabled from the source checkout (package ``addon``)."""
    import addon_utils

    sys.path.insert(0, str(REPO))
    addon_utils.enable("addon", default_set=True)
    return sys.modules["addon"]


def _scene(folder: Path, size: int, frames: int) -> object:
    """A saved textured still with a centre Mask and one arrow, shown in an Image Editor; the scene."""
    import bpy

    width, height = size, size * 3 // 4
    rgba = np.ones((height, width, 4), np.float32)
    rgba[..., :3] = np.random.default_rng(7).random((height, width, 3), dtype=np.float32)
    still = saved_still(folder, "still", rgba)
    mask = region_mask("bench", [(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8)], ((0.3, 0.5), (0.6, 0.5)))
    scene = bpy.context.scene
    settings = scene.stillflow
    settings.image, settings.mask, settings.frames, settings.device = still, mask, frames, "cpu"
    area = bpy.context.window_manager.windows[0].screen.areas[0]
    area.type = "IMAGE_EDITOR"
    area.spaces.active.image = still
    return scene


def _generate(module: object) -> dict[str, float]:
    """One Generate through the operator, the timer run by hand; times in ms."""
    import bpy

    runner = module.runner
    started = time.perf_counter()
    assert bpy.ops.stillflow.generate() == {"FINISHED"}
    operator_ms = (time.perf_counter() - started) * 1000.0
    tracker = runner.active_tracker()
    ticks: list[float] = []
    first_preview = None
    while True:
        tick = time.perf_counter()
        delay = runner._timer()
        ticks.append((time.perf_counter() - tick) * 1000.0)
        if first_preview is None and tracker.preview_count:
            first_preview = (time.perf_counter() - started) * 1000.0
        if delay is None:
            break
        time.sleep(min(delay, 0.02))
    assert tracker.state == "done", tracker.error
    return {"operator_ms": operator_ms, "first_preview_ms": first_preview or float("nan"),
            "total_ms": (time.perf_counter() - started) * 1000.0, "slowest_tick_ms": max(ticks),
            "median_tick_ms": statistics.median(ticks), "ticks": len(ticks)}


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="still width, px (height = 3/4 of it)")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    import bpy

    module = _enable()
    prefs = bpy.context.preferences.addons["addon"].preferences
    folder = Path(tempfile.mkdtemp(prefix="stillflow-bench-addon-"))
    prefs.backend_mode, prefs.python_path = "LOCAL", str(REPO / ".venv" / "bin" / "python")
    prefs.output_dir = str(folder / "out")
    _scene(folder, args.size, args.frames)
    runner = module.runner
    runner.WAIT_IN_BACKGROUND = False
    config = module.properties.backend_config(bpy.context)

    started = time.perf_counter()
    runner.CONNECTION.get_client(config)  # what the operator used to do before returning
    blocking_ms = (time.perf_counter() - started) * 1000.0
    runner.CONNECTION.close()

    cold = _generate(module)  # the backend starts inside the timer ticks
    warm = _generate(module)  # the backend is already running
    runner.shutdown()
    figures = {"size": [args.size, args.size * 3 // 4], "frames": args.frames, "blocking_connect_ms": blocking_ms,
               "cold": cold, "warm": warm, "operator_vs_blocking_connect": cold["operator_ms"] / blocking_ms}
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"still {figures['size'][0]}x{figures['size'][1]}, {args.frames} frames, CPU backend")
    print(f"reference: blocking connect (old operator) {blocking_ms:8.1f} ms")
    for name, run in (("cold", cold), ("warm", warm)):
        print(f"{name}: operator {run['operator_ms']:7.1f} ms | slowest tick {run['slowest_tick_ms']:6.1f} ms | "
              f"median tick {run['median_tick_ms']:5.2f} ms | first preview {run['first_preview_ms']:8.1f} ms | "
              f"done {run['total_ms']:8.1f} ms ({run['ticks']} ticks)")
    print(f"operator / blocking connect: {figures['operator_vs_blocking_connect']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
