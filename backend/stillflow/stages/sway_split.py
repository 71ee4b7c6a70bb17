"""The split of a swaying frame into a base that moves sub-pixel and a detail that moves by whole pixels.

numpy only (no torch, no cv2, no bpy): the engine (stages/sway_warp.py) and the add-on's live preview
(its base texture) use this one definition, so the preview's sway matches the engine's frames.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["SPLIT_SIGMA", "split_kernel", "gaussian_base"]

SPLIT_SIGMA = 1.5
"""Gaussian σ (px) of the base that moves sub-pixel; its detail moves by whole pixels. On a photo,
sways of 1.5-6 px kept every frame's sharpness (Laplacian variance) within 0.96-1.05 of frame 0's
at 1.5 px, 0.90-1.0 at 1 px and 0.93-1.06 at 2 px (a 4-px transverse wave up to 1.14, docs/regions.md)."""


def split_kernel(sigma: float = SPLIT_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian taps, (2r + 1,) float32 with r = ceil(3σ)."""
    radius = int(math.ceil(3.0 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1, dtype=np.float64) / sigma) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def gaussian_base(image: np.ndarray, sigma: float = SPLIT_SIGMA) -> np.ndarray:
    """The base of ``image`` (h, w, C) float32: separable Gaussian, edges reflected without repeating.

    Returns:
        (h, w, C) float32.
    """
    kernel = split_kernel(sigma)
    radius = len(kernel) // 2
    out = np.asarray(image, np.float32)
    for axis in (0, 1):
        size = out.shape[axis]
        index = np.arange(-radius, size + radius)
        if size > 1:
            period = 2 * (size - 1)
            index = index % period
            index = np.where(index < size, index, period - index)
        else:
            index = np.zeros_like(index)
        padded = np.take(out, index, axis=axis)
        total = np.zeros_like(out)
        for tap, weight in enumerate(kernel):
            window = [slice(None)] * out.ndim
            window[axis] = slice(tap, tap + size)
            total += weight * padded[tuple(window)]
        out = total
    return out
