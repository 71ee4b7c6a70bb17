"""Scripted batch renders: generate loops for many stills and wait for each (works in ``blender -b``). Imports bpy.

Thread and process contract:
  - Runs on Blender's main thread only; no timers are needed or used (``blender -b`` has none).
  - Each still goes through ``runner.generate_sync``, which loops ``JobTracker.tick()`` until the
    job ends or its timeout passes (then the job is cancelled and BackendUnavailable is raised).

Example (``blender -b scene.blend --python make_loops.py``)::

    import bpy
    from bl_ext.user_default.stillflow import batch
    settings = bpy.context.scene.stillflow
    settings.mask_source, settings.motion_source = "MASK", "HINTS"   # one Mask serves every still
    loops = batch.generate_loops(batch.find_stills("/stills"), timeout=900)
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Sequence

import bpy

from . import results, runner
from .core import batch as core_batch

log = logging.getLogger(__name__)

__all__ = ["find_stills", "generate_loops"]

STILL_PATTERNS = ("*.png", "*.jpg", "*.jpeg", "*.tif", "*.tiff", "*.exr")


def find_stills(folder: str | Path, patterns: Iterable[str] = STILL_PATTERNS) -> list[Path]:
    """Still images in ``folder`` (sorted by name)."""
    return core_batch.find_stills(Path(folder), patterns)


def generate_loops(stills: Sequence[str | Path], *, context: bpy.types.Context | None = None,
                   timeout: float | None = 600.0, place_in_sequencer: bool = True,
                   loops: int = 1) -> list[bpy.types.Image]:
    """Generate a loop for every still with the scene's Stillflow settings, one after another.

    Args:
        stills: image files; each is loaded (or reused) as an Image datablock.
        context: Blender context (default ``bpy.context``); its scene's ``stillflow`` settings apply
            to every still (Mask coordinates are normalised, so one Mask fits every size).
        timeout: seconds to wait for each still.
        place_in_sequencer: add each loop as a strip after the previous one (``loops`` times each)
            and extend the scene's frame range to the last strip.

    Returns:
        The loop Images (source SEQUENCE) in the order of ``stills``.

    Raises:
        InputError, BackendUnavailable, JobFailed, Cancelled: the first still that fails stops the batch.
    """
    context = context or bpy.context
    scene = context.scene
    made: list[bpy.types.Image] = []
    next_start = scene.frame_start
    for path in stills:
        still = bpy.data.images.load(str(path), check_existing=True)
        log.info("batch: generating a loop for %s", path)
        loop = runner.generate_sync(context, still, timeout=timeout)
        made.append(loop)
        if place_in_sequencer:
            frames = scene.stillflow.result_frames
            strip = results.add_to_sequencer(scene, loop, frames, loops, frame_start=next_start)
            next_start = strip.frame_final_end
    if place_in_sequencer and made:
        scene.frame_end = next_start - 1
    return made
