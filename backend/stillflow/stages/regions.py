"""Arrows and anchors densified inside their own region: distance is measured inside it.

The normalised Gaussian RBF of stages/hints.py with the straight-line distance replaced by the
geodesic distance within the region's mask (8-neighbour chamfer, by fast sweeping on a coarse
grid), so an arrow reaches only pixels it can reach without leaving the region: it never leaks
across static land or into another region, and it stays zero outside its own mask.

numpy only (no torch, no cv2, no bpy): the add-on may bundle this module as it does hints.py.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..options import ARROW_PX_PER_SPEED
from .hints import densify_hints, hint_sigma

__all__ = ["GEODESIC_SIDE", "geodesic_distances", "densify_in_region", "upsample_cells"]

GEODESIC_SIDE = 160
"""Cells along the longer side of the grid the in-region distances are measured on. The RBF is
smooth (sigma = shorter side / hint count), so a coarse grid loses nothing visible; a static gap
narrower than one cell (longer side / 160) does not separate the region's parts."""

_FAR = 1e12
"""Stands for 'unreachable' where a finite number is needed (its RBF weight is exactly 0)."""


def geodesic_distances(inside: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Shortest in-mask path length from each source cell to every cell (8-neighbour chamfer).

    Args:
        inside: (h, w) bool, cells a path may use.
        sources: (k, 2) int (row, column) of each source; each must be an inside cell.

    Returns:
        (k, h, w) float64 distances in cells (1 per side step, sqrt 2 per diagonal step);
        inf where a cell is outside or cannot be reached.
    """
    height, width = inside.shape
    dist = np.full((len(sources), height, width), np.inf)
    for index, (row, col) in enumerate(sources):
        dist[index, row, col] = 0.0
    blocked = ~inside
    diagonal = math.sqrt(2.0)
    # Fast sweeping: relax along rows (down, up) and columns (right, left) until nothing changes;
    # each sweep is a Python loop over lines, each step vectorised over the other axis and sources.
    while True:
        before = dist.copy()
        for lines, axis in ((range(1, height), 1), (range(height - 2, -1, -1), 1),
                            (range(1, width), 2), (range(width - 2, -1, -1), 2)):
            step = 1 if lines.step > 0 else -1
            for line in lines:
                previous = np.take(dist, line - step, axis=axis)
                best = previous + 1.0
                best[:, 1:] = np.minimum(best[:, 1:], previous[:, :-1] + diagonal)
                best[:, :-1] = np.minimum(best[:, :-1], previous[:, 1:] + diagonal)
                current = np.take(dist, line, axis=axis)
                fence = np.take(blocked, line, axis=axis - 1)
                updated = np.where(fence[None], np.inf, np.minimum(current, best))
                if axis == 1:
                    dist[:, line, :] = updated
                else:
                    dist[:, :, line] = updated
        if np.array_equal(before, dist):
            return dist


def _cell_size(height: int, width: int) -> int:
    """Image pixels per side of a grid cell."""
    return max(1, math.ceil(max(height, width) / GEODESIC_SIDE))


def _cells_inside(region: np.ndarray, cell: int) -> np.ndarray:
    """(h, w) bool: cells holding any pixel of the region (so every region pixel has its cell)."""
    height, width = region.shape
    rows, cols = -(-height // cell), -(-width // cell)
    padded = np.zeros((rows * cell, cols * cell), bool)
    padded[:height, :width] = region > 0
    return padded.reshape(rows, cell, cols, cell).any(axis=(1, 3))


def _snap(points: np.ndarray, inside: np.ndarray, cell: int) -> np.ndarray:
    """(k, 2) int (row, column) of the inside cell nearest each (x, y) point in image pixels."""
    cells = np.argwhere(inside)
    centres = (cells + 0.5) * cell - 0.5
    snapped = []
    for x, y in points:
        nearest = np.argmin((centres[:, 0] - y) ** 2 + (centres[:, 1] - x) ** 2)
        snapped.append(cells[nearest])
    return np.asarray(snapped, np.int64).reshape(-1, 2)


def upsample_cells(values: np.ndarray, cell: int, height: int, width: int) -> np.ndarray:
    """Bilinear resampling of (c, h, w) cell values (cell centres) to (c, height, width) pixels."""
    _, rows, cols = values.shape

    def taps(size: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        position = np.clip((np.arange(size) + 0.5) / cell - 0.5, 0, count - 1)
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, count - 1)
        return low, high, (position - low)

    row_low, row_high, row_frac = taps(height, rows)
    col_low, col_high, col_frac = taps(width, cols)
    values = values.astype(np.float32)
    row_frac, col_frac = row_frac.astype(np.float32), col_frac.astype(np.float32)
    by_row = values[:, row_low] * (1 - row_frac)[None, :, None] + values[:, row_high] * row_frac[None, :, None]
    return by_row[:, :, col_low] * (1 - col_frac) + by_row[:, :, col_high] * col_frac


def _extend(values: np.ndarray, inside: np.ndarray, rings: int = 2) -> np.ndarray:
    """Cells outside the region take the mean of their inside neighbours, ring by ring.

    Bilinear upsampling then reads the region's own values at its edge instead of blending
    the zero of the cells beyond it (which would slow the edge's pixels down).
    """
    values = values.copy()
    known = inside.copy()
    for _ in range(rings):
        padded_v = np.pad(values * known[None], ((0, 0), (1, 1), (1, 1)))
        padded_k = np.pad(known.astype(np.float64), 1)
        height, width = known.shape
        total = sum(padded_v[:, 1 + dy:1 + dy + height, 1 + dx:1 + dx + width]
                    for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        count = sum(padded_k[1 + dy:1 + dy + height, 1 + dx:1 + dx + width] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        grow = ~known & (count > 0)
        values[:, grow] = total[:, grow] / count[grow]
        known = known | grow
    return values


def densify_in_region(height: int, width: int, hints: Sequence[Sequence[float]],
                      anchors: Sequence[Sequence[float]] = (), *, region: np.ndarray | None,
                      anchor_radius: float | None = None, scale: float = 1.0) -> np.ndarray:
    """Dense motion from arrows and anchors with distances measured inside ``region``; 0 outside it.

    Args:
        height, width: size of the output field in pixels.
        hints: arrows (x0, y0, x1, y1) in pixels of the original image; (end - start) /
            ARROW_PX_PER_SPEED px/frame each, centred on the arrow's start.
        anchors: points (x, y) pinned to zero motion (as in stages/hints.py).
        region: (height, width) float32 weights in [0, 1]; the field is computed where it is > 0
            and multiplied by it. None = the whole image (exactly stages/hints.densify_hints).
        anchor_radius: radius of an anchor's pin in original pixels (default sigma / 4).
        scale: output pixels per original pixel (a preview's field at its own size).

    Returns:
        motion: (2, height, width) float32, px/frame at the output size; channel 0 = x, 1 = y.

    Convention:
        Pixel centres at integer coordinates, origin top-left. A hint or anchor outside the
        region acts from the region's cell nearest to it.
    """
    if region is None:
        return densify_hints(height, width, hints, anchors, anchor_radius=anchor_radius, scale=scale)
    motion = np.zeros((2, height, width), np.float32)
    if len(hints) == 0 or not np.any(region > 0):
        return motion
    arrows = np.asarray(hints, np.float64).reshape(-1, 4) * scale
    pins = np.asarray(anchors, np.float64).reshape(-1, 2) * scale
    vectors = (arrows[:, 2:] - arrows[:, :2]) / ARROW_PX_PER_SPEED
    cell = _cell_size(height, width)
    inside = _cells_inside(region, cell)
    dist = geodesic_distances(inside, _snap(np.concatenate([arrows[:, :2], pins]), inside, cell)) * cell
    sigma = hint_sigma(height, width, len(arrows) + len(pins))
    # log-sum-exp as in hints.py; a cell no source reaches keeps zero motion.
    exponents = -(np.minimum(dist, _FAR) / sigma) ** 2
    exponents -= exponents.max(axis=0, keepdims=True)
    weights = np.exp(exponents)
    weights /= weights.sum(axis=0, keepdims=True)
    reached = np.isfinite(dist).any(axis=0)
    cells = np.stack([np.tensordot(vectors[:, c], weights[:len(arrows)], axes=1) for c in range(2)]) * reached
    motion[:] = upsample_cells(_extend(cells, inside & reached), cell, height, width)
    if len(pins):
        radius = (anchor_radius * scale) if anchor_radius is not None else sigma / 4.0
        for pin in np.minimum(dist[len(arrows):], _FAR):  # one full-size map at a time
            pin_dist = upsample_cells(_extend(pin[None], inside), cell, height, width)[0]
            motion *= 1.0 - np.exp(-(pin_dist / np.float32(radius)) ** 2)
    motion *= region.astype(np.float32)[None]
    return motion
