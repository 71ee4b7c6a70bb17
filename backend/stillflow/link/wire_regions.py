"""Motion regions on the wire: an optional ``regions`` list in submit, each region's mask (and amplitude image) a part.

Part of the wire protocol (see ``protocol.py``); no torch, bundled into the add-on. A submit
without ``regions`` is the single mask + motion of protocol 1, so old clients keep working; a
backend that knows regions lists ``"regions"`` in its hello capabilities, and a client checks that
before it sends them (an older backend would refuse the unknown field).

Convention:
    ``body["regions"]`` is a list of plain regions (``stillflow.region_file``): ``{"motion": {...},
    "speed": float, "mask": bool}``; ``mask`` true means a part ``region_mask_<i>`` (h, w) uint8 /
    uint16 / float (white / 1 = this region) travels with it; false means the whole image.
    A sway's ``"amplitude_image": true`` means a part ``region_amplitude_<i>`` (h, w) of the same
    types (white / 1 = the sway's amplitude, 0 = still) travels with it; never a file name. Or, to a
    backend listing ``region_amplitude_file``, ``{"name": NAME}`` with the file's bytes or ``{"path": PATH}``
    (``wire_amplitude.py``): the backend decodes the file; the region comes back without the image
    (``file_source`` gives it).
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
from .wire_amplitude import file_source, region_amplitude_file_part, with_amplitude

__all__ = ["REGIONS_CAPABILITY", "AMPLITUDE_CAPABILITY", "WIRE_REGION_KINDS", "region_mask_part",
           "region_amplitude_part", "is_region_part", "has_amplitude_images", "regions_to_wire", "regions_from_wire"]

REGIONS_CAPABILITY = "regions"
"""The hello capability of a backend that accepts ``regions`` in submit."""

AMPLITUDE_CAPABILITY = "region_amplitude"
"""The hello capability of a backend that accepts a sway's amplitude image as a ``region_amplitude_<i>`` part."""

WIRE_REGION_KINDS = ("none", "hints", "drift", "sway")
"""Region motion kinds a submit may carry."""


def region_mask_part(index: int) -> str:
    """The part name of region ``index``'s mask."""
    return f"region_mask_{index}"


def region_amplitude_part(index: int) -> str:
    """The part name of region ``index``'s sway amplitude image."""
    return f"region_amplitude_{index}"


def is_region_part(name: str) -> bool:
    """True for the name of a region's mask or amplitude image part."""
    return name.startswith(("region_mask_", "region_amplitude_"))


def _amplitude_to_wire(region: Region, index: int, plain: dict[str, Any], parts: dict[str, np.ndarray]) -> None:
    """Move the region's sway amplitude image out of ``plain`` into a part (InputError unless an array)."""
    sway = region.motion.sway
    if sway is None or sway.amplitude_image is None:
        return
    image = sway.amplitude_image
    if not isinstance(image, np.ndarray):
        raise InputError(f"region {index + 1}: its amplitude image must be an array to be sent, "
                         f"got {type(image).__name__}", hint="load the amplitude image first")
    image = image[:, :, 0] if image.ndim == 3 else image  # channel 0, as a mask file's
    plain["motion"]["sway"]["amplitude_image"] = True
    parts[region_amplitude_part(index)] = to_wire_dtype(np.ascontiguousarray(image),
                                                        f"region {index + 1}'s amplitude image")


def _amplitude_from_wire(plain: dict[str, Any], parts: Mapping[str, np.ndarray], index: int,
                         limits: Limits) -> tuple[dict[str, Any], np.ndarray | None]:
    """``plain`` without the sway's amplitude_image flag, and the part it announces (checked) or None."""
    where, name = f"region {index + 1}", region_amplitude_part(index)
    motion = plain.get("motion")
    sway = motion.get("sway") if isinstance(motion, dict) else None
    flag = sway.get("amplitude_image", False) if isinstance(sway, dict) else False
    if isinstance(flag, dict):  # its file: the service decodes it (file_source checks the form)
        file_source(flag, parts, index)
        if name in parts:
            raise InputError(f"{where}: sway amplitude_image gives a file but the {name} part is there")
        return {**plain, "motion": {**motion, "sway": _without_flag(sway)}}, None
    if region_amplitude_file_part(index) in parts:
        raise InputError(f"{where}: the {region_amplitude_file_part(index)} part is there but sway amplitude_image "
                         "gives no file name")
    if not isinstance(flag, bool):
        raise InputError(f"{where}: sway amplitude_image must be true (a {name} part follows) or false")
    if flag != (name in parts):
        raise InputError(f"{where}: sway amplitude_image is {str(flag).lower()} but the {name} part is "
                         f"{'missing' if flag else 'there'}")
    if not flag:
        return plain, None
    try:
        check_mask(parts[name], limits)
    except InputError as error:
        raise InputError(f"{where}'s amplitude image: {error}") from None
    image = parts[name]
    image = image.astype(np.float32) if image.dtype == np.float16 else np.array(image)
    return {**plain, "motion": {**motion, "sway": _without_flag(sway)}}, image


def _without_flag(sway: dict[str, Any]) -> dict[str, Any]:
    """A plain sway without its amplitude_image entry."""
    return {key: value for key, value in sway.items() if key != "amplitude_image"}


def _with_amplitude(region: Region, image: np.ndarray | None) -> Region:
    """``region`` whose sway reads ``image`` as its amplitude image (unchanged when None)."""
    return region if image is None or region.motion.sway is None else with_amplitude(region, image)


def has_amplitude_images(regions: Sequence[Region]) -> bool:
    """True when any region's sway has an amplitude image (the backend must list AMPLITUDE_CAPABILITY)."""
    return any(region.motion.sway is not None and region.motion.sway.amplitude_image is not None
               for region in regions)


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
        _amplitude_to_wire(region, index, entry, parts)
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
        plain, amplitude = _amplitude_from_wire({key: value for key, value in entry.items() if key != "mask"},
                                                parts, index, limits)
        region = region_from_plain(plain, where, mask=mask if mask is not None else None)
        regions.append(check_region_ranges(_with_amplitude(region, amplitude), where))
    expected = {part(i) for i in range(len(values))
                for part in (region_mask_part, region_amplitude_part, region_amplitude_file_part)}
    extra = sorted(name for name in parts if is_region_part(name) and name not in expected)
    if extra:
        raise InputError(f"unexpected part(s): {', '.join(extra)}"[:200])
    return tuple(regions)
