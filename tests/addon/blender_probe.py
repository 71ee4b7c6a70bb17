"""Test helpers for bpy tests: render a scene's compositor or sequencer and read pixels back (rows top-down)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def file_pixels(path: str | Path) -> np.ndarray:
    """(H, W, 3) int levels 0..255 of an 8-bit image file as Blender decodes it."""
    import bpy

    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        width, height = image.size
        buffer = np.empty(width * height * image.channels, np.float32)
        image.pixels.foreach_get(buffer)
    finally:
        bpy.data.images.remove(image)
    return np.round(buffer.reshape(height, width, -1)[::-1, :, :3] * 255).astype(int)


def render_frames(scene: Any, folder: Path, size: tuple[int, int], frames: int, *,
                  compositor: bool) -> list[np.ndarray]:
    """Render scene frames 1..frames through the compositor (or the sequencer) to 8-bit PNG; their pixels."""
    import bpy

    render = scene.render
    render.resolution_x, render.resolution_y = size
    render.resolution_percentage = 100
    render.use_compositing, render.use_sequencer = compositor, not compositor
    settings = render.image_settings
    settings.file_format, settings.color_mode, settings.color_depth = "PNG", "RGB", "8"
    render.filepath = str(folder / "f_####")
    scene.frame_start, scene.frame_end = 1, frames
    bpy.ops.render.render(animation=True, scene=scene.name)
    return [file_pixels(folder / f"f_{frame:04d}.png") for frame in range(1, frames + 1)]
