"""Defects the ground-truth protocol does not see: static content carried into the moving region,
and cracks where the motion has a step in speed.

Usage: python bench/bench_edges.py [--cases picos pole step unsmoothed fast waterfall] [--frames 48] [--set NAME=VALUE]
                                   [--sheet DIR]

Cases (each rendered with the defaults as shipped, frames at t = N/4, N/2, 3N/4):
- ``picos``: the quick-start sample with its arrows (N = 60 unless --frames).
- ``pole``: the first frame of sky-0623a with a dark pole and a thin wire painted into the sky and
  left out of the mask, drifting right at 2 px/frame.
- ``step``: the same sky with a motion field whose speed doubles across a straight diagonal line
  through the clouds (1.5 and 3 px/frame to the right): a sharp speed step.
- ``unsmoothed``: sky-0623a animated by the per-pixel DIS flow of its first two frames (no robust
  mean over frames, no smoothing; only speeds beyond 3 standard deviations shortened).
- ``fast``: sky-0623a animated by bench_quality's ground-truth motion at stride 2 (the robust mean
  DIS flow of every other real frame, 24 of them: 5 px/frame median, 19 at p95), N = 46: real fast
  footage, whose field tears in places, for the breathing (``sharp``) the defect fixes may cost.
- ``waterfall``: the shared 3dc-waterfall still with its mask, falling at 3 px/frame (N = 60): the
  mask's upper edges lie inside the frame, static rock above, so each copy leaves a hole behind it
  (a disocclusion) that no inflow from outside the frame fills.

Figures, per frame and in per mille of the moving pixels they are counted over:
- ``dark`` / ``light``: moving pixels within 40 px of a static one that are darker than the
  input's darkest 1 % of those pixels (less 0.02) or brighter than its brightest 1 % (plus 0.02):
  static colour carried into the moving region (streaks, plumes) and halos along the edge.
- ``dots``: moving pixels whose luma is more than 12/255 from their 3x3 median, over frame 0's
  count (isolated single-pixel outliers; target <= 1.25).
- ``cracks``: moving pixels darker or brighter than every one of their 8 neighbours by more than
  12/255, over frame 0's count (single-pixel lines and dots across the flow).
- ``sharp``: the Laplacian variance in the moving region over frame 0's (target 0.85-1.15).
``dots``, ``cracks`` and ``sharp`` count moving pixels more than 5 px from a static one.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from stillflow import MotionSpec, RenderOptions
from stillflow.loop import LoopRenderer
from stillflow.pipeline import loop_plan, prepare
from stillflow.stages.clip_flow import clamp_speed_outliers, dis_flow, robust_mean_flow

ROOT = Path(__file__).resolve().parents[1]
CLIPS = ROOT.parent / "shared" / "data" / "clips"
OVERRIDES: dict = {}


def _rgb(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) float32 RGB in [0, 1]."""
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def _sky() -> tuple[np.ndarray, np.ndarray]:
    """sky-0623a's first frame and its mask (float 0/1)."""
    folder = CLIPS / "sky-0623a"
    mask = (cv2.imread(str(folder / "mask.png"), cv2.IMREAD_GRAYSCALE) > 127).astype(np.float32)
    return _rgb(folder / "frame_000.jpg"), mask


