"""Translate the panel's plain values into the backend's RenderOptions and MotionSpec.

No ``bpy`` module use. ``stillflow.options`` stays the only place a default lives: the add-on's
properties read their defaults, limits and help texts through ``option_field`` below.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from .lib import load
from .mask_sources import check_aspect

__all__ = [
    "SCENE_OPTIONS",
    "MOTION_SOURCES",
    "MotionSource",
    "option_field",
    "build_options",
    "build_motion",
    "REGION_MOTIONS",
    "SWAY_MOTIONS",
    "sway_default",
    "build_region",
    "with_amplitude_pixels",
]

_options = load("options")
_errors = load("errors")
_wire_amplitude = load("link.wire_amplitude")

SCENE_OPTIONS = ("frames", "fps", "speed", "levels", "detail", "inflow", "feather", "refine_mask", "engine",
                 "device", "format")
"""RenderOptions fields that the scene settings expose under the same names.

``loops`` is not one of them: it only repeats the loop in a video the backend encodes, and the add-on
asks for none; in Blender the sequencer strip's *Loops* (``sequencer_loops``) repeats the loop.
"""

MotionSource = Literal["HINTS", "FILE", "CLIP"]
MOTION_SOURCES: tuple[MotionSource, ...] = ("HINTS", "FILE", "CLIP")


def option_field(name: str) -> tuple[Any, str, str]:
    """(default, help text, unit) of a RenderOptions field, for building a Blender property."""
    for item in dataclasses.fields(_options.RenderOptions):
        if item.name == name:
            return item.default, item.metadata["help"], item.metadata["unit"]
    raise KeyError(name)


def build_options(values: Mapping[str, Any]) -> Any:
    """A validated RenderOptions from plain scene values; InputError names a bad one."""
    return _options.RenderOptions.from_dict({name: values[name] for name in SCENE_OPTIONS if name in values})


REGION_MOTIONS = ("ARROWS", "DRIFT", "SWAY", "SHIMMER")
"""What a region of the panel does: flows along its Mask's arrows, drifts, sways or shimmers in place."""

SWAY_MOTIONS = ("SWAY", "SHIMMER")
"""The region motions that oscillate in place, and so may take an amplitude image."""


def sway_default(name: str) -> Any:
    """Default of a SwaySpec field, as stillflow.options defines it."""
    return next(item.default for item in dataclasses.fields(_options.SwaySpec) if item.name == name)


