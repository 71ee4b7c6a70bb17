"""Synthetic water clips for bench_quality.py, built from a real water still and its motion file.

No water footage is shared (../shared/data has two sky time-lapses), yet issue 29's held-out set has
two water clips on which the loop was no better than a frozen frame. This builds clips in the
layout bench_quality.py reads (frame_NNN.jpg + mask.png) whose water is not what the loop models:
- the still's texture is carried by a current whose time mean is the still's motion file (scaled to
  ``speed`` px/frame, the median inside the mask) plus turbulence (smooth random eddies, 24 px
  across, that change over 16 frames): the texture moves with the mean flow and also scrambles;
- dispersive ripples (40 plane waves, 6-40 px long, each at its own phase speed, in every direction)
  shade it: a pattern the mean flow does not carry at all.
Outside the mask every frame is the still. Frames are JPEG at quality 95, as the shared clips.
These clips are for measuring, never for the repository's tests' data or for showing: the stills'
photos come from StyleCineGAN's samples (see ../shared/data/README.md).

Usage: python bench/water_proxy.py OUT_DIR                 # the five proxies of docs/benchmarks.md
       python bench/water_proxy.py OUT_DIR --still PATH --rows 640:1024 --speed 0.5 --turbulence 1 --ripple 0.12
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

STILLS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "stills"
EDDY_SIZE = 24.0
"""Sigma (px) of the turbulence's eddies."""
EDDY_PERIOD = 16
"""Frames over which the turbulence changes to a new random field."""

PRESETS = {
    # name: (still, rows, median speed px/frame, turbulence / speed, ripple shade, seed)
    "lake": ("scg-0000008.png", (640, 1024), 0.5, 0.5, 0.06, 0),
    "beach": ("scg-0000658.png", (384, 784), 1.0, 0.5, 0.06, 0),
    "river": ("scg-IMG_6036.png", (560, 1024), 1.4, 0.5, 0.06, 0),
    "lake2": ("scg-0000008.png", (640, 1024), 0.5, 1.0, 0.12, 1),
    "river2": ("scg-IMG_6036.png", (560, 1024), 1.0, 1.0, 0.12, 1),
}


def smooth_noise(rng: np.random.Generator, height: int, width: int, sigma: float) -> np.ndarray:
    """(H, W) float32 Gaussian-smoothed white noise with unit standard deviation."""
    noise = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), sigma)
    return noise / max(float(noise.std()), 1e-9)


