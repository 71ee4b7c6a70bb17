"""Headless consumer of shaders/: renders the preview programs with moderngl (EGL, Mesa llvmpipe).

The headless counterpart of ``addon/preview.py``: it declares the shader interface once, as a GLSL
prelude, and feeds the same GLSL bodies the same texture layouts (``addon/core/preview_math.py``,
``addon/core/preview_sway.py``; ``addon.core`` never imports bpy). Used by ``tests/shaders`` and
``bench/bench_preview.py``. moderngl is imported only when a context is made, so the declaration
tables load anywhere (the bpy test compares them).
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
SHADER_DIR = REPO / "shaders"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from addon.core import preview_math, preview_sway  # noqa: E402  (found through the path entry above)

# The shader interface, (GLSL type, name) per uniform; samplers are bound to units in this order.
SAMPLERS: tuple[tuple[str, str], ...] = (
    ("sampler2D", "image_tex"),
    ("sampler2D", "motion_tex"),
    ("sampler2D", "mask_tex"),
    ("sampler2D", "sway_tex"),
    ("sampler2D", "base_tex"),
    ("sampler2D", "shimmer_tex"),
)
VERTEX_UNIFORMS: tuple[tuple[str, str], ...] = (("mat4", "ModelViewProjectionMatrix"),)
PROGRAM_UNIFORMS: dict[str, tuple[tuple[str, str], ...]] = {
    "loop_preview": (
        ("float", "speed"),
        ("int", "frame"),
        ("int", "frames"),
        ("int", "display_srgb"),
        ("ivec4", "sway_cycles"),
    ),
    "motion_overlay": (
        ("float", "speed"),
        ("float", "time_frames"),
        ("float", "max_speed"),
        ("float", "streak_spacing"),
        ("float", "streak_period"),
        ("float", "streak_trail"),
        ("float", "outline_px"),
        ("float", "opacity"),
        ("int", "overlay_layers"),
        ("int", "frames"),
        ("ivec4", "sway_cycles"),
        ("float", "sway_max"),
    ),
}

_VERTEX_PRELUDE = "#version 330\nin vec2 pos;\nin vec2 texco;\nout vec2 uv;\n"
_FRAGMENT_PRELUDE = "#version 330\nin vec2 uv;\nout vec4 FragColor;\n"


def _declarations(uniforms: tuple[tuple[str, str], ...]) -> str:
    """GLSL uniform declarations, one a line."""
    return "".join(f"uniform {glsl_type} {name};\n" for glsl_type, name in uniforms)


def program_sources(program: str) -> tuple[str, str]:
    """Full (vertex, fragment) GLSL sources: this consumer's prelude + the shared bodies."""
    vertex_body, fragment_body = preview_math.shader_sources(SHADER_DIR, program)
    vertex = _VERTEX_PRELUDE + _declarations(VERTEX_UNIFORMS) + vertex_body
    fragment = _FRAGMENT_PRELUDE + _declarations(SAMPLERS + PROGRAM_UNIFORMS[program]) + fragment_body
    return vertex, fragment


def create_context() -> Any:
    """A standalone EGL OpenGL context (Mesa llvmpipe without a GPU); raises when none can be made."""
    import moderngl

    return moderngl.create_standalone_context(backend="egl")


@dataclass(frozen=True, slots=True)
class OverlayStyle:
    """Overlay uniforms other than the motion and time (units as in motion_overlay.frag.glsl)."""

    max_speed: float = 1.0
    streak_spacing: float = 16.0
    streak_period: float = 24.0
    streak_trail: float = 4.0
    outline_px: float = 1.0
    opacity: float = 1.0
    layers: int = 31


