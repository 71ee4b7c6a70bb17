"""The live preview while a job renders: the backend's small frames in a 'Stillflow preview' Image. Imports bpy.

The backend sends a 128 px copy of each frame it renders with its progress event (docs/protocol.md);
the timer copies the newest one into one byte Image (raw sRGB values, as the frames are encoded), and
Image Editors that showed the still show that Image until the loop replaces it.
"""
from __future__ import annotations

import bpy
import numpy as np

__all__ = ["PREVIEW_NAME", "preview_image", "update", "show_instead_of", "restore"]

PREVIEW_NAME = "Stillflow preview"


def preview_image() -> bpy.types.Image | None:
    """The preview Image, if a job made one."""
    return bpy.data.images.get(PREVIEW_NAME)


def update(frame: np.ndarray) -> bpy.types.Image:
    """Copy an (h, w, C) uint8 preview frame (rows top-down) into the preview Image; the Image."""
    height, width = frame.shape[:2]
    channels = frame.shape[2] if frame.ndim == 3 else 1
    image = preview_image()
    if image is None or tuple(image.size) != (width, height):
        if image is not None:
            bpy.data.images.remove(image)
        image = bpy.data.images.new(PREVIEW_NAME, width, height, alpha=True)
    rgba = np.ones((height, width, 4), np.float32)
    values = frame.reshape(height, width, channels).astype(np.float32) * (1.0 / 255.0)
    rgba[..., :3] = values[..., :3] if channels >= 3 else values[..., :1]
    if channels == 4:
        rgba[..., 3] = values[..., 3]
    image.pixels.foreach_set(rgba[::-1].ravel())
    image.update()
    _redraw(image)
    return image


def show_instead_of(still_name: str) -> int:
    """Show the preview Image in every Image Editor that shows the still; how many."""
    image, still = preview_image(), bpy.data.images.get(still_name)
    shown = 0
    for space, area in _image_spaces():
        if image is not None and still is not None and space.image == still:
            space.image = image
            area.tag_redraw()
            shown += 1
    return shown


def restore(still_name: str) -> None:
    """Put the still back into Image Editors that still show the preview (a job that did not finish)."""
    image, still = preview_image(), bpy.data.images.get(still_name)
    for space, area in _image_spaces():
        if image is not None and space.image == image:
            space.image = still
            area.tag_redraw()


def _image_spaces() -> list[tuple[bpy.types.SpaceImageEditor, bpy.types.Area]]:
    """Every Image Editor space with its area."""
    window_manager = bpy.context.window_manager
    found = []
    for window in window_manager.windows if window_manager is not None else ():
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR":
                found.append((area.spaces.active, area))
    return found


def _redraw(image: bpy.types.Image) -> None:
    """Redraw the editors that show ``image``."""
    for space, area in _image_spaces():
        if space.image == image:
            area.tag_redraw()
