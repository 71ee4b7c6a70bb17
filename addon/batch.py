"""Scripted batch renders: generate loops for many stills and wait for each (works in ``blender -b``). Imports bpy.

Thread and process contract:
  - Runs on Blender's main thread only; no timers are needed or used (``blender -b`` has none).
  - Each still goes through ``runner.generate_sync``, which loops ``JobTracker.tick()`` until the
    job ends or its timeout passes (then the job is cancelled and BackendUnavailable is raised).

Per still, ``<name>_mask.png``, ``<name>_motion.npy`` and ``<name>.hints.txt`` beside it replace the
scene's mask / motion (``core.batch``). A still that fails is reported and the batch goes on; a still
whose take for the same inputs and options is already on disk is reused (resume after a crash).

Example (``blender -b scene.blend --python make_loops.py``)::

    import bpy
    from bl_ext.user_default.stillflow import batch
    settings = bpy.context.scene.stillflow
    settings.mask_source, settings.motion_source = "MASK", "HINTS"   # one Mask serves every still
    report = batch.generate_loops(batch.find_stills("/stills"), timeout=900)
    print(report.summary())
"""
from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import bpy

from . import inputs, placement, results, runner
from .core import batch as core_batch
from .core import result_paths
from .core.lib import load
from .core.mask_sources import pixels_to_normalised

log = logging.getLogger(__name__)

__all__ = ["find_stills", "generate_loops"]

_errors = load("errors")

STILL_PATTERNS = ("*.png", "*.jpg", "*.jpeg", "*.tif", "*.tiff", "*.exr")


def find_stills(folder: str | Path, patterns: Iterable[str] = STILL_PATTERNS) -> list[Path]:
    """Still images in ``folder`` (sorted by name; a still's own ``_mask``/``_motion`` files are skipped)."""
    return core_batch.find_stills(Path(folder), patterns)