def build_region(kind: str, mask: Any, *, name: str, speed: float = 1.0,
                 hints: Sequence[Sequence[float]] = (), anchors: Sequence[Sequence[float]] = (),
                 drift: tuple[float, float] = (0.0, 1.0), amplitude: float = 2.0, cycles: int = 1,
                 angle: float = 0.0, amplitude_image: npt.NDArray[np.float32] | str | None = None,
                 amplitude_shape: tuple[int, int] | None = None, still_size: tuple[int, int] | None = None) -> Any:
    """A validated Region of the panel; InputError names the region.

    Args:
        kind: one of REGION_MOTIONS.
        mask: (h, w) float32 in [0, 1], the region (white = this region).
        name: the region's name in the panel, for messages.
        hints, anchors: arrows (x0, y0, x1, y1) and points (x, y) in image pixels (ARROWS).
        drift: (angle deg, px/frame) (DRIFT); amplitude px, cycles, angle deg (SWAY, SHIMMER).
        amplitude_image: (h, w) float32 in [0, 1] multiplying the sway's amplitude (black = still,
            white = ``amplitude``), of the still's aspect ratio (SWAY, SHIMMER; None = the whole region);
            or the path of a file the backend decodes (``link.wire_amplitude``), whose (height, width)
            ``amplitude_shape`` gives.
        still_size: (width, height) of the still, which the amplitude image's shape is checked
            against; None = the mask's.

    Raises:
        InputError: a bad value, or an amplitude image of another shape or on a region that does not sway.
    """
    try:
        if amplitude_image is not None:
            if kind not in SWAY_MOTIONS:
                raise _errors.InputError(f"an amplitude image only scales a sway or a shimmer, not {kind.lower()}",
                                         hint="set its motion to Sway or Shimmer, or clear its amplitude image")
            width, height = still_size if still_size is not None else np.shape(mask)[::-1]
            shape = amplitude_shape if isinstance(amplitude_image, str) else np.shape(amplitude_image)
            check_aspect(shape, width, height, "amplitude image")
        if kind == "ARROWS":
            if not hints:
                raise _errors.InputError("it has no arrows",
                                         hint="draw open splines on its Mask (first point to last point = one arrow)")
            motion = _options.MotionSpec(kind="hints", hints=tuple(tuple(map(float, h)) for h in hints),
                                         anchors=tuple(tuple(map(float, a)) for a in anchors))
        elif kind == "DRIFT":
            motion = _options.MotionSpec(kind="drift", drift=(float(drift[0]), float(drift[1])))
        elif kind in ("SWAY", "SHIMMER"):
            sway = _options.SwaySpec(amplitude=float(amplitude), cycles=int(cycles), angle=float(angle),
                                     shimmer=kind == "SHIMMER", amplitude_image=amplitude_image)
            motion = _options.MotionSpec(kind="sway", sway=sway)
        else:
            raise _errors.InputError(f"unknown region motion {kind!r}", hint=f"use one of {', '.join(REGION_MOTIONS)}")
        return _options.Region(mask=mask, motion=motion, speed=float(speed)).validate()
    except _errors.InputError as error:
        raise _errors.InputError(f"region '{name}': {error}") from None


def with_amplitude_pixels(regions: Sequence[Any], read: Callable[[int], npt.NDArray[np.float32]]) -> tuple[Any, ...]:
    """``regions`` whose amplitude images given as files are ``read(index)``'s arrays instead (for a backend
    that cannot decode such files: it lacks ``link.wire_amplitude.FILE_CAPABILITY``)."""
    files = _wire_amplitude.file_amplitudes(regions)
    return tuple(_wire_amplitude.with_amplitude(region, read(index)) if index in files else region
                 for index, region in enumerate(regions))


def build_motion(source: MotionSource, *, hints: Sequence[Sequence[float]] = (),
                 anchors: Sequence[Sequence[float]] = (), path: str = "", arrows_from: str = "") -> Any:
    """A validated MotionSpec for the chosen motion source.

    Args:
        source: HINTS (arrows and anchors read from a Mask), FILE (motion file) or CLIP (reference clip).
        hints: arrows (x0, y0, x1, y1) in image pixels; anchors: points (x, y) in image pixels.
        path: absolute path of the motion file or clip.
        arrows_from: name of the Mask the arrows came from, for the error message.
    """
    if source == "HINTS":
        if not hints:
            where = f"Mask '{arrows_from}'" if arrows_from else "no Mask chosen for arrows"
            raise _errors.InputError(f"motion arrows are missing ({where})",
                                     hint="draw open splines on a Mask layer (first point to last point = one arrow)")
        return _options.MotionSpec(kind="hints", hints=tuple(tuple(map(float, h)) for h in hints),
                                   anchors=tuple(tuple(map(float, a)) for a in anchors)).validate()
    if source in ("FILE", "CLIP"):
        label = "motion file" if source == "FILE" else "reference clip"
        if not path:
            raise _errors.InputError(f"no {label} chosen", hint=f"pick a {label} in the Stillflow panel")
        if not os.path.isfile(path):
            raise _errors.InputError(f"{label} {path} does not exist", hint=f"pick an existing {label}")
        return _options.MotionSpec(kind=source.lower(), path=path,
                                   anchors=tuple(tuple(map(float, a)) for a in anchors)).validate()
    raise _errors.InputError(f"unknown motion source {source!r}", hint=f"use one of {', '.join(MOTION_SOURCES)}")
