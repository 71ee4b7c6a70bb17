"""Run Stillflow jobs from Blender: connect, submit, follow with one timer, place the result. Imports bpy.

Thread and process contract:
  - Only Blender's main thread touches bpy, and everything here runs on it.
  - ``CONNECTION`` owns the Client (DEALER socket) and a local backend process; both are used only
    from operators and the timer on the main thread, and closed by ``shutdown()`` on unregister.
  - One persistent timer (``_timer``) steps everything that is in flight and never blocks: the job's
    ``JobTracker.tick()`` (which first steps the ``core.connect.Connect`` state machine: find the
    Python, start the backend, say hello), Check Backend's Connect, and the frame writer.
  - The only Python thread is ``core.frame_writer.FrameWriter``'s, which writes a remote result's
    PNG files and touches no bpy data (plus ``core.connect``'s short handshake-diagnosis thread).
  - Without timers (``blender -b``) ``start`` and ``generate_sync`` loop tick() until the job ends;
    Ctrl+C there cancels the job on the backend and resets the panel before it propagates.
  - Loading another file (``load_pre``) cancels a running job cleanly (``file_handlers``).
  - Nothing here waits on the network or on a process: cancel, ``abandon`` (load_pre) and
    ``shutdown`` (unregister, quit) send and forget (``JobTracker.cancel``, ``Connection.close``).
"""
from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import bpy

from . import checking, inputs, live_preview, placement, results
from .core.backend import Connection
from .core.frame_writer import FrameWriter
from .core.jobs import TICK_INTERVAL, JobTracker
from .core.lib import load
from .properties import backend_config, output_root

log = logging.getLogger(__name__)

__all__ = ["CONNECTION", "active_tracker", "start", "cancel", "generate_sync", "ensure_timer",
           "place_result", "abandon", "shutdown", "WAIT_IN_BACKGROUND"]

_errors = load("errors")
_frames_io = load("io.frames")

CONNECTION = Connection()
WAIT_IN_BACKGROUND = True
"""In background mode (no timers fire) Generate waits for its job; tests set False and tick ``_timer`` themselves."""

_active: JobTracker | None = None
_writer: FrameWriter | None = None
_target = ("", "")
"""(scene name, still name) of the job in flight."""
_shown_previews = 0


def active_tracker() -> JobTracker | None:
    """The job the panel follows while it connects, runs or its frames are written."""
    if _active is None or (_active.is_finished and _writer is None):
        return None
    return _active


def _job_folder(context: bpy.types.Context, image: bpy.types.Image) -> str:
    """A fresh result folder for one job: <output folder>/<image name>_<time>."""
    # no dots: a folder name with a "suffix" would not match the staging names io.frames cleans up
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(image.name).stem) or "loop"
    return str(output_root(context) / f"{stem}_{time.strftime('%Y%m%d-%H%M%S')}_{time.monotonic_ns() % 10**6:06d}")


def _tracker(context: bpy.types.Context, image: bpy.types.Image) -> JobTracker:
    """Snapshot the inputs and make the job's tracker; connecting and submitting happen in its ticks."""
    global _shown_previews, _target
    scene = context.scene
    config = backend_config(context)
    out_dir = _job_folder(context, image)
    _frames_io.clean_stale(Path(out_dir).parent)  # what a killed backend left (its pid is gone)
    request = inputs.build_request(scene.stillflow, image, out_dir, share_files=config.is_local)
    connect = CONNECTION.begin(config)
    scene_name, image_name = scene.name, image.name
    _target = (scene_name, image_name)

    def on_update(tracker: JobTracker) -> None:
        _show_progress(scene_name, image_name, tracker)

    def on_finish(tracker: JobTracker) -> None:
        _finish(scene_name, image_name, tracker)

    tracker = JobTracker(CONNECTION.client if connect is None else None, request, connect=connect,
                         adopt=CONNECTION.adopt, on_update=on_update, on_finish=on_finish)
    _shown_previews = 0
    settings = scene.stillflow
    settings.is_running, settings.progress, settings.status = True, 0.0, f"Stillflow: {tracker.label}"
    return tracker


def ensure_timer(first_interval: float = 0.0) -> None:
    """Register the persistent timer once (it survives loading another file)."""
    if not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=first_interval, persistent=True)


