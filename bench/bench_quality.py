"""Quality benchmark: the ground-truth-motion protocol on real clips (../shared/data/clips by default).

For each clip of T real frames: motion = robust mean of DIS optical flow between consecutive real
frames, inside the clip's mask; frame 0 is animated into an N-frame loop (N = 2(T - 1) unless
--loop says otherwise) by the engine with its default settings (mask refinement included, the
clip's mask given as drawn), by ``--once``, and by two baselines computed here: backward warping
(frame 0 sampled at x - t*M(x); not a loop), its looping cross-fade
((1 - t/N) backwarp(t*M) + (t/N) backwarp(-(N - t)*M)) and a frozen frame (the input repeated: doing
nothing). Frames 1..T-1 are compared with the real
ones inside the mask: PSNR and SSIM over frames 1-8 and 1..T-1, a sharpness ratio (Laplacian
variance generated / real), a speckle ratio (isolated outlier pixels, generated / real), the
breathing range (each loop frame's sharpness over frame 0's), dots (the most isolated outlier
pixels in a frame over frame 0's own count), the loop seam (|f0 - f(N-1)| over the
median consecutive difference), the pulse (the loop's largest step, the wrap included, over that
median: a surge such as the cross-over's dissolve) and the largest change outside the mask as given.

Targets (issues 13 and 29), checked per clip and on the mean:
1. loop PSNR@8 and PSNR@all >= the looping cross-fade (and, printed, >= the frozen frame);
2. loop SSIM@8 >= backward warping - 0.003; --once >= backward warping on PSNR and SSIM at both horizons;
3. sharpness ratio in [0.8, 1.25] (loop, --once); speckle <= 1.25x real (issue 13); every loop frame's
   sharpness within [0.85, 1.15] of frame 0's and dots <= 1.25 (issue 29, against the input itself);
4. seam <= 1.05; no pixel outside the given mask changes.

Usage: python bench/bench_quality.py [--frames 48] [--stride K] [--width W] [--loop N] [--clips sky-0623a /path/to/clip]
                                     [--set detail=precise] [--json out.json] [--sheet DIR]
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
from quality_metrics import breathing, dots, fidelity, seam_and_pulse, sharpness, speckle
from quality_sheet import write_sheet
from stillflow import MotionSpec, RenderOptions, render_frames
from stillflow.stages.clip_flow import clamp_speed_outliers, dis_flow, robust_mean_flow

OVERRIDES: dict = {}
"""RenderOptions overrides from --set NAME=VALUE (for comparing variants)."""

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"
METHODS = ("loop", "once", "backward warp", "cross-fade", "frozen")


def load_clip(folder: Path, count: int, stride: int = 1,
              width: int | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """``count`` frames, every ``stride``-th from the first, as (H, W, 3) float32 RGB in [0, 1]; the bool mask.

    ``width`` resamples frames (area) and mask (nearest) to that many columns: slower footage.
    """
    frames = []
    for i in range(0, count * stride, stride):
        bgr = cv2.imread(str(folder / f"frame_{i:03d}.jpg"), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"{folder}: frame_{i:03d}.jpg is missing: {count} frames at stride {stride} need "
                             f"{(count - 1) * stride + 1} real frames; lower --frames or --stride")
        if width is not None:
            bgr = cv2.resize(bgr, (width, round(bgr.shape[0] * width / bgr.shape[1])), interpolation=cv2.INTER_AREA)
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0)
    mask = cv2.imread(str(folder / "mask.png"), cv2.IMREAD_GRAYSCALE)
    if width is not None:
        mask = cv2.resize(mask, frames[0].shape[1::-1], interpolation=cv2.INTER_NEAREST)
    return frames, mask > 127


def backward_warp(image: np.ndarray, motion: np.ndarray, steps: float) -> np.ndarray:
    """Image sampled at x - steps * M(x) (bilinear, reflected borders)."""
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return cv2.remap(image, xs - steps * motion[0], ys - steps * motion[1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT_101)


def evaluate(frames: list[np.ndarray], real: list[np.ndarray], mask: np.ndarray, is_loop: bool,
             real_speckle: float) -> dict[str, float]:
    """Every measure of one method's frames against the T real ones."""
    count = len(real)
    compared = range(1, count)
    result = {f"{k}@8": v for k, v in fidelity(frames, real, mask, range(1, min(9, count))).items()}
    result.update({f"{k}@all": v for k, v in fidelity(frames, real, mask, compared).items()})
    result["sharpness"] = sharpness(frames, mask, compared) / sharpness(real, mask, compared)
    result["speckle"] = speckle(frames, mask, compared) / max(real_speckle, 1e-9)
    low, high = breathing(frames, mask)
    result["dots"] = dots(frames, mask)
    result["breathe_min"], result["breathe_max"] = low, high
    result["seam"], result["pulse"] = seam_and_pulse(frames) if is_loop else (float("nan"), float("nan"))
    outside = ~mask
    result["outside_change"] = float(max(np.abs(f - real[0])[outside].max() for f in frames))
    return result


