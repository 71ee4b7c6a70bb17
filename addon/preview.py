"""Live loop preview and motion overlay in the Image Editor: gpu draw handlers for shaders/. Imports bpy.

Thread and process contract:
  - Only Blender's main thread runs this module: one draw handler, one timer and one load handler.
  - The timer (``_tick``) reads the scene settings, re-densifies the motion field when the arrows,
    the mask or the motion file change, and tags Image Editors for redraw. It never touches the GPU.
  - Motion regions are planned off the main thread: once an edit settles, the timer reads the regions
    (a changed Mask rendered, a changed amplitude image read: ``preview_inputs.KeptArrays``) and, when the
    base is due, the still's pixels, and submits ``core.preview_plan.plan_preview`` to the thread of
    ``core.preview_worker.Planner`` (numpy only, no bpy). A later tick installs the finished plan; the
    previous one is drawn meanwhile. A newer edit, a file load and ``unregister()`` cancel the plan in flight.
  - The draw handler uploads changed fields and draws. Shaders compile on the first draw, never at
    register time: ``gpu`` drawing does not exist in background mode, where neither callback runs.
  - ``unregister()`` removes the handler and the timer and frees every GPU object.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import bpy
import gpu
import numpy as np
import numpy.typing as npt
from gpu_extras.batch import batch_for_shader

from . import inputs, preview_inputs
from .core import preview_math, preview_plan, preview_sway, preview_worker
from .core.lib import ADDON_DIR, load
from .core.request import build_options

log = logging.getLogger(__name__)

__all__ = ["register", "unregister", "draw_controls", "create_info", "draw_uniforms", "SAMPLERS", "PUSH_CONSTANTS"]

_errors = load("errors")

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

_IDLE_INTERVAL_S = 0.25
"""How often the timer looks at the settings while both previews are off, seconds."""

STREAK_SPACING_SCREEN_PX = 28.0
"""Distance between overlay streaks on screen, region pixels."""

STREAK_PERIOD_FRAMES = 48
"""Longest time one overlay streak travels before it restarts (shorter loops use their length), frames."""

STREAK_TRAIL_FRAMES = 6.0
"""Length of a streak's tail in frames of motion, frames."""

OVERLAY_OPACITY = 0.8
"""Overall opacity of the motion overlay, 0..1."""

REGIONS_SETTLE_S = 0.3
"""How long the motion regions must stay unchanged before the preview re-plans them, seconds: a
sway's plan takes about a second of a core at 1920 x 1080, so a dragged slider re-plans once, when it stops."""


@dataclass
class _Field:
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
class _State:
    """Everything register() created; reset by unregister()."""

    handle: Any = None
    started: float = field(default_factory=time.monotonic)
    current: _Field | None = None
    problem: str = ""
    shaders: dict[str, Any] = field(default_factory=dict)
    textures: dict[str, Any] = field(default_factory=dict)
    uploaded_version: int = -1
    uploaded_base: tuple[Any, ...] = ()
    versions: int = 0
    base_key: tuple[Any, ...] = ()
    base: npt.NDArray[np.float32] | None = None
    failed: tuple[tuple[Any, ...], Exception] | None = None
    settle: preview_math.Settle = field(default_factory=preview_math.Settle)
    planner: preview_worker.Planner[preview_plan.PreviewPlan] = field(default_factory=preview_worker.Planner)
    rasters: preview_inputs.KeptArrays = field(default_factory=preview_inputs.KeptArrays)
    amplitudes: preview_inputs.KeptArrays = field(default_factory=preview_inputs.KeptArrays)


_state = _State()


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


