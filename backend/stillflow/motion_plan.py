"""Motion regions -> one typed plan: the flow every flowing region adds up to, and the oscillation.

Each region's mask is loaded, resized and refined by itself. Where feathered regions overlap,
their weights are divided by their sum (where it exceeds 1), so overlapping motions blend by
weight and no pixel gets more than its whole share. A flowing region's motion is its source's
field (arrows densified inside the region, stages/regions.py) times its share and speed; the
flows add up to one field M that the loop engine renders at once (no region's motion is non-zero
outside it, so no region moves another). Swaying regions become stages/sway.py's layers.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import InputError
from .io.images import check_mask_shape, load_amplitude, load_mask
from .options import Region, RenderOptions
from .stages.mask import feather_mask, refine_mask, resize_mask
from .stages.motion import build_motion, resize_motion
from .stages.regions import densify_in_region
from .stages.sway import SwayPlan, combine_sway, plan_sway_layer

__all__ = ["MotionPlan", "plan_motion"]

log = logging.getLogger(__name__)

_HINT_WORK_SIDE = 1024
"""Arrows are densified at most this many px along the longer side, then resized (as stages/motion.py)."""


@dataclass(frozen=True)
class MotionPlan:
    """What the engine renders, at the image's resolution.

    Attributes:
        flow_mask: (H, W) float32 in [0, 1], the flowing regions' shares summed.
        composite_mask: (H, W) float32 in [0, 1], their feathered shares summed (0 = static).
        motion_px: (2, H, W) float32 px/frame, every flow with its speed and share applied.
        sway: the oscillating regions, None when no region sways or shimmers.
    """

    flow_mask: np.ndarray
    composite_mask: np.ndarray
    motion_px: np.ndarray
    sway: SwayPlan | None


def _region_masks(pixels: np.ndarray, region: Region, index: int, count: int,
                  options: RenderOptions) -> tuple[np.ndarray, np.ndarray]:
    """(drawn, feathered) (H, W) float32 masks of one region (ones without a mask)."""
    height, width = pixels.shape[:2]
    if region.mask is None:
        ones = np.ones((height, width), np.float32)
        return ones, ones
    where = "mask" if count == 1 else f"region {index + 1}'s mask"
    drawn = load_mask(region.mask)
    check_mask_shape(where, drawn.shape, height, width)
    drawn = resize_mask(drawn, height, width)
    if options.refine_mask:
        refined = refine_mask(drawn, min_region_frac=options.min_region_frac, min_mask_frac=options.min_mask_frac,
                              image=pixels if options.snap_mask else None)
        if drawn.any() and not refined.any():  # issue 24, 3: say what emptied it and how to turn that off
            raise InputError(f"Refine Mask left nothing of the {where}: it keeps what is painted above 0.5 and "
                             f"the mask's strongest value is {float(drawn.max()):.2f}",
                             hint="paint the region white, or turn off Refine Mask (--no-refine-mask)")
        drawn = refined
    if not drawn.any():
        raise InputError(f"the {where} is empty: nothing would move",
                         hint="paint white where the image should animate, or render without a mask")
    return drawn, feather_mask(drawn, options.feather)


def _amplitude_map(region: Region, index: int, count: int, height: int, width: int) -> np.ndarray | None:
    """The region's sway amplitude image as (H, W) float32 in [0, 1], resized like a mask; None without one.

    A file reads as the add-on reads the image (``load_amplitude_file``: its channels' mean).
    """
    image = region.motion.sway.amplitude_image if region.motion.sway is not None else None
    if image is None:
        return None
    where = "amplitude image" if count == 1 else f"region {index + 1}'s amplitude image"
    amplitude = load_amplitude(image, where)
    check_mask_shape(where, amplitude.shape, height, width)
    return resize_mask(amplitude, height, width)


def _region_flow(region: Region, drawn: np.ndarray, height: int, width: int) -> np.ndarray:
    """The region's dense flow (2, H, W) px/frame, zero outside it, before its share and speed."""
    spec = region.motion
    if spec.kind in ("hints", "sway"):
        scale = min(1.0, _HINT_WORK_SIDE / max(height, width))
        work_h, work_w = max(1, round(height * scale)), max(1, round(width * scale))
        # The region's extent only: its soft weight is applied once, as its share (plan_motion).
        inside = None if region.mask is None else (resize_mask(drawn, work_h, work_w) > 0).astype(np.float32)
        field = densify_in_region(work_h, work_w, spec.hints, spec.anchors, region=inside,
                                  anchor_radius=spec.anchor_radius, scale=scale)
        field = resize_motion(field, height, width)
    else:
        field = build_motion(spec, height, width)
    # Resizing blurs the field's edge by a work pixel: the drawn mask decides where it ends.
    return field * (drawn > 0)[None] if region.mask is not None else field


def plan_motion(pixels: np.ndarray, regions: Sequence[Region], options: RenderOptions) -> MotionPlan:
    """The plan of validated regions over ``pixels`` (H, W, C) float32.

    Raises:
        InputError: a region's mask is empty or unreadable, or its motion source is bad.
    """
    height, width = pixels.shape[:2]
    masks = [_region_masks(pixels, region, index, len(regions), options) for index, region in enumerate(regions)]
    # Overlaps blend by weight: a pixel's shares never add up to more than 1.
    flow_total = np.maximum(1.0, sum(drawn for drawn, _ in masks)).astype(np.float32)
    composite_total = np.maximum(1.0, sum(soft for _, soft in masks)).astype(np.float32)
    motion_px = np.zeros((2, height, width), np.float32)
    flow_mask = np.zeros((height, width), np.float32)
    composite_mask = np.zeros((height, width), np.float32)
    layers = []
    for index, (region, (drawn, soft)) in enumerate(zip(regions, masks)):
        speed = region.speed * options.speed
        share = drawn / flow_total
        spec = region.motion
        needs_field = spec.has_flow or (spec.sway is not None and spec.sway.angle is None)
        field = _region_flow(region, drawn, height, width) if needs_field else None
        if spec.has_flow:
            motion_px += field * (speed * share)[None]
            flow_mask += share
            composite_mask += soft / composite_total
        if spec.sway is not None:
            layers.append(plan_sway_layer(share, spec.sway, frames=options.frames, seed=options.seed + index,
                                          speed=speed, along=field if spec.sway.angle is None else None,
                                          amplitude_map=_amplitude_map(region, index, len(regions), height, width)))
    return MotionPlan(np.minimum(flow_mask, 1.0), np.minimum(composite_mask, 1.0), motion_px,
                      combine_sway(layers, options.frames))
