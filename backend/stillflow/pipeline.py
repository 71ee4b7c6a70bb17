"""The render pipeline: inputs -> motion -> loop frames -> frames on disk (+ manifest, video).

``render_frames`` yields frames in memory; ``render`` writes them into a folder atomically.
The CLI and the service are thin layers over these two functions.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from . import __version__
from .devices import pick
from .errors import Cancelled, InputError
from .io.frames import atomic_outputs, check_not_inputs, check_replaceable, check_writable_parent
from .io.images import FRAME_SUFFIX, check_mask_shape, load_frame_uint8, load_image, load_mask, save_frame
from .io.video import check_video_path, encode_video, video_warning
from .link.ranges import check_motion_ranges, check_option_ranges, check_region_ranges
from .motion_plan import plan_motion
from .options import MAX_REGIONS, MotionSpec, Region, RenderOptions
from .progress import CancelFn, Progress, ProgressFn
from .tiles import peak_speed
from .stages.mask import resize_mask
from .stages.sway import SwayPlan

if TYPE_CHECKING:
    from .loop import LoopPlan

__all__ = ["Prepared", "prepare", "loop_plan", "render_frames", "render", "RenderResult", "frame_name"]

log = logging.getLogger(__name__)

_LARGE_TRAVEL = 0.25
"""Warn when content travels more than this fraction of the image width over the loop."""


def frame_name(index: int, fmt: str = "png") -> str:
    """File name of frame ``index``: frame_0000.png, frame_0001.png, ..."""
    return f"frame_{index:04d}{FRAME_SUFFIX[fmt]}"


@dataclass
class Prepared:
    """Validated inputs at the image's resolution, ready for an engine."""

    image: np.ndarray
    flow_mask: np.ndarray
    composite_mask: np.ndarray
    motion_px: np.ndarray
    importance: np.ndarray | None
    warnings: list[str] = field(default_factory=list)
    sway: SwayPlan | None = None


def check_regions(regions: Sequence[Region], mask: object, motion: MotionSpec) -> tuple[Region, ...]:
    """Validated regions; InputError when they come with a mask or motion of their own or are too many."""
    if mask is not None or motion.kind != "none":
        raise InputError("give either regions or one mask and motion, not both",
                         hint="put the mask and motion into a region of their own")
    if not 1 <= len(regions) <= MAX_REGIONS:
        raise InputError(f"a still takes 1 to {MAX_REGIONS} motion regions, got {len(regions)}")
    return tuple(region.validate() for region in regions)


def prepare(image: str | Path | np.ndarray, *, mask: str | Path | np.ndarray | None, motion: MotionSpec,
            options: RenderOptions, importance: str | Path | np.ndarray | None = None,
            regions: Sequence[Region] | None = None) -> Prepared:
    """Load and check every input and build the final motion of every region (motion_plan.py).

    One mask and one motion are one region. ``mask="auto"`` and ``MotionSpec(kind="auto")`` predict
    them with the learned models in ``options.models`` (the StyleCineGAN mask predictor and motion
    generator).
    """
    check_option_ranges(options.validate())
    if regions is not None:
        regions = check_regions(regions, mask, motion)
        for index, region in enumerate(regions):
            check_region_ranges(region, f"region {index + 1}'s" if len(regions) > 1 else "region")
    else:
        check_motion_ranges(motion.validate())
    pixels = load_image(image)
    height, width = pixels.shape[:2]
    if regions is None:
        if isinstance(mask, str) and mask == "auto":
            from .predictors.mask_net import predict_mask

            mask = predict_mask(pixels, options.models, options.auto_mode, device=pick(options.device),
                                min_region_frac=options.min_region_frac, min_mask_frac=max(options.min_mask_frac, 0.10))
        if motion.kind == "auto":
            from .predictors.motion_net import predict_motion

            predicted = predict_motion(pixels, options.models, options.auto_mode, device=pick(options.device))
            motion = MotionSpec(kind="field", field=predicted)
        regions = (Region(mask=mask, motion=motion),)
    for region in regions:
        region.motion.check_inside(height, width)
    plan = plan_motion(pixels, regions, options)
    if plan.sway is not None and options.engine != "loop":
        raise InputError(f"sway and shimmer are rendered by the loop engine, not {options.engine}",
                         hint="use --engine loop, or give the region a flow instead")
    flow_mask, composite_mask, motion_px = plan.flow_mask, plan.composite_mask, plan.motion_px
    z = None
    if importance is not None:
        z = load_mask(importance)
        check_mask_shape("importance map", z.shape, height, width)
        z = resize_mask(z, height, width) * options.importance_scale
    warnings = []
    travel = peak_speed(motion_px) * options.frames
    if travel > _LARGE_TRAVEL * width:
        warnings.append(f"content travels up to {travel:.0f} px over the loop ({travel / width:.0%} of the width): "
                        "expect holes and ghosting; lower --speed or --frames")
        log.warning(warnings[-1])
    return Prepared(pixels, flow_mask, composite_mask, motion_px, z, warnings, plan.sway)


