"""Ranges that make physical sense for every number a client sends: speed, fps, drift, arrows, anchors.

Part of the wire protocol (see ``protocol.py``); no torch, bundled into the add-on. ``RenderOptions``
and ``MotionSpec`` check types and finiteness; these bounds come on top, for what the backend is
asked over the wire and for every render (pipeline.prepare: the CLI, the API, batch), so no
accepted request can overflow the engine (speed 1e30, a radius of 1e308).
"""
from __future__ import annotations

from ..errors import InputError, shown
from ..options import MAX_IMAGE_SIDE, MotionSpec, Region, RenderOptions
from ..stages.motion_file import MAX_MOTION_PX

__all__ = ["MAX_SPEED", "MIN_FPS", "MAX_MOTION_PX", "MAX_POINT_PX", "MAX_POINTS", "check_option_ranges",
           "check_motion_ranges", "check_region_ranges"]

MAX_SPEED = 100.0
"""Largest speed multiplier (sliders go to 3; beyond 100 any motion tears the still apart)."""

MIN_FPS = 0.01
"""Slowest playback rate (one frame per 100 s, the add-on's minimum); encoders refuse rates near 0."""

MAX_POINT_PX = 2.0 * MAX_IMAGE_SIDE
"""Largest |coordinate| of an arrow end or anchor, and largest anchor radius, in px."""

MAX_POINTS = 1024
"""Most arrows, and most anchors, one motion may have."""


def check_option_ranges(options: RenderOptions) -> RenderOptions:
    """Raise InputError when speed or fps is outside its range; return ``options``."""
    if not MIN_FPS <= options.fps <= 240:
        raise InputError(f"fps must be {MIN_FPS:g} to 240, got {shown(options.fps)}")
    if not 0 <= options.speed <= MAX_SPEED:
        raise InputError(f"speed must be 0 to {MAX_SPEED:g}, got {shown(options.speed)}")
    return options


def check_motion_ranges(motion: MotionSpec) -> MotionSpec:
    """Raise InputError when an arrow, anchor, radius or drift is outside its range, used by the kind or not."""
    if len(motion.hints) > MAX_POINTS or len(motion.anchors) > MAX_POINTS:
        raise InputError(f"a motion takes at most {MAX_POINTS} arrows and {MAX_POINTS} anchors")
    for what, points in (("an arrow", motion.hints), ("an anchor", motion.anchors)):
        for point in points:
            if not all(abs(value) <= MAX_POINT_PX for value in point):
                raise InputError(f"{what}'s coordinates must be within +-{MAX_POINT_PX:g} px, got {shown(point)}")
    if motion.anchor_radius is not None and not motion.anchor_radius <= MAX_POINT_PX:
        raise InputError(f"anchor_radius must be at most {MAX_POINT_PX:g} px, got {shown(motion.anchor_radius)}")
    if motion.drift is not None:
        angle, speed = motion.drift
        if not (-360 <= angle <= 360 and 0 <= speed <= MAX_MOTION_PX):
            raise InputError(f"drift angle must be -360 to 360 deg and drift speed 0 to {MAX_MOTION_PX:g} "
                             f"px/frame, got {shown(motion.drift)}")
    return motion


def check_region_ranges(region: Region, where: str = "region") -> Region:
    """Raise InputError when a region's speed, motion or sway gust is outside its range; return ``region``."""
    if not 0 <= region.speed <= MAX_SPEED:
        raise InputError(f"{where} speed must be 0 to {MAX_SPEED:g}, got {shown(region.speed)}")
    sway = region.motion.sway
    if sway is not None and sway.gust_speed is not None and not sway.gust_speed <= MAX_MOTION_PX:
        raise InputError(f"{where} sway gust_speed must be at most {MAX_MOTION_PX:g} px/frame, "
                         f"got {shown(sway.gust_speed)}")
    check_motion_ranges(region.motion)
    return region
