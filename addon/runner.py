"""Run Stillflow jobs from Blender: submit, follow with one timer, place the result. Imports bpy.

Thread and process contract:
  - Only Blender's main thread touches bpy, and everything here runs on it.
  - ``CONNECTION`` owns the Client (DEALER socket) and a local backend process; both are used only
    from operators and the timer on the main thread, and closed by ``shutdown()`` on unregister.
  - The add-on starts no Python threads; the engine runs in the backend process.
  - One timer (``_timer``) whose body is one call to ``JobTracker.tick()``; it never blocks.
  - Without timers (``blender -b``) ``generate_sync`` calls ``JobTracker.wait()``, which loops tick()
    until the job ends or the timeout passes.
"""
from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import bpy

from . import inputs, placement, results
from .core.backend import Connection
from .core.jobs import JobTracker
from .core.lib import load
from .properties import backend_config, output_root

log = logging.getLogger(__name__)

__all__ = ["CONNECTION", "active_tracker", "start", "cancel", "generate_sync", "place_result", "shutdown"]

_errors = load("errors")

CONNECTION = Connection()
_active: JobTracker | None = None


def active_tracker() -> JobTracker | None:
    """The job the panel follows, if one is running."""
    return _active if _active is not None and not _active.is_finished else None


def _job_folder(context: bpy.types.Context, image: bpy.types.Image) -> str:
    """A fresh result folder for one job: <output folder>/<image name>_<time>."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(image.name).stem) or "loop"
    return str(output_root(context) / f"{stem}_{time.strftime('%Y%m%d-%H%M%S')}_{time.monotonic_ns() % 10**6:06d}")


def _tracker(context: bpy.types.Context, image: bpy.types.Image) -> JobTracker:
    """Snapshot the inputs, connect (starting a local backend if needed) and submit one job."""
    scene = context.scene
    config = backend_config(context)
    request = inputs.build_request(scene.stillflow, image, _job_folder(context, image), share_files=config.is_local)
    client = CONNECTION.get_client(config)
    scene_name, image_name = scene.name, image.name

    def on_update(tracker: JobTracker) -> None:
        _show_progress(scene_name, tracker)

    def on_finish(tracker: JobTracker) -> None:
        _finish(scene_name, image_name, tracker)

    tracker = JobTracker(client, request, on_update=on_update, on_finish=on_finish)
    tracker.submit()
    settings = scene.stillflow
    settings.is_running, settings.progress, settings.status = True, 0.0, f"Queued: {image.name}"
    return tracker


def _timer() -> float | None:
    """Timer body: one tick of the running job (the outermost layer, so it logs anything unexpected)."""
    try:
        return _active.tick() if _active is not None else None
    except _errors.StillflowError:
        return None  # the loop could not be placed; _finish already put the reason into the panel's status
    except Exception:
        log.exception("the Stillflow job timer failed")
        _status_bar(None)
        return None


def start(context: bpy.types.Context, image: bpy.types.Image) -> JobTracker:
    """Submit a job and follow it from a timer; in background mode (no timers) wait for it instead."""
    global _active
    tracker = _tracker(context, image)
    _active = tracker
    if bpy.app.background:
        tracker.wait()
    else:
        bpy.app.timers.register(_timer, first_interval=tracker.interval)
    return tracker


def cancel() -> bool:
    """Ask the backend to stop the running job; False when none runs."""
    tracker = active_tracker()
    if tracker is None:
        return False
    tracker.cancel()
    return True


def generate_sync(context: bpy.types.Context, image: bpy.types.Image, *, timeout: float | None = 600.0
                  ) -> bpy.types.Image:
    """Generate a loop for ``image`` and wait for it (works in ``blender -b``); the loaded loop Image.

    Raises:
        InputError, BackendUnavailable, JobFailed, Cancelled: with a one-line message.
    """
    global _active
    tracker = _tracker(context, image)
    _active = tracker
    tracker.wait(timeout)
    return context.scene.stillflow.result


def _status_bar(text: str | None) -> None:
    """Show ``text`` in the status bar of every workspace (None clears it)."""
    for workspace in bpy.data.workspaces:
        workspace.status_text_set(text)


def _redraw() -> None:
    """Redraw the Image Editors so the panel's progress bar moves."""
    window_manager = bpy.context.window_manager
    for window in window_manager.windows if window_manager is not None else ():
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR":
                area.tag_redraw()


