"""Add-on responsiveness: how long Generate's operator holds Blender, and the time to the first preview frame.

Runs in real bpy 5.0.1 (background mode) with the add-on enabled from this checkout and a real local
backend (``.venv/bin/python -m stillflow serve``). Timers do not fire in background mode, so the
script calls the add-on's timer body itself, as Blender's event loop would, and times every call.
Reference measured in the same run: the blocking connect that the operator used to do itself
(``Connection.get_client``: find the Python, start the backend, wait for hello).

Issue 24 adds what an artist hits next, each operator or tick timed on the main thread (budget
100 ms): Cancel, opening a file and disabling the add-on after the backend was SIGKILLed mid-render
(point 1); the first Generate after the Output Folder moved, which replaces the local backend
(point 2); the tick that places a regenerated take (point 6); the Generate operator on a 3264x2448
still with a Mask (point 10); and how long an orphaned backend outlives its parent (point 8).

The live preview with Motion Regions (``--preview WxH``, default 4000x3000; ``--preview-only`` skips
the rest): the slowest timer tick while it plans a swaying and a flowing region (first plan, an
amplitude edit, a Mask edit) against the same plan computed on the main thread, as the tick did before.

    .venv-blender/bin/python bench/bench_addon.py [--size 512] [--frames 12] [--json]
    .venv-blender/bin/python bench/bench_addon.py --preview-only [--preview 4000x3000]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
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
            "median_tick_ms": statistics.median(ticks), "ticks": len(ticks), "placement_tick_ms": ticks[-1]}


def _timed(action: object) -> float:
    """Milliseconds ``action()`` holds the main thread."""
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000.0


def _running_then_killed(module: object, scene: object, folder: Path) -> object:
    """A 48-frame job ticked until it renders, then its local backend SIGKILLed; the tracker."""
    import bpy

    runner = module.runner
    scene.stillflow.frames = 48
    assert bpy.ops.stillflow.generate() == {"FINISHED"}
    tracker = runner.active_tracker()
    deadline = time.monotonic() + 300
    while tracker.state != "running" and time.monotonic() < deadline:
        runner._timer()
        time.sleep(0.02)
    process = runner.CONNECTION.backend.process
    process.kill()
    process.wait()
    return tracker


def _dead_backend(module: object, scene: object, folder: Path) -> dict[str, float]:
    """Point 1: Cancel, File > Open and unregister after the backend died mid-render; ms each."""
    import bpy

    saved = folder / "dead.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(saved), copy=True)
    figures = {}
    _running_then_killed(module, scene, folder)
    figures["cancel_ms"] = _timed(bpy.ops.stillflow.cancel)
    module.runner.CONNECTION.close()
    _running_then_killed(module, scene, folder)
    figures["open_file_ms"] = _timed(lambda: bpy.ops.wm.open_mainfile(filepath=str(saved)))
    module.runner.CONNECTION.close()
    scene = bpy.context.scene
    _running_then_killed(module, scene, folder)
    figures["unregister_ms"] = _timed(module.runner.shutdown)
    return figures


def _output_moved(module: object, prefs: object, folder: Path) -> dict[str, float]:
    """Point 2: the first Generate after the Output Folder moved (the local backend is replaced)."""
    prefs.output_dir = str(folder / "moved")
    run = _generate(module)
    return {"operator_ms": run["operator_ms"], "slowest_tick_ms": run["slowest_tick_ms"]}


def _big_still(module: object, scene: object, folder: Path) -> float:
    """Point 10: the Generate operator on a 3264x2448 still with a Mask (the job is cancelled at once)."""
    import bpy

    width, height = 3264, 2448
    rgba = np.ones((height, width, 4), np.float32)
    rgba[..., :3] = np.random.default_rng(11).random((height, width, 3), dtype=np.float32)
    previous, scene.stillflow.image = scene.stillflow.image, saved_still(folder, "big", rgba)
    operator_ms = _timed(bpy.ops.stillflow.generate)
    module.runner.cancel()
    deadline = time.monotonic() + 60
    while module.runner._timer() is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    scene.stillflow.image = previous
    return operator_ms


def _orphan_exit(module: object, folder: Path) -> float:
    """Point 8: ms from a SIGKILLed parent to its backend's exit, while that backend renders a job."""
    client_module = module.core.lib.load("link.client")
    options = module.core.lib.load("options")
    parent = subprocess.Popen(["sleep", "600"])
    endpoint_file = folder / "orphan-endpoint"
    serve = subprocess.Popen([str(REPO / ".venv" / "bin" / "python"), "-m", "stillflow", "-q", "serve", "--bind",
                              "tcp://127.0.0.1:*", "--endpoint-file", str(endpoint_file), "--log",
                              str(folder / "orphan.log"), "--results", str(folder / "orphan"),
                              "--parent-pid", str(parent.pid)])
    try:
        deadline = time.monotonic() + 120
        while not endpoint_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        with client_module.Client(endpoint_file.read_text().strip()) as client:
            image = np.random.default_rng(3).random((360, 480, 3), dtype=np.float32)
            job = client.submit(image, motion=options.MotionSpec(kind="drift", drift=(1.0, 0.0)),
                                options=options.RenderOptions(frames=120, device="cpu"))
            while job.state != "running" and time.monotonic() < deadline:
                client.poll(0.1)
            parent.kill()
            parent.wait()
            gone = time.perf_counter()
            serve.wait(timeout=60)
            return (time.perf_counter() - gone) * 1000.0
    finally:
        for process in (parent, serve):
            if process.poll() is None:
                process.kill()
                process.wait()


