"""The compiled CPU mix of the loop's two copies (numba): normalise, fill cracks, mix, in one pass.

Same arithmetic as ``blend.blend_copies`` (the torch reference, every device) on the raw
accumulator of ``cpu_kernels.splat_accumulate_cpu(..., separate=True)``, which holds both copies
side by side; see stages/blend.py for what the mix is. Reading that accumulator once, instead of
normalising, crack-filling and mixing in separate passes over separate arrays, is what keeps the
split blend about as cheap as one shared normaliser (on a CPU this is memory-bound).
"""
from __future__ import annotations

import numpy as np

from .._cv import cv2
from . import cpu_kernels
from .blend import COVERAGE_WINDOW

__all__ = ["blend_accumulated_cpu"]

if cpu_kernels.numba is not None:
    numba = cpu_kernels.numba

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _known(acc: np.ndarray, ignore: np.ndarray, threshold: float, known: np.ndarray) -> None:
        # Each copy's splat weight as the mix sees it: 1 where nothing reads it, 0 for a hole.
        height, width = ignore.shape
        stride = acc.shape[2] // 2
        for y in numba.prange(height):
            for x in range(width):
                for k in range(2):
                    total = acc[y, x, k * stride + stride - 1]
                    known[k, y, x] = 1.0 if ignore[y, x] else (total if total > threshold else 0.0)

    @numba.njit(cache=True, nogil=True, inline="always")
    def _value(acc: np.ndarray, y: int, x: int, base: int, c: int, last: int) -> float:
        total = acc[y, x, base + last]
        return acc[y, x, base + c] / total if total > 0.0 else np.float32(0.0)

    @numba.njit(cache=True, nogil=True)
    def _filled(acc: np.ndarray, known: np.ndarray, k: int, y: int, x: int, around: float, into: np.ndarray) -> None:
        # Copy k's values at (y, x) into ``into``: its own where it has them, else the weighted
        # mean of its covered 3x3 neighbours (0 where it has none).
        last = acc.shape[2] // 2 - 1
        base = k * (last + 1)
        if known[k, y, x] > 0.0:
            for c in range(last):
                into[c] = _value(acc, y, x, base, c, last)
            return
        into[:] = 0.0
        if around == 0.0:
            return
        height, width = known.shape[1], known.shape[2]
        for yy in range(max(0, y - 1), min(height, y + 2)):
            for xx in range(max(0, x - 1), min(width, x + 2)):
                weight = known[k, yy, xx]
                if weight > 0.0:
                    for c in range(last):
                        into[c] += weight * _value(acc, yy, xx, base, c, last)
        for c in range(last):
            into[c] /= around

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _blend(acc: np.ndarray, known: np.ndarray, sums: np.ndarray, holes: np.ndarray, per_row: np.ndarray,
               per_col: np.ndarray, alpha: float, threshold: float, out: np.ndarray, den: np.ndarray) -> None:
        height, width = known.shape[1], known.shape[2]
        stride = acc.shape[2] // 2
        channels = stride - 1
        for y in numba.prange(height):
            y0, y1 = max(0, y - 1), min(height, y + 2)
            # 3x3 sums as column sums over three rows, then over three columns.
            column_f = np.empty(width, np.float32)
            column_b = np.empty(width, np.float32)
            values_f = np.empty(channels, np.float32)
            values_b = np.empty(channels, np.float32)
            for x in range(width):
                total_f = np.float32(0.0)
                total_b = np.float32(0.0)
                for yy in range(y0, y1):
                    total_f += known[0, yy, x]
                    total_b += known[1, yy, x]
                column_f[x] = total_f
                column_b[x] = total_b
            for x in range(width):
                x0, x1 = max(0, x - 1), min(width, x + 2)
                around_f = np.float32(0.0)
                around_b = np.float32(0.0)
                for xx in range(x0, x1):
                    around_f += column_f[xx]
                    around_b += column_b[xx]
                # Coverage: the window's mean (its sum over its in-image pixels), capped at 1. A copy
                # with no covered 3x3 neighbour has no value here: no share either.
                inside = per_row[y] * per_col[x]
                cover_f = min(sums[0, y, x] * inside, np.float32(1.0)) if around_f > 0.0 else np.float32(0.0)
                cover_b = min(sums[1, y, x] * inside, np.float32(1.0)) if around_b > 0.0 else np.float32(0.0)
                # blend.mix_weights: the share a copy has over its own holes passes to the other one.
                weight_f = cover_f * ((1.0 - alpha) + alpha * holes[1, y, x] * inside)
                weight_b = cover_b * (alpha + (1.0 - alpha) * holes[0, y, x] * inside)
                total = weight_f + weight_b
                den[y, x] = total
                share = weight_b / total if total > threshold else np.float32(0.0)
                if known[0, y, x] > 0.0 and known[1, y, x] > 0.0:
                    # Both copies landed here (most pixels): no crack to fill.
                    total_f = acc[y, x, channels]
                    total_b = acc[y, x, stride + channels]
                    scale_f = np.float32(1.0) / total_f if total_f > 0.0 else np.float32(0.0)
                    scale_b = np.float32(1.0) / total_b if total_b > 0.0 else np.float32(0.0)
                    for c in range(channels):
                        value_f = acc[y, x, c] * scale_f
                        out[c, y, x] = value_f + share * (acc[y, x, stride + c] * scale_b - value_f)
                    continue
                # A crack in either copy (or an ignored pixel): one pass over the 3x3 per copy.
                _filled(acc, known, 0, y, x, around_f, values_f)
                if share > 0.0:
                    _filled(acc, known, 1, y, x, around_b, values_b)
                else:
                    values_b[:] = values_f
                for c in range(channels):
                    out[c, y, x] = values_f[c] + share * (values_b[c] - values_f[c])


