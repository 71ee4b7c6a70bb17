"""Render options and motion sources on the wire: ``RenderOptions`` / ``MotionSpec`` <-> plain maps.

Part of the wire protocol (see ``protocol.py``); no torch, bundled into the add-on. Everything
read from the wire is validated here and refused with an InputError naming the bad value.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from ..errors import InputError
from ..options import MotionSpec, RenderOptions
from ..region_file import sway_from_plain
from ..stages.motion_file import MAX_MOTION_PX, check_finite_motion
from .parts import Limits
from .ranges import check_motion_ranges, check_option_ranges

__all__ = ["options_to_wire", "options_from_wire", "motion_to_wire", "motion_from_wire"]

_MOTION_KEYS = frozenset({"kind", "hints", "anchors", "anchor_radius", "path", "drift", "sway"})


def options_to_wire(options: RenderOptions) -> dict[str, Any]:
    """Render options as plain values keyed by option name."""
    return options.to_dict()


def options_from_wire(values: Any) -> RenderOptions:
    """Validated RenderOptions from a wire map; raises InputError naming the bad option."""
    if not isinstance(values, dict):
        raise InputError(f"options must be a map of option name to value, got {type(values).__name__}")
    return check_option_ranges(RenderOptions.from_dict(values))


def motion_to_wire(motion: MotionSpec) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The motion source as a plain map plus, for kind field, a ``motion`` part (2, h, w) float32."""
    body = {
        "kind": motion.kind,
        "hints": [[float(v) for v in hint] for hint in motion.hints],
        "anchors": [[float(v) for v in anchor] for anchor in motion.anchors],
        "anchor_radius": motion.anchor_radius,
        "path": motion.path,
        "drift": [float(v) for v in motion.drift] if motion.drift is not None else None,
    }
    if motion.sway is not None:  # only then: a backend older than sway would refuse the key
        if motion.sway.amplitude_image is not None:
            raise InputError("a sway's amplitude image travels with a motion region, not with the single motion",
                             hint="send the mask and its sway as one region (regions=[Region(...)])")
        body["sway"] = motion.sway.describe()
    parts = {}
    if motion.field is not None:
        parts["motion"] = np.ascontiguousarray(motion.field, dtype=np.float32)
    return body, parts


def motion_from_wire(body: Any, parts: Mapping[str, np.ndarray], limits: Limits = Limits()) -> MotionSpec:
    """A validated MotionSpec from a wire map and the optional ``motion`` part.

    Args:
        body: map with kind, hints [[x0, y0, x1, y1], ...] px, anchors [[x, y], ...] px,
            anchor_radius px, path, drift [angle deg, speed px/frame].
        parts: may hold ``motion``: (2, h, w) float16/float32, px/frame at width w.

    Raises:
        InputError: wrong types, non-finite numbers, or a field without its part.
    """
    if not isinstance(body, dict):
        raise InputError(f"motion must be a map, got {type(body).__name__}")
    unknown = sorted(set(body) - _MOTION_KEYS)
    if unknown:
        raise InputError(f"unknown motion key(s): {', '.join(unknown)}")
    kind = body.get("kind", "none")
    field_part = parts.get("motion")
    if field_part is not None and kind != "field":
        raise InputError(f"a motion part was sent but motion kind is {kind!r}", hint="set kind to field")
    motion_field = _motion_field(field_part, limits) if field_part is not None else None
    if isinstance(body.get("sway"), dict) and "amplitude_image" in body["sway"]:
        # A name would be a path on the backend's machine: an amplitude image travels as a region's part.
        raise InputError("a sway's amplitude image travels only with a motion region (as a part)",
                         hint="send the mask and its sway as one region")
    return check_motion_ranges(MotionSpec(
        kind=kind if isinstance(kind, str) else repr(kind),
        hints=tuple(_numbers(h, 4, "hint") for h in _list(body.get("hints"), "hints")),
        anchors=tuple(_numbers(a, 2, "anchor") for a in _list(body.get("anchors"), "anchors")),
        anchor_radius=_optional_number(body.get("anchor_radius"), "anchor_radius"),
        path=_optional_str(body.get("path"), "motion path"),
        drift=_numbers(body["drift"], 2, "drift") if body.get("drift") is not None else None,
        field=motion_field,
        sway=sway_from_plain(body["sway"], "motion") if body.get("sway") is not None else None,
    ).validate())


def _motion_field(part: np.ndarray, limits: Limits) -> np.ndarray:
    """The ``motion`` part as a float32 (2, h, w) copy; InputError when its shape, size or values are off."""
    if part.ndim != 3 or part.shape[0] != 2 or part.dtype == np.uint8:
        raise InputError(f"motion part has shape {part.shape} {part.dtype}; expected (2, h, w) float32 in px/frame")
    if max(part.shape[1:]) > limits.max_image_side or min(part.shape[1:]) < 1:
        raise InputError(f"motion part is {part.shape[2]}x{part.shape[1]}; "
                         f"sides must be 1 to {limits.max_image_side}")
    check_finite_motion(part, "motion part", MAX_MOTION_PX)
    return part.astype(np.float32)


def _is_number(value: Any) -> bool:
    """True for a finite int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _list(value: Any, what: str) -> list[Any]:
    """``value`` as a list (None = empty); InputError otherwise."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(f"motion {what} must be a list, got {type(value).__name__}")
    return value


def _numbers(value: Any, count: int, what: str) -> tuple[float, ...]:
    """A tuple of ``count`` finite floats; InputError naming ``what`` otherwise."""
    if not isinstance(value, list) or len(value) != count or not all(_is_number(v) for v in value):
        raise InputError(f"a motion {what} needs {count} finite numbers, got {value!r}"[:200])
    return tuple(float(v) for v in value)


def _optional_number(value: Any, what: str) -> float | None:
    """None or a finite float; InputError otherwise."""
    if value is None:
        return None
    if not _is_number(value):
        raise InputError(f"motion {what} must be a finite number, got {value!r}"[:200])
    return float(value)


def _optional_str(value: Any, what: str) -> str | None:
    """None or a string; InputError otherwise."""
    if value is not None and not isinstance(value, str):
        raise InputError(f"{what} must be a string, got {type(value).__name__}")
    return value