def _refresh_field(settings: Any, image: bpy.types.Image) -> None:
    """Recompute the motion field (and a rasterised Mask) when the inputs they depend on changed."""
    if settings.use_regions:
        _refresh_regions(settings, image)
        return
    _state.planner.cancel()  # a regions plan in flight is not wanted any more
    width, height = image.size
    field_h, field_w, scale = preview_math.field_shape(width, height)
    motion_key, compute_motion = preview_inputs.motion_of(settings, width, height, field_h, field_w, scale)
    mask_key: tuple[Any, ...] = (settings.mask_source,)
    if settings.mask_source == "MASK" and settings.mask is not None:
        mask_key += (settings.mask.name, preview_inputs.closed_splines(settings.mask))
    elif settings.mask_source == "IMAGE" and settings.mask_image is not None:
        mask_key += (settings.mask_image.name,)
    key = (width, height, motion_key, mask_key)
    current = _state.current
    if current is not None and current.key == key:
        return
    motion = compute_motion() if current is None or current.key[:3] != key[:3] else current.motion
    mask = None
    if settings.mask_source == "MASK" and settings.mask is not None:
        if current is not None and current.key[3] == mask_key:
            mask = current.mask
        elif not bpy.app.is_job_running("RENDER"):
            mask = inputs.rasterise_mask(settings.mask, field_w, field_h)
    _state.versions += 1
    _state.current = _Field(key=key, motion=motion, scale=motion.shape[2] / width, mask=mask,
                          version=_state.versions)


def _regions_key(settings: Any, width: int, height: int) -> tuple[Any, ...]:
    """What the regions' preview depends on: the still's size, the options, each region and its Mask and images."""
    raster = preview_inputs.raster_size(width, height)
    regions = tuple((item.motion, item.speed, item.drift_angle, item.drift_speed, item.amplitude, item.cycles,
                     item.sway_angle, None if item.mask is None else
                     (item.mask.name, inputs.mask_fingerprint(item.mask, *raster)),
                     None if (scale := inputs.amplitude_image(item)) is None else inputs.image_fingerprint(scale))
                    for item in settings.regions)
    return width, height, "REGIONS", (settings.frames, settings.speed, settings.refine_mask), regions


def _refresh_regions(settings: Any, image: bpy.types.Image) -> None:
    """Install a finished regions plan; hand a changed one to the worker once the edits settle (never waits)."""
    width, height = image.size
    key = _regions_key(settings, width, height)
    _install(_state.planner.take())
    wanted = (key, preview_inputs.still_key(image))
    current = _state.current
    if current is not None and current.planned == wanted:
        return
    if _state.failed is not None and _state.failed[0] == wanted:  # not again every tick: it may take seconds
        raise _state.failed[1].with_traceback(None)
    if _state.planner.pending() == wanted:
        return  # the worker is on it
    _state.planner.cancel()  # superseded: no core spent on a plan nobody will see
    if bpy.app.is_job_running("RENDER"):  # the Masks rasterise through a render
        return
    if not _state.settle.settled(wanted, REGIONS_SETTLE_S, time.monotonic()):
        return  # the last plan stays on screen while the regions are being edited
    size = preview_inputs.raster_size(width, height)
    try:
        masks = [item.mask for item in settings.regions if item.mask is not None]
        if preview_inputs.render_stale(_state.rasters, masks, *size):
            return  # one Mask per tick; the next tick renders the next one, or plans
        regions = inputs.build_regions(
            settings, width, height, rasterise=lambda mask: preview_inputs.mask_raster(_state.rasters, mask, *size),
            grayscale=lambda image, what: preview_inputs.grayscale(_state.amplitudes, image, what))
        options = build_options(settings.option_values())
        preview_sway.check_regions(regions)  # said at once, before any planning
    except (_errors.InputError, OSError, ValueError) as error:
        _state.failed = ((_regions_key(settings, width, height), wanted[1]), error)
        raise
    _state.rasters.keep_only({mask.name for mask in masks})
    _state.amplitudes.keep_only({image.name for image in map(inputs.amplitude_image, settings.regions)
                               if image is not None})
    # again: a new Mask's handles settle when it is first rasterised, which changes its fingerprint
    wanted = (_regions_key(settings, width, height), wanted[1])
    sways = any(region.motion.sway is not None for region in regions)
    still = preview_inputs.still_pixels(image) if sways and wanted[1] != _state.base_key else None
    _state.planner.submit(wanted, lambda should_cancel: preview_plan.plan_preview(
        regions, options, height, width, still=still, should_cancel=should_cancel))


