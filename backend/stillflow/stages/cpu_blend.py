"""The compiled CPU mix of the loop's two copies (numba): normalise, fill cracks, mix, in one pass.

Same arithmetic as ``blend.blend_copies`` (the torch reference, every device) on the raw
accumulator of ``cpu_kernels.splat_accumulate_cpu(..., separate=True)``, which holds both copies
side by side; see stages/blend.py for what the mix is. Reading that accumulator once, instead of
normalising, crack-filling and mixing in separate passes over separate arrays, is what keeps the
split blend about as cheap as one shared normaliser (on a CPU this is memory-bound).
"""
from __future__ import annotations

import numpy as np

from . import cpu_kernels

__all__ = ["blend_accumulated_cpu"]

if cpu_kernels.numba is not None:
    numba = cpu_kernels.numba

    @numba.njit(cache=True, nogil=True, inline="always")
    def _weight(acc: np.ndarray, ignore: np.ndarray, threshold: float, k: int, y: int, x: int) -> float:
        # Copy k's splat weight as the mix sees it: 1 where nothing reads it, 0 for a hole.
        if ignore[y, x]:
            return np.float32(1.0)
        total = acc[y, x, (k + 1) * (acc.shape[2] // 2) - 1]
        return total if total > threshold else np.float32(0.0)

    @numba.njit(cache=True, nogil=True, inline="always")
    def _value(acc: np.ndarray, y: int, x: int, base: int, c: int, last: int) -> float:
        total = acc[y, x, base + last]
        return acc[y, x, base + c] / total if total > 0.0 else np.float32(0.0)

    @numba.njit(cache=True, nogil=True)
    def _filled(acc: np.ndarray, ignore: np.ndarray, threshold: float, k: int, y: int, x: int, around: float,
                into: np.ndarray) -> None:
        # Copy k's values at (y, x) into ``into``: its own where it has them, else the weighted
        # mean of its covered 3x3 neighbours (0 where it has none).
        last = acc.shape[2] // 2 - 1
        base = k * (last + 1)
        if _weight(acc, ignore, threshold, k, y, x) > 0.0:
            for c in range(last):
                into[c] = _value(acc, y, x, base, c, last)
            return
        into[:] = 0.0
        if around == 0.0:
            return
        height, width = ignore.shape
        for yy in range(max(0, y - 1), min(height, y + 2)):
            for xx in range(max(0, x - 1), min(width, x + 2)):
                weight = _weight(acc, ignore, threshold, k, yy, xx)
                if weight > 0.0:
                    for c in range(last):
                        into[c] += weight * _value(acc, yy, xx, base, c, last)
        for c in range(last):
            into[c] /= around

    ROWS_PER_TASK = 16
    """Rows each parallel task mixes (its scratch rows are allocated once per task)."""

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _blend(acc: np.ndarray, ignore: np.ndarray, alpha: float, threshold: float, out: np.ndarray,
               den: np.ndarray) -> None:
        height, width = ignore.shape
        stride = acc.shape[2] // 2
        channels = stride - 1
        # The weights are read from the accumulator as they are needed, three rows at a time:
        # a separate pass writing them out cost a quarter of the mix.
        for task in numba.prange((height + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
            column_f = np.empty(width, np.float32)
            column_b = np.empty(width, np.float32)
            values_f = np.empty(channels, np.float32)
            values_b = np.empty(channels, np.float32)
            for y in range(task * ROWS_PER_TASK, min(height, (task + 1) * ROWS_PER_TASK)):
                _blend_row(acc, ignore, alpha, threshold, out, den, y, column_f, column_b, values_f, values_b)

    @numba.njit(cache=True, nogil=True)
    def _blend_row(acc: np.ndarray, ignore: np.ndarray, alpha: float, threshold: float, out: np.ndarray,
                   den: np.ndarray, y: int, column_f: np.ndarray, column_b: np.ndarray, values_f: np.ndarray,
                   values_b: np.ndarray) -> None:
        height, width = ignore.shape
        stride = acc.shape[2] // 2
        channels = stride - 1
        y0, y1 = max(0, y - 1), min(height, y + 2)
        # 3x3 sums as column sums over three rows, then over three columns.
        for x in range(width):
            total_f = np.float32(0.0)
            total_b = np.float32(0.0)
            for yy in range(y0, y1):
                total_f += _weight(acc, ignore, threshold, 0, yy, x)
                total_b += _weight(acc, ignore, threshold, 1, yy, x)
            column_f[x] = total_f
            column_b[x] = total_b
        for x in range(width):
            x0, x1 = max(0, x - 1), min(width, x + 2)
            around_f = np.float32(0.0)
            around_b = np.float32(0.0)
            for xx in range(x0, x1):
                around_f += column_f[xx]
                around_b += column_b[xx]
            count = np.float32((y1 - y0) * (x1 - x0))
            weight_f = (1.0 - alpha) * min(around_f / count, np.float32(1.0))
            weight_b = alpha * min(around_b / count, np.float32(1.0))
            total = weight_f + weight_b
            den[y, x] = total
            share = weight_b / total if total > threshold else np.float32(0.0)
            if _weight(acc, ignore, threshold, 0, y, x) > 0.0 and _weight(acc, ignore, threshold, 1, y, x) > 0.0:
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
            _filled(acc, ignore, threshold, 0, y, x, around_f, values_f)
            if share > 0.0:
                _filled(acc, ignore, threshold, 1, y, x, around_b, values_b)
            else:
                values_b[:] = values_f
            for c in range(channels):
                out[c, y, x] = values_f[c] + share * (values_b[c] - values_f[c])


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
    out = np.empty((stride // 2 - 1, height, width), np.float32)
    den = np.empty((height, width), np.float32)
    _blend(acc, ignore, np.float32(alpha), np.float32(threshold), out, den)
    return out, den