def _frames_of(prepared: Prepared, options: RenderOptions, progress: ProgressFn | None,
               should_cancel: CancelFn | None) -> Iterator[np.ndarray]:
    """Frames of a prepared job from the engine the options name."""
    device = pick(options.device)
    if options.engine == "stylegan":
        from .gan.engine import render_frames_stylegan

        yield from render_frames_stylegan(prepared.image, prepared.composite_mask, prepared.motion_px, options,
                                          progress, should_cancel)
        return
    from .loop import LoopRenderer, sway_frame
    from .tiles import StripRenderer, held_bytes, render_budget
    from .warmup import ensure_engine

    if device.type == "cpu":  # a first run compiles the CPU kernels (a minute): said, never silent
        ensure_engine(progress)

    plan = loop_plan(prepared, options)

    def make(image: np.ndarray, composite_mask: np.ndarray, motion_px: np.ndarray,
             importance: np.ndarray | None, top: int = 0) -> LoopRenderer:
        return LoopRenderer(image, composite_mask, motion_px, plan, importance=importance, device=device,
                            should_cancel=should_cancel, origin=(top, 0))

    if progress is not None:
        progress(Progress("motion", 0, 1))
    renderer: LoopRenderer | StripRenderer
    inputs = held_bytes(prepared.image, prepared.flow_mask, prepared.composite_mask, prepared.motion_px,
                        prepared.importance)
    budget, held = render_budget(device, inputs, *prepared.image.shape[:2])
    if _window_bytes(prepared, options) > budget:
        renderer = StripRenderer(prepared.image, prepared.composite_mask, prepared.motion_px, prepared.importance,
                                 make=make, frames=plan.frames, levels=plan.levels, budget=budget, held=held,
                                 should_cancel=should_cancel, progress=progress)
    else:
        renderer = make(prepared.image, prepared.composite_mask, prepared.motion_px, prepared.importance)
    if progress is not None:
        progress(Progress("motion", 1, 1))
    for t in range(plan.frames):
        if should_cancel is not None and should_cancel():
            raise Cancelled("the job was cancelled; nothing was written")
        yield sway_frame(renderer.frame(t), plan, t)


def loop_plan(prepared: Prepared, options: RenderOptions) -> LoopPlan:
    """The loop engine's plan for a prepared job: the options with what the whole still decides."""
    from .loop import LoopPlan
    from .stages.shading import fit_shading

    # Strips must treat the frame's edges alike: each keeps the whole image's one-frame travel and
    # keys the texture flowing in at its sides on its first row in the still; the shading is fitted
    # on the whole still, so strips keep the same brightness in place (single-scale renders move it all).
    shading = fit_shading(prepared.image, prepared.composite_mask) if options.levels > 1 else None
    return LoopPlan.from_options(options, inflow_keep=peak_speed(prepared.motion_px), sway=prepared.sway,
                                 shading=shading)


def _window_bytes(prepared: Prepared, options: RenderOptions) -> int:
    """Peak bytes of rendering the region that can change in one piece."""
    from .loop import active_region
    from .stages.padding import loop_padding
    from .tiles import renderer_bytes, strip_margin

    if not np.any(prepared.composite_mask) or not np.any(prepared.motion_px):
        return 0
    max_speed = peak_speed(prepared.motion_px)
    rows, cols = active_region(prepared.composite_mask, prepared.motion_px,
                               strip_margin(max_speed, options.frames, options.levels))
    # the renderer pads its window by the loop's travel: a fast motion on a small still is the big case
    return renderer_bytes(rows.stop - rows.start, cols.stop - cols.start, loop_padding(max_speed, options.frames))


def render_frames(image: str | Path | np.ndarray, *, mask: str | Path | np.ndarray | None = None,
                  motion: MotionSpec = MotionSpec(), options: RenderOptions = RenderOptions(),
                  importance: str | Path | np.ndarray | None = None, progress: ProgressFn | None = None,
                  should_cancel: CancelFn | None = None, regions: Sequence[Region] | None = None
                  ) -> Iterator[np.ndarray]:
    """The N frames of the loop, one (H, W, C) float32 array at a time (frame 0 = the input).

    ``regions`` replaces ``mask`` and ``motion``: several regions, each with its own motion.

    Raises:
        InputError: bad image, mask, motion or option (before any frame is produced).
        Cancelled: ``should_cancel()`` returned True between frames.
    """
    prepared = prepare(image, mask=mask, motion=motion, options=options, importance=importance, regions=regions)
    return _frames_of(prepared, options, progress, should_cancel)


@dataclass
class RenderResult:
    """What ``render`` wrote."""

    out_dir: Path
    frame_paths: list[Path]
    manifest: dict
    video: Path | None = None