def generate_loops(stills: Sequence[str | Path], *, context: bpy.types.Context | None = None,
                   timeout: float | None = 600.0, place_in_sequencer: bool = True,
                   loops: int | None = None) -> core_batch.BatchReport:
    """Generate a loop for every still with the scene's Stillflow settings, one after another.

    Args:
        stills: image files; each is loaded (or reused) as an Image datablock.
        context: Blender context (default ``bpy.context``); its scene's ``stillflow`` settings apply
            to every still without its own input files (Mask coordinates are normalised, so one Mask
            fits every size).
        timeout: seconds to wait for each still.
        place_in_sequencer: add each loop as a strip after the previous one, all on one free
            channel, and keep the scene's frame range ending at the last strip.
        loops: loops per strip (default: the panel's Loops, 0 = cover the scene range, at least 1 here).

    Returns:
        The report: loops made, reused and failed stills with their reason (``images`` = loop Image
        names in the order of ``stills``); its summary is also logged and printed.

    Raises:
        Cancelled: the user cancelled a still (the rest is not started); KeyboardInterrupt passes too.
    """
    context = context or bpy.context
    scene = context.scene
    settings = scene.stillflow
    loops = loops if loops is not None else max(1, settings.sequencer_loops)
    report = core_batch.BatchReport()
    next_start, channel = scene.frame_start, _free_channel(scene)
    for path in map(Path, stills):
        try:
            loop, reused = _one_still(context, path, timeout)
        except _errors.Cancelled:
            raise
        except (_errors.StillflowError, OSError, RuntimeError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            report.failed.append((path.name, reason))
            log.error("batch: %s failed: %s", path.name, reason)
            continue
        (report.reused if reused else report.made).append(path.name)
        report.images.append(loop.name)
        report.warnings += [(path.name, warning) for warning in placement.loop_warnings(loop)]
        if place_in_sequencer:
            frames = int(loop.get("stillflow_frames", settings.result_frames))
            strip = results.add_to_sequencer(scene, loop, frames, loops, frame_start=next_start, channel=channel)
            next_start = strip.frame_final_end
            scene.frame_end = next_start - 1  # right after every still, so a batch cut short leaves it right
    log.info("%s", report.summary())
    print(report.summary())
    return report


def _free_channel(scene: bpy.types.Scene) -> int:
    """The lowest sequencer channel without strips (every strip of one batch goes there)."""
    editor = scene.sequence_editor
    used = {s.channel for s in editor.strips} if editor is not None else set()
    return next((c for c in range(1, 129) if c not in used), 128)


def _one_still(context: bpy.types.Context, path: Path, timeout: float | None) -> tuple[bpy.types.Image, bool]:
    """The loop Image for one still and whether an earlier take with the same inputs was reused."""
    if not path.is_file():
        raise _errors.InputError(f"still {path} does not exist")
    still = bpy.data.images.load(str(path), check_existing=True)
    settings = context.scene.stillflow
    with _own_inputs(settings, path, still):
        digest = _digest(settings, still)
        earlier = _take_with(still.name, digest)
        if earlier is not None:
            loop, paths = placement.show_take(still.name, earlier)
            settings.result, settings.result_frames = loop, len(paths)
            log.info("batch: %s reuses %s", path.name, earlier)
            return loop, True
        loop = runner.generate_sync(context, still, timeout=timeout)
    record = {"digest": digest, "still": str(path)}
    (placement.take_of(loop) / core_batch.INPUTS_FILE).write_text(json.dumps(record, indent=2))
    return loop, False


def _digest(settings: bpy.types.PropertyGroup, still: bpy.types.Image) -> str:
    """Digest of the still's pixels, mask, motion and options as the job will send them."""
    request = inputs.build_request(settings, still, "")
    motion = request.motion
    files = [Path(motion.path)] if getattr(motion, "path", None) else []
    return core_batch.inputs_digest(image=request.image, mask=request.mask, motion=motion.describe(),
                                    options=request.options.to_dict(), files=files)


def _take_with(image_name: str, digest: str) -> Path | None:
    """The newest take of the still made from inputs with this digest, if one is on disk."""
    for take in reversed(result_paths.takes(placement.image_folder(image_name))):
        record = take / core_batch.INPUTS_FILE
        try:
            if json.loads(record.read_text()).get("digest") == digest and placement.frame_files(take):
                return take
        except (OSError, ValueError):
            continue
    return None


@contextlib.contextmanager
def _own_inputs(settings: bpy.types.PropertyGroup, path: Path, still: bpy.types.Image) -> Iterator[None]:
    """Use the still's own mask / motion / hints files while it is generated; the scene's settings after."""
    found = core_batch.still_inputs(path)
    names = ("mask_source", "mask_image", "motion_source", "motion_path", "arrows")
    saved = {name: getattr(settings, name) for name in names}
    hints_mask = None
    try:
        if found.mask is not None:
            mask_image = bpy.data.images.load(str(found.mask), check_existing=True)
            mask_image.colorspace_settings.name = "Non-Color"
            settings.mask_source, settings.mask_image = "IMAGE", mask_image
        if found.motion is not None:
            settings.motion_source, settings.motion_path = "FILE", str(found.motion)
        if found.hints is not None:
            arrows, anchors = core_batch.parse_hints(found.hints.read_text(), found.hints.name)
            hints_mask = _hints_mask(f"stillflow hints {path.stem}", arrows, anchors, *still.size)
            settings.motion_source, settings.arrows = "HINTS", hints_mask
        yield
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)
        if hints_mask is not None:
            bpy.data.masks.remove(hints_mask)


def _hints_mask(name: str, arrows: Sequence[Sequence[float]], anchors: Sequence[Sequence[float]],
                width: int, height: int) -> bpy.types.Mask:
    """A Mask whose open splines are the arrows and single points the anchors (pixels -> mask frame)."""
    mask = bpy.data.masks.new(name)
    layer = mask.layers.new(name="arrows")
    layer.hide_render = True
    for arrow in arrows:
        spline = layer.splines.new()
        spline.points.add(1)
        for point, co in zip(spline.points, pixels_to_normalised([arrow[:2], arrow[2:]], width, height)):
            point.co = tuple(co)
    for anchor in anchors:
        spline = layer.splines.new()
        spline.points[0].co = tuple(pixels_to_normalised([anchor], width, height)[0])
    return mask
