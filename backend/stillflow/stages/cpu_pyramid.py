"""The compiled CPU collapse step of the Laplacian pyramid (numba): up(coarse) + band in one pass.

The same numbers as ``pyramid.pyr_up`` followed by the addition (same operations in the same
order, so the results are bit-identical): torch builds the row-doubled image, the column-doubled
image and the sum as three full-size temporaries, which on a CPU costs more than the arithmetic.
"""
from __future__ import annotations

import numpy as np

from . import cpu_kernels

__all__ = ["pyr_up_add_cpu"]

if cpu_kernels.numba is not None:
    numba = cpu_kernels.numba

    @numba.njit(cache=True, nogil=True, inline="always")
    def _taps(i: int, length: int) -> tuple[int, int, int, bool]:
        # Output i of a doubled axis reads coarse m - 1, m, m + 1 (replicated at the borders).
        m = i // 2
        return max(m - 1, 0), m, min(m + 1, length - 1), i % 2 == 0

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _pyr_up_add(coarse: np.ndarray, band: np.ndarray, out: np.ndarray) -> None:
        channels, height, width = band.shape
        rows, cols = coarse.shape[1], coarse.shape[2]
        for y in numba.prange(height):
            up, mid, down, even_y = _taps(y, rows)
            line = np.empty(cols, np.float32)
            for c in range(channels):
                for s in range(cols):
                    if even_y:
                        line[s] = (coarse[c, up, s] + np.float32(6.0) * coarse[c, mid, s] + coarse[c, down, s]) \
                            * np.float32(0.125)
                    else:
                        line[s] = (coarse[c, mid, s] + coarse[c, down, s]) * np.float32(0.5)
                for x in range(width):
                    left, centre, right, even_x = _taps(x, cols)
                    if even_x:
                        value = (line[left] + np.float32(6.0) * line[centre] + line[right]) * np.float32(0.125)
                    else:
                        value = (line[centre] + line[right]) * np.float32(0.5)
                    out[c, y, x] = value + band[c, y, x]


def pyr_up_add_cpu(coarse: np.ndarray, band: np.ndarray) -> np.ndarray:
    """pyr_up(coarse, band's size) + band for (C, h, w) and (C, H, W) float32, H <= 2h, W <= 2w."""
    out = np.empty(band.shape, np.float32)
    _pyr_up_add(np.ascontiguousarray(coarse, np.float32), np.ascontiguousarray(band, np.float32), out)
    return out