def _follow_plan(preview: object) -> dict[str, float]:
    """Tick the preview every 10 ms until a new regions plan is drawn; slowest tick, worst late wake-up, ms."""
    versions, started, ticks, late = preview._state.versions, time.perf_counter(), [], [0.0]
    while preview._state.versions == versions and not preview._state.problem:
        ticks.append(_timed(preview._tick))
        if time.perf_counter() - started > 600:
            raise TimeoutError("the preview's plan did not arrive in 10 minutes")
        asleep = time.perf_counter()
        time.sleep(0.01)
        late.append((time.perf_counter() - asleep - 0.01) * 1000.0)  # the worker holding the GIL would show here
    assert not preview._state.problem, preview._state.problem
    return {"slowest_tick_ms": max(ticks), "late_wakeup_ms": max(late), "planned_ms": (time.perf_counter() - started)
            * 1000.0, "ticks": len(ticks)}


def _preview_regions(module: object, width: int, height: int) -> dict[str, object]:
    """The preview planning a swaying and a flowing region of a width x height still: each tick, and the reference."""
    import bpy

    preview, settings = module.preview, bpy.context.scene.stillflow
    still = bpy.data.images.new("bench preview still", width, height)
    still.generated_type = "COLOR_GRID"
    still.pixels.foreach_get(np.empty(width * height * 4, np.float32))  # generated once, as an Image Editor shows it
    trees = region_mask("bench trees", [(0.1, 0.1), (0.5, 0.1), (0.5, 0.6), (0.1, 0.6)], ((0.2, 0.3), (0.3, 0.3)))
    sky = region_mask("bench sky", [(0.55, 0.1), (0.9, 0.1), (0.9, 0.6), (0.55, 0.6)], ((0.6, 0.3), (0.8, 0.3)))
    kept = (settings.image, settings.use_regions, settings.show_loop_preview, preview.REGIONS_SETTLE_S)
    settings.image, settings.use_regions, settings.show_loop_preview = still, True, True
    preview.REGIONS_SETTLE_S = 0.0  # the settling wait is not main-thread time
    for name, mask, motion in (("trees", trees, "SWAY"), ("sky", sky, "ARROWS")):
        region = settings.regions.add()
        region.name, region.mask, region.motion = name, mask, motion
    try:
        figures: dict[str, object] = {"size": [width, height], "first": _follow_plan(preview)}
        settings.regions[0].amplitude = 3.0
        figures["amplitude_edit"] = _follow_plan(preview)
        trees.layers["region"].splines[0].points[0].co = (0.12, 0.1)
        figures["mask_edit"] = _follow_plan(preview)
        plan = module.core.preview_plan.plan_preview
        options = module.core.request.build_options(settings.option_values())
        started = time.perf_counter()  # what one tick did before: the job's Masks, the plan and the base, in the tick
        plan(module.inputs.build_regions(settings, width, height), options, height, width,
             still=module.preview_inputs.still_pixels(still))
        figures["in_tick_ms"] = (time.perf_counter() - started) * 1000.0
        return figures
    finally:
        settings.regions.clear()
        settings.image, settings.use_regions, settings.show_loop_preview, preview.REGIONS_SETTLE_S = kept
        preview._forget()
        for mask in (trees, sky):
            bpy.data.masks.remove(mask)
        bpy.data.images.remove(still)