def _timer() -> float | None:
    """Timer body: step the job, the frame writer and Check Backend (outermost layer: logs the unexpected)."""
    try:
        delays = []
        if _active is not None and not _active.is_finished:
            if _active.job is not None and CONNECTION.reap():  # the local backend died: say so now, not 7 s later
                code = CONNECTION.backend.process.returncode
                _active.fail(f"the backend Blender started exited (status {code}) during the job; "
                             f"see its log {CONNECTION.log_path}")
        if _active is not None and not _active.is_finished:
            try:
                delay = _active.tick()
            except _errors.StillflowError:
                delay = None  # the loop could not be placed; _finish put the reason into the panel's status
            if delay is not None:
                delays.append(delay)
        if _writer is not None:
            _step_writer()
            if _writer is not None:
                delays.append(TICK_INTERVAL)
        if checking.is_checking():
            checking.step(CONNECTION)
            if checking.is_checking():
                delays.append(0.05)
        return min(delays) if delays else None
    except Exception:
        log.exception("the Stillflow job timer failed")
        _status_bar(None)
        return None


def start(context: bpy.types.Context, image: bpy.types.Image) -> JobTracker:
    """Start a job and follow it from the timer; in background mode (no timers) wait for it instead."""
    global _active
    tracker = _tracker(context, image)
    _active = tracker
    if bpy.app.background and WAIT_IN_BACKGROUND:
        _wait(tracker, None)
    else:
        ensure_timer()
    return tracker


def cancel() -> bool:
    """Stop the running job (or Check Backend) wherever it is; False when nothing runs."""
    stopped = False
    if checking.is_checking():
        checking.cancel()
        stopped = True
    tracker = active_tracker()
    if tracker is not None:
        if _writer is not None:
            _writer.cancel()  # the next tick reports it like any other end
        else:
            tracker.cancel()
            if not tracker.is_finished and CONNECTION.reap():  # nobody is left to confirm it
                tracker.stop_waiting("cancelled; the backend had stopped")
        stopped = True
    return stopped


def generate_sync(context: bpy.types.Context, image: bpy.types.Image, *, timeout: float | None = 600.0
                  ) -> bpy.types.Image:
    """Generate a loop for ``image`` and wait for it (works in ``blender -b``); the loaded loop Image.

    Raises:
        InputError, BackendUnavailable, JobFailed, Cancelled: with a one-line message.
        KeyboardInterrupt: Ctrl+C; the job was cancelled on the backend first.
    """
    global _active
    tracker = _tracker(context, image)
    _active = tracker
    _wait(tracker, timeout)
    return context.scene.stillflow.result


def _wait(tracker: JobTracker, timeout: float | None) -> None:
    """Block until the job and its frame writing are over (raises as ``JobTracker.wait``)."""
    tracker.wait(timeout)
    try:
        while _writer is not None:
            _step_writer()
            time.sleep(0.02)
    except KeyboardInterrupt:
        if _writer is not None:
            _writer.cancel()
            _step_writer()
        raise
    if tracker.state == "cancelled":
        raise _errors.Cancelled(f"job '{tracker.request.label}' was cancelled while its frames were written")
    if tracker.error:
        raise _errors.StillflowError(tracker.error)


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


def _show_progress(scene_name: str, image_name: str, tracker: JobTracker) -> None:
    """Copy the tracker's progress into the scene settings and the status bar; show a new preview frame."""
    global _shown_previews
    scene = bpy.data.scenes.get(scene_name)
    if scene is None:
        return
    text = f"Stillflow: {tracker.label}"
    scene.stillflow.progress = tracker.progress.fraction
    scene.stillflow.status = text
    _status_bar(text)
    if tracker.preview is not None and tracker.preview_count != _shown_previews:
        first = _shown_previews == 0
        _shown_previews = tracker.preview_count
        live_preview.update(tracker.preview)
        if first and scene.stillflow.show_live_preview:
            live_preview.show_instead_of(image_name)
    _redraw()


def _finish(scene_name: str, image_name: str, tracker: JobTracker) -> None:
    """Load a finished job's frames (or start writing a remote result's), or show why it ended."""
    global _writer
    scene = bpy.data.scenes.get(scene_name)
    _status_bar(None)
    try:
        if scene is None:
            return
        frames = (tracker.result or {}).get("frames")
        if tracker.state == "done" and frames is not None:
            _writer = FrameWriter(frames, tracker.request.out_dir)
            ensure_timer(TICK_INTERVAL)
            return
        _show_end(scene, image_name, tracker)
    finally:
        if tracker.state != "done":
            CONNECTION.reap()  # a backend that died must not linger as a zombie that looks alive
            _frames_io.clean_stale(Path(tracker.request.out_dir).parent)
        tracker.release_frames()
        _redraw()


