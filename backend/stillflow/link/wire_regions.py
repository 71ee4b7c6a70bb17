"""Motion regions on the wire: an optional ``regions`` list in submit, each region's mask a part.

Part of the wire protocol (see ``protocol.py``); no torch, bundled into the add-on. A submit
without ``regions`` is the single mask + motion of protocol 1, so old clients keep working; a
backend that knows regions lists ``"regions"`` in its hello capabilities, and a client checks that
before it sends them (an older backend would refuse the unknown field).

Convention:
    ``body["regions"]`` is a list of plain regions (``stillflow.region_file``): ``{"motion": {...},
    "speed": float, "mask": bool}``; ``mask`` true means a part ``region_mask_<i>`` (h, w) uint8 /
    uint16 / float (white / 1 = this region) travels with it; false means the whole image.
    Motion kinds on the wire: none, hints, drift, sway (a motion file or clip stays on its machine).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..options import MAX_REGIONS, Region
from ..region_file import motion_to_plain, region_from_plain
from .parts import Limits, check_mask, to_wire_dtype
from .ranges import check_region_ranges

__all__ = ["REGIONS_CAPABILITY", "WIRE_REGION_KINDS", "region_mask_part", "regions_to_wire", "regions_from_wire"]

REGIONS_CAPABILITY = "regions"
"""The hello capability of a backend that accepts ``regions`` in submit."""

WIRE_REGION_KINDS = ("none", "hints", "drift", "sway")
"""Region motion kinds a submit may carry."""


def region_mask_part(index: int) -> str:
    """The part name of region ``index``'s mask."""
    return f"region_mask_{index}"


def regions_to_wire(regions: Sequence[Region]) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Plain regions for ``body["regions"]`` and their mask parts.

    Raises:
        InputError: too many regions, a mask that is not an array, or a kind that cannot travel.
    """
    if not 1 <= len(regions) <= MAX_REGIONS:
        raise InputError(f"a still takes 1 to {MAX_REGIONS} motion regions, got {len(regions)}")
    plain, parts = [], {}
    for index, region in enumerate(regions):
        region.validate()
        if region.motion.kind not in WIRE_REGION_KINDS:
            raise InputError(f"region {index + 1}: motion kind {region.motion.kind} cannot be sent to a backend",
                             hint=f"use one of {', '.join(WIRE_REGION_KINDS)}")
        if region.mask is not None and not isinstance(region.mask, np.ndarray):
            raise InputError(f"region {index + 1}: its mask must be an array to be sent, "
                             f"got {type(region.mask).__name__}", hint="load the mask image first")
        entry = {"motion": motion_to_plain(region.motion), "speed": float(region.speed),
                 "mask": region.mask is not None}
        if region.mask is not None:
            parts[region_mask_part(index)] = to_wire_dtype(np.ascontiguousarray(region.mask),
                                                           f"region {index + 1}'s mask")
        plain.append(entry)
    return plain, parts


def regions_from_wire(values: Any, parts: Mapping[str, np.ndarray], limits: Limits = Limits()) -> tuple[Region, ...]:
    """Validated regions from ``body["regions"]`` and the mask parts.

    Raises:
        InputError: not a list of 1 to MAX_REGIONS maps, a bad motion, a kind that cannot travel,
            or a mask part missing, unexpected or malformed.
    """
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_REGIONS:
        raise InputError(f"regions must be a list of 1 to {MAX_REGIONS} regions")
    regions = []
    for index, entry in enumerate(values):
        where = f"region {index + 1}"
        if not isinstance(entry, dict):
            raise InputError(f"{where} must be a map with motion, speed and mask")
        has_mask = entry.get("mask", False)
        if not isinstance(has_mask, bool):
            raise InputError(f"{where}: mask must be true (a {region_mask_part(index)} part follows) or false")
        name = region_mask_part(index)
        if has_mask != (name in parts):
            raise InputError(f"{where}: mask is {str(has_mask).lower()} but the {name} part is "
                             f"{'missing' if has_mask else 'there'}")
        mask = None
        if has_mask:
            mask = parts[name]
            check_mask(mask, limits)
            mask = mask.astype(np.float32) if mask.dtype == np.float16 else np.array(mask)
        motion = entry.get("motion", {})
        if isinstance(motion, dict) and motion.get("kind", "none") not in WIRE_REGION_KINDS:
            raise InputError(f"{where}: motion kind {motion.get('kind')!r} cannot be sent to a backend"[:200],
                             hint=f"use one of {', '.join(WIRE_REGION_KINDS)}")
        plain = {key: value for key, value in entry.items() if key != "mask"}
        regions.append(check_region_ranges(region_from_plain(plain, where, mask=mask if mask is not None else None),
                                           where))
    extra = sorted(name for name in parts if name.startswith("region_mask_")
                   and name not in {region_mask_part(i) for i in range(len(values))})
    if extra:
        raise InputError(f"unexpected part(s): {', '.join(extra)}"[:200])
    return tuple(regions)
