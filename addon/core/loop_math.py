"""Frame arithmetic of a looping frame sequence inside Blender (ImageUser, VSE, scene fps).

No ``bpy`` module use: plain integers and floats in, plain values out.

Convention:
    Scene frames are Blender frame numbers. Loop frames are 0-based indices 0..N-1 of the
    backend's files ``frame_0000.png`` ... (file number = loop frame). Blender's ImageUser maps a
    scene frame f to the image frame ((f - frame_start) mod frame_duration) + 1 + frame_offset
    when cyclic (blender5.md §1.1), so 0-based files need frame_offset = -1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "ImageUserMapping",
    "image_user_mapping",
    "loop_frame_at",
    "loops_to_cover",
    "strip_elements",
    "scene_fps",
]


@dataclass(frozen=True, slots=True)
class ImageUserMapping:
    """The four ImageUser values that play an N-frame loop from a given scene frame."""

    frame_duration: int
    frame_start: int
    frame_offset: int
    use_cyclic: bool = True


def image_user_mapping(frames: int, *, scene_start: int = 1, first_file_number: int = 0) -> ImageUserMapping:
    """ImageUser settings so that scene frame ``scene_start`` shows loop frame 0 and the loop repeats."""
    if frames < 1:
        raise ValueError(f"a loop needs at least one frame, got {frames}")
    return ImageUserMapping(frame_duration=frames, frame_start=scene_start,
                            frame_offset=first_file_number - 1)


def loop_frame_at(scene_frame: int, frames: int, *, scene_start: int = 1) -> int:
    """Loop frame (0..N-1) that scene frame ``scene_frame`` shows when the loop starts at ``scene_start``."""
    return (scene_frame - scene_start) % frames


def loops_to_cover(frames: int, scene_start: int, scene_end: int) -> int:
    """Fewest whole loops of ``frames`` frames covering the scene range [scene_start, scene_end]."""
    length = max(1, scene_end - scene_start + 1)
    return max(1, math.ceil(length / frames))


def strip_elements(file_names: list[str], loops: int) -> list[str]:
    """File names of one VSE image strip that plays the loop ``loops`` times (length N x loops)."""
    if loops < 1:
        raise ValueError(f"loops must be >= 1, got {loops}")
    return list(file_names) * loops


def scene_fps(fps: float) -> tuple[int, float]:
    """Blender's (render.fps, render.fps_base) for a frame rate, e.g. 29.97 -> (30, 1.001)."""
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    whole = max(1, round(fps))
    return whole, whole / fps
