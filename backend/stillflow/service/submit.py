"""Reading a submit request into a Job: fields, inputs, motion and output paths, each checked.

Thread contract: called only by the I/O thread (``Dispatcher``).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..errors import InputError
from ..io.video import check_video_path
from ..link.owner_key import is_owner_key
from ..link.protocol import Limits, Message, check_image, check_mask, motion_from_wire, options_from_wire
from ..link.wire_amplitude import file_sources, region_amplitude_file_part
from ..link.wire_regions import is_region_part, regions_from_wire
from ..options import MotionSpec
from .jobs import Job, amplitude_input
from .paths import PathPolicy, check_plain_name, upload_name

__all__ = ["build_job"]

_SUBMIT_KEYS = frozenset({"options", "motion", "regions", "preview", "out_dir", "video", "deliver", "dead_after",
                          "owner_key",
                          "image_path", "image_name",
                          "mask_path", "mask_name", "mask_auto", "importance_path", "importance_name"})
_INPUT_PARTS = frozenset({"image", "image_file", "mask", "mask_file", "importance", "importance_file", "motion",
                          "motion_file"})
_MAX_PREVIEW = 512


def build_job(job_id: str, owner: bytes, message: Message, limits: Limits, paths: PathPolicy) -> Job:
    """A Job from a submit message; raises InputError naming the first bad field.

    Output paths are resolved under ``paths.results`` and input paths checked against
    ``paths.allow_read`` here, so a job never touches a path a client could not name.
    """
    body = message.body
    unknown = sorted(set(body) - _SUBMIT_KEYS) + sorted(name for name in set(message.parts) - _INPUT_PARTS
                                                        if not is_region_part(name))
    if unknown:
        raise InputError(f"unknown submit field(s): {', '.join(unknown)}"[:240])
    options = options_from_wire(body.get("options", {}))
    if options.frames > limits.max_frames:
        raise InputError(f"frames is {options.frames}; this backend renders at most {limits.max_frames}")
    if options.models is not None:
        options = dataclasses.replace(options, models=paths.readable(options.models, "options.models", kind="folder"))
    motion = _motion(body, message, limits, paths)
    regions = regions_from_wire(body["regions"], message.parts, limits) if "regions" in body else ()
    if any(is_region_part(name) for name in message.parts) and not regions:
        raise InputError("region mask or amplitude image parts were sent without regions")
    deliver = body.get("deliver", "arrays")
    if deliver not in ("arrays", "files"):
        raise InputError(f"deliver must be arrays or files, got {deliver!r}"[:200])
    out_dir, video = _outputs(body, deliver, paths)
    if "owner_key" in body and (out_dir is None or not is_owner_key(body["owner_key"])):
        raise InputError("owner_key must be the 64 hex digits of the results folder's owner.key, sent with out_dir")
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
    if regions:
        inputs.update(_amplitude_files(body["regions"], message.parts, paths))
    if regions and (inputs.keys() & {"mask"} or motion.kind != "none"):
        raise InputError("give either regions or one mask and motion, not both",
                         hint="put the mask and motion into a region of their own")
    return Job(job_id=job_id, owner=owner, options=options, motion=motion, regions=regions, inputs=inputs,
               out_dir=out_dir, video=video, deliver=deliver, preview=preview)


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
        # anywhere in the results folder; one beside out_dir is a result of its own (Dispatcher._claim)
        video = paths.output(video, "video", kind="file")
    return out_dir, video


def _input(name: str, body: dict[str, Any], parts: dict[str, np.ndarray], limits: Limits, paths: PathPolicy) -> Any:
    """An image-like input: the array part, (file name, bytes) or a path on this machine; None if absent."""
    given = [k for k in (name, f"{name}_file") if k in parts] + [k for k in (f"{name}_path", f"{name}_auto")
                                                                  if k in body]
    if len(given) > 1:
        raise InputError(f"{name} given twice ({' and '.join(given)}); send exactly one")
    if f"{name}_name" in body and f"{name}_file" not in parts:  # an unused field is refused, not ignored
        raise InputError(f"{name}_name names the file sent as {name}_file bytes; send both or neither")
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


def _amplitude_files(values: list[Any], parts: dict[str, np.ndarray], paths: PathPolicy) -> dict[str, Any]:
    """Regions' amplitude images sent as files, by ``amplitude_input(i)``: (file name, bytes) or a readable path."""
    inputs: dict[str, Any] = {}
    for index, source in file_sources(values, parts).items():
        what = f"region {index + 1}'s amplitude_image"
        if isinstance(source, tuple):
            inputs[amplitude_input(index)] = (upload_name(source[0], f"{what} name", f"amplitude-{index}"), source[1])
        else:
            inputs[amplitude_input(index)] = paths.readable(source, f"{what} path",
                                                            send=region_amplitude_file_part(index))
    return inputs