def _install(outcome: preview_worker.Outcome[preview_plan.PreviewPlan] | None) -> None:
    """Make a finished plan the one drawn (main thread); a plan that failed is kept and raised."""
    if outcome is None:
        return
    if outcome.error is not None:
        _state.failed = (outcome.key, outcome.error)
        raise outcome.error.with_traceback(None)
    plan = outcome.value
    if plan.base is not None:
        _state.base_key, _state.base = plan.base_key, plan.base
    key = outcome.key[0]
    _state.versions += 1
    _state.current = _Field(key=key, motion=plan.motion, scale=plan.motion.shape[2] / key[0], mask=plan.weight,
                            version=_state.versions, sway=plan.sway, planned=outcome.key)


def _tick() -> float:
    """Timer: keep the preview's field current and redraw Image Editors while a preview is on."""
    settings = getattr(bpy.context.scene, "stillflow", None)
    if settings is None or not (settings.show_motion_overlay or settings.show_loop_preview):
        return _IDLE_INTERVAL_S
    image = preview_inputs.preview_image(settings)
    try:
        if image is not None:
            _refresh_field(settings, image)
        _state.problem = ""
    except (_errors.InputError, OSError, ValueError) as error:
        _state.problem = str(error)
        _state.current = None
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR":
                area.tag_redraw()
    return 1.0 / max(1.0, settings.fps)


def _float_texture(data: npt.NDArray[np.float32], texture_format: str) -> gpu.types.GPUTexture:
    """A GPU texture from (h, w[, c]) float32 data already in texture layout (rows bottom-up)."""
    height, width = data.shape[:2]
    buffer = gpu.types.Buffer("FLOAT", data.size, np.ascontiguousarray(data).ravel())
    return gpu.types.GPUTexture((width, height), format=texture_format, data=buffer)


def _upload() -> None:
    """Upload a changed field to the GPU (draw time only)."""
    current = _state.current
    if current is None or current.version == _state.uploaded_version:
        return
    _state.textures["motion"] = _float_texture(preview_math.motion_texture(current.motion), "RG32F")
    mask = current.mask if current.mask is not None else np.ones((1, 1), np.float32)
    _state.textures["mask"] = _float_texture(preview_math.mask_texture(mask), "R32F")
    _state.textures["sway"] = _float_texture(current.sway.waves, "RGBA32F")
    _state.textures["shimmer"] = _float_texture(current.sway.shimmer, "R32F")
    drawn_base = _state.base_key if current.sway.active and _state.base is not None else ()
    if "base" not in _state.textures or drawn_base != _state.uploaded_base:  # 192 MB at 12 MP: once per still
        base = _state.base if drawn_base else np.zeros((1, 1, 4), np.float32)
        _state.textures["base"] = _float_texture(base, "RGBA32F")
        _state.uploaded_base = drawn_base
    _state.uploaded_version = current.version


def _shader(program: str) -> gpu.types.GPUShader:
    """The compiled preview program (compiled on first use)."""
    if program not in _state.shaders:
        _state.shaders[program] = gpu.shader.create_from_info(create_info(program))
    return _state.shaders[program]


