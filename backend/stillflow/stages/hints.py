"""Sparse arrows and anchors -> dense motion field (normalised Gaussian RBF, algorithm.md §2).

numpy only (no torch, no cv2, no bpy): the add-on bundles this module so its live preview
uses exactly the densification the engine uses.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..options import ARROW_PX_PER_SPEED

__all__ = ["densify_hints", "hint_sigma", "drift_field"]


def hint_sigma(height: int, width: int, count: int) -> float:
    """RBF width in pixels for ``count`` hints: the shorter side divided by the count (algorithm.md §2.1)."""
    return max(1.0, min(height, width) / max(1, count))


def densify_hints(
    height: int,
    width: int,
    hints: Sequence[Sequence[float]],
    anchors: Sequence[Sequence[float]] = (),
    *,
    anchor_radius: float | None = None,
    scale: float = 1.0,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Dense motion from arrows and anchors by a normalised Gaussian RBF, times the mask.

    Args:
        height, width: size of the output field in pixels.
        hints: arrows (x0, y0, x1, y1) in pixels of an image of the *original* size; each
            moves content by (end - start) / ARROW_PX_PER_SPEED px/frame.
        anchors: points (x, y) pinned to zero motion: they join the RBF sum with a zero
            vector and the field is multiplied by 1 - exp(-(d / anchor_radius)^2).
        anchor_radius: radius of an anchor's pin in original pixels (default sigma / 4).
        scale: output pixels per original pixel; coordinates and vectors are scaled by it,
            so a preview at scale 0.25 gets a quarter-size field in its own px/frame.
        mask: optional (height, width) float weights in [0, 1] multiplied into the field.

    Returns:
        motion: (2, height, width) float32, px/frame at the output size; channel 0 = x (right),
        channel 1 = y (down).

    Convention:
        Pixel centres at integer coordinates, origin top-left.
    """
    motion = np.zeros((2, height, width), np.float32)
    if len(hints) == 0:
        return motion
    arrows = np.asarray(hints, np.float64).reshape(-1, 4) * scale
    pins = np.asarray(anchors, np.float64).reshape(-1, 2) * scale
    centres = np.concatenate([arrows[:, :2], pins], axis=0)
    vectors = np.concatenate([(arrows[:, 2:] - arrows[:, :2]) / ARROW_PX_PER_SPEED,
                              np.zeros((len(pins), 2))], axis=0)
    sigma = hint_sigma(height, width, len(centres))
    ys = np.arange(height, dtype=np.float64)[:, None]
    xs = np.arange(width, dtype=np.float64)[None, :]
    # log-sum-exp form: subtract the per-pixel largest exponent so that far from every hint
    # the weights still sum to one instead of underflowing to 0/0.
    exponents = np.stack([-(((xs - cx) ** 2 + (ys - cy) ** 2) / sigma**2) for cx, cy in centres])
    exponents -= exponents.max(axis=0, keepdims=True)
    weights = np.exp(exponents)
    weights /= weights.sum(axis=0, keepdims=True)
    motion[0] = np.tensordot(vectors[:, 0], weights, axes=1)
    motion[1] = np.tensordot(vectors[:, 1], weights, axes=1)
    if len(pins):
        radius = (anchor_radius * scale) if anchor_radius is not None else sigma / 4.0
        pin_factor = np.ones((height, width), np.float64)
        for cx, cy in pins:
            pin_factor *= 1.0 - np.exp(-(((xs - cx) ** 2 + (ys - cy) ** 2) / radius**2))
        motion *= pin_factor.astype(np.float32)
    if mask is not None:
        motion *= mask.astype(np.float32)[None]
    return motion


def drift_field(height: int, width: int, angle_deg: float, speed: float) -> np.ndarray:
    """Uniform motion of ``speed`` px/frame towards ``angle_deg`` (0 = right, 90 = up).

    Returns:
        motion: (2, height, width) float32, px/frame.
    """
    angle = math.radians(angle_deg)
    motion = np.empty((2, height, width), np.float32)
    motion[0] = speed * math.cos(angle)
    motion[1] = -speed * math.sin(angle)
    return motion