def current(mean: np.ndarray, soft: np.ndarray, turbulence: float, frames: int,
            rng: np.random.Generator) -> Callable[[float], np.ndarray]:
    """The current at time t: (2, H, W) px/frame, the mean plus eddies faded between random fields."""
    height, width = soft.shape
    keys = [np.stack([smooth_noise(rng, height, width, EDDY_SIZE) for _ in range(2)])
            for _ in range(frames // EDDY_PERIOD + 3)]

    def at(t: float) -> np.ndarray:
        key, part = divmod(t / EDDY_PERIOD, 1.0)
        s = 0.5 - 0.5 * np.cos(np.pi * part)
        eddies = (1 - s) * keys[int(key)] + s * keys[int(key) + 1]
        return (mean + turbulence * soft[None] * eddies).astype(np.float32)

    return at


def ripple_slopes(height: int, width: int, speed: float, rng: np.random.Generator) -> Callable[[int], np.ndarray]:
    """The ripples' slope towards the viewer at frame t: (H, W) float32, dispersive plane waves."""
    count = 40
    length = np.exp(rng.uniform(np.log(6.0), np.log(40.0), count))
    angle = rng.uniform(0.0, 2 * np.pi, count)
    height_of = np.sqrt(length) * rng.uniform(0.5, 1.0, count)
    phase = rng.uniform(0.0, 2 * np.pi, count)
    celerity = 0.6 * speed * np.sqrt(length / 12.0)  # longer waves run faster (deep-water dispersion)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)

    def at(t: int) -> np.ndarray:
        out = np.zeros((height, width), np.float32)
        for j in range(count):
            k = 2 * np.pi / length[j]
            arg = k * (np.cos(angle[j]) * xs + np.sin(angle[j]) * ys - celerity[j] * t) + phase[j]
            out -= (height_of[j] * k * np.sin(angle[j]) * np.sin(arg)).astype(np.float32)
        return out

    return at


def trace_back(flow: Callable[[float], np.ndarray], t: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel of frame t was at frame 0, stepping back through the current (two (H, W) maps)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    qx, qy = xs, ys
    for k in range(t, 0, -1):
        u = flow(k - 0.5)
        ux = cv2.remap(u[0], qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        uy = cv2.remap(u[1], qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        qx, qy = (qx - ux).astype(np.float32), (qy - uy).astype(np.float32)
    return qx, qy


def make_clip(still: Path, out: Path, rows: tuple[int, int] | None, speed: float, turbulence: float,
              ripple: float, frames: int = 48, seed: int = 0) -> None:
    """Write ``frames`` frames and the mask of one proxy clip to ``out`` (replaced whole)."""
    image = cv2.imread(str(still), cv2.IMREAD_COLOR)
    mask_rgb = cv2.imread(str(still.with_name(still.stem + "_mask.png")), cv2.IMREAD_COLOR)
    if image is None or mask_rgb is None:
        raise SystemExit(f"{still}: the still or its _mask.png is missing or unreadable")
    motion = np.load(still.with_name(still.stem + "_motion.npy"), allow_pickle=False)[0]
    image = image.astype(np.float32) / 255.0
    mask = mask_rgb[:, :, 2] > 127  # channel 0 of the RGB mask (OpenCV reads BGR)
    height, width = image.shape[:2]
    mean = np.stack([cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR) for m in motion])
    mean *= width / motion.shape[-1]
    if rows is not None:
        image, mask, mean = image[rows[0]:rows[1]], mask[rows[0]:rows[1]], mean[:, rows[0]:rows[1]]
        height = image.shape[0]
    if not mask.any():
        raise SystemExit(f"{still}: no water in rows {rows}: the mask is empty there")
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 2.0) * mask
    mean *= speed / float(np.median(np.hypot(mean[0], mean[1])[mask]))
    mean *= soft[None]
    rng = np.random.default_rng(seed)
    flow = current(mean, soft, turbulence * speed, frames, rng)
    slope = ripple_slopes(height, width, speed, rng)
    scale = float(slope(0)[mask].std())
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    for t in range(frames):
        px, py = trace_back(flow, t, height, width)
        texture = cv2.remap(image, px, py, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
        shade = 1.0 + ripple * np.clip(slope(t) / scale, -3.0, 3.0)
        frame = np.where(mask[:, :, None], texture * shade[:, :, None], image)
        cv2.imwrite(str(work / f"frame_{t:03d}.jpg"), np.clip(frame * 255.0 + 0.5, 0, 255).astype(np.uint8),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(work / "mask.png"), mask.astype(np.uint8) * 255)
    (work / "SOURCE.txt").write_text(
        f"Synthetic water proxy (bench/water_proxy.py) from {still.name}, rows {rows}, speed {speed} px/frame, "
        f"turbulence {turbulence}, ripple {ripple}, seed {seed}. For measuring only; not to be shown or copied.\n")
    if out.exists():
        shutil.rmtree(out)
    work.rename(out)


def main() -> int:
    """Build the preset proxies, or one clip from the options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the clip(s)")
    parser.add_argument("--still", type=Path, help="a still with _mask.png and _motion.npy beside it (default: the presets)")
    parser.add_argument("--rows", help="only rows Y0:Y1 of the still")
    parser.add_argument("--speed", type=float, default=1.0, help="median speed of the mean current in the mask, px/frame")
    parser.add_argument("--turbulence", type=float, default=0.5, help="eddies' speed over the mean current's median")
    parser.add_argument("--ripple", type=float, default=0.06, help="ripples' shading, relative luminance per std")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.still is None:
        if not STILLS.is_dir():
            print(f"{STILLS} not found: pass --still", file=sys.stderr)
            return 1
        for name, (still, rows, speed, turbulence, ripple, seed) in PRESETS.items():
            print(f"{name} ...", file=sys.stderr)
            make_clip(STILLS / still, args.out / name, rows, speed, turbulence, ripple, args.frames, seed)
        return 0
    rows = tuple(int(v) for v in args.rows.split(":")) if args.rows else None
    make_clip(args.still, args.out, rows, args.speed, args.turbulence, args.ripple, args.frames, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
