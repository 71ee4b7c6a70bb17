"""Jobs of the backend service: parsing a submit, the bounded queue, and running one job on the engine.

Thread contract: the I/O thread builds jobs and owns the queue's producer side; worker
threads take jobs and run them. Workers never touch a ZeroMQ socket except their own
doorbell; they hand messages to the I/O thread through ``emit`` (a queue).
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np

from ..errors import BackendUnavailable, Cancelled, InputError, StillflowError
from ..io.images import to_uint8
from ..io.video import check_video_path
from ..options import MotionSpec, RenderOptions
from ..progress import Progress
from ..link.protocol import Limits, Message, check_image, check_mask, error_message, motion_from_wire, options_from_wire
from .paths import PathPolicy, check_plain_name, upload_name

__all__ = ["Job", "JobQueue", "build_job", "run_job", "Emit"]

log = logging.getLogger(__name__)

Emit = Callable[[bytes, Message, bool], None]
"""emit(owner identity, message, is_reliable): hand a message to the I/O thread."""

_SUBMIT_KEYS = frozenset({"options", "motion", "preview", "out_dir", "video", "deliver", "image_path", "image_name",
                          "mask_path", "mask_name", "mask_auto", "importance_path", "importance_name"})
_INPUT_PARTS = frozenset({"image", "image_file", "mask", "mask_file", "importance", "importance_file", "motion",
                          "motion_file"})
_MAX_PREVIEW = 512


@dataclass(eq=False)
class Job:
    """One render request, its inputs snapshotted at submit time, and its state."""

    job_id: str
    owner: bytes
    options: RenderOptions
    motion: MotionSpec
    inputs: dict[str, Any]
    out_dir: str | None = None
    video: str | None = None
    deliver: Literal["arrays", "files"] = "arrays"
    preview: int = 128
    state: Literal["queued", "running", "done", "failed", "cancelled"] = "queued"
    stage: str = ""
    done: int = 0
    total: int = 0
    submitted: float = field(default_factory=time.monotonic)
    cancel: threading.Event = field(default_factory=threading.Event)

    def describe(self) -> dict[str, Any]:
        """Plain state for status replies."""
        return {"job": self.job_id, "state": self.state, "stage": self.stage, "done": self.done,
                "total": self.total, "out_dir": self.out_dir, "engine": self.options.engine}


class JobQueue:
    """A bounded FIFO of queued jobs plus the running ones, safe to share between threads."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._queued: deque[Job] = deque()
        self._running: dict[str, Job] = {}
        self._condition = threading.Condition()
        self._closed = False

    def put(self, job: Job) -> int:
        """Queue a job; returns its position (0 = next). BackendUnavailable when full or closed."""
        with self._condition:
            if self._closed:
                raise BackendUnavailable("the backend is shutting down", hint="start it again and resubmit")
            if len(self._queued) >= self.capacity:
                raise BackendUnavailable(f"the backend queue is full ({self.capacity} jobs)",
                                         hint="wait for jobs to finish, clear the queue or raise --queue-size")
            self._queued.append(job)
            self._condition.notify()
            return len(self._queued) - 1

    def take(self, timeout: float) -> Job | None:
        """The next job, marked running; None after ``timeout`` s or once closed."""
        with self._condition:
            if not self._queued and not self._closed:
                self._condition.wait(timeout)
            if self._closed or not self._queued:
                return None
            job = self._queued.popleft()
            job.state = "running"
            self._running[job.job_id] = job
            return job

    def finish(self, job: Job) -> None:
        """Forget a job that stopped running."""
        with self._condition:
            self._running.pop(job.job_id, None)

    def remove(self, predicate: Callable[[Job], bool]) -> list[Job]:
        """Take queued jobs matching ``predicate`` out of the queue; they are marked cancelled."""
        with self._condition:
            dropped = [job for job in self._queued if predicate(job)]
            for job in dropped:
                self._queued.remove(job)
                job.state = "cancelled"
            return dropped

    def find(self, job_id: str) -> Job | None:
        """A queued or running job by id."""
        with self._condition:
            return self._running.get(job_id) or next((j for j in self._queued if j.job_id == job_id), None)

    def snapshot(self) -> tuple[list[Job], list[Job]]:
        """(queued, running) jobs at this instant (a job whose final message is out counts as neither)."""
        with self._condition:
            return list(self._queued), [job for job in self._running.values() if job.state == "running"]

    def close(self) -> list[Job]:
        """Refuse new jobs, wake the workers, and return the queued jobs that were dropped."""
        with self._condition:
            self._closed = True
            dropped = list(self._queued)
            self._queued.clear()
            for job in dropped:
                job.state = "cancelled"
            self._condition.notify_all()
            return dropped


