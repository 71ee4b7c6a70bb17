"""Quality benchmark: the ground-truth-motion protocol on the real sky clips (../shared/data/clips).

For each clip: motion = robust mean of DIS optical flow between consecutive real frames, inside
the clip's mask; frame 0 is animated for N frames by the default loop, by ``--once``, and by two
baselines computed here: backward warping (frame 0 sampled at x - t*M(x); not a loop) and its
looping cross-fade ((1 - t/N) backwarp(t*M) + (t/N) backwarp(-(N - t)*M)). Generated frames are
compared with the real frames inside the mask: PSNR and SSIM over frames 1-8 and over 1..N-1, a
sharpness ratio (Laplacian variance generated / real), the loop seam (|f0 - f(N-1)| over the
median consecutive difference) and the largest change outside the mask.

Targets (issue 6): loop beats cross-fade and once beats backward warping on PSNR and SSIM at both
horizons; sharpness ratio in [0.8, 1.25]; seam <= 1.05; static pixels exact.

Usage: python bench/bench_quality.py [--frames 48] [--clips sky-0623a sky-0623c] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

import stillflow
from stillflow import MotionSpec, RenderOptions, render_frames
from stillflow.stages.clip_flow import clamp_speed_outliers, dis_flow, robust_mean_flow
from stillflow.stages.mask import feather_mask

OVERRIDES: dict = {}
"""RenderOptions overrides from --set NAME=VALUE (for comparing variants)."""

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"


def load_clip(folder: Path, count: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The first ``count`` frames as (H, W, 3) float32 RGB in [0, 1], and the (H, W) bool mask."""
    frames = []
    for i in range(count):
        bgr = cv2.imread(str(folder / f"frame_{i:03d}.jpg"), cv2.IMREAD_COLOR)
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0)
    mask = cv2.imread(str(folder / "mask.png"), cv2.IMREAD_GRAYSCALE) > 127
    return frames, mask


def backward_warp(image: np.ndarray, motion: np.ndarray, steps: float) -> np.ndarray:
    """Image sampled at x - steps * M(x) (bilinear, reflected borders)."""
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return cv2.remap(image, xs - steps * motion[0], ys - steps * motion[1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT_101)


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of two gray images in [0, 1] (Gaussian window, sigma 1.5)."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5)  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def gray(image: np.ndarray) -> np.ndarray:
    """Luma of an RGB float image."""
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def scores(generated: list[np.ndarray], real: list[np.ndarray], mask: np.ndarray, ts: range) -> dict[str, float]:
    """Mean PSNR (dB) and SSIM inside the mask over frames ``ts``."""
    psnr, ssim = [], []
    for t in ts:
        mse = float(((generated[t] - real[t]) ** 2)[mask].mean())
        psnr.append(10 * np.log10(1.0 / max(mse, 1e-12)))
        ssim.append(float(ssim_map(gray(generated[t]), gray(real[t]))[mask].mean()))
    return {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim))}


def sharpness(frames: list[np.ndarray], mask: np.ndarray, ts: range) -> float:
    """Mean Laplacian variance inside the mask over frames ``ts``."""
    return float(np.mean([cv2.Laplacian(gray(frames[t]), cv2.CV_32F)[mask].var() for t in ts]))


def seam_ratio(frames: list[np.ndarray]) -> float:
    """|f0 - f(N-1)| over the median |f(t+1) - f(t)|, mean absolute differences."""
    steps = [float(np.abs(frames[t + 1] - frames[t]).mean()) for t in range(len(frames) - 1)]
    return float(np.abs(frames[0] - frames[-1]).mean()) / max(float(np.median(steps)), 1e-12)


def evaluate(name: str, frames: list[np.ndarray], real: list[np.ndarray], mask: np.ndarray, n: int,
             is_loop: bool, static: np.ndarray) -> dict[str, float]:
    """Every metric of one method."""
    all_ts = range(1, n)
    result = {"method": name}
    result.update({f"{k}@8": v for k, v in scores(frames, real, mask, range(1, 9)).items()})
    result.update({f"{k}@all": v for k, v in scores(frames, real, mask, all_ts).items()})
    result["sharpness"] = sharpness(frames, mask, all_ts) / sharpness(real, mask, all_ts)
    result["seam"] = seam_ratio(frames) if is_loop else float("nan")
    result["static_max_change"] = float(max(np.abs(f - real[0])[static].max() for f in frames))
    return result