def _step_writer() -> None:
    """Follow the frame writer: its count on the bar, then place the loop (or say why not) when it ends."""
    global _writer
    tracker, writer = _active, _writer
    if tracker is None or writer is None:
        _writer = None
        return
    tracker.progress.update("write", writer.done, writer.total)
    scene_name, image_name = _target
    if not writer.finished:
        _show_progress(scene_name, image_name, tracker)
        return
    _writer = None
    scene = bpy.data.scenes.get(scene_name)
    if scene is None:
        return
    if writer.error is not None:
        scene.stillflow.is_running = False
        live_preview.restore(image_name)
        cancelled = isinstance(writer.error, InterruptedError)
        reason = (writer.error.strerror if isinstance(writer.error, OSError) and writer.error.strerror
                  else str(writer.error))
        tracker.error = "" if cancelled else (f"the loop's frames cannot be written to {writer.out_dir}: {reason}; "
                                              "check the Output Folder in the Stillflow preferences")
        scene.stillflow.status = "Cancelled" if cancelled else f"Error: {tracker.error}"
        tracker.state = "cancelled" if cancelled else tracker.state
        return
    tracker.progress.finish()
    _show_end(scene, image_name, tracker, written=writer.paths)


def _show_end(scene: bpy.types.Scene, image_name: str, tracker: JobTracker, written: list[str] | None = None
              ) -> None:
    """Place a done job's loop (``written``: the frame files the add-on wrote), or say why it ended."""
    settings = scene.stillflow
    settings.is_running = False
    if tracker.state == "done":
        result = tracker.result or {} if written is None else {"frame_paths": written}
        try:
            place_result(scene, image_name, result, tracker.request.out_dir,
                         tracker.request.options.frames, tracker.request.options.fps)
        except _errors.StillflowError as error:
            live_preview.restore(image_name)
            settings.status = f"Error: {error}"
            log.error("Stillflow result for %s could not be placed: %s", image_name, error)
            raise
        preview = live_preview.preview_image()
        if preview is not None and settings.result is not None:
            results.show_in_image_editors(settings.result, settings.result_frames, scene, replace=preview)
        return
    live_preview.restore(image_name)
    if tracker.state == "cancelled":
        settings.status = "Cancelled"
    else:
        # a local backend that died: its last error line since it started (never an earlier run's lines)
        said = CONNECTION.log_error() if CONNECTION.reap() else ""
        settings.status = f"Error: {tracker.error}" + (f" (backend log: {said})" if said else "")
        log.error("Stillflow job for %s failed: %s", image_name, settings.status)


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
    warnings = placement.loop_warnings(loop)
    more = f" (+{len(warnings) - 1} more in the Result panel)" if len(warnings) > 1 else ""
    settings.status = f"Done: {len(paths)} frames in {paths[0].parent}" + (
        f"; warning: {warnings[0]}{more}" if warnings else "")
    for warning in warnings:
        log.warning("Stillflow result for %s: %s", image_name, warning)
    if settings.use_scene_fps:
        results.apply_scene_fps(scene, fps)
    if len(paths) != frames:
        log.warning("asked for %d frames, the backend wrote %d", frames, len(paths))
    placement.undo_step(f"Stillflow: {loop.name}")
    return loop


def abandon(reason: str) -> None:
    """Cancel whatever runs without touching Blender data any more (the file it belongs to is going away)."""
    global _active, _writer
    if checking.is_checking():
        checking.cancel()
    if _writer is not None:
        _writer.cancel()
        _writer = None
    tracker, _active = _active, None
    if tracker is not None and not tracker.is_finished:
        tracker.on_update = tracker.on_finish = None
        tracker.interrupt(reason)
        log.warning("Stillflow job %s cancelled: %s", tracker.request.label, reason)
    _status_bar(None)


def shutdown() -> None:
    """Stop following jobs, close the client and stop a local backend (unregister)."""
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    abandon("the add-on was disabled")
    CONNECTION.close()
