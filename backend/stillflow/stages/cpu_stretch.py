"""The detail gain of torn particles on the CPU (numba): ``stretch.stretch_gain_torch`` in compiled passes.

Same float32 arithmetic as the torch reference (stages/stretch.py, every device). A read-only pass
first marks the rows that may hold a torn particle (a gap beyond the onset); only those rows' gains
are computed, and only there does the splat read a gain (none on a smooth field's frames). Computing
the gain inside the splat's own sweep instead doubled the finest band's splat time on two cores
(the sweep is memory-bound, and the neighbouring rows are more streams), and so did scaling every
particle of a band whose gains were read: the splat takes its plain taps wherever the gain is 1.
"""
from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # the torch reference path is used instead
    numba = None

__all__ = ["gain_at", "stretch_gain_cpu"]

if numba is not None:

    @numba.njit(cache=True, nogil=True, inline="always")
    def _nearer(disp: np.ndarray, axis: int, y: int, x: int, dy: int, dx: int, size: int, at: int,
                onset: float) -> float:
        # Gap along ``axis`` (0 = x, 1 = y) to the nearer neighbour on that axis: the one after
        # (y + dy, x + dx), one pixel on, then, unless that one is within ``onset``, the one before.
        # A particle with no neighbour on the axis (a canvas one pixel across) is intact: 1.
        own = disp[axis, y, x]
        near = np.float32(np.inf)
        if at + 1 < size:
            near = abs(disp[axis, y + dy, x + dx] - own + np.float32(1.0))
            if near <= onset:
                return near
        if at > 0:
            near = min(near, abs(own - disp[axis, y - dy, x - dx] + np.float32(1.0)))
        return np.float32(1.0) if near == np.inf else near

    @numba.njit(cache=True, nogil=True, inline="always")
    def gain_at(disp: np.ndarray, y: int, x: int, onset: float, gone: float) -> float:
        """Detail gain of particle (y, x) of a (2, H, W) float32 displacement (see stages/stretch.py)."""
        _, height, width = disp.shape
        # Most particles are intact: one close neighbour per axis ends the test after two reads.
        near_x = _nearer(disp, 0, y, x, 0, 1, width, x, onset)
        near_y = _nearer(disp, 1, y, x, 1, 0, height, y, onset)
        isolation = max(near_x, near_y)
        if isolation <= onset:
            return np.float32(1.0)
        return min(max((gone - isolation) / (gone - onset), np.float32(0.0)), np.float32(1.0))

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _torn_rows(disp: np.ndarray, onset: float, rows: np.ndarray) -> int:
        # rows[y]: some particle of row y may be isolated (a gap beyond ``onset`` on its row or
        # to a neighbouring row). Elsewhere every gain is 1 and is neither written nor read.
        # Each row is read once: its own column gaps and the row gaps to the next row.
        _, height, width = disp.shape
        along = np.zeros(height, np.bool_)
        below = np.zeros(height, np.bool_)
        for y in numba.prange(height):
            for x in range(width - 1):
                if abs(disp[0, y, x + 1] - disp[0, y, x] + np.float32(1.0)) > onset:
                    along[y] = True
                    break
            if y + 1 < height:
                for x in range(width):
                    if abs(disp[1, y + 1, x] - disp[1, y, x] + np.float32(1.0)) > onset:
                        below[y] = True
                        break
        count = 0
        for y in range(height):
            rows[y] = along[y] or below[y] or (y > 0 and below[y - 1])
            count += rows[y]
        return count

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _gains(disp: np.ndarray, onset: float, gone: float, rows: np.ndarray, out: np.ndarray) -> None:
        _, height, width = disp.shape
        for y in numba.prange(height):
            if rows[y]:
                for x in range(width):
                    out[y, x] = gain_at(disp, y, x, onset, gone)


def stretch_gain_cpu(disp: np.ndarray, onset: float, gone: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Gain of each particle of a (2, H, W) float32 displacement, on the rows that may have torn particles.

    Returns:
        None when no gap between neighbours exceeds ``onset`` (a smooth field's frames), else
        (gain, rows): (H, W) float32 gain, valid on the rows where ``rows`` (H,) bool is set; every
        other row's gain is 1 and is left unwritten.
    """
    onset, gone = np.float32(onset), np.float32(gone)
    rows = np.empty(disp.shape[1], np.bool_)
    if _torn_rows(disp, onset, rows) == 0:
        return None
    out = np.empty(disp.shape[1:], np.float32)
    _gains(disp, onset, gone, rows, out)
    return out, rows