def _window_sums(known: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each copy's ``known`` and real holes (no covered 3x3 neighbour) summed over the COVERAGE_WINDOW square
    clipped to the image (OpenCV's running box sums), and 1 / the in-image rows and columns of each
    window (its mean is sum * per_row * per_col)."""
    window = COVERAGE_WINDOW
    half = window // 2
    _, height, width = known.shape
    sums = np.empty_like(known)
    holes = np.empty_like(known)
    for copy, into, hole in zip(known, sums, holes):
        cv2.boxFilter(copy, -1, (window, window), dst=into, normalize=False, borderType=cv2.BORDER_CONSTANT)
        # Exact: no running sum can leave a hole's 3x3 a rounding error above 0.
        covered_near = cv2.dilate((copy > 0).astype(np.uint8), np.ones((3, 3), np.uint8),
                                  borderType=cv2.BORDER_CONSTANT, borderValue=0)
        cv2.boxFilter((covered_near == 0).astype(np.float32), -1, (window, window), dst=hole, normalize=False,
                      borderType=cv2.BORDER_CONSTANT)
    inside = [np.minimum(np.arange(n) + half, n - 1) - np.maximum(np.arange(n) - half, 0) + 1 for n in (height, width)]
    per_row, per_col = (np.float32(1.0) / counts.astype(np.float32) for counts in inside)
    return sums, holes, per_row, per_col


def blend_accumulated_cpu(acc: np.ndarray, ignore: np.ndarray, alpha: float,
                          threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Mix the two copies of a raw splat accumulator by coverage (``blend.blend_copies`` on the CPU).

    Args:
        acc: (H, W, 2 (C + 1)) float32: the forward copy's weighted sums and summed weight, then
            the backward copy's, as ``cpu_kernels.splat_accumulate_cpu(..., separate=True)`` gives.
        ignore: (H, W) bool pixels nothing reads (they count as covered, weight 1).
        alpha: the backward copy's share.
        threshold: splat weight at or below which a pixel is a hole.

    Returns:
        out: (C, H, W) float32 blend; den: (H, W) float32 its weight (<= threshold: a hole of both).
    """
    height, width, stride = acc.shape
    threshold = np.float32(threshold)
    known = np.empty((2, height, width), np.float32)
    _known(acc, ignore, threshold, known)
    out = np.empty((stride // 2 - 1, height, width), np.float32)
    den = np.empty((height, width), np.float32)
    _blend(acc, known, *_window_sums(known), np.float32(alpha), threshold, out, den)
    return out, den