class PreviewRenderer:
    """Both preview programs on one moderngl context, rendering at the image's own resolution."""

    def __init__(self, ctx: Any) -> None:
        """Compile the programs and the full-image quad on ``ctx``."""
        self.ctx = ctx
        self.programs: dict[str, Any] = {}
        for name in PROGRAM_UNIFORMS:
            vertex, fragment = program_sources(name)
            self.programs[name] = ctx.program(vertex_shader=vertex, fragment_shader=fragment)
        corners = np.array([[-1, -1, 0, 0], [1, -1, 1, 0], [-1, 1, 0, 1], [1, 1, 1, 1]], np.float32)
        self._quad = ctx.buffer(corners.tobytes())
        self._vaos = {name: ctx.vertex_array(program, [(self._quad, "2f 2f", "pos", "texco")])
                      for name, program in self.programs.items()}
        identity = np.eye(4, dtype=np.float32).tobytes()
        for name, program in self.programs.items():
            program["ModelViewProjectionMatrix"].write(identity)
            for unit, (_, sampler) in enumerate(SAMPLERS):
                if sampler in program:
                    program[sampler].value = unit
        self._textures: list[Any] = []
        self.sway = preview_sway.no_sway()
        self._fbo: Any = None
        self.size = (0, 0)

    def set_inputs(self, image: npt.NDArray[np.floating], motion: npt.NDArray[np.floating],
                   mask: npt.NDArray[np.floating] | None = None,
                   sway: preview_sway.SwayTextures | None = None) -> None:
        """Upload the inputs.

        Args:
            image: (H, W, 3 or 4) float values, rows top-down.
            motion: (2, h, w) float32 px/frame at its own resolution, y down, unmasked.
            mask: (H', W') weights in [0, 1], rows top-down; None animates everything.
            sway: the swaying regions (``preview_sway.sway_textures``); None = none.
        """
        height, width = image.shape[:2]
        mask_data = np.ones((1, 1), np.float32) if mask is None else preview_math.mask_texture(mask)
        self.sway = preview_sway.no_sway() if sway is None else sway
        image_data = preview_math.image_texture(image)
        layouts = (
            (image_data, 4),
            (preview_math.motion_texture(motion), 2),
            (mask_data, 1),
            (self.sway.waves, 4),
            (preview_sway.base_texture(image_data), 4),
            (self.sway.shimmer, 1),
        )
        for texture in self._textures:
            texture.release()
        self._textures = []
        for data, components in layouts:
            texture = self.ctx.texture((data.shape[1], data.shape[0]), components, data.tobytes(), dtype="f4")
            texture.filter = (self.ctx.NEAREST, self.ctx.NEAREST)
            self._textures.append(texture)
        if self.size != (width, height):
            if self._fbo is not None:
                self._fbo.release()
            self._fbo = self.ctx.simple_framebuffer((width, height), components=4, dtype="f4")
            self.size = (width, height)

    def _render(self, name: str, uniforms: dict[str, float | int]) -> npt.NDArray[np.float32]:
        """Draw one program over the whole framebuffer; (H, W, 4) float32 rows top-down."""
        program = self.programs[name]
        for key, value in uniforms.items():
            program[key].value = value
        for unit, texture in enumerate(self._textures):
            texture.use(location=unit)
        self._fbo.use()
        self._fbo.clear(0.0, 0.0, 0.0, 0.0)
        self._vaos[name].render(self.ctx.TRIANGLE_STRIP)
        width, height = self.size
        pixels = np.frombuffer(self._fbo.read(components=4, dtype="f4"), np.float32).reshape(height, width, 4)
        return preview_math.frame_from_texture(pixels)

    def loop_frame(self, frame: int, frames: int, speed: float = 1.0, *,
                   display_srgb: bool = False) -> npt.NDArray[np.float32]:
        """Loop preview frame t of N: (H, W, 4) float32, rows top-down."""
        return self._render("loop_preview", {"frame": frame, "frames": frames, "speed": speed,
                                             "display_srgb": int(display_srgb), "sway_cycles": self.sway.cycles})

    def overlay(self, time_frames: float, speed: float = 1.0, style: OverlayStyle = OverlayStyle(), *,
                frames: int = 1) -> npt.NDArray[np.float32]:
        """Motion overlay at playback time ``time_frames`` of an N-frame loop: (H, W, 4) straight RGBA, top-down."""
        return self._render("motion_overlay", {
            "frames": frames, "sway_cycles": self.sway.cycles, "sway_max": self.sway.largest,
            "speed": speed, "time_frames": time_frames, "max_speed": style.max_speed,
            "streak_spacing": style.streak_spacing, "streak_period": style.streak_period,
            "streak_trail": style.streak_trail, "outline_px": style.outline_px,
            "opacity": style.opacity, "overlay_layers": style.layers})

    def finish(self) -> None:
        """Wait until the GPU has finished the submitted work (for timings)."""
        self.ctx.finish()

    def release(self) -> None:
        """Free the textures, framebuffer and programs."""
        for texture in self._textures:
            texture.release()
        if self._fbo is not None:
            self._fbo.release()
        for vao in self._vaos.values():
            vao.release()
        self._quad.release()
        for program in self.programs.values():
            program.release()
