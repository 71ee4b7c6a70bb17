"""Preview frame time: loop preview and motion overlay shaders at 1024² with moderngl (EGL).

Prints ms per frame (median and IQR after warm-up) for both programs on whatever EGL device
moderngl finds (Mesa llvmpipe on a CPU-only machine, the GPU's driver otherwise), and the ratio
against two references measured in the same run: a one-step draw of the same program (texture
fetch cost) and one engine frame (``stillflow`` LoopRenderer on CPU) at the same size.

    .venv/bin/python bench/bench_preview.py [--size 1024] [--frames 60] [--repeats 7] [--json]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "shaders"))

import glharness  # noqa: E402


def _timed(run: Callable[[], object], repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median and IQR of ``run`` in ms after ``warmup`` calls (run must finish its GPU work)."""
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000.0)
    quartiles = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
    return {"median_ms": statistics.median(samples), "iqr_ms": quartiles[2] - quartiles[0]}


def _inputs(size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured image, a two-arrow field at the preview's field size and a rectangular mask."""
    from stillflow.stages.hints import densify_hints

    rng = np.random.default_rng(seed)
    image = rng.random((size, size, 3), dtype=np.float32)
    field_h, field_w, scale = glharness.preview_math.field_shape(size, size)
    hints = [(0.2 * size, 0.3 * size, 0.26 * size, 0.3 * size), (0.7 * size, 0.4 * size, 0.7 * size, 0.44 * size)]
    motion = densify_hints(field_h, field_w, hints, scale=scale)
    mask = np.zeros((size, size), np.float32)
    mask[size // 8: -size // 8, size // 8: -size // 8] = 1.0
    return image, motion, mask


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="image side, px")
    parser.add_argument("--frames", type=int, default=60, help="loop length N (steps walked per pixel)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-engine", action="store_true", help="skip the engine reference frame")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()

    ctx = glharness.create_context()
    renderer = glharness.PreviewRenderer(ctx)
    image, motion, mask = _inputs(args.size, args.seed)
    renderer.set_inputs(image, motion, mask)
    phase = args.frames // 3

    def draw(run: Callable[[], object]) -> Callable[[], object]:
        def timed() -> object:
            result = run()
            renderer.finish()
            return result
        return timed

    results = {
        "loop_preview": _timed(draw(lambda: renderer.loop_frame(phase, args.frames)), args.repeats),
        "motion_overlay": _timed(draw(lambda: renderer.overlay(12.5)), args.repeats),
        "one_step_reference": _timed(draw(lambda: renderer.loop_frame(0, 1)), args.repeats),
    }
    if not args.no_engine:
        from stillflow import MotionSpec, RenderOptions, render_frames

        options = RenderOptions(frames=args.frames, refine_mask=False, feather=0.0)
        frames = render_frames(image, mask=mask, motion=MotionSpec(kind="field", field=motion), options=options)
        next(frames)  # frame 0 is a copy made after the engine's set-up; the timed frames are real
        results["engine_frame_reference"] = _timed(lambda: next(frames), max(1, min(args.repeats, 3)), warmup=0)
    meta = {"renderer": ctx.info["GL_RENDERER"], "gl_version": ctx.version_code, "size": args.size,
            "frames": args.frames, "python": platform.python_version(), "machine": platform.machine(),
            "seed": args.seed}
    reference = results["one_step_reference"]["median_ms"]
    if args.json:
        print(json.dumps({"meta": meta, "results": results}))
        return 0
    print(f"{meta['renderer']} (GL {meta['gl_version']}), {args.size}x{args.size}, N = {args.frames}")
    for name, figures in results.items():
        print(f"  {name:24s} {figures['median_ms']:9.2f} ms/frame (IQR {figures['iqr_ms']:.2f}) "
              f"x{figures['median_ms'] / reference:.1f} vs one-step draw")
    if "engine_frame_reference" in results:
        engine = results["engine_frame_reference"]["median_ms"]
        print(f"  loop preview is {engine / results['loop_preview']['median_ms']:.1f}x faster than one engine frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