def build_job(job_id: str, owner: bytes, message: Message, limits: Limits, paths: PathPolicy) -> Job:
    """A Job from a submit message; raises InputError naming the first bad field.

    Output paths are resolved under ``paths.results`` and input paths checked against
    ``paths.allow_read`` here, so a job never touches a path a client could not name.
    """
    body = message.body
    unknown = sorted(set(body) - _SUBMIT_KEYS) + sorted(set(message.parts) - _INPUT_PARTS)
    if unknown:
        raise InputError(f"unknown submit field(s): {', '.join(unknown)}"[:240])
    options = options_from_wire(body.get("options", {}))
    if options.frames > limits.max_frames:
        raise InputError(f"frames is {options.frames}; this backend renders at most {limits.max_frames}")
    if options.models is not None:
        options = dataclasses.replace(options, models=paths.readable(options.models, "options.models", kind="folder"))
    motion = _motion(body, message, limits, paths)
    deliver = body.get("deliver", "arrays")
    if deliver not in ("arrays", "files"):
        raise InputError(f"deliver must be arrays or files, got {deliver!r}"[:200])
    out_dir, video = _outputs(body, deliver, paths)
    preview = body.get("preview", 128)
    if not isinstance(preview, int) or isinstance(preview, bool) or not 0 <= preview <= _MAX_PREVIEW:
        raise InputError(f"preview must be 0 to {_MAX_PREVIEW} px, got {preview!r}"[:200])
    inputs: dict[str, Any] = {}
    for name, required in (("image", True), ("mask", False), ("importance", False)):
        value = _input(name, body, message.parts, limits, paths)
        if value is None and required:
            raise InputError("submit needs an image: an image part, image_file bytes or an image_path")
        if value is not None:
            inputs[name] = value
    if "motion_file" in message.parts:
        inputs["motion_file"] = (motion.path, message.parts["motion_file"])
    return Job(job_id=job_id, owner=owner, options=options, motion=motion, inputs=inputs, out_dir=out_dir,
               video=video, deliver=deliver, preview=preview)


def _motion(body: dict[str, Any], message: Message, limits: Limits, paths: PathPolicy) -> MotionSpec:
    """The job's motion; a file or clip path is checked against the readable folders (or is a plain name for bytes)."""
    motion = motion_from_wire(body.get("motion", {}), message.parts, limits)
    if "motion_file" in message.parts:
        if motion.kind not in ("file", "clip"):
            raise InputError("motion_file bytes need motion kind file or clip and a plain file name as path")
        motion = dataclasses.replace(motion, path=upload_name(motion.path, "motion.path (with motion_file bytes)",
                                                              "motion"))
    elif motion.kind in ("file", "clip"):
        path = paths.readable(motion.path, "motion.path", kind="any", send="motion_file")
        motion = dataclasses.replace(motion, path=path)
    return motion


def _outputs(body: dict[str, Any], deliver: str, paths: PathPolicy) -> tuple[str | None, str | None]:
    """(out_dir, video): absolute paths under the results folder, or None / a plain name for a remote job."""
    out_dir = body.get("out_dir")
    video = body.get("video")
    if out_dir is not None:
        out_dir = paths.output(out_dir, "out_dir")
    if video is None:
        return out_dir, None
    if not isinstance(video, str) or not video:
        raise InputError("video must be a file name")
    check_video_path(video)
    if out_dir is None:
        if deliver != "files":
            raise InputError("a video for a remote job needs deliver=files and a plain file name",
                             hint="or give out_dir, a folder in the backend's results folder")
        video = check_plain_name(video, "video")
    else:
        video = paths.output(video, "video", kind="file")
        if video == out_dir:
            raise InputError("video and out_dir name the same path", hint="give the video its own file name")
    return out_dir, video


