"""How a submit's inputs travel: array parts, paths the backend may read, or the files' bytes.

Torch-free and bundled into the add-on with ``client.py``. A backend says in ``hello`` which
folders it may read (``allow_read``, given only to clients on its own machine); a file outside
them goes as bytes, so a backend never needs to read a path a client names.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..options import Region
from .protocol import Limits, check_image, check_mask, check_message_size, to_wire_dtype
from .wire_amplitude import FILE_CAPABILITY, file_amplitudes, region_amplitude_file_part, with_amplitude
from .wire_regions import AMPLITUDE_CAPABILITY, REGIONS_CAPABILITY, has_amplitude_images, regions_to_wire

__all__ = ["add_input", "add_motion_file", "add_regions", "add_outputs", "check_parts", "backend_reads",
           "output_name", "file_bytes"]


def backend_reads(readable: Any, path: str | os.PathLike[str]) -> bool:
    """True when ``path`` resolves inside one of the folders ``readable`` (hello's ``allow_read``) lists."""
    if not isinstance(readable, list):
        return False
    resolved = Path(os.path.realpath(path))
    for root in readable:
        if isinstance(root, str) and os.path.isabs(root):
            folder = Path(os.path.realpath(root))
            if resolved == folder or folder in resolved.parents:
                return True
    return False


def add_input(name: str, value: Any, body: dict[str, Any], parts: dict[str, np.ndarray], limits: Limits,
              readable: Any) -> None:
    """Put the image, mask or importance map into a submit: an array part, a readable path, or file bytes."""
    if name == "mask" and isinstance(value, str) and value == "auto":
        body["mask_auto"] = True  # predicted on the backend (needs options.models there)
    elif isinstance(value, np.ndarray):
        array = to_wire_dtype(value, name)
        (check_image if name == "image" else check_mask)(array, limits)
        parts[name] = array
    elif backend_reads(readable, value):
        body[f"{name}_path"] = os.path.abspath(value)
    else:
        parts[f"{name}_file"] = file_bytes(Path(value), name)
        body[f"{name}_name"] = Path(value).name


def add_motion_file(path: str, motion_body: dict[str, Any], parts: dict[str, np.ndarray], readable: Any) -> None:
    """Put a motion file or clip into a submit: its path when the backend may read it, else its bytes."""
    if backend_reads(readable, path):
        motion_body["path"] = os.path.abspath(path)
    elif Path(path).is_dir():
        raise InputError(f"the motion clip folder {path} cannot be sent to the backend as bytes",
                         hint="send a video file, or start the backend with --allow-read for a folder that holds it")
    else:
        parts["motion_file"] = file_bytes(Path(path), "motion file")
        motion_body["path"] = Path(path).name


def add_regions(regions: Sequence[Region], body: dict[str, Any], parts: dict[str, np.ndarray],
                capabilities: Sequence[str], readable: Any = None) -> None:
    """Put motion regions (and their masks and amplitude images) into a submit the backend understands.

    An amplitude image given as a file name travels like the image: its path when the backend may
    read it, else its bytes (``wire_amplitude.py``; the backend must list FILE_CAPABILITY).
    """
    if REGIONS_CAPABILITY not in capabilities:
        raise InputError("this backend does not know motion regions (it is older than this client)",
                         hint="update the backend, or render one mask and motion")
    if has_amplitude_images(regions) and AMPLITUDE_CAPABILITY not in capabilities:
        raise InputError("this backend does not know sway amplitude images (it is older than this client)",
                         hint="update the backend, or sway without an amplitude image")
    files = file_amplitudes(regions)
    if files and FILE_CAPABILITY not in capabilities:
        raise InputError("this backend cannot read amplitude image files (it is older than this client)",
                         hint="update the backend, or send the amplitude images as arrays")
    body["regions"], region_parts = regions_to_wire([with_amplitude(region, None) if index in files else region
                                                     for index, region in enumerate(regions)])
    parts.update(region_parts)
    for index, path in files.items():
        sway = body["regions"][index]["motion"]["sway"]
        if backend_reads(readable, path):
            sway["amplitude_image"] = {"path": os.path.abspath(path)}
        else:
            parts[region_amplitude_file_part(index)] = file_bytes(Path(path), f"region {index + 1}'s amplitude image")
            sway["amplitude_image"] = {"name": Path(path).name}


def add_outputs(body: dict[str, Any], out_dir: str | os.PathLike[str] | None, video: str | os.PathLike[str] | None,
                deliver: str, owner_key: str | None) -> None:
    """Where the job writes: out_dir (and video) in the backend's results folder, or frames sent back."""
    if out_dir is not None:
        body["out_dir"] = output_name(out_dir)
        if owner_key is not None:
            body["owner_key"] = owner_key
        if video is not None:
            body["video"] = output_name(video)
    else:
        body["deliver"] = deliver
        if video is not None:
            body["video"] = Path(video).name


def check_parts(parts: dict[str, np.ndarray], limits: Limits) -> None:
    """InputError when a part or all of them together exceed the backend's limits (checked before sending)."""
    for name, array in parts.items():
        if array.nbytes > limits.max_part_bytes:
            raise InputError(f"{name} is {array.nbytes / 2**20:.1f} MiB; the backend accepts parts up to "
                             f"{limits.max_part_bytes / 2**20:.1f} MiB", hint="send a smaller image")
    check_message_size(parts, limits)


def output_name(value: str | os.PathLike[str]) -> str:
    """An out_dir / video as sent: an absolute path normalised, a relative name as it is (with '/')."""
    if os.path.isabs(value):
        return os.path.abspath(value)
    return Path(value).as_posix()


def file_bytes(path: Path, what: str) -> np.ndarray:
    """A file's bytes as a 1-D uint8 array; InputError when it cannot be read."""
    try:
        return np.frombuffer(path.read_bytes(), dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"{what} {path} cannot be read: {exc.strerror}") from None
