"""Speed benchmark: ms per frame and peak memory of the default engine at 512², 1024², 2048².

Each configuration runs in its own process (so the peak resident memory is its own): the loop
engine with N = 60 in multi-scale (levels 4; default detail and ``--detail precise``) and
single-scale (levels 1) mode, and a straightforward reference measured in the same run: a plain
torch joint splat of the whole RGB image (index_add_ over 4 bilinear taps per direction, no
compiled loops), which is what a direct transcription of the method costs. Every frame of the
loop is rendered in order, as a render does, and ms/frame is their mean: frames in the middle half
of the loop splat both copies, those in the outer quarters one (stages/blend.blend_schedule), so
timing only the first frames would understate the cost. Integration (done once per loop) is
reported apart and amortised over N. Targets (issue 6): <= 100 ms/frame at 1024² on a 2-core CPU, >= 200 fps
at 1024² on a GPU.

Motion regions (issue 27; target: within 1.2x of one region of the same area): ``--regions SIZE``
renders, frame by frame in turn in one process, the photo's mask as one flowing region, the same
area as two flowing regions (left and right halves), as one swaying region, as a flowing top
half over a swaying bottom half, as one shimmering region and as the flow with a shimmer on top
(water), each with the full pipeline (prepare, loop, sway), and prints
ms/frame and the ratio to one region.

Usage: python bench/bench_speed.py [--sizes 512 1024 2048] [--frames 60] [--device auto] [--json F]
       python bench/bench_speed.py --interleaved 1024   (ratio on a noisy machine)
       python bench/bench_speed.py --regions 1024
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "stills"


def make_inputs(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image, mask and motion at size x size: a real photo with its StyleCineGAN motion when available."""
    import cv2

    from stillflow.stages.motion import load_motion_file, resize_motion

    if (DATA / "scg-0000658.png").is_file():
        bgr = cv2.imread(str(DATA / "scg-0000658.png"))
        image = cv2.cvtColor(cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        image = image.astype(np.float32) / 255.0
        motion = resize_motion(load_motion_file(DATA / "scg-0000658_motion.npy"), size, size)
        mask = cv2.resize(cv2.imread(str(DATA / "scg-0000658_mask.png"))[:, :, 2], (size, size)) / 255.0
    else:
        rng = np.random.default_rng(0)
        image = cv2.GaussianBlur(rng.random((size, size, 3)).astype(np.float32), (0, 0), 2.0)
        ys, xs = np.mgrid[0:size, 0:size] / size
        motion = np.stack([np.cos(3 * ys), np.sin(2 * xs)]).astype(np.float32)
        mask = np.ones((size, size))
    # The StyleCineGAN samples move at most 1 px/frame at 512 px; keep the same look at every size.
    return image, mask.astype(np.float32), (motion * np.float32(1.0)).astype(np.float32)


def sync(device) -> None:
    """Wait for queued device work (timing must include it)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_frame_fn(mode: str, image: np.ndarray, mask: np.ndarray, motion_px: np.ndarray, frames: int, device):
    """A callable frame(t) for one configuration, and the seconds its set-up took (the loop's integration)."""
    import torch

    from stillflow.loop import LoopRenderer
    from stillflow.options import RenderOptions
    from stillflow.pipeline import Prepared, loop_plan
    from stillflow.stages.padding import loop_padding, pad_reflect
    from stillflow.stages.splat import splat_sum_torch

    if mode == "reference":
        # Plain transcription: one joint splat of the padded RGB image per frame with torch ops,
        # displacements t*M and -(N-t)*M (straight-line, i.e. even cheaper than Euler paths). It
        # splats both copies at every t with the linear weights: its cost does not depend on them.
        pad = loop_padding(float(np.abs(motion_px).max()) * 1.5, frames)
        values = pad_reflect(torch.from_numpy(image).permute(2, 0, 1).to(device), pad)
        flow = pad_reflect(torch.from_numpy(motion_px).to(device), pad)
        ones = torch.ones(flow.shape[1:], device=device)
        return (lambda t: splat_sum_torch(values, [flow * t, flow * -(frames - t)],
                                          [ones * (1 - t / frames), ones * (t / frames)])), 0.0
    levels = 1 if mode == "single-scale" else 4
    start = time.perf_counter()
    options = RenderOptions(frames=frames, levels=levels, detail="precise" if mode == "precise" else "sharp")
    plan = loop_plan(Prepared(image, mask, mask, motion_px, None), options)  # as a render plans it
    renderer = LoopRenderer(image, mask, motion_px, plan, device=device)
    sync(device)
    return renderer.frame, time.perf_counter() - start


def timed_call(fn, t: int, device) -> float:
    """Seconds of fn(t), device work included."""
    sync(device)
    start = time.perf_counter()
    fn(t)
    sync(device)
    return time.perf_counter() - start


def split_by_copies(times: list[float], frames: int) -> tuple[float, float]:
    """Mean seconds of frames 1..N-1 in the outer quarters (one copy) and in the middle half (two); nan if none."""
    from stillflow.stages.blend import blend_schedule

    middle = [s for t, s in enumerate(times, start=1) if 0.0 < blend_schedule(t / frames) < 1.0]
    outer = [s for t, s in enumerate(times, start=1) if not 0.0 < blend_schedule(t / frames) < 1.0]
    return (statistics.mean(outer) if outer else float("nan"), statistics.mean(middle) if middle else float("nan"))


def run_one(mode: str, size: int, frames: int, device_name: str) -> dict:
    """One configuration in this process; returns its figures."""
    import torch

    from stillflow.devices import pick

    device = pick(device_name)
    image, mask, motion = make_inputs(size)
    frame, init = make_frame_fn(mode, image, mask, motion * mask[None], frames, device)
    for t in (1, frames // 2):  # compilation and allocator warm-up of the one-copy and the two-copy frames
        timed_call(frame, t, device)
    times = [timed_call(frame, t, device) for t in range(1, frames)]
    outer, middle = split_by_copies(times, frames)
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"mode": mode, "size": size, "device": str(device), "ms_per_frame": 1000 * statistics.mean(times),
            "outer_ms": 1000 * outer, "middle_ms": 1000 * middle, "init_s": init,
            "amortised_ms": 1000 * (statistics.mean(times) + init / frames), "peak_mib": peak}


def run_interleaved(size: int, frames: int, device_name: str) -> None:
    """The default and the reference frame by frame in turn in one process: a ratio robust to a noisy machine."""
    from stillflow.devices import pick

    device = pick(device_name)
    image, mask, motion = make_inputs(size)
    fns = {mode: make_frame_fn(mode, image, mask, motion * mask[None], frames, device)[0]
           for mode in ("multi-scale", "reference")}
    for fn in fns.values():
        for t in (1, frames // 2):  # compilation and warm-up of the one-copy and the two-copy frames
            timed_call(fn, t, device)
    times = {mode: [] for mode in fns}
    for t in range(1, frames):
        for mode in (fns if t % 2 else reversed(list(fns))):
            times[mode].append(timed_call(fns[mode], t, device))
    pairs = [a / b for a, b in zip(times["multi-scale"], times["reference"])]
    default, reference = (1000 * statistics.mean(times[m]) for m in ("multi-scale", "reference"))
    outer, middle = (1000 * s for s in split_by_copies(times["multi-scale"], frames))
    print(f"{size}² interleaved, the {frames - 1} frames of the loop each (mean): default {default:.1f} ms "
          f"(one copy {outer:.1f}, two copies {middle:.1f}), reference {reference:.1f} ms, "
          f"ratio {default / reference:.2f} (median of per-frame ratios {statistics.median(pairs):.2f})")


def region_layouts(size: int) -> dict[str, list]:
    """The same animated area of the photo as one region, two regions, a sway, a flow over a sway, a shimmer
    and a flow with a shimmer on top."""
    from stillflow.options import MotionSpec, Region, SwaySpec

    _, mask, motion = make_inputs(size)
    flow = MotionSpec(kind="field", field=motion)
    sway = MotionSpec(kind="sway", sway=SwaySpec(amplitude=3.0, cycles=2))
    ripples = SwaySpec(amplitude=1.0, cycles=4, shimmer=True)
    left, right, top, bottom = (np.zeros_like(mask) for _ in range(4))
    left[:, : size // 2], right[:, size // 2:] = mask[:, : size // 2], mask[:, size // 2:]
    rows = np.flatnonzero(mask.any(axis=1))
    middle = (rows[0] + rows[-1]) // 2 if rows.size else size // 2
    top[:middle], bottom[middle:] = mask[:middle], mask[middle:]
    return {"one region": [Region(mask=mask, motion=flow)],
            "two regions": [Region(mask=left, motion=flow), Region(mask=right, motion=flow)],
            "sway": [Region(mask=mask, motion=sway)],
            "flow + sway": [Region(mask=top, motion=flow), Region(mask=bottom, motion=sway)],
            "shimmer": [Region(mask=mask, motion=MotionSpec(kind="sway", sway=ripples))],
            "flow+shimmer": [Region(mask=mask, motion=MotionSpec(kind="field", field=motion, sway=ripples))]}


def run_regions(size: int, frames: int, device_name: str) -> None:
    """Region layouts of one area frame by frame in turn (full pipeline), ms/frame and ratio to one region."""
    from stillflow.options import MotionSpec, RenderOptions
    from stillflow.pipeline import _frames_of, prepare

    image, _, _ = make_inputs(size)
    options = RenderOptions(frames=frames, device=device_name, refine_mask=False)
    streams, init = {}, {}
    for name, regions in region_layouts(size).items():
        tick = time.perf_counter()
        prepared = prepare(image, mask=None, motion=MotionSpec(), options=options, regions=regions)
        streams[name] = _frames_of(prepared, options, None, None)
        next(streams[name])  # frame 0 is the photo; building the renderer (integration) happens here
        init[name] = time.perf_counter() - tick
    times: dict[str, list[float]] = {name: [] for name in streams}
    for t in range(1, frames):
        for name in (list(streams) if t % 2 else list(reversed(streams))):
            tick = time.perf_counter()
            next(streams[name])
            times[name].append(time.perf_counter() - tick)
    base = statistics.mean(times["one region"])
    print(f"{size}² regions, N = {frames}, the {frames - 1} frames after frame 0 each, in turn (mean):")
    for name, values in times.items():
        mean = statistics.mean(values)
        spread = 1000 * float(np.subtract(*np.percentile(values, [75, 25])))
        print(f"  {name:>12s}: {1000 * mean:8.1f} ms/frame (IQR {spread:.1f}), "
              f"prepare + first frame {init[name]:.2f} s, ratio to one region {mean / base:.2f}")


def main() -> int:
    """Run every configuration in a subprocess and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[512, 1024, 2048])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json")
    parser.add_argument("--interleaved", type=int, metavar="SIZE",
                        help="only the default and the reference at SIZE², alternating in one process")
    parser.add_argument("--regions", type=int, metavar="SIZE",
                        help="only the region layouts (one, two, sway, flow + sway, shimmer, flow + shimmer) at SIZE², in turn")
    parser.add_argument("--one", nargs=2, metavar=("MODE", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.frames < 2:
        parser.error("--frames must be at least 2: frame 0 of a loop is the photo itself and is not timed")
    if args.interleaved:
        run_interleaved(args.interleaved, args.frames, args.device)
        return 0
    if args.regions:
        run_regions(args.regions, args.frames, args.device)
        return 0
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.frames, args.device)))
        return 0
    import torch

    print(f"stillflow speed, N = {args.frames}, {platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device}")
    rows = []
    for size in args.sizes:
        for mode in ("multi-scale", "precise", "single-scale", "reference"):
            done = subprocess.run([sys.executable, __file__, "--one", mode, str(size), "--frames", str(args.frames),
                                   "--device", args.device],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{mode} {size}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{'size':>6s} {'mode':>13s} {'ms/frame':>9s} {'1 copy':>7s} {'2 copies':>8s} {'init s':>7s} "
          f"{'amortised':>9s} {'fps':>7s} {'peak MiB':>9s} {'vs ref':>7s}")
    for row in rows:
        ref = next((r for r in rows if r["size"] == row["size"] and r["mode"] == "reference"), None)
        ratio = row["ms_per_frame"] / ref["ms_per_frame"] if ref else float("nan")
        print(f"{row['size']:6d} {row['mode']:>13s} {row['ms_per_frame']:9.1f} {row['outer_ms']:7.1f} "
              f"{row['middle_ms']:8.1f} {row['init_s']:7.2f} {row['amortised_ms']:9.1f} "
              f"{1000 / row['amortised_ms']:7.1f} {row['peak_mib']:9.0f} {ratio:7.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
