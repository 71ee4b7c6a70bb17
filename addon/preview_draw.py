"""The live preview's GPU side: the shader interface, create-infos, texture upload and drawing. Imports bpy.

Thread contract: only the draw handler (Blender's main thread, ``preview._draw``) calls ``draw``; it
uploads a changed ``Field`` and compiles a program on its first draw, never at register time
(``gpu`` drawing does not exist in background mode). ``create_info`` and ``draw_uniforms`` touch no
GPU object. The timer side (what to draw, when to re-plan) is ``preview.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import bpy
import gpu
import numpy as np
import numpy.typing as npt
from gpu_extras.batch import batch_for_shader

from .core import preview_math, preview_sway
from .core.lib import ADDON_DIR

__all__ = ["Field", "GpuCache", "create_info", "draw", "draw_uniforms", "SAMPLERS", "VERTEX_CONSTANTS",
           "PUSH_CONSTANTS"]

# The shader interface, declared once for Blender (tests/shaders/glharness.py declares it for moderngl).
SAMPLERS: tuple[tuple[int, str, str], ...] = (
    (0, "FLOAT_2D", "image_tex"),
    (1, "FLOAT_2D", "motion_tex"),
    (2, "FLOAT_2D", "mask_tex"),
    (3, "FLOAT_2D", "sway_tex"),
    (4, "FLOAT_2D", "base_tex"),
    (5, "FLOAT_2D", "shimmer_tex"),
)
VERTEX_CONSTANTS: tuple[tuple[str, str], ...] = (("MAT4", "ModelViewProjectionMatrix"),)
PUSH_CONSTANTS: dict[str, tuple[tuple[str, str], ...]] = {
    "loop_preview": (("FLOAT", "speed"), ("INT", "frame"), ("INT", "frames"), ("INT", "display_srgb"),
                     ("IVEC4", "sway_cycles")),
    # the ivec4 right after the matrix saves its alignment padding (Blender warns past 128 bytes of push constants)
    "motion_overlay": (("IVEC4", "sway_cycles"), ("FLOAT", "speed"), ("FLOAT", "time_frames"), ("FLOAT", "max_speed"),
                       ("FLOAT", "streak_spacing"), ("FLOAT", "streak_period"), ("FLOAT", "streak_trail"),
                       ("FLOAT", "outline_px"), ("FLOAT", "opacity"), ("INT", "overlay_layers"), ("INT", "frames"),
                       ("FLOAT", "sway_max")),
}

STREAK_SPACING_SCREEN_PX = 28.0
"""Distance between overlay streaks on screen, region pixels."""

STREAK_PERIOD_FRAMES = 48
"""Longest time one overlay streak travels before it restarts (shorter loops use their length), frames."""

STREAK_TRAIL_FRAMES = 6.0
"""Length of a streak's tail in frames of motion, frames."""

OVERLAY_OPACITY = 0.8
"""Overall opacity of the motion overlay, 0..1."""


@dataclass
class Field:
    """The preview's motion and mask inputs as plain arrays (what the timer computes)."""

    key: tuple[Any, ...]
    motion: npt.NDArray[np.float32]
    scale: float
    mask: npt.NDArray[np.float32] | None
    version: int
    sway: preview_sway.SwayTextures = field(default_factory=preview_sway.no_sway)
    planned: tuple[Any, ...] = ()
    """The worker job's key (regions key, still key) of a regions plan."""


@dataclass
class GpuCache:
    """The GPU objects the draw handler made: compiled programs, textures and what they hold."""

    shaders: dict[str, Any] = field(default_factory=dict)
    textures: dict[str, Any] = field(default_factory=dict)
    uploaded_version: int = -1
    uploaded_base: tuple[Any, ...] = ()


def create_info(program: str) -> gpu.types.GPUShaderCreateInfo:
    """The GPUShaderCreateInfo of a preview program with its sources from shaders/ (works headless)."""
    vertex, fragment = preview_math.shader_sources(preview_math.find_shader_dir(ADDON_DIR), program)
    interface = gpu.types.GPUStageInterfaceInfo(f"stillflow_{program}_iface")
    interface.smooth("VEC2", "uv")
    info = gpu.types.GPUShaderCreateInfo()
    info.vertex_in(0, "VEC2", "pos")
    info.vertex_in(1, "VEC2", "texco")
    info.vertex_out(interface)
    for slot, sampler_type, name in SAMPLERS:
        info.sampler(slot, sampler_type, name)
    for constant_type, name in VERTEX_CONSTANTS + PUSH_CONSTANTS[program]:
        info.push_constant(constant_type, name)
    info.fragment_out(0, "VEC4", "FragColor")
    info.vertex_source(vertex)
    info.fragment_source(fragment)
    return info


def _float_texture(data: npt.NDArray[np.float32], texture_format: str) -> gpu.types.GPUTexture:
    """A GPU texture from (h, w[, c]) float32 data already in texture layout (rows bottom-up)."""
    height, width = data.shape[:2]
    buffer = gpu.types.Buffer("FLOAT", data.size, np.ascontiguousarray(data).ravel())
    return gpu.types.GPUTexture((width, height), format=texture_format, data=buffer)


