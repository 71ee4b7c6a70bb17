"""Plain-data side of the live preview: shader sources, texture layouts, field size, playback phase.

No ``bpy`` module use, and no imports from the rest of the add-on, so the headless shader tests
load this file on its own. ``addon/preview.py`` draws with it in Blender; ``tests/shaders`` and
``bench/bench_preview.py`` render the same shader sources with moderngl.

Convention:
    Backend arrays are top-down: image (H, W, C), mask (H, W), motion (2, H, W) px/frame with
    channel 0 = x (right) and 1 = y (down). Textures use Blender's layout: rows bottom-up, so a
    texture's motion channel 1 points up. Pixel centres sit at integer coordinates.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "PROGRAMS",
    "VERTEX_FILE",
    "COMMON_FILE",
    "PREVIEW_MAX_SIDE",
    "OVERLAY_LAYERS",
    "find_shader_dir",
    "shader_sources",
    "field_shape",
    "image_texture",
    "mask_texture",
    "motion_texture",
    "frame_from_texture",
    "loop_phase",
    "playback_frames",
    "overlay_max_speed",
    "Settle",
]

Program = Literal["loop_preview", "motion_overlay"]

PROGRAMS: dict[str, str] = {
    "loop_preview": "loop_preview.frag.glsl",
    "motion_overlay": "motion_overlay.frag.glsl",
}
"""Fragment source file of each preview program."""

VERTEX_FILE = "preview.vert.glsl"
COMMON_FILE = "preview_common.glsl"

PREVIEW_MAX_SIDE = 256
"""Longest side of the motion field the preview densifies, in pixels (a few ms per arrow edit)."""

OVERLAY_LAYERS = {"colours": 1, "streaks": 2, "outline": 4, "sway": 8, "swings": 16}
"""Bits of the overlay shader's ``overlay_layers`` uniform."""


def find_shader_dir(addon_dir: Path) -> Path:
    """Folder with the GLSL files: ``shaders/`` inside the extension zip, else next to ``addon/`` in a checkout."""
    for candidate in (addon_dir / "shaders", addon_dir.parent / "shaders"):
        if (candidate / VERTEX_FILE).is_file():
            return candidate
    raise FileNotFoundError(f"the preview shaders ({VERTEX_FILE} ...) are missing next to {addon_dir}; "
                            "reinstall the extension from a zip made by scripts/build_extension.py")


def shader_sources(shader_dir: Path, program: Program) -> tuple[str, str]:
    """(vertex body, fragment body) of a preview program; the fragment body starts with the common functions.

    Bodies carry no ``#version`` and no declarations: each consumer prepends its own.
    """
    vertex = (shader_dir / VERTEX_FILE).read_text(encoding="utf-8")
    common = (shader_dir / COMMON_FILE).read_text(encoding="utf-8")
    fragment = (shader_dir / PROGRAMS[program]).read_text(encoding="utf-8")
    return vertex, f"{common}\n{fragment}"


def field_shape(width: int, height: int, max_side: int = PREVIEW_MAX_SIDE) -> tuple[int, int, float]:
    """(field height, field width, scale) of the preview's motion field for a width x height image.

    ``scale`` is field pixels per image pixel (at most 1), the ``scale`` argument of
    ``densify_hints``; a small image keeps its own size.
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(height * scale)), max(1, round(width * scale)), scale


def image_texture(image: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Top-down image (H, W, 3 or 4) -> (H, W, 4) float32 texture data, rows bottom-up, alpha 1 if absent."""
    height, width, channels = image.shape
    rgba = np.ones((height, width, 4), np.float32)
    rgba[..., : min(channels, 4)] = image[..., :4]
    return np.ascontiguousarray(rgba[::-1])


def mask_texture(mask: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Top-down mask (H, W) in [0, 1] -> (H, W) float32 texture data, rows bottom-up."""
    return np.ascontiguousarray(np.clip(mask, 0.0, 1.0)[::-1], dtype=np.float32)


def motion_texture(motion: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Backend motion (2, h, w) px/frame, y down -> (h, w, 2) float32 texture data, rows bottom-up, y up."""
    channels, height, width = motion.shape
    if channels != 2:
        raise ValueError(f"motion must have shape (2, H, W), got {motion.shape}")
    texture = np.empty((height, width, 2), np.float32)
    texture[..., 0] = motion[0, ::-1]
    texture[..., 1] = -motion[1, ::-1]
    return texture


def sway_texture(wave_cos: npt.NDArray[np.floating], wave_sin: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """A sway layer's C and S ((2, H, W) px, y down) as (H, W, 4) float32 texture data, rows bottom-up, y up."""
    texture = np.empty((*wave_cos.shape[1:], 4), np.float32)
    for offset, wave in ((0, wave_cos), (2, wave_sin)):
        texture[..., offset] = wave[0, ::-1]
        texture[..., offset + 1] = -wave[1, ::-1]
    return texture


def frame_from_texture(pixels: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Read-back (H, W, C) rows bottom-up -> (H, W, C) float32 top-down, as the engine's frames."""
    return np.ascontiguousarray(pixels[::-1], dtype=np.float32)


def playback_frames(elapsed_s: float, fps: float) -> float:
    """Playback time in frames after ``elapsed_s`` seconds at ``fps`` frames/s."""
    return max(0.0, elapsed_s) * fps


def loop_phase(elapsed_s: float, fps: float, frames: int) -> int:
    """Loop frame t (0..N-1) shown ``elapsed_s`` seconds after the preview started playing."""
    if frames < 1:
        raise ValueError(f"a loop needs at least one frame, got {frames}")
    return int(math.floor(playback_frames(elapsed_s, fps))) % frames


class Settle:
    """Tells when a changing value has stayed the same for a while (a dragged slider acts once, when it stops)."""

    def __init__(self) -> None:
        """Nothing seen yet."""
        self._value: object = None
        self._since = 0.0

    def settled(self, value: object, seconds: float, now: float) -> bool:
        """Whether ``value`` has been the same since at least ``seconds`` before ``now`` (monotonic seconds)."""
        if self._value is None or self._value != value:
            self._value, self._since = value, now
        return now - self._since >= seconds


def overlay_max_speed(motion: npt.NDArray[np.floating], speed: float, scale: float = 1.0) -> float:
    """Largest |speed * M| in image px/frame, for the overlay's full colour saturation.

    Args:
        motion: (2, h, w) field in px/frame at the field's resolution.
        speed: the speed multiplier.
        scale: field pixels per image pixel (``field_shape``'s scale).
    """
    if motion.size == 0:
        return 0.0
    return float(np.hypot(motion[0], motion[1]).max()) * abs(speed) / scale