def render(image: str | Path | np.ndarray, out_dir: str | Path, *, mask: str | Path | np.ndarray | None = None,
           motion: MotionSpec = MotionSpec(), options: RenderOptions = RenderOptions(),
           video: str | Path | None = None, importance: str | Path | np.ndarray | None = None,
           progress: ProgressFn | None = None, should_cancel: CancelFn | None = None,
           manifest_extra: dict | None = None, video_max_side: int | None = None,
           regions: Sequence[Region] | None = None) -> RenderResult:
    """Render the loop into ``out_dir`` (frames + manifest.json, moved into place whole).

    ``regions`` replaces ``mask`` and ``motion``: several regions, each with its own motion.

    ``out_dir`` may replace only a missing or empty folder or an earlier Stillflow result, and
    neither it nor ``video`` may be an input (InputError otherwise, before anything is written).
    Frames and video are staged together and moved into place as one unit; a failure or
    cancellation leaves an existing ``out_dir`` and ``video`` untouched.
    ``manifest_extra`` adds keys to manifest.json (``stillflow batch`` records its input hash there).
    ``video_max_side`` downscales the video (not the frames) to at most that many px on its longer side.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir).resolve()
    video_path = check_video_path(video).resolve() if video is not None else None
    inputs = {"image": image, "mask": mask, "importance": importance,
              "motion file": motion.path if motion.kind in ("file", "clip") else None, "models folder": options.models}
    for index, region in enumerate(regions or ()):
        inputs[f"region {index + 1}'s mask"] = region.mask if isinstance(region.mask, (str, Path)) else None
        is_file = region.motion.kind in ("file", "clip")
        inputs[f"region {index + 1}'s motion file"] = region.motion.path if is_file else None
        inputs[f"region {index + 1}'s amplitude image"] = _amplitude_file(region.motion)
    inputs["amplitude image"] = _amplitude_file(motion)
    check_not_inputs(out_dir, video_path, inputs)
    check_writable_parent(out_dir)
    check_replaceable(out_dir)
    prepared = prepare(image, mask=mask, motion=motion, options=options, importance=importance, regions=regions)
    prepared_at = time.perf_counter()
    height, width = prepared.image.shape[:2]
    if video_path is not None and (warning := video_warning(video_path, width, height, video_max_side)):
        prepared.warnings.append(warning)
        log.warning(warning)
    names = [frame_name(i, options.format) for i in range(options.frames)]
    render_seconds = 0.0
    with atomic_outputs(out_dir, video_path) as (staging, staged_video):
        frames = _frames_of(prepared, options, progress, should_cancel)
        for index, name in enumerate(names):
            tick = time.perf_counter()
            frame = next(frames)
            render_seconds += time.perf_counter() - tick
            save_frame(staging / name, frame, options.format)
            if progress is not None:
                progress(Progress("render", index + 1, options.frames, frame))
        frames.close()  # the renderer's state and its chunk of frames go before the video is encoded
        written_at = time.perf_counter()
        manifest = _manifest(prepared, options, motion, regions, names, {
            "prepare_s": prepared_at - started, "render_s": render_seconds,
            "ms_per_frame": 1000.0 * render_seconds / options.frames,
            "write_s": written_at - prepared_at - render_seconds})
        manifest.update(manifest_extra or {})
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
        if staged_video is not None:
            def video_progress(done: int, total: int) -> None:
                if progress is not None:
                    progress(Progress("video", done, total))

            # frames and video are staged together and moved into place as one unit
            encode_video(staged_video, options.frames, lambda i: load_frame_uint8(staging / names[i]),
                         fps=options.fps, loops=options.loops, progress=video_progress, should_cancel=should_cancel,
                         max_side=video_max_side)
        if should_cancel is not None and should_cancel():  # the last chance before the result moves in
            raise Cancelled("the job was cancelled; nothing was written")
    result = RenderResult(out_dir, [out_dir / name for name in names], manifest, video_path)
    log.info("wrote %d frames of %dx%d into %s%s in %.1f s", options.frames, width, height, out_dir,
             f" and {video_path}" if video_path is not None else "", time.perf_counter() - started)
    return result


def _amplitude_file(motion: MotionSpec) -> str | Path | None:
    """The file name of a motion's sway amplitude image, None without one or for an array."""
    image = motion.sway.amplitude_image if motion.sway is not None else None
    return image if isinstance(image, (str, Path)) else None


def _manifest(prepared: Prepared, options: RenderOptions, motion: MotionSpec, regions: Sequence[Region] | None,
              names: list[str], timings: dict[str, float]) -> dict:
    """What manifest.json records about a render (``stillflow_version`` marks the folder as a result)."""
    height, width, channels = prepared.image.shape
    return {
        "stillflow_version": __version__,
        "engine": options.engine,
        "frames": options.frames,
        "loop_length": options.frames if not options.once else None,
        "once": options.once,
        "fps": options.fps,
        "width": width,
        "height": height,
        "channels": channels,
        "format": options.format,
        "files": names,
        "motion": motion.describe(),
        "regions": [region.describe() for region in regions] if regions is not None else None,
        "max_speed_px_per_frame": peak_speed(prepared.motion_px),
        "mask_fraction": float(prepared.composite_mask.mean()),
        "options": options.to_dict(),
        "warnings": prepared.warnings,
        "timings": timings,
    }
