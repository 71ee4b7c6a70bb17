"""Rendering a planned sway: each frame is a backward warp of the frame the flow left.

O(x) = F(x − D(x, t)), with D the regions' displacements (stages/sway.py) and F the still, or a
flow's output under a shimmer. Interpolation fades fine detail at fractional offsets (a bilinear tap
at half a pixel scales the finest frequencies towards 0: the loop would "breathe"), so F is split
(stages/sway_split.py): its base moves by bilinear taps and its detail (F − base) by whole pixels of
the oscillation, round(P(t)) − round(P(0)) with P(t) = A · u · sin(2π k t / N + φ), which keeps
every frame's sharpness at that of the input; the detail's steps come as often near frame 0 as
anywhere in the loop (rounding D itself would keep every pixel's detail still for the first frames,
and the seam would step more than the loop's other frames). A shimmer's detail stays in place:
only its base ripples. Water's ripples strain the surface (an amplitude of 1 px on waves of 12 px
stretches and squeezes it by half), so whole-pixel steps differ between neighbours along every line
where the oscillation rounds the other way, and fine texture tore there (on water stills, frames up
to 1.6x frame 0's sharpness with lines across the foam; detail in place: 0.96-1.00,
docs/benchmarks.md issue 29 round 10). The live preview (shaders/loop_preview.frag.glsl) does the
same arithmetic in the same order.
"""
from __future__ import annotations

import math

import numpy as np

from .._cv import cv2
from .sway import SwayPlan, sway_displacement
from .sway_split import SPLIT_SIGMA, split_kernel

__all__ = ["bilinear_reflect", "warp_sway"]


def _reflect(index: np.ndarray, size: int) -> np.ndarray:
    """Integer indices reflected into [0, size) without repeating the edge (as preview_common.glsl sf_reflect)."""
    if size <= 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    folded = index % period
    return np.where(folded < size, folded, period - folded)


def bilinear_reflect(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """``image`` (h, w, C) float32 sampled bilinearly at (xs, ys) px, reflected (101) outside it.

    float32 throughout, in the live preview's order (shaders/preview_common.glsl sf_image_bilinear):
    OpenCV's remap quantises the offset to 1/32 px, which the preview could not match.
    """
    height, width = image.shape[:2]
    channels = image.shape[2]
    x0f, y0f = np.floor(xs), np.floor(ys)
    fx, fy = (xs - x0f)[..., None], (ys - y0f)[..., None]
    x0, y0 = x0f.astype(np.int64), y0f.astype(np.int64)
    if x0.min() < 0 or y0.min() < 0 or x0.max() + 1 >= width or y0.max() + 1 >= height:
        cols = (_reflect(x0, width), _reflect(x0 + 1, width))
        rows = (_reflect(y0, height) * width, _reflect(y0 + 1, height) * width)
    else:
        cols, rows = (x0, x0 + 1), (y0 * width, (y0 + 1) * width)
    flat = image.reshape(-1, channels)

    def tap(row: np.ndarray, col: np.ndarray) -> np.ndarray:
        return flat.take((row + col).ravel(), axis=0).reshape(*xs.shape, channels)

    top = tap(rows[0], cols[0]) * (1 - fx) + tap(rows[0], cols[1]) * fx
    bottom = tap(rows[1], cols[0]) * (1 - fx) + tap(rows[1], cols[1]) * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def warp_sway(frame: np.ndarray, plan: SwayPlan, t: int) -> np.ndarray:
    """Frame ``t`` with the plan's oscillation applied: O(x) = F(x − D(x, t)); F itself where D = 0.

    Args:
        frame: (H, W, C) float32, the frame before the oscillation (the still or the flow's frame).
        plan: the regions' SwayPlan.
        t: frame index; frame 0 and multiples of N return ``frame`` unchanged.

    Returns:
        (H, W, C) float32, a new array unless nothing moves.
    """
    if t % plan.frames == 0:
        return frame
    displacement = sway_displacement(plan, t)
    moving = np.any(displacement != 0, axis=0)
    if not moving.any():
        return frame
    height, width, channels = frame.shape
    rows, cols = plan.window
    # The warp reads up to ``reach`` px away, and the base's blur 3σ beyond that.
    margin = plan.reach + int(math.ceil(3 * SPLIT_SIGMA)) + 2
    top, left = max(0, rows.start - margin), max(0, cols.start - margin)
    crop = np.ascontiguousarray(frame[top:min(height, rows.stop + margin), left:min(width, cols.stop + margin)])
    # stages/sway_split.gaussian_base's taps and edges, by OpenCV (9x faster; equal within 3e-7)
    kernel = split_kernel()
    base = cv2.sepFilter2D(crop, -1, kernel, kernel, borderType=cv2.BORDER_REFLECT_101).reshape(crop.shape)
    detail = crop - base
    h, w = displacement.shape[1:]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xs += cols.start - left
    ys += rows.start - top
    moved = bilinear_reflect(base, xs - displacement[0], ys - displacement[1])
    # Whole pixels of the oscillation, rounded half up (round-half-even would alternate between
    # neighbours at .5): round(P(t)) - round(P(0)), 0 at t = 0.
    start = np.floor(plan.rest + 0.5)
    swing = displacement if all(layer.moves_detail for layer in plan.layers) else sway_displacement(
        plan, t, detail_only=True)
    steps = np.floor(swing + plan.rest + 0.5) - start
    detail_rows = _reflect((ys - steps[1]).astype(np.int64), detail.shape[0])
    detail_cols = _reflect((xs - steps[0]).astype(np.int64), detail.shape[1])
    moved += detail.reshape(-1, channels).take((detail_rows * detail.shape[1] + detail_cols).ravel(),
                                               axis=0).reshape(moved.shape)
    out = frame.copy()
    np.copyto(out[rows, cols], moved, where=moving[..., None])
    return out