def _show_progress(scene_name: str, tracker: JobTracker) -> None:
    """Copy the tracker's progress into the scene settings and the status bar."""
    scene = bpy.data.scenes.get(scene_name)
    if scene is None:
        return
    text = f"Stillflow: {tracker.stage or tracker.state} {tracker.fraction:.0%}"
    scene.stillflow.progress = tracker.fraction
    scene.stillflow.status = text
    _status_bar(text)
    _redraw()


def _finish(scene_name: str, image_name: str, tracker: JobTracker) -> None:
    """Load a finished job's frames, or show why it ended (StillflowError when the loop cannot be placed)."""
    scene = bpy.data.scenes.get(scene_name)
    _status_bar(None)
    try:
        if scene is not None:
            _show_end(scene, image_name, tracker)
    finally:
        tracker.release_frames()
        _redraw()


def _show_end(scene: bpy.types.Scene, image_name: str, tracker: JobTracker) -> None:
    """Place a done job's loop, or put why it ended into the panel's status."""
    settings = scene.stillflow
    settings.is_running = False
    if tracker.state == "done":
        try:
            place_result(scene, image_name, tracker.result or {}, tracker.request.out_dir,
                         tracker.request.options.frames, tracker.request.options.fps)
        except _errors.StillflowError as error:
            settings.status = f"Error: {error}"
            log.error("Stillflow result for %s could not be placed: %s", image_name, error)
            raise
    elif tracker.state == "cancelled":
        settings.status = "Cancelled"
    else:
        settings.status = f"Error: {tracker.error}"
        log.error("Stillflow job for %s failed: %s", image_name, tracker.error)


def place_result(scene: bpy.types.Scene, image_name: str, result: dict, out_dir: str, frames: int,
                 fps: float) -> bpy.types.Image:
    """Move a result into the still's next take, show it through its loop Image (the same one on a regenerate).

    The placement is an undo step (``placement``).

    Raises:
        StillflowError: the frames a remote backend sent cannot be written to ``out_dir``, or the
            frame files cannot be moved or loaded (one line naming the folder).
    """
    settings = scene.stillflow
    try:
        if result.get("frame_paths"):
            frames_dir = Path(str(result["frame_paths"][0])).parent
        else:
            fmt = (result.get("manifest") or {}).get("options", {}).get("format", "png")
            frames_dir = Path(results.write_frames(result["frames"], out_dir, result.get("manifest"), fmt)[0]).parent
        loop, paths = placement.place_take(scene, image_name, frames_dir)
    except (OSError, RuntimeError) as error:
        reason = (error.strerror if isinstance(error, OSError) and error.strerror else str(error)).strip()
        raise _errors.StillflowError(f"the loop's frames cannot be written to or loaded from {out_dir}: "
                                     f"{reason.splitlines()[0] if reason else type(error).__name__}",
                                     hint="check the Output Folder in the Stillflow preferences") from None
    results.show_in_image_editors(loop, len(paths), scene, replace=bpy.data.images.get(image_name))
    settings.result, settings.result_dir = loop, placement.blend_path(paths[0].parent)
    settings.result_frames, settings.result_fps = len(paths), fps
    settings.progress = 1.0
    settings.status = f"Done: {len(paths)} frames in {paths[0].parent}"
    if settings.use_scene_fps:
        results.apply_scene_fps(scene, fps)
    if len(paths) != frames:
        log.warning("asked for %d frames, the backend wrote %d", frames, len(paths))
    placement.undo_step(f"Stillflow: {loop.name}")
    return loop


def shutdown() -> None:
    """Stop following jobs, close the client and stop a local backend (unregister)."""
    global _active
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    if _active is not None and not _active.is_finished:
        _active.cancel()
    _active = None
    CONNECTION.close()
    _status_bar(None)