def draw_uniforms(settings: Any, current: _Field, elapsed_s: float,
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


def _draw() -> None:
    """Draw handler (Image Editor, POST_PIXEL): the loop preview and/or the motion overlay."""
    context = bpy.context
    settings = getattr(context.scene, "stillflow", None)
    space = context.space_data
    if settings is None or _state.current is None or space is None or space.image is None:
        return
    if not (settings.show_motion_overlay or settings.show_loop_preview):
        return
    image = space.image
    if image != preview_inputs.preview_image(settings) or tuple(image.size) != _state.current.key[:2]:
        return
    _upload()
    mask_texture = _state.textures["mask"]
    if settings.mask_source == "IMAGE" and settings.mask_image is not None and not settings.use_regions:
        # The painted image's own GPU texture: strokes show while the artist paints.
        mask_texture = gpu.texture.from_image(settings.mask_image)
    view = context.region.view2d
    x0, y0 = view.view_to_region(0.0, 0.0, clip=False)
    x1, y1 = view.view_to_region(1.0, 1.0, clip=False)
    corners = {"pos": ((x0, y0), (x1, y0), (x0, y1), (x1, y1)), "texco": ((0, 0), (1, 0), (0, 1), (1, 1))}
    matrix = gpu.matrix.get_projection_matrix() @ gpu.matrix.get_model_view_matrix()
    textures = {"image_tex": gpu.texture.from_image(image), "motion_tex": _state.textures["motion"],
                "mask_tex": mask_texture, "sway_tex": _state.textures["sway"], "base_tex": _state.textures["base"],
                "shimmer_tex": _state.textures["shimmer"]}
    uniforms = draw_uniforms(settings, _state.current, time.monotonic() - _state.started,
                             image.size[0] / max(1.0, abs(x1 - x0)))
    gpu.state.blend_set("ALPHA")
    try:
        for program, values in uniforms.items():
            shader = _bind(program, matrix, textures, values)
            batch_for_shader(shader, "TRI_STRIP", corners).draw(shader)
    finally:
        gpu.state.blend_set("NONE")


def _bind(program: str, matrix: Any, textures: dict[str, Any], values: dict[str, Any]) -> gpu.types.GPUShader:
    """Bind a program with its textures and uniforms (typed by PUSH_CONSTANTS)."""
    shader = _shader(program)
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


def draw_controls(layout: bpy.types.UILayout, settings: Any) -> None:
    """Panel rows: the two preview toggles and, while one is on, why nothing may be drawn."""
    column = layout.column(heading="Show")
    column.prop(settings, "show_motion_overlay")
    column.prop(settings, "show_loop_preview")
    if settings.show_motion_overlay or settings.show_loop_preview:
        if _state.problem:
            layout.label(text=_state.problem, icon="INFO")
        elif settings.use_regions and _state.planner.pending() is not None:
            layout.label(text="Updating the regions' preview...", icon="TIME")
        else:
            layout.label(text="Approximate: the final render may differ slightly", icon="INFO")


@bpy.app.handlers.persistent
def _forget(*_args: Any) -> None:
    """Load handler (load_pre): drop the plan in flight and every plan of the file being closed."""
    _state.planner.cancel()
    _state.current, _state.failed, _state.base_key, _state.base = None, None, (), None
    _state.textures.pop("base", None)  # another file's still may have the same name: upload its base again
    _state.rasters, _state.amplitudes = preview_inputs.KeptArrays(), preview_inputs.KeptArrays()


def register() -> None:
    """Add the draw handler, the timer and the load handler; no GPU work (safe in background mode)."""
    if _state.handle is None:
        _state.handle = bpy.types.SpaceImageEditor.draw_handler_add(_draw, (), "WINDOW", "POST_PIXEL")
    if not bpy.app.timers.is_registered(_tick):
        bpy.app.timers.register(_tick, first_interval=_IDLE_INTERVAL_S, persistent=True)
    if _forget not in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.append(_forget)


def unregister() -> None:
    """Remove the draw handler, the timer and the load handler, cancel the plan in flight, free everything cached."""
    global _state
    if _state.handle is not None:
        bpy.types.SpaceImageEditor.draw_handler_remove(_state.handle, "WINDOW")
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)
    if _forget in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_forget)
    _state.planner.cancel()  # its thread ends after the step it is in; nothing it computes is installed
    _state = _State()
