"""Live loop preview and motion overlay in the Image Editor: what to draw, and the handlers. Imports bpy.

Thread and process contract:
  - Only Blender's main thread runs this module: one draw handler, one timer and one load handler.
  - The timer (``_tick``) reads the scene settings, re-densifies the motion field when the arrows,
    the mask or the motion file change, and tags Image Editors for redraw. It never touches the GPU.
  - Motion regions are planned off the main thread: once an edit settles, the timer reads the regions
    (a changed Mask rendered, a changed amplitude image read: ``preview_inputs.KeptArrays``) and, when the
    base is due, the still's pixels, and submits ``core.preview_plan.plan_preview`` to the thread of
    ``core.preview_worker.Planner`` (numpy only, no bpy). A later tick installs the finished plan; the
    previous one is drawn meanwhile. A newer edit, a file load and ``unregister()`` cancel the plan in flight.
  - The draw handler uploads changed fields and draws (``preview_draw``). Shaders compile on the first draw,
    never at register time: ``gpu`` drawing does not exist in background mode, where neither callback runs.
  - ``unregister()`` removes the handler and the timer and frees every GPU object.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import bpy
import numpy as np
import numpy.typing as npt

from . import inputs, preview_draw, preview_inputs
from .core import preview_math, preview_plan, preview_sway, preview_worker
from .core.lib import load
from .core.request import build_options
from .preview_draw import PUSH_CONSTANTS, SAMPLERS, VERTEX_CONSTANTS, create_info, draw_uniforms

log = logging.getLogger(__name__)

# create_info, draw_uniforms and the shader interface live in preview_draw; they stay importable from here
__all__ = ["register", "unregister", "draw_controls", "create_info", "draw_uniforms", "SAMPLERS", "VERTEX_CONSTANTS",
           "PUSH_CONSTANTS"]

_errors = load("errors")

_IDLE_INTERVAL_S = 0.25
"""How often the timer looks at the settings while both previews are off, seconds."""

REGIONS_SETTLE_S = 0.3
"""How long the motion regions must stay unchanged before the preview re-plans them, seconds: a
sway's plan takes about a second of a core at 1920 x 1080, so a dragged slider re-plans once, when it stops."""


@dataclass
class _State:
    """Everything register() created; reset by unregister()."""

    handle: Any = None
    started: float = field(default_factory=time.monotonic)
    current: preview_draw.Field | None = None
    problem: str = ""
    gpu: preview_draw.GpuCache = field(default_factory=preview_draw.GpuCache)
    versions: int = 0
    base_key: tuple[Any, ...] = ()
    base: npt.NDArray[np.float32] | None = None
    failed: tuple[tuple[Any, ...], Exception] | None = None
    settle: preview_math.Settle = field(default_factory=preview_math.Settle)
    planner: preview_worker.Planner[preview_plan.PreviewPlan] = field(default_factory=preview_worker.Planner)
    rasters: preview_inputs.KeptArrays = field(default_factory=preview_inputs.KeptArrays)
    amplitudes: preview_inputs.KeptArrays = field(default_factory=preview_inputs.KeptArrays)


_state = _State()


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
    _state.current = preview_draw.Field(key=key, motion=motion, scale=motion.shape[2] / width, mask=mask,
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
    _state.current = preview_draw.Field(key=key, motion=plan.motion, scale=plan.motion.shape[2] / key[0],
                                        mask=plan.weight, version=_state.versions, sway=plan.sway,
                                        planned=outcome.key)


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
    preview_draw.draw(_state.gpu, context, settings, image, _state.current, _state.base_key, _state.base,
                time.monotonic() - _state.started)


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
    _state.gpu.textures.pop("base", None)  # another file's still may have the same name: upload its base again
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
