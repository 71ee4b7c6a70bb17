"""Jobs of the backend service: the Job record, the bounded queue, and running one job on the engine.

A submit becomes a Job in ``submit.py``. Thread contract: the I/O thread builds jobs and owns
the queue's producer side; worker threads take jobs and run them. Workers never touch a ZeroMQ
socket except their own doorbell; they hand messages to the I/O thread through ``emit`` (a queue).
"""
from __future__ import annotations

import dataclasses
import logging
import os
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
from ..io.images import load_amplitude_file, to_uint8
from ..link.wire_amplitude import with_amplitude
from ..link.protocol import Message, error_message
from ..options import MotionSpec, Region, RenderOptions
from ..progress import Progress

__all__ = ["Job", "JobQueue", "run_job", "Emit", "amplitude_input"]

log = logging.getLogger(__name__)

Emit = Callable[[bytes, Message, bool], None]
"""emit(owner identity, message, is_reliable): hand a message to the I/O thread."""


@dataclass(eq=False)
class Job:
    """One render request, its inputs snapshotted at submit time, and its state."""

    job_id: str
    owner: bytes
    """The routing id its messages go to."""
    options: RenderOptions
    motion: MotionSpec
    inputs: dict[str, Any]
    regions: tuple[Region, ...] = ()
    """Motion regions (instead of the mask input and ``motion``), their masks snapshotted as arrays."""
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
    principal: bytes = b""
    """Who may see and control the job: the CURVE key of its client when keyed, else its routing id."""
    scratch_root: str | None = None
    """Folder the job's scratch folder goes in (the backend's own; None: the system's temp folder)."""
    results_root: str | None = None
    """Set when clients must see output paths relative to this folder (they are not on this machine)."""

    def shown(self, path: str | os.PathLike[str] | None) -> str | None:
        """A path as the job's client sees it (relative to ``results_root`` when that is set)."""
        if path is None or self.results_root is None:
            return None if path is None else str(path)
        resolved = Path(path)
        root = Path(self.results_root)
        return resolved.relative_to(root).as_posix() if root in resolved.parents else resolved.name

    def describe(self) -> dict[str, Any]:
        """Plain state for status replies."""
        return {"job": self.job_id, "state": self.state, "stage": self.stage, "done": self.done,
                "total": self.total, "out_dir": self.shown(self.out_dir), "engine": self.options.engine}


def amplitude_input(index: int) -> str:
    """The ``Job.inputs`` key of region ``index``'s amplitude image sent as a file."""
    return f"amplitude image of region {index + 1}"


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


def run_job(job: Job, emit: Emit, device: str | None) -> None:
    """Run one job on the engine and emit its progress, result parts and final message."""
    from .. import pipeline

    options = job.options if device is None else _with_device(job.options, device)
    scratch = Path(tempfile.mkdtemp(prefix=f"job-{job.job_id}-", dir=job.scratch_root))
    try:
        image, mask, importance, motion = _materialize(job, scratch)
        common = dict(mask=mask, motion=motion, options=options, importance=importance,
                      should_cancel=job.cancel.is_set, regions=_decoded_regions(job, scratch) or None)
        progress = _progress_sender(job, emit)
        if job.out_dir is not None:
            body = _render_in_place(job, image, common, progress)
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
        _scrub_manifest(body.get("manifest"), scratch, job)
        job.state = "done"
        emit(job.owner, Message("result", body, job=job.job_id), True)
    except Cancelled as exc:
        job.state = "cancelled"
        emit(job.owner, Message("cancelled", {"msg": str(exc)}, job=job.job_id), True)
    except StillflowError as exc:
        job.state = "failed"
        emit(job.owner, error_message(type(exc)(_scrub(str(exc), scratch, job)), job=job.job_id), True)
    except Exception as exc:  # the worker must survive any engine failure and tell the client
        log.exception("job %s failed", job.job_id)
        job.state = "failed"
        text = _scrub(f"internal error in the backend: {type(exc).__name__}: {exc}", scratch, job)
        error = StillflowError(text[:300], hint="see the backend log")
        emit(job.owner, error_message(error, job=job.job_id), True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _render_in_place(job: Job, image: Any, common: dict[str, Any],
                     progress: Callable[[Progress], None]) -> dict[str, Any]:
    """Render beside ``job.out_dir`` and move the result in whole, only while that path is the folder checked at submit."""
    from .. import pipeline
    from ..io.frames import check_not_inputs

    out_dir = Path(job.out_dir or "")
    # render() checks the staged folder against the inputs; the folder it replaces gets the same check
    check_not_inputs(out_dir, Path(job.video) if job.video else None,
                     {**job.inputs, "motion file": job.motion.path if job.motion.kind in ("file", "clip") else None})
    cancelled = common["should_cancel"]

    def should_cancel() -> bool:
        """The job's cancel flag; raises when the out_dir path stopped being what was checked."""
        _check_unmoved(job, out_dir)
        return cancelled()

    _check_unmoved(job, out_dir)
    # staged as .NAME.tmp-* beside out_dir (a client can watch it grow); render() checks should_cancel
    # after every frame and right before the move, so a swapped path is never written through
    result = pipeline.render(image, out_dir, video=job.video, progress=progress,
                             **{**common, "should_cancel": should_cancel})
    frame_paths = [str(out_dir / path.name) for path in result.frame_paths]
    return {"out_dir": job.shown(out_dir), "frame_paths": [job.shown(path) for path in frame_paths],
            "manifest": result.manifest, "video": job.shown(job.video)}


def _check_unmoved(job: Job, out_dir: Path) -> None:
    """Refuse to go on when a folder on the way to ``out_dir`` (or the video) has become a link since submit."""
    for what, path in (("out_dir", str(out_dir)), ("video", job.video)):
        if path is not None and os.path.realpath(path) != path:
            raise InputError(f"{what} {job.shown(path)} changed while the job ran (it now leads elsewhere); "
                             "nothing was written", hint="submit again")


def _scrub(text: str, scratch: Path, job: Job) -> str:
    """``text`` without the server's scratch folder, and with output paths as the client sees them."""
    text = text.replace(f"{scratch}{os.sep}", "").replace(str(scratch), "")
    if job.results_root is not None:
        text = text.replace(f"{job.results_root}{os.sep}", "").replace(job.results_root, ".")
    return text


def _scrub_manifest(manifest: Any, scratch: Path, job: Job) -> None:
    """Replace a scratch path in a result's manifest (an uploaded motion file) by the file's name."""
    motion = manifest.get("motion") if isinstance(manifest, dict) else None
    if isinstance(motion, dict) and isinstance(motion.get("path"), str):
        motion["path"] = _scrub(motion["path"], scratch, job)


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
        motion = dataclasses.replace(motion, path=str(path))
    return values[0], values[1], values[2], motion


def _decoded_regions(job: Job, scratch: Path) -> tuple[Region, ...]:
    """The job's regions with each amplitude image sent as a file decoded, as the add-on would have sent it."""
    regions = list(job.regions)
    for index, region in enumerate(regions):
        value = job.inputs.get(amplitude_input(index))
        if isinstance(value, tuple):
            file_name, data = value
            value = scratch / file_name
            value.write_bytes(data.tobytes())
        if value is not None:
            image = load_amplitude_file(value, f"region {index + 1}'s amplitude image")
            regions[index] = with_amplitude(region, image)
    return tuple(regions)


def _with_device(options: RenderOptions, device: str) -> RenderOptions:
    """``options`` with the worker's device when the job asked for auto."""
    return options if options.device != "auto" else dataclasses.replace(options, device=device)