def run_job(job: Job, emit: Emit, device: str | None) -> None:
    """Run one job on the engine and emit its progress, result parts and final message."""
    from .. import pipeline

    options = job.options if device is None else _with_device(job.options, device)
    scratch = Path(tempfile.mkdtemp(prefix=f"stillflow-job-{job.job_id}-"))
    try:
        image, mask, importance, motion = _materialize(job, scratch)
        common = dict(mask=mask, motion=motion, options=options, importance=importance,
                      should_cancel=job.cancel.is_set)
        progress = _progress_sender(job, emit)
        if job.out_dir is not None:
            result = pipeline.render(image, job.out_dir, video=job.video, progress=progress, **common)
            body = {"out_dir": str(result.out_dir), "frame_paths": [str(p) for p in result.frame_paths],
                    "manifest": result.manifest, "video": str(result.video) if result.video else None}
        elif job.deliver == "files":
            body = _render_files(job, image, common, progress, scratch, emit)
        else:
            count = 0
            for frame in pipeline.render_frames(image, progress=progress, **common):
                # 8-bit jobs travel as the exact uint8 values render() would write: 4x fewer bytes.
                payload = to_uint8(frame) if options.format == "png" else frame
                emit(job.owner, Message("part", {"name": "frame", "index": count}, {"frame": payload},
                                        job=job.job_id), True)
                count += 1
                progress(Progress("render", count, options.frames, frame))
            body = {"count": count, "manifest": {"frames": count, "options": options.to_dict(),
                                                 "motion": motion.describe()}}
        job.state = "done"
        emit(job.owner, Message("result", body, job=job.job_id), True)
    except Cancelled as exc:
        job.state = "cancelled"
        emit(job.owner, Message("cancelled", {"msg": str(exc)}, job=job.job_id), True)
    except StillflowError as exc:
        job.state = "failed"
        emit(job.owner, error_message(exc, job=job.job_id), True)
    except Exception as exc:  # the worker must survive any engine failure and tell the client
        log.exception("job %s failed", job.job_id)
        job.state = "failed"
        error = StillflowError(f"internal error in the backend: {type(exc).__name__}: {exc}"[:300],
                               hint="see the backend log")
        emit(job.owner, error_message(error, job=job.job_id), True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _render_files(job: Job, image: Any, common: dict[str, Any], progress: Callable[[Progress], None],
                  scratch: Path, emit: Emit) -> dict[str, Any]:
    """Render into a scratch folder and send every written file's bytes as a part."""
    from .. import pipeline

    video = scratch / job.video if job.video else None
    result = pipeline.render(image, scratch / "frames", video=video, progress=progress, **common)
    files = [(f"frames/{p.name}", p) for p in sorted((scratch / "frames").iterdir())]
    if result.video is not None:
        files.append((f"video/{result.video.name}", result.video))
    for name, path in files:
        data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
        emit(job.owner, Message("part", {"name": name}, {"file": data}, job=job.job_id), True)
    return {"count": len(files), "manifest": result.manifest, "files": [name for name, _ in files]}


def _progress_sender(job: Job, emit: Emit) -> Callable[[Progress], None]:
    """A progress callback that records the job's state and emits a progress message with a preview."""
    def send(report: Progress) -> None:
        job.stage, job.done, job.total = report.stage, report.done, report.total
        parts = {}
        if report.frame is not None and job.preview > 0:
            parts["preview"] = make_preview(report.frame, job.preview)
        body = {"stage": report.stage, "done": report.done, "total": report.total}
        emit(job.owner, Message("progress", body, parts, job=job.job_id), False)
    return send


def make_preview(frame: np.ndarray, side: int) -> np.ndarray:
    """A small uint8 copy of ``frame`` (H, W, C) float32 in [0, 1], longest side at most ``side`` px."""
    height, width = frame.shape[:2]
    step = max(1, -(-max(height, width) // side))
    small = frame[::step, ::step]
    return np.clip(np.rint(small * 255.0), 0, 255).astype(np.uint8)


def _materialize(job: Job, scratch: Path) -> tuple[Any, Any, Any, MotionSpec]:
    """Engine inputs: arrays copied out of message frames, file bytes written into ``scratch``."""
    values = []
    for name in ("image", "mask", "importance"):
        value = job.inputs.get(name)
        if isinstance(value, tuple):
            file_name, data = value
            path = scratch / f"{name}-{file_name}"
            path.write_bytes(data.tobytes())
            value = str(path)
        elif isinstance(value, np.ndarray):
            # the engine may work in place; message frames are read-only
            value = value.astype(np.float32) if value.dtype == np.float16 else np.array(value)
        values.append(value)
    motion = job.motion
    if "motion_file" in job.inputs:
        file_name, data = job.inputs["motion_file"]
        path = scratch / file_name
        path.write_bytes(data.tobytes())
        motion = MotionSpec(kind=motion.kind, hints=motion.hints, anchors=motion.anchors,
                            anchor_radius=motion.anchor_radius, path=str(path), drift=motion.drift)
    return values[0], values[1], values[2], motion


def _input(name: str, body: dict[str, Any], parts: dict[str, np.ndarray], limits: Limits, paths: PathPolicy) -> Any:
    """An image-like input: the array part, (file name, bytes) or a path on this machine; None if absent."""
    given = [k for k in (name, f"{name}_file") if k in parts] + [k for k in (f"{name}_path", f"{name}_auto")
                                                                  if k in body]
    if len(given) > 1:
        raise InputError(f"{name} given twice ({' and '.join(given)}); send exactly one")
    if f"{name}_auto" in body:
        if name != "mask" or body[f"{name}_auto"] is not True:
            raise InputError(f"{name}_auto is only valid as mask_auto: true")
        return "auto"
    if name in parts:
        array = parts[name]
        if name == "image":
            check_image(array, limits)
        else:
            check_mask(array, limits)
        return array
    if f"{name}_file" in parts:
        data = parts[f"{name}_file"]
        file_name = body.get(f"{name}_name")
        if data.ndim != 1 or data.dtype != np.uint8:
            raise InputError(f"{name}_file must be the file's bytes as a 1-D uint8 part")
        return (upload_name(file_name, f"{name}_name", name), data)
    if f"{name}_path" not in body:
        return None
    return paths.readable(body[f"{name}_path"], f"{name}_path", send=f"{name}_file")


def _with_device(options: RenderOptions, device: str) -> RenderOptions:
    """``options`` with the worker's device when the job asked for auto."""
    return options if options.device != "auto" else dataclasses.replace(options, device=device)