def _print_preview(figures: dict[str, object]) -> None:
    """The preview rows."""
    width, height = figures["size"]
    print(f"preview regions {width}x{height} (sway + flow), reference: planning inside the tick "
          f"{figures['in_tick_ms']:8.1f} ms")
    for name in ("first", "amplitude_edit", "mask_edit"):
        run = figures[name]
        print(f"  {name.replace('_', ' '):15s}: slowest tick {run['slowest_tick_ms']:6.1f} ms "
              f"({run['slowest_tick_ms'] / figures['in_tick_ms']:.3f} of the reference) | latest wake-up "
              f"{run['late_wakeup_ms']:5.1f} ms late | drawn after {run['planned_ms']:7.1f} ms ({run['ticks']} ticks)")


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="still width, px (height = 3/4 of it)")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--preview", default="4000x3000", help="still size WxH of the preview regions rows")
    parser.add_argument("--preview-only", action="store_true", help="only the preview regions rows")
    args = parser.parse_args()
    import bpy

    module = _enable()
    preview = _preview_regions(module, *map(int, args.preview.lower().split("x")))
    if args.preview_only:
        if args.json:
            print(json.dumps({"preview_regions": preview}, indent=2))
        else:
            _print_preview(preview)
        return 0
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
    warm = _generate(module)  # the backend is already running; the take replaces the first (point 6)
    moved = _output_moved(module, prefs, folder)
    big_ms = _big_still(module, bpy.context.scene, folder)
    orphan_ms = _orphan_exit(module, folder)
    dead = _dead_backend(module, bpy.context.scene, folder)
    runner.shutdown()
    figures = {"size": [args.size, args.size * 3 // 4], "frames": args.frames, "blocking_connect_ms": blocking_ms,
               "cold": cold, "warm": warm, "operator_vs_blocking_connect": cold["operator_ms"] / blocking_ms,
               "output_moved": moved, "big_still_operator_ms": big_ms, "orphan_exit_ms": orphan_ms,
               "dead_backend": dead, "preview_regions": preview}
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
    print(f"regenerate: placing the new take {warm['placement_tick_ms']:6.1f} ms (one tick)")
    print(f"output folder moved: operator {moved['operator_ms']:7.1f} ms | slowest tick {moved['slowest_tick_ms']:6.1f} ms")
    print(f"3264x2448 still + Mask: operator {big_ms:7.1f} ms")
    print("backend SIGKILLed mid-render: " + " | ".join(f"{name[:-3].replace('_', ' ')} {ms:7.1f} ms"
                                                      for name, ms in dead.items()))
    print(f"orphaned backend exits {orphan_ms:7.1f} ms after its parent was killed")
    _print_preview(preview)
    return 0


if __name__ == "__main__":
    sys.exit(main())