def render(real: list[np.ndarray], mask: np.ndarray, motion: np.ndarray, loop: int) -> dict[str, list[np.ndarray]]:
    """The engine's loop and --once, and the two baselines, each as ``loop`` frames."""
    spec = MotionSpec(kind="field", field=motion)
    options = RenderOptions(frames=loop, **OVERRIDES)
    out = {}
    for name, once in (("loop", False), ("once", True)):
        started = time.perf_counter()
        # Scored as written to disk: a frame file clips to [0, 1] (a moved highlight may exceed 1).
        out[name] = [np.clip(frame, 0.0, 1.0) for frame in render_frames(
            real[0], mask=mask.astype(np.float32), motion=spec, options=replace(options, once=once))]
        print(f"  {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    # Baselines composite with the hard mask, so that pixels outside it are the input.
    keep = lambda f: np.where(mask[:, :, None], f, real[0])  # noqa: E731
    out["backward warp"] = [keep(backward_warp(real[0], motion, t)) for t in range(loop)]
    out["cross-fade"] = [keep((1 - t / loop) * backward_warp(real[0], motion, t)
                              + (t / loop) * backward_warp(real[0], motion, -(loop - t))) for t in range(loop)]
    out["frozen"] = [real[0]] * loop  # doing nothing: the input repeated
    return out


def clip_motion(real: list[np.ndarray], mask: np.ndarray) -> np.ndarray:
    """The ground-truth Eulerian motion: robust mean DIS flow of consecutive real frames, in the mask."""
    uint8 = [np.clip(np.rint(f * 255), 0, 255).astype(np.uint8) for f in real]
    flows = np.stack([dis_flow(a, b) for a, b in zip(uint8[:-1], uint8[1:])])
    return clamp_speed_outliers(robust_mean_flow(flows) * mask[None])


def run_clip(folder: Path, count: int, loop: int | None, sheet: Path | None,
             stride: int = 1, width: int | None = None) -> dict[str, dict[str, float]]:
    """All methods on one clip, keyed by method."""
    real, mask = load_clip(folder, count, stride, width)
    motion = clip_motion(real, mask)
    loop = loop or 2 * (count - 1)
    frames = render(real, mask, motion, loop)
    real_speckle = speckle(real, mask, range(1, count))
    rows = {name: evaluate(frames[name], real, mask, name in ("loop", "cross-fade"), real_speckle)
            for name in METHODS}
    speed = np.sqrt((motion ** 2).sum(axis=0))[mask]
    rows["clip"] = {"median_speed": float(np.median(speed)), "p95_speed": float(np.percentile(speed, 95)),
                    "loop": loop, "real_speckle_rate": real_speckle,
                    # What any method that keeps the input's detail scores at best (real footage softens).
                    "input_speckle": speckle(real, mask, range(0, 1)) / max(real_speckle, 1e-9),
                    "input_sharpness": sharpness(real, mask, range(0, 1)) / sharpness(real, mask, range(1, count))}
    if sheet is not None:
        write_sheet(sheet / f"{folder.name}.png", real, frames, mask, loop)
    return rows


def targets(rows: dict[str, dict[str, float]]) -> dict[str, bool]:
    """Issue 13's targets on one clip's (or the mean's) figures."""
    loop, once, back, fade, _ = (rows[m] for m in METHODS)
    return {
        "1 loop PSNR@8, PSNR@all >= cross-fade": loop["psnr@8"] >= fade["psnr@8"] and loop["psnr@all"] >= fade["psnr@all"],
        "2 loop SSIM@8 >= backward warp - 0.003": loop["ssim@8"] >= back["ssim@8"] - 0.003,
        "2 once >= backward warp (PSNR, SSIM @8, @all)": all(
            once[k] >= back[k] for k in ("psnr@8", "ssim@8", "psnr@all", "ssim@all")),
        "3 sharpness in [0.8, 1.25] (loop, once)": all(0.8 <= r["sharpness"] <= 1.25 for r in (loop, once)),
        "3 no breathing: loop frames within [0.85, 1.15] of frame 0":
            0.85 <= loop["breathe_min"] and loop["breathe_max"] <= 1.15,
        "3 isolated dots per frame <= 1.25x frame 0's (loop)": loop["dots"] <= 1.25,
        "3 speckle <= 1.25x real (loop, once)": all(r["speckle"] <= 1.25 for r in (loop, once)),
        "4 seam <= 1.05": loop["seam"] <= 1.05,
        "4 nothing outside the given mask changes (loop, once)": loop["outside_change"] == 0 and once["outside_change"] == 0,
    }


def print_table(title: str, rows: dict[str, dict[str, float]]) -> None:
    """One clip's (or the mean's) table and target checks."""
    print(f"\n{title}")
    print(f"{'method':14s} {'PSNR@8':>7s} {'SSIM@8':>7s} {'PSNR@all':>8s} {'SSIM@all':>8s} {'sharp':>6s} "
          f"{'speckle':>7s} {'dots':>5s} {'breathe':>11s} {'seam':>6s} {'pulse':>6s} {'outside':>7s}")
    for name in METHODS:
        r = rows[name]
        print(f"{name:14s} {r['psnr@8']:7.2f} {r['ssim@8']:7.4f} {r['psnr@all']:8.2f} {r['ssim@all']:8.4f} "
              f"{r['sharpness']:6.3f} {r['speckle']:7.2f} {r['dots']:5.2f} "
              f"{r['breathe_min']:5.2f}-{r['breathe_max']:<5.2f} "
              f"{r['seam']:6.3f} {r['pulse']:6.2f} {r['outside_change']:7.1e}")
    for text, ok in targets(rows).items():
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")


_MEAN_OF = {"outside_change": np.max, "breathe_min": np.min, "breathe_max": np.max, "dots": np.max}
"""Figures summarised by their worst clip rather than the mean."""


def mean_rows(results: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per-method mean of every figure over the clips (outside change and breathing: the worst clip)."""
    out = {}
    for name in METHODS:
        keys = results[next(iter(results))][name].keys()
        out[name] = {k: float(_MEAN_OF.get(k, np.mean)([results[c][name][k] for c in results])) for k in keys}
    return out


def main() -> int:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48, help="real frames T per clip (<= the clip's length)")
    parser.add_argument("--stride", type=int, default=1,
                        help="use every K-th real frame: the same footage K times faster (T frames from K*T)")
    parser.add_argument("--width", type=int, default=None,
                        help="resample the clips to this width: slower footage (speeds scale by WIDTH / 1024)")
    parser.add_argument("--loop", type=int, default=None, help="loop length N (default 2(T - 1))")
    parser.add_argument("--clips", nargs="*", default=["sky-0623a", "sky-0623c"],
                        help="clip folders (frame_NNN.jpg + mask.png), by name under the shared clips or by path")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--sheet", type=Path, help="write a contact sheet per clip into this folder")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a render option, e.g. --set levels=1 --set detail=smooth")
    args = parser.parse_args()
    for item in args.set:
        name, value = item.split("=", 1)
        try:
            OVERRIDES[name] = json.loads(value.lower() if value.lower() in ("true", "false") else value)
        except json.JSONDecodeError:
            OVERRIDES[name] = value
    folders = [Path(c) if Path(c).is_dir() else DATA / c for c in args.clips]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        print(f"clip folder(s) not found: {', '.join(missing)}", file=sys.stderr)
        return 1
    if args.sheet:
        args.sheet.mkdir(parents=True, exist_ok=True)
    print(f"stillflow {stillflow.__version__}, {platform.processor() or platform.machine()}, T = {args.frames}, "
          f"N = {args.loop or 2 * (args.frames - 1)}, stride {args.stride}, width {args.width or 'as stored'}, overrides {OVERRIDES or 'none'}")
    results = {}
    for folder in folders:
        print(f"{folder.name} ...", file=sys.stderr)
        rows = run_clip(folder, args.frames, args.loop, args.sheet, args.stride, args.width)
        info = rows.pop("clip")
        results[folder.name] = rows
        print_table(f"{folder.name} (median speed {info['median_speed']:.2f} px/frame, p95 {info['p95_speed']:.2f}; "
                    f"real speckle rate {info['real_speckle_rate']:.2e}; frame 0's own sharpness "
                    f"{info['input_sharpness']:.2f}x, speckle {info['input_speckle']:.2f}x)", rows)
    if len(results) > 1:
        print_table(f"mean of {len(results)} clips", mean_rows(results))
        wins = sum(r["loop"]["psnr@8"] >= r["cross-fade"]["psnr@8"] and r["loop"]["psnr@all"] >= r["cross-fade"]["psnr@all"]
                   for r in results.values())
        print(f"  loop >= cross-fade on PSNR@8 and PSNR@all on {wins} of {len(results)} clips (target: >= 80 %)")
        still = sum(r["loop"]["psnr@8"] >= r["frozen"]["psnr@8"] and r["loop"]["psnr@all"] >= r["frozen"]["psnr@all"]
                    for r in results.values())
        print(f"  loop >= frozen frame on PSNR@8 and PSNR@all on {still} of {len(results)} clips")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