def _upload(cache: GpuCache, current: Field, base_key: tuple[Any, ...],
            base: npt.NDArray[np.float32] | None) -> None:
    """Upload a changed field (and the sway's base of the still ``base_key``) to the GPU (draw time only)."""
    if current.version == cache.uploaded_version:
        return
    cache.textures["motion"] = _float_texture(preview_math.motion_texture(current.motion), "RG32F")
    mask = current.mask if current.mask is not None else np.ones((1, 1), np.float32)
    cache.textures["mask"] = _float_texture(preview_math.mask_texture(mask), "R32F")
    cache.textures["sway"] = _float_texture(current.sway.waves, "RGBA32F")
    cache.textures["shimmer"] = _float_texture(current.sway.shimmer, "R32F")
    drawn_base = base_key if current.sway.active and base is not None else ()
    if "base" not in cache.textures or drawn_base != cache.uploaded_base:  # 192 MB at 12 MP: once per still
        cache.textures["base"] = _float_texture(base if drawn_base else np.zeros((1, 1, 4), np.float32), "RGBA32F")
        cache.uploaded_base = drawn_base
    cache.uploaded_version = current.version


def _shader(cache: GpuCache, program: str) -> gpu.types.GPUShader:
    """The compiled preview program (compiled on first use)."""
    if program not in cache.shaders:
        cache.shaders[program] = gpu.shader.create_from_info(create_info(program))
    return cache.shaders[program]


def draw_uniforms(settings: Any, current: Field, elapsed_s: float,
                  image_px_per_screen_px: float = 1.0) -> dict[str, dict[str, Any]]:
    """Each shown program's uniforms (PUSH_CONSTANTS but the matrix) ``elapsed_s`` seconds into playback."""
    sway = current.sway
    shown: dict[str, dict[str, Any]] = {}
    if settings.show_loop_preview:
        shown["loop_preview"] = {
            "speed": settings.speed, "frame": preview_math.loop_phase(elapsed_s, settings.fps, settings.frames),
            "frames": settings.frames, "display_srgb": 1, "sway_cycles": sway.cycles}
    if settings.show_motion_overlay:
        shown["motion_overlay"] = {
            "speed": settings.speed, "time_frames": preview_math.playback_frames(elapsed_s, settings.fps),
            "max_speed": preview_math.overlay_max_speed(current.motion, settings.speed, current.scale),
            "streak_spacing": STREAK_SPACING_SCREEN_PX * image_px_per_screen_px,
            "streak_period": float(min(settings.frames, STREAK_PERIOD_FRAMES)), "streak_trail": STREAK_TRAIL_FRAMES,
            "outline_px": image_px_per_screen_px, "opacity": OVERLAY_OPACITY,
            "overlay_layers": sum(preview_math.OVERLAY_LAYERS.values()), "frames": settings.frames,
            "sway_cycles": sway.cycles, "sway_max": sway.largest}
    return shown


def draw(cache: GpuCache, context: bpy.types.Context, settings: Any, image: bpy.types.Image, current: Field,
         base_key: tuple[Any, ...], base: npt.NDArray[np.float32] | None, elapsed_s: float) -> None:
    """Draw the loop preview and/or the motion overlay of ``current`` over ``image`` in the context's region."""
    _upload(cache, current, base_key, base)
    mask_texture = cache.textures["mask"]
    if settings.mask_source == "IMAGE" and settings.mask_image is not None and not settings.use_regions:
        # The painted image's own GPU texture: strokes show while the artist paints.
        mask_texture = gpu.texture.from_image(settings.mask_image)
    view = context.region.view2d
    x0, y0 = view.view_to_region(0.0, 0.0, clip=False)
    x1, y1 = view.view_to_region(1.0, 1.0, clip=False)
    corners = {"pos": ((x0, y0), (x1, y0), (x0, y1), (x1, y1)), "texco": ((0, 0), (1, 0), (0, 1), (1, 1))}
    matrix = gpu.matrix.get_projection_matrix() @ gpu.matrix.get_model_view_matrix()
    textures = {"image_tex": gpu.texture.from_image(image), "motion_tex": cache.textures["motion"],
                "mask_tex": mask_texture, "sway_tex": cache.textures["sway"], "base_tex": cache.textures["base"],
                "shimmer_tex": cache.textures["shimmer"]}
    uniforms = draw_uniforms(settings, current, elapsed_s, image.size[0] / max(1.0, abs(x1 - x0)))
    gpu.state.blend_set("ALPHA")
    try:
        for program, values in uniforms.items():
            shader = _bind(cache, program, matrix, textures, values)
            batch_for_shader(shader, "TRI_STRIP", corners).draw(shader)
    finally:
        gpu.state.blend_set("NONE")


def _bind(cache: GpuCache, program: str, matrix: Any, textures: dict[str, Any],
          values: dict[str, Any]) -> gpu.types.GPUShader:
    """Bind a program with its textures and uniforms (typed by PUSH_CONSTANTS)."""
    shader = _shader(cache, program)
    shader.bind()
    shader.uniform_float("ModelViewProjectionMatrix", matrix)
    for constant_type, name in PUSH_CONSTANTS[program]:
        if constant_type == "FLOAT":
            shader.uniform_float(name, values[name])
        else:
            shader.uniform_int(name, values[name])
    for name, texture in textures.items():
        shader.uniform_sampler(name, texture)
    return shader