def case(name: str) -> tuple[np.ndarray, np.ndarray, MotionSpec, int]:
    """(image, drawn mask, motion, default N) of one case."""
    if name == "picos":
        sample = ROOT / "samples" / "picos"
        hints = [tuple(float(v) for v in line.split(",")) for line in (sample / "hints.txt").read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
        mask = cv2.imread(str(sample / "picos_mask.png"), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
        return _rgb(sample / "picos.jpg"), mask, MotionSpec(kind="hints", hints=tuple(hints)), 60
    if name == "waterfall":
        stills = CLIPS.parent / "stills"
        mask = (cv2.imread(str(stills / "3dc-waterfall_mask.png"), cv2.IMREAD_GRAYSCALE) > 127).astype(np.float32)
        return _rgb(stills / "3dc-waterfall.png"), mask, MotionSpec(kind="drift", drift=(270.0, 3.0)), 60
    image, mask = _sky()
    height, width = mask.shape
    if name == "pole":
        image, mask = image.copy(), mask.copy()
        dark = (0.12, 0.11, 0.10)
        cv2.line(image, (width // 3, height), (width // 3, height // 6), dark, 4)
        cv2.line(image, (0, height // 4), (width - 1, height // 2), dark, 2, cv2.LINE_AA)
        painted = np.zeros_like(mask, np.uint8)
        cv2.line(painted, (width // 3, height), (width // 3, height // 6), 1, 4)
        cv2.line(painted, (0, height // 4), (width - 1, height // 2), 1, 4)
        mask[painted > 0] = 0
        return image, mask, MotionSpec(kind="drift", drift=(0.0, 2.0)), 48
    if name == "step":
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        fast = (xs - 0.8 * ys) > width * 0.4
        field = np.stack([np.where(fast, 3.0, 1.5), np.zeros_like(xs)]).astype(np.float32)
        return image, mask, MotionSpec(kind="field", field=field), 46
    if name == "unsmoothed":
        to8 = lambda f: np.clip(np.rint(f * 255), 0, 255).astype(np.uint8)  # noqa: E731
        field = dis_flow(to8(image), to8(_rgb(CLIPS / "sky-0623a" / "frame_001.jpg")))
        return image, mask, MotionSpec(kind="field", field=clamp_speed_outliers(field * mask[None])), 46
    if name == "fast":
        to8 = lambda f: np.clip(np.rint(f * 255), 0, 255).astype(np.uint8)  # noqa: E731
        real = [to8(_rgb(CLIPS / "sky-0623a" / f"frame_{i:03d}.jpg")) for i in range(0, 48, 2)]
        flows = np.stack([dis_flow(a, b) for a, b in zip(real[:-1], real[1:])])
        field = clamp_speed_outliers(robust_mean_flow(flows) * mask[None])
        return image, mask, MotionSpec(kind="field", field=field), 46
    raise SystemExit(f"unknown case {name!r}")


def _luma(frame: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an RGB float frame."""
    return cv2.cvtColor(np.ascontiguousarray(frame[:, :, :3]), cv2.COLOR_RGB2GRAY)


def _isolated(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(off its 3x3 median by > 12/255, beyond all 8 neighbours by > 12/255 the same way)."""
    median = cv2.medianBlur(luma, 3)
    kernel = np.ones((3, 3), np.uint8)
    kernel[1, 1] = 0
    above = luma - cv2.dilate(luma, kernel) > 12 / 255
    below = cv2.erode(luma, kernel) - luma > 12 / 255
    return np.abs(luma - median) > 12 / 255, above | below


def measure(frames: dict[int, np.ndarray], image: np.ndarray, moving: np.ndarray) -> dict[int, dict[str, float]]:
    """The module's figures for each rendered frame t (see the module docstring)."""
    static = (~moving).astype(np.uint8)
    near = moving & (cv2.distanceTransform(1 - static, cv2.DIST_L2, 3) <= 40) if static.any() else moving & False
    # Away from the composite's feather (3 px): there frame 0 holds the static side's edge.
    inner = cv2.erode(moving.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=5) > 0
    base = _luma(image)
    low, high = (np.quantile(base[near], [0.01, 0.99]) if near.any() else (0.0, 1.0))
    dots0, cracks0 = (max(1, int(m[inner].sum())) for m in _isolated(base))
    sharp0 = float(cv2.Laplacian(base, cv2.CV_32F)[inner].var())
    out = {}
    for t, frame in frames.items():
        luma = _luma(frame)
        dots, cracks = _isolated(luma)
        count = max(1, int(near.sum()))
        out[t] = {"dark": 1000 * float((luma[near] < low - 0.02).sum()) / count,
                  "light": 1000 * float((luma[near] > high + 0.02).sum()) / count,
                  "dots": int(dots[inner].sum()) / dots0, "cracks": int(cracks[inner].sum()) / cracks0,
                  "sharp": float(cv2.Laplacian(luma, cv2.CV_32F)[inner].var()) / sharp0}
    return out


def render_at(image: np.ndarray, mask: np.ndarray, motion: MotionSpec, frames: int,
              times: list[int]) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Frames ``times`` of the default loop, and the region that moves (composite mask > 0)."""
    options = RenderOptions(frames=frames, **OVERRIDES)
    prepared = prepare(image, mask=mask, motion=motion, options=options)
    import torch

    renderer = LoopRenderer(prepared.image, prepared.composite_mask, prepared.motion_px, loop_plan(prepared, options),
                            device=torch.device("cpu"))
    # Scored as written to disk: a frame file clips to [0, 1] (a moved highlight may exceed 1).
    return {t: np.clip(renderer.frame(t), 0.0, 1.0) for t in times}, prepared.composite_mask > 0


def sheet(path: Path, image: np.ndarray, frames: dict[int, np.ndarray], moving: np.ndarray) -> None:
    """Whole frames (input, then each t) side by side, and a 1:1 crop shown 2x where the edge is busiest."""
    tiles = [(0, image)] + sorted(frames.items())
    bgr = [cv2.cvtColor(np.clip(np.rint(f * 255), 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR) for _, f in tiles]
    for (t, _), tile in zip(tiles, bgr):
        cv2.putText(tile, f"t={t}", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
    cv2.imwrite(str(path), np.vstack(bgr) if image.shape[1] > image.shape[0] else np.hstack(bgr))
    edge = cv2.morphologyEx(moving.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).astype(np.float32)
    side = 160
    score = cv2.boxFilter(edge * cv2.Laplacian(_luma(image), cv2.CV_32F) ** 2, -1, (side, side))
    half = side // 2
    score[:half], score[-half:], score[:, :half], score[:, -half:] = 0, 0, 0, 0
    y, x = np.unravel_index(int(np.argmax(score)), score.shape)
    y, x = max(y, half), max(x, half)
    crops = [cv2.resize(b[y - half:y + half, x - half:x + half], (2 * side, 2 * side), interpolation=cv2.INTER_NEAREST)
             for b in bgr]
    cv2.imwrite(str(path.with_name(path.stem + "_crop.png")), np.hstack(crops))


def main() -> None:
    """Render each case at N/4, N/2, 3N/4 and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["picos", "pole", "step", "unsmoothed", "fast", "waterfall"])
    parser.add_argument("--frames", type=int, default=0, help="loop length N (default: the case's own)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="RenderOptions override")
    parser.add_argument("--sheet", type=Path, help="folder for contact sheets")
    args = parser.parse_args()
    for item in args.set:
        key, value = item.split("=", 1)
        default = getattr(RenderOptions(), key)
        OVERRIDES[key] = value == "True" if isinstance(default, bool) else type(default)(value)
    print(f"overrides: {OVERRIDES or 'none'}")
    print(f"{'case':<11s} {'t':>3s} {'dark':>6s} {'light':>6s} {'dots':>5s} {'cracks':>6s} {'sharp':>5s}")
    for name in args.cases:
        image, mask, motion, frames = case(name)
        frames = args.frames or frames
        rendered, moving = render_at(image, mask, motion, frames, [frames // 4, frames // 2, 3 * frames // 4])
        for t, row in measure(rendered, image, moving).items():
            print(f"{name:<11s} {t:3d} {row['dark']:6.2f} {row['light']:6.2f} {row['dots']:5.2f} "
                  f"{row['cracks']:6.2f} {row['sharp']:5.2f}")
        if args.sheet:
            args.sheet.mkdir(parents=True, exist_ok=True)
            sheet(args.sheet / f"{name}.png", image, rendered, moving)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
