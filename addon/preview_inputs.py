"""What the live preview reads from Blender on the main thread: the still, its pixels, the regions' Masks. Imports bpy.

Everything here is a cheap read of Blender data into plain values or numpy buffers; the numpy work
on them runs on ``core.preview_worker``'s thread (``core.preview_plan``).
"""
from __future__ import annotations

from typing import Any, Callable

import bpy
import numpy as np
import numpy.typing as npt

from . import inputs
from .core.lib import load
from .core.preview_plan import StillPixels

__all__ = ["preview_image", "closed_splines", "motion_of", "MASK_PREVIEW_SIDE", "raster_size", "KeptArrays",
           "mask_raster", "render_stale", "grayscale", "still_key", "still_pixels"]

_errors = load("errors")


def preview_image(settings: Any) -> bpy.types.Image | None:
    """The still the preview animates: the panel's choice, else the first Image Editor's image."""
    if settings.image is not None:
        return settings.image
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR":
                image = area.spaces.active.image
                if image is not None and image != settings.result and image.source in {"FILE", "GENERATED"}:
                    return image
    return None


def closed_splines(mask: bpy.types.Mask) -> tuple[Any, ...]:
    """Points of a Mask's closed splines: what its rasterised region depends on."""
    return tuple(spline.points for spline in inputs.mask_splines(mask) if spline.is_cyclic)


def motion_of(settings: Any, width: int, height: int, field_h: int, field_w: int,
              scale: float) -> tuple[tuple[Any, ...], Callable[[], npt.NDArray[np.float32]]]:
    """(key, callable computing the unmasked motion field) for the settings' motion source."""
    if settings.motion_source == "HINTS":
        hints, anchors = inputs.motion_hints(settings, width, height)
        if not hints:
            raise _errors.InputError("the preview needs motion arrows", hint="draw open splines on the arrows Mask")
        hints_module = load("stages.hints")
        return ("HINTS", hints, anchors, field_h, field_w), lambda: hints_module.densify_hints(
            field_h, field_w, hints, anchors, scale=scale)
    if settings.motion_source == "FILE":
        path = bpy.path.abspath(settings.motion_path)
        return ("FILE", path), lambda: load("stages.motion_file").load_motion_file(path)
    raise _errors.InputError("the preview cannot show motion from a reference clip",
                             hint="render the loop, or use arrows or a motion file to preview")


MASK_PREVIEW_SIDE = 768
"""Longest side the preview renders a region's Mask at, px. A Mask renders through the compositor on
the main thread: 1.8 s at 4000 x 3000, about 0.1 s at 1024 x 768 and 0.06 s at 768 x 576 on a busy
2-core machine, once per edited Mask. The sway resizes it to the still (nearest), so a still up to
this side gets exactly the masks a render without Refine Mask gets."""


def raster_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) the preview renders a region's Mask at: the still's size, at most MASK_PREVIEW_SIDE."""
    scale = min(1.0, MASK_PREVIEW_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


class KeptArrays:
    """Arrays read or rendered from Blender datablocks, one per datablock, redone only when it changed."""

    def __init__(self) -> None:
        """Nothing kept yet."""
        self._kept: dict[str, tuple[tuple[Any, ...], npt.NDArray[np.float32]]] = {}

    def is_current(self, name: str, fingerprint: tuple[Any, ...]) -> bool:
        """Whether the array of datablock ``name`` is kept for this fingerprint."""
        kept = self._kept.get(name)
        return kept is not None and kept[0] == fingerprint

    def get(self, name: str, fingerprint: Callable[[], tuple[Any, ...]],
            make: Callable[[], npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
        """The kept array of datablock ``name`` while ``fingerprint()`` holds, else ``make()`` (read-only)."""
        if self.is_current(name, fingerprint()):
            return self._kept[name][1]
        array = make()
        array.setflags(write=False)  # the worker reads it while the main thread may hand it out again
        # taken after making it: a new Mask's handles settle when it is first rasterised
        self._kept[name] = (fingerprint(), array)
        return array

    def keep_only(self, names: set[str]) -> None:
        """Forget the arrays of datablocks no region uses any more."""
        for name in set(self._kept) - names:
            del self._kept[name]


def mask_raster(kept: KeptArrays, mask: bpy.types.Mask, width: int, height: int) -> npt.NDArray[np.float32]:
    """A region's Mask rendered at width x height ((H, W) float32, top-down), rendered only when it changed."""
    return kept.get(mask.name, lambda: inputs.mask_fingerprint(mask, width, height),
                    lambda: inputs.rasterise_mask(mask, width, height))


def render_stale(kept: KeptArrays, masks: list[bpy.types.Mask], width: int, height: int) -> bool:
    """Render the first of ``masks`` whose raster is missing or stale; whether one was rendered.

    One Mask per timer tick: a first plan of several regions never holds the main thread for all of them.
    """
    for mask in masks:
        if not kept.is_current(mask.name, inputs.mask_fingerprint(mask, width, height)):
            mask_raster(kept, mask, width, height)
            return True
    return False


def grayscale(kept: KeptArrays, image: bpy.types.Image, what: str) -> npt.NDArray[np.float32]:
    """An amplitude image as ``inputs.grayscale_array`` reads it, read again only when the image changed.

    Its pixels and their conversion take ~0.4-0.9 s at 12 MP on the main thread: once per image, not per edit.
    """
    return kept.get(image.name, lambda: inputs.image_fingerprint(image), lambda: inputs.grayscale_array(image, what))


def still_key(image: bpy.types.Image) -> tuple[Any, ...]:
    """What the still's pixels (and so the sway's base) depend on, without reading a pixel."""
    width, height = image.size
    return image.name, width, height, image.filepath, image.is_float, image.colorspace_settings.name


def still_pixels(image: bpy.types.Image) -> StillPixels:
    """The still's pixels as Blender holds them (one foreach_get into a numpy buffer: ~30 ms at 12 MP)."""
    width, height = image.size
    flat = np.empty(width * height * image.channels, np.float32)
    image.pixels.foreach_get(flat)  # rows bottom-up: already the texture layout
    return StillPixels(still_key(image), flat.reshape(height, width, image.channels),
                       encoded=not image.is_float and not image.colorspace_settings.is_data)
