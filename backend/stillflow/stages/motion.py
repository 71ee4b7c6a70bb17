"""Every motion source -> one dense field in px/frame at the image's resolution (algorithm.md §2-3)."""
from __future__ import annotations

import logging

import numpy as np

from .._cv import cv2
from ..errors import InputError
from ..options import MotionSpec
from .hints import densify_hints, drift_field
from .motion_file import check_finite_motion, load_motion_file

__all__ = ["build_motion", "resize_motion", "load_motion_file", "check_finite_motion"]

log = logging.getLogger(__name__)

_HINT_WORK_SIDE = 1024


def resize_motion(field: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize of a (2, h, w) field (bilinear up, area down) with x scaled by W/w and y by H/h (algorithm.md §3).

    Returns:
        (2, height, width) float32, px/frame at the new size.
    """
    _, h, w = field.shape
    if (h, w) == (height, width):
        return field.astype(np.float32, copy=True)
    out = np.empty((2, height, width), np.float32)
    # Area averaging when shrinking so small-scale motion is averaged, not aliased.
    interpolation = cv2.INTER_AREA if height * width < h * w else cv2.INTER_LINEAR
    for c, factor in ((0, width / w), (1, height / h)):
        out[c] = cv2.resize(field[c].astype(np.float32), (width, height), interpolation=interpolation) * factor
    return out


def build_motion(spec: MotionSpec, height: int, width: int) -> np.ndarray:
    """The dense motion of ``spec`` at the image size, before speed and mask are applied.

    Args:
        spec: a validated MotionSpec.
        height, width: image size in pixels.

    Returns:
        (2, height, width) float32, px/frame; channel 0 = x (right), 1 = y (down).
    """
    spec.validate()
    if spec.kind == "none":
        return np.zeros((2, height, width), np.float32)
    if spec.kind == "hints":
        scale = min(1.0, _HINT_WORK_SIDE / max(height, width))
        work_h, work_w = max(1, round(height * scale)), max(1, round(width * scale))
        field = densify_hints(work_h, work_w, spec.hints, spec.anchors, anchor_radius=spec.anchor_radius, scale=scale)
        return resize_motion(field, height, width)
    if spec.kind == "drift":
        angle, speed = spec.drift
        return drift_field(height, width, angle, speed)
    if spec.kind == "file":
        return resize_motion(load_motion_file(spec.path), height, width)
    if spec.kind == "field":
        field = np.asarray(spec.field)
        if field.ndim == 4 and field.shape[:2] == (1, 2):
            field = field[0]
        if field.ndim != 3 or field.shape[0] != 2:
            raise InputError(f"motion array has shape {tuple(field.shape)}; expected (2, H, W) or (1, 2, H, W)")
        check_finite_motion(field, "motion array")
        return resize_motion(field.astype(np.float32), height, width)
    if spec.kind == "clip":
        from .clip_flow import estimate_clip_motion

        return resize_motion(estimate_clip_motion(spec.path), height, width)
    raise InputError(f"unknown motion kind {spec.kind!r}")
