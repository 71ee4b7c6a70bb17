"""Colour guided filter (He et al., 2010): an edge-aware smoothing of a mask steered by the photo."""
from __future__ import annotations

import numpy as np

from .._cv import cv2

__all__ = ["guided_filter"]

_TILE = 256
"""Tile side: the filter holds ~20 float planes per pixel, and only tiles near an edge of the
source need filtering (where the source is constant, so is the result)."""


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)² window, mirrored borders."""
    size = 2 * radius + 1
    return cv2.boxFilter(x, -1, (size, size), normalize=True, borderType=cv2.BORDER_REFLECT)


def _solve3(s: dict[tuple[int, int], np.ndarray], rhs: np.ndarray) -> np.ndarray:
    """Per-pixel solution of the symmetric 3x3 systems ``s`` · x = ``rhs`` (Cramer's rule)."""
    c00 = s[1, 1] * s[2, 2] - s[1, 2] * s[1, 2]
    c01 = s[0, 2] * s[1, 2] - s[0, 1] * s[2, 2]
    c02 = s[0, 1] * s[1, 2] - s[0, 2] * s[1, 1]
    c11 = s[0, 0] * s[2, 2] - s[0, 2] * s[0, 2]
    c12 = s[0, 1] * s[0, 2] - s[0, 0] * s[1, 2]
    c22 = s[0, 0] * s[1, 1] - s[0, 1] * s[0, 1]
    det = s[0, 0] * c00 + s[0, 1] * c01 + s[0, 2] * c02
    r0, r1, r2 = rhs[:, :, 0], rhs[:, :, 1], rhs[:, :, 2]
    return np.stack([c00 * r0 + c01 * r1 + c02 * r2,
                     c01 * r0 + c11 * r1 + c12 * r2,
                     c02 * r0 + c12 * r1 + c22 * r2], axis=2) / det[:, :, None]


def _filter_block(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """The guided filter of ``src`` by the (h, w, 3) ``guide`` over one block."""
    mean_i = _box(guide, radius)
    mean_p = _box(src, radius)
    cov_ip = _box(guide * src[:, :, None], radius) - mean_i * mean_p[:, :, None]
    sigma = {}
    for a, b in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)):
        sigma[a, b] = _box(guide[:, :, a] * guide[:, :, b], radius) - mean_i[:, :, a] * mean_i[:, :, b]
        if a == b:
            sigma[a, b] += eps
    coef = _solve3(sigma, cov_ip)
    offset = mean_p - (coef * mean_i).sum(axis=2)
    return (_box(coef, radius) * guide).sum(axis=2) + _box(offset, radius)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """``src`` smoothed so that its edges follow those of ``guide``.

    Args:
        guide: (H, W, 3) float32 image in [0, 1].
        src: (H, W) float32 signal (here a mask).
        radius: window radius in pixels.
        eps: regularisation; image edges with variance well above it are followed.

    Returns:
        (H, W) float32.
    """
    guide = np.ascontiguousarray(guide[:, :, :3], np.float32)
    src = np.ascontiguousarray(src, np.float32)
    height, width = src.shape
    # Each output pixel depends on inputs at most 2 * radius away (two box passes).
    margin = 2 * radius + 1
    out = src.copy()
    for top in range(0, height, _TILE):
        for left in range(0, width, _TILE):
            bottom, right = min(height, top + _TILE), min(width, left + _TILE)
            lo, hi = max(0, top - margin), min(height, bottom + margin)
            first, last = max(0, left - margin), min(width, right + margin)
            window = src[lo:hi, first:last]
            if window.min() == window.max():
                continue
            block = _filter_block(guide[lo:hi, first:last], window, radius, eps)
            out[top:bottom, left:right] = block[top - lo: bottom - lo, left - first: right - first]
    return out
