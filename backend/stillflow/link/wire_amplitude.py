"""A sway's amplitude image sent as its file: the wire form, and the one way such a file's pixels read.

Part of the wire protocol (see ``protocol.py`` and ``wire_regions.py``); no torch, no OpenCV,
bundled into the add-on. A backend listing ``region_amplitude_file`` in its hello capabilities
accepts, instead of the ``region_amplitude_<i>`` array, a sway's ``"amplitude_image": {"name": NAME}``
with part ``region_amplitude_file_<i>`` (the file's bytes, 1-D uint8; only NAME's suffix is used)
or ``{"path": ABSOLUTE}`` (read only inside an ``--allow-read`` folder). The add-on sends an 8-bit grey
or RGB PNG or JPEG (the backend reads any amplitude image file as ``io.images.load_amplitude_file``
does); it decodes it to exactly the array the add-on would have read from
Blender's pixels (``levels_to_amplitude``; the add-on's ``mask_sources.mask_from_pixels`` ends in
the same ``channel_mean``), so Generate need not read the image on Blender's main thread.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..options import Region

__all__ = ["FILE_CAPABILITY", "region_amplitude_file_part", "channel_mean", "levels_to_amplitude",
           "values_to_amplitude", "file_amplitudes", "with_amplitude", "file_source", "file_sources"]

FILE_CAPABILITY = "region_amplitude_file"
"""The hello capability of a backend that accepts a sway's amplitude image as a file (name + bytes, or a path)."""

_FORMS = ("name", "path")


def region_amplitude_file_part(index: int) -> str:
    """The part name of region ``index``'s amplitude image file bytes."""
    return f"region_amplitude_file_{index}"


def channel_mean(channels: Sequence[np.ndarray]) -> np.ndarray:
    """The mean of float32 colour channels, clipped to [0, 1]: (h, w) float32.

    Added in channel order and then divided, element by element, so it gives the same bits for
    any memory layout and numpy version (``ndarray.mean`` may pair the additions differently).
    """
    total = np.array(channels[0], np.float32)
    for channel in channels[1:]:
        total += channel
    if len(channels) > 1:
        total /= np.float32(len(channels))
    return np.ascontiguousarray(np.clip(total, 0.0, 1.0), np.float32)


def levels_to_amplitude(levels: np.ndarray) -> np.ndarray:
    """An 8-bit grey (h, w) or RGB(A) (h, w, 3 or 4) file's levels as the add-on reads the image: (h, w) float32.

    The colour channels' mean (alpha is not read), each level k as Blender's k / 255.

    Raises:
        InputError: not uint8, or not one, three or four channels.
    """
    if levels.dtype != np.uint8 or not (levels.ndim == 2 or levels.ndim == 3 and levels.shape[2] in (3, 4)):
        raise InputError(f"the file holds {levels.dtype} pixels of shape {tuple(levels.shape)}; "
                         "an amplitude image file must be an 8-bit grey or RGB PNG or JPEG")
    scaled = levels[:, :, :3] if levels.ndim == 3 else levels
    return values_to_amplitude(scaled.astype(np.float32) * np.float32(1.0 / 255.0))  # Blender: k * (1.0f / 255.0f)


def values_to_amplitude(values: np.ndarray) -> np.ndarray:
    """Grey (h, w) or colour (h, w, 3 or more) float32 pixel values as the add-on reads them: (h, w) float32.

    The mean of the first three channels (``channel_mean``; further ones, alpha, are not read).
    """
    if values.ndim == 2:
        return channel_mean((values, values, values))  # Blender holds a grey file as three equal channels
    return channel_mean([values[:, :, c] for c in range(3)])


def file_amplitudes(regions: Sequence[Region]) -> dict[int, str]:
    """Region index -> the file name of its sway's amplitude image, for the regions that give one as a file."""
    return {index: os.fspath(region.motion.sway.amplitude_image) for index, region in enumerate(regions)
            if region.motion.sway is not None and isinstance(region.motion.sway.amplitude_image, (str, os.PathLike))}


def with_amplitude(region: Region, image: str | os.PathLike[str] | np.ndarray | None) -> Region:
    """``region`` (which sways) whose sway reads ``image`` as its amplitude image (None: has none)."""
    sway = dataclasses.replace(region.motion.sway, amplitude_image=image)
    return dataclasses.replace(region, motion=dataclasses.replace(region.motion, sway=sway))


def file_source(value: Any, parts: Mapping[str, np.ndarray], index: int) -> tuple[str, np.ndarray] | str:
    """A sway's ``amplitude_image`` map as (file name, bytes) or the path as sent (checked, not resolved).

    Raises:
        InputError: not a map of exactly ``name`` or ``path`` to a non-empty string, bytes missing for a
            name or sent beside a path, or bytes that are not 1-D uint8.
    """
    where, part = f"region {index + 1}", region_amplitude_file_part(index)
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in _FORMS \
            or not isinstance(next(iter(value.values())), str) or not next(iter(value.values())):
        raise InputError(f"{where}: sway amplitude_image must be true, false, {{name: FILE}} (with a {part} part) "
                         "or {path: FILE}")
    (form, text), = value.items()
    if (form == "name") != (part in parts):
        raise InputError(f"{where}: sway amplitude_image gives a {form} but the {part} part is "
                         f"{'missing' if form == 'name' else 'there'}")
    if form == "path":
        return text
    data = parts[part]
    if data.ndim != 1 or data.dtype != np.uint8:
        raise InputError(f"{where}: {part} must be the file's bytes as a 1-D uint8 part")
    return text, data


def file_sources(values: Sequence[Any], parts: Mapping[str, np.ndarray]) -> dict[int, tuple[str, np.ndarray] | str]:
    """Region index -> its amplitude image sent as a file, from ``body["regions"]`` (checked by ``file_source``)."""
    sources = {}
    for index, entry in enumerate(values):
        motion = entry.get("motion") if isinstance(entry, dict) else None
        sway = motion.get("sway") if isinstance(motion, dict) else None
        value = sway.get("amplitude_image") if isinstance(sway, dict) else None
        if isinstance(value, dict):
            sources[index] = file_source(value, parts, index)
    return sources
