"""Colour handling of loop frames in Blender: the frames' colour space and view-transform advice.

No ``bpy`` module use.

Decision (issue 12): the backend writes every format sRGB-encoded, the values of the photo —
8-bit and 16-bit PNG and, today, float EXR too. Blender reads PNG as sRGB but EXR as scene-linear,
so an EXR loop would come out too bright. The frames are not converted; the loop Image (and every
sequencer strip) is *tagged* with the colour space the frames really have, which makes Blender
decode them to the same scene-linear values as the PNG frames, pixel for pixel.
"""
from __future__ import annotations

__all__ = ["FRAME_COLORSPACE", "frame_colorspace", "DATA_FAITHFUL_VIEW", "view_advice"]

FRAME_COLORSPACE = "sRGB"
"""Blender colour space of the backend's frames (every format, see the module note)."""

DATA_FAITHFUL_VIEW = "Standard"
"""The view transform that shows and renders frame values unchanged (sRGB display)."""


def frame_colorspace(file_suffix: str) -> str:
    """Blender colour space name to tag a loop's frames with, from a frame file's suffix."""
    if file_suffix.lower() not in (".png", ".exr"):
        raise ValueError(f"the backend writes .png or .exr frames, not {file_suffix!r}")
    return FRAME_COLORSPACE


def view_advice(view_transform: str, look: str, exposure: float, gamma: float) -> str | None:
    """A one-line hint when the scene's colour management changes the loop's colours; None when it does not."""
    changes = []
    if view_transform != DATA_FAITHFUL_VIEW:
        changes.append(f"the {view_transform} view")
    if look not in ("None", ""):
        changes.append(f"the look {look}")
    if abs(exposure) > 1e-6:
        changes.append(f"exposure {exposure:+g}")
    if abs(gamma - 1.0) > 1e-6:
        changes.append(f"gamma {gamma:g}")
    if not changes:
        return None
    return f"{' and '.join(changes)} change the loop's colours; use Standard to match the photo"