def run_clip(folder: Path, n: int) -> list[dict[str, float]]:
    """All methods on one clip."""
    real, mask = load_clip(folder, n)
    uint8 = [np.clip(np.rint(f * 255), 0, 255).astype(np.uint8) for f in real]
    flows = np.stack([dis_flow(a, b) for a, b in zip(uint8[:-1], uint8[1:])])
    motion = clamp_speed_outliers(robust_mean_flow(flows) * mask[None])
    spec = MotionSpec(kind="field", field=motion)
    # The clip's mask is already clean: no refinement, so "static" = outside its feathered edge.
    options = RenderOptions(frames=n, refine_mask=False, **OVERRIDES)
    static = feather_mask(mask.astype(np.float32), options.feather) == 0
    rows = []
    for name, once in (("stillflow loop", False), ("stillflow --once", True)):
        started = time.perf_counter()
        frames = list(render_frames(real[0], mask=mask.astype(np.float32), motion=spec,
                                    options=replace(options, once=once)))
        row = evaluate(name, frames, real, mask, n, is_loop=not once, static=static)
        row["seconds"] = time.perf_counter() - started
        rows.append(row)
    # Baselines composite with the same hard mask so that static pixels match the input.
    keep = lambda f: np.where(mask[:, :, None], f, real[0])  # noqa: E731
    backwarp = [keep(backward_warp(real[0], motion, t)) for t in range(n)]
    crossfade = [keep((1 - t / n) * backward_warp(real[0], motion, t) + (t / n) * backward_warp(real[0], motion, -(n - t)))
                 for t in range(n)]
    rows.append(evaluate("backward warp", backwarp, real, mask, n, is_loop=False, static=static))
    rows.append(evaluate("looping cross-fade", crossfade, real, mask, n, is_loop=True, static=static))
    return rows


def main() -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48, help="loop length N = real frames used (<= 48)")
    parser.add_argument("--clips", nargs="*", default=["sky-0623a", "sky-0623c"])
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a render option, e.g. --set levels=1 --set detail=smooth")
    args = parser.parse_args()
    for item in args.set:
        name, value = item.split("=", 1)
        try:
            OVERRIDES[name] = json.loads(value.lower() if value.lower() in ("true", "false") else value)
        except json.JSONDecodeError:
            OVERRIDES[name] = value
    if not DATA.is_dir():
        print(f"shared clips not found at {DATA}", file=sys.stderr)
        return 1
    print(f"stillflow {stillflow.__version__}, {platform.processor() or platform.machine()}, N = {args.frames}")
    results = {}
    header = f"{'method':22s} {'PSNR@8':>7s} {'SSIM@8':>7s} {'PSNR@all':>8s} {'SSIM@all':>8s} {'sharp':>6s} {'seam':>6s} {'static':>7s}"
    for clip in args.clips:
        rows = run_clip(DATA / clip, args.frames)
        results[clip] = rows
        print(f"\n{clip}\n{header}")
        for r in rows:
            print(f"{r['method']:22s} {r['psnr@8']:7.2f} {r['ssim@8']:7.4f} {r['psnr@all']:8.2f} {r['ssim@all']:8.4f} "
                  f"{r['sharpness']:6.3f} {r['seam']:6.3f} {r['static_max_change']:7.1e}")
        loop, once, back, fade = rows
        checks = {
            "loop beats cross-fade (PSNR, SSIM @8 and @all)": all(
                loop[k] > fade[k] for k in ("psnr@8", "ssim@8", "psnr@all", "ssim@all")),
            "once beats backward warp (PSNR, SSIM @8 and @all)": all(
                once[k] > back[k] for k in ("psnr@8", "ssim@8", "psnr@all", "ssim@all")),
            "sharpness ratio in [0.8, 1.25] (loop, once)": all(0.8 <= r["sharpness"] <= 1.25 for r in (loop, once)),
            "seam <= 1.05 (loop)": loop["seam"] <= 1.05,
            "static pixels exact (loop, once)": loop["static_max_change"] == 0 and once["static_max_change"] == 0,
        }
        for text, ok in checks.items():
            print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
