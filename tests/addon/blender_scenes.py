"""Blender data the bpy tests and bench/bench_addon.py build: a saved still and a region + arrow Mask."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np


def saved_still(folder: Path, name: str, rgba: np.ndarray) -> Any:
    """``rgba`` ((H, W, 4) float32, rows bottom-up) saved as ``folder/name.png`` and loaded back from disk."""
    import bpy

    height, width = rgba.shape[:2]
    made = bpy.data.images.new(name, width, height)
    made.pixels.foreach_set(rgba.astype(np.float32).ravel())
    made.filepath_raw, made.file_format = str(folder / f"{name}.png"), "PNG"
    made.save()
    bpy.data.images.remove(made)
    return bpy.data.images.load(str(folder / f"{name}.png"), check_existing=False)


def region_mask(name: str, corners: Sequence[tuple[float, float]], arrow: tuple[tuple[float, float], ...]) -> Any:
    """A Mask: one closed filled polygon (``corners``) on layer 'region', one open spline on layer 'arrows'."""
    import bpy

    mask = bpy.data.masks.new(name)
    region = mask.layers.new(name="region").splines.new()
    region.points.add(len(corners) - 1)
    for point, co in zip(region.points, corners):
        point.co = co
    for point in region.points:  # handle types only once every point sits where it belongs (blender5.md §1.3)
        point.handle_left_type = point.handle_right_type = "VECTOR"
    region.use_cyclic = region.use_fill = True
    spline = mask.layers.new(name="arrows").splines.new()
    spline.points.add(len(arrow) - 1)
    for point, co in zip(spline.points, arrow):
        point.co = co
    return mask
