"""The compiled taps of a particle that carries its values resampled at its sub-pixel remainder (numba).

Keys' cubic convolution with border-clamped taps (``splat.resample_remainder`` is the torch
reference); the compiled splat (cpu_kernels) lands such a particle on a whole pixel with these values.
"""
from __future__ import annotations

import math

import numpy as np

try:
    import numba
except ImportError:  # the torch reference path is used instead
    numba = None

__all__ = ["CUBIC_A", "tap_resampled"]

CUBIC_A = -1.0
"""Keys' cubic parameter for the carried remainder: sharper than torch's and OpenCV's -0.75 (on the
real clips -0.75 brought a one-shot drift's sharpness ratio to 0.78, -1.0 to 0.85)."""

if numba is not None:

    @numba.njit(cache=True, nogil=True, inline="always")
    def _cubic(t: float, k: int) -> float:
        # Keys cubic convolution weight of tap k (distance |k - 1 - t|); see CUBIC_A.
        a = CUBIC_A
        x = abs(k - 1 - t)
        if x <= 1.0:
            return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
        return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a

    @numba.njit(cache=True, nogil=True, inline="always")
    def _row4(values: np.ndarray, row: int, x0: int, x1: int, x2: int, x3: int, a0: float, a1: float,
              a2: float, a3: float, c: int) -> float:
        return (a0 * values[row, x0, c] + a1 * values[row, x1, c] + a2 * values[row, x2, c]
                + a3 * values[row, x3, c])

    @numba.njit(cache=True, nogil=True, inline="always")
    def tap_resampled(acc: np.ndarray, values: np.ndarray, sy: float, sx: float, yy: int, xx: int, w0: float,
                      channels: int, base: int, g: float, gained: int) -> None:
        # values at (sy, sx) by Keys' bicubic with border-clamped taps, added with weight w0.
        height, width = values.shape[0], values.shape[1]
        ix = int(math.floor(sx))
        iy = int(math.floor(sy))
        fx = sx - ix
        fy = sy - iy
        ax0, ax1, ax2, ax3 = _cubic(fx, 0), _cubic(fx, 1), _cubic(fx, 2), _cubic(fx, 3)
        ay0, ay1, ay2, ay3 = _cubic(fy, 0), _cubic(fy, 1), _cubic(fy, 2), _cubic(fy, 3)
        x0, x1 = min(max(ix - 1, 0), width - 1), min(max(ix, 0), width - 1)
        x2, x3 = min(max(ix + 1, 0), width - 1), min(max(ix + 2, 0), width - 1)
        y0, y1 = min(max(iy - 1, 0), height - 1), min(max(iy, 0), height - 1)
        y2, y3 = min(max(iy + 1, 0), height - 1), min(max(iy + 2, 0), height - 1)
        for c in range(channels):
            total = (ay0 * _row4(values, y0, x0, x1, x2, x3, ax0, ax1, ax2, ax3, c)
                     + ay1 * _row4(values, y1, x0, x1, x2, x3, ax0, ax1, ax2, ax3, c)
                     + ay2 * _row4(values, y2, x0, x1, x2, x3, ax0, ax1, ax2, ax3, c)
                     + ay3 * _row4(values, y3, x0, x1, x2, x3, ax0, ax1, ax2, ax3, c))
            acc[yy, xx, base + c] += (w0 if gained < 0 else (w0 * g if c < gained else w0 * g * g)) * total
        acc[yy, xx, base + channels] += w0
