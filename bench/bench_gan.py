"""StyleGAN engine speed: warped synthesis frames per second and inversion time per optimisation step.

Random generator weights in the published architecture (channel multiplier 2), truncated to
``--size`` (1024 px on a GPU; smaller on CPU): timing does not depend on the weights. The
reference, measured in the same run on the same photo, mask and motion, is the default
engine (``--engine loop``) at the same size. Figures: median and IQR in ms after warm-up,
device synchronised inside the timed region.

    .venv/bin/python bench/bench_gan.py [--size 256] [--frames 16] [--steps 5] [--device auto] [--json]
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
import torch

from stillflow.devices import pick
from stillflow.gan.checkpoint import load_generator, save_weights
from stillflow.gan.engine import render_frames_stylegan
from stillflow.gan.invert import InversionSettings, invert_by_optimisation
from stillflow.gan.model import Generator, GeneratorConfig, full_channels
from stillflow.gan.msdfw import LoopWarper
from stillflow.options import MotionSpec, RenderOptions
from stillflow.pipeline import prepare, render_frames

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "stills"


def _sync(device: torch.device) -> None:
    """Wait for queued device work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _stats(samples: list[float]) -> dict[str, float]:
    """Median and IQR in ms."""
    quartiles = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
    return {"median_ms": statistics.median(samples), "iqr_ms": quartiles[2] - quartiles[0]}


def _timed_iter(frames: Callable[[], object], count: int, device: torch.device, warmup: int = 1) -> dict[str, float]:
    """Per-call times of ``frames()`` (each returns one frame), after ``warmup`` calls."""
    for _ in range(warmup):
        frames()
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        frames()
        _sync(device)
        samples.append((time.perf_counter() - start) * 1000.0)
    return _stats(samples)


def _inputs(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """A StyleCineGAN sample (photo, mask, motion) resized to size, or a synthetic stand-in."""
    from stillflow._cv import cv2
    from stillflow.stages.motion import load_motion_file, resize_motion

    photo = DATA / "scg-0000658.png"
    if photo.is_file():
        rgb = cv2.imread(str(photo), cv2.IMREAD_COLOR)[:, :, ::-1]
        image = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        mask = cv2.imread(str(DATA / "scg-0000658_mask.png"), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
        motion = resize_motion(load_motion_file(DATA / "scg-0000658_motion.npy"), size, size)
        return np.ascontiguousarray(image), cv2.resize(mask, (size, size)), motion, photo.name
    rng = np.random.default_rng(0)
    mask = np.zeros((size, size), np.float32)
    mask[size // 4:, :] = 1.0
    motion = np.zeros((2, size, size), np.float32)
    motion[0] = size / 512
    return rng.random((size, size, 3), dtype=np.float32), mask, motion, "synthetic"


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=0, help="generator side, px (default 1024 on CUDA, 256 else)")
    parser.add_argument("--frames", type=int, default=16, help="loop length N; frames timed")
    parser.add_argument("--steps", type=int, default=5, help="optimisation steps timed")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()
    device = pick(args.device)
    size = args.size or (1024 if device.type == "cuda" else 256)
    torch.manual_seed(0)
    channels = tuple((r, c) for r, c in full_channels(2).items() if r <= size)
    config = GeneratorConfig(size=size, channels=channels)
    image, mask, motion, source = _inputs(size)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as models:
        save_weights({f"g_ema.{k}": v for k, v in Generator(config).state_dict().items()},
                     Path(models) / "stylegan2" / "sg2-lhq-1024.safetensors")
        generator = load_generator(Path(models) / "stylegan2" / "sg2-lhq-1024.safetensors", device)
        index = generator.default_feature_index()
        options = RenderOptions(frames=args.frames, models=models, device=args.device, engine="stylegan")
        prepared = prepare(image, mask=mask, motion=MotionSpec(kind="field", field=motion), options=options)
        target = torch.from_numpy(image.transpose(2, 0, 1).copy())[None].to(device)
        mean_w = generator.mean_latent()
        invert_by_optimisation(generator, mean_w, target, index, InversionSettings(steps=1))
        _sync(device)
        start = time.perf_counter()
        inversion = invert_by_optimisation(generator, mean_w, target, index, InversionSettings(steps=args.steps))
        _sync(device)
        results["inversion_step"] = {"median_ms": (time.perf_counter() - start) * 1000.0 / args.steps, "iqr_ms": 0.0}
        with torch.no_grad():
            levels = generator.level_features(inversion.w_plus, inversion.feature, index)
            motion_gen = torch.from_numpy(prepared.motion_px).to(device)
            warper = LoopWarper(motion_gen, args.frames, [lvl.shape[-1] for lvl in levels])
            counter = iter(range(1, 10 ** 6))
            results["warped_synthesis"] = _timed_iter(
                lambda: generator.render_levels(levels, inversion.w_plus, index,
                                                warp=warper.frame(next(counter) % args.frames)),
                args.frames - 1, device)
            results["plain_synthesis"] = _timed_iter(
                lambda: generator.render_levels(levels, inversion.w_plus, index), args.frames - 1, device)
        gan_frames = render_frames_stylegan(prepared.image, prepared.composite_mask, prepared.motion_px, options,
                                            settings=InversionSettings(steps=args.steps))
        results["stylegan_engine_frame"] = _timed_iter(lambda: next(gan_frames), args.frames - 1, device)
    loop_frames = render_frames(image, mask=mask, motion=MotionSpec(kind="field", field=motion),
                                options=RenderOptions(frames=args.frames, device=args.device))
    results["loop_engine_frame"] = _timed_iter(lambda: next(loop_frames), args.frames - 1, device)
    reference = results["loop_engine_frame"]["median_ms"]
    for row in results.values():
        row["fps"] = 1000.0 / row["median_ms"]
        row["x_loop_engine"] = row["median_ms"] / reference
    meta = {"device": str(device), "size": size, "frames": args.frames, "steps": args.steps, "image": source,
            "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "machine": platform.machine(),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    if args.json:
        print(json.dumps({"meta": meta, "results": results}))
        return 0
    print(f"StyleGAN engine at {size} px on {device} ({meta['gpu'] or platform.processor() or 'cpu'}), "
          f"N = {args.frames}, image {source}")
    for name, row in results.items():
        print(f"  {name:<22} {row['median_ms']:9.1f} ms (IQR {row['iqr_ms']:6.1f})  {row['fps']:7.2f} /s  "
              f"{row['x_loop_engine']:6.2f} x loop engine frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
