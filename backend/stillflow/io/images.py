"""Reading stills and masks, writing frames: PNG (8/16-bit), JPEG and float OpenEXR."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .._cv import cv2
from ..errors import InputError
from ..link.wire_amplitude import levels_to_amplitude, values_to_amplitude
from ..options import MAX_IMAGE_SIDE

__all__ = ["load_image", "load_mask", "load_frame_uint8", "check_mask_shape", "save_frame", "to_uint8", "FRAME_SUFFIX",
           "MIN_IMAGE_SIDE", "load_amplitude_file", "load_amplitude",
           "MASK_ASPECT_TOLERANCE"]

log = logging.getLogger(__name__)

MIN_IMAGE_SIDE = 8
FRAME_SUFFIX = {"png": ".png", "png16": ".png", "exr": ".exr"}
MASK_ASPECT_TOLERANCE = 0.02
"""Largest relative difference between a mask's and its image's aspect ratio (rounding of a scaled copy)."""
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png_whole(path: Path, what: str) -> None:
    """Raise InputError when a PNG file's chunks stop before IEND (libpng would print its own error line)."""
    with open(path, "rb") as stream:
        if stream.read(8) != _PNG_SIGNATURE:
            return  # not a PNG: OpenCV decides what it is
        size = path.stat().st_size
        while True:
            header = stream.read(8)
            if len(header) < 8:
                break
            length = int.from_bytes(header[:4], "big")
            if header[4:] == b"IEND":
                return
            end = stream.tell() + length + 4  # chunk data and CRC
            if end > size:
                break
            stream.seek(end)
    raise InputError(f"{what} {path} is truncated or damaged (its PNG data ends early)",
                     hint="export or copy the file again")


def _read_exr(path: Path) -> np.ndarray:
    """(H, W, C) float32 from an OpenEXR file (RGB or RGBA)."""
    import OpenEXR

    with OpenEXR.File(str(path)) as exr:
        channels = exr.channels()
        if "RGBA" in channels:
            return np.asarray(channels["RGBA"].pixels, np.float32)
        if "RGB" in channels:
            return np.asarray(channels["RGB"].pixels, np.float32)
        names = [n for n in ("R", "G", "B", "A") if n in channels]
        if names[:3] != ["R", "G", "B"]:
            raise InputError(f"EXR file {path.name} has channels {sorted(channels)}; expected R, G, B (and A)")
        return np.stack([np.asarray(channels[n].pixels, np.float32) for n in names], axis=-1)


def _read_any(path: Path, what: str) -> np.ndarray:
    """Raw pixels of an image file, RGB(A) channel order, native dtype."""
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist", hint="check the path")
    if path.suffix.lower() == ".exr":
        try:
            return _read_exr(path)
        except (OSError, RuntimeError) as exc:
            raise InputError(f"{what} {path} is not a readable OpenEXR file: {exc}") from None
    _check_png_whole(path, what)
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise InputError(f"{what} {path} cannot be read as an image", hint="use PNG, JPEG or EXR")
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    elif pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGBA)
    return pixels


def _to_float(pixels: np.ndarray, what: str) -> np.ndarray:
    """uint8 / uint16 / float pixels as float32 (uint scaled to [0, 1])."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / 255.0
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) / 65535.0
    if np.issubdtype(pixels.dtype, np.floating):
        pixels = pixels.astype(np.float32)
        if not np.isfinite(pixels).all():
            raise InputError(f"{what} holds non-finite pixel values")
        return pixels
    raise InputError(f"{what} has unsupported pixel type {pixels.dtype}; expected uint8, uint16 or float")


def load_image(image: str | Path | np.ndarray) -> np.ndarray:
    """A still as (H, W, C) float32, C = 3 or 4; 8/16-bit values scaled to [0, 1], EXR kept linear.

    Raises:
        InputError: missing or unreadable file, wrong channel count, size out of range.
    """
    what = "image" if isinstance(image, np.ndarray) else f"image {Path(image).name}"
    pixels = image if isinstance(image, np.ndarray) else _read_any(Path(image), "image")
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise InputError(f"{what} has shape {tuple(pixels.shape)}; expected (H, W, 3) RGB or (H, W, 4) RGBA")
    height, width = pixels.shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise InputError(f"{what} is {width}x{height} px, too small: sides must be at least {MIN_IMAGE_SIDE} px",
                         hint=f"use a larger image (upscale it so that each side has {MIN_IMAGE_SIDE} px or more)")
    if max(height, width) > MAX_IMAGE_SIDE:
        raise InputError(f"{what} is {width}x{height} px, too large: sides must be at most {MAX_IMAGE_SIDE} px",
                         hint=f"downscale the image to {MAX_IMAGE_SIDE} px or less on its longer side")
    return np.ascontiguousarray(_to_float(pixels, what))


def load_mask(mask: str | Path | np.ndarray, kind: str = "mask") -> np.ndarray:
    """A mask (or another grayscale map, named ``kind`` in messages) as (h, w) float32 in [0, 1]; RGB uses channel 0."""
    what = kind if isinstance(mask, np.ndarray) else f"{kind} {Path(mask).name}"
    pixels = mask if isinstance(mask, np.ndarray) else _read_any(Path(mask), kind)
    if pixels.ndim == 3:
        pixels = pixels[:, :, 0]
    if pixels.ndim != 2 or min(pixels.shape) < 1:
        raise InputError(f"{what} has shape {tuple(pixels.shape)}; expected a 2-D grayscale image")
    return np.clip(_to_float(np.ascontiguousarray(pixels), what), 0.0, 1.0)


def load_amplitude_file(path: str | Path, what: str) -> np.ndarray:
    """A sway amplitude image file as the add-on reads the image in Blender: (h, w) float32 in [0, 1].

    Every backend route that reads one (``--region``, region files, ``SwaySpec`` paths, batch
    sidecars, files sent over the wire) reads it here: the mean of its colour channels, alpha not
    read (as ``core.mask_sources.mask_from_pixels``), a grey file as three equal channels. An 8-bit
    file gives exactly the add-on's bits (``link.wire_amplitude.levels_to_amplitude``); a 16-bit or
    float (EXR) one its stored values (k / 65535; floats as they are), what Blender shows for it in
    colour space Non-Color. ``load_mask`` reads channel 0 instead: masks keep that reading.

    Raises:
        InputError: missing, unreadable, not grey or RGB(A), or of another pixel type (``what`` names it).
    """
    pixels = _read_any(Path(path), what)
    if not (pixels.ndim == 2 or pixels.ndim == 3 and pixels.shape[2] in (3, 4)) or min(pixels.shape[:2]) < 1:
        raise InputError(f"{what} {Path(path).name} has shape {tuple(pixels.shape)}; expected a grey or RGB image",
                         hint="save it as a grey or RGB PNG, JPEG or EXR")
    if pixels.dtype == np.uint8:
        return levels_to_amplitude(pixels)
    return values_to_amplitude(_to_float(pixels[:, :, :3] if pixels.ndim == 3 else pixels, f"{what} {Path(path).name}"))


def load_amplitude(image: str | Path | np.ndarray, what: str) -> np.ndarray:
    """A sway's amplitude image as (h, w) float32 in [0, 1]: a file by ``load_amplitude_file``; an array's
    values as a mask's are read, and a colour (h, w, 3 or 4) array, like a colour file, by its colour
    channels' mean (alpha not read), so an image reads the same as a file and as its pixels."""
    if not isinstance(image, np.ndarray):
        return load_amplitude_file(image, what)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        if image.dtype == np.uint8:
            return levels_to_amplitude(image)  # the very bits of the same levels saved as a file
        return values_to_amplitude(np.stack([load_mask(image[:, :, c], what) for c in range(3)], axis=2))
    return load_mask(image, what)


def check_mask_shape(what: str, shape: tuple[int, ...], height: int, width: int) -> None:
    """Refuse a (h, w) mask whose aspect ratio differs from the (height, width) image's; log a resize.

    Raises:
        InputError: the aspect ratios differ by more than MASK_ASPECT_TOLERANCE (it would be stretched).
    """
    h, w = shape[:2]
    if (h, w) == (height, width):
        return
    if abs((w / h) / (width / height) - 1.0) > MASK_ASPECT_TOLERANCE:
        raise InputError(f"the {what} is {w}x{h} px but the image is {width}x{height} px: a different shape, so it "
                         "would be stretched", hint=f"give a {what} of the image's size ({width}x{height}) or shape")
    log.info("the %s (%dx%d px) is resized to the image's %dx%d px", what, w, h, width, height)


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """(H, W, C) float in [0, 1] -> uint8, rounded and clipped (a block of rows at a time: no float copy)."""
    out = np.empty(frame.shape, np.uint8)
    step = max(1, (1 << 20) // max(1, frame[0].size))
    for top in range(0, frame.shape[0], step):
        block = frame[top:top + step] * np.float32(255.0)
        out[top:top + step] = np.clip(np.rint(block, out=block), 0, 255, out=block)
    return out


def load_frame_uint8(path: Path) -> np.ndarray:
    """A frame this package wrote, as (H, W, C) uint8 RGB(A): 8-bit PNGs without a float round trip."""
    pixels = _read_any(Path(path), "frame")
    return pixels if pixels.dtype == np.uint8 else to_uint8(_to_float(pixels, "frame"))


def save_frame(path: Path, frame: np.ndarray, fmt: str) -> None:
    """Write one (H, W, C) float32 frame as png (8-bit), png16 (16-bit) or exr (float, ZIP)."""
    if fmt == "exr":
        import OpenEXR

        name = "RGBA" if frame.shape[2] == 4 else "RGB"
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        with OpenEXR.File(header, {name: np.ascontiguousarray(frame, np.float32)}) as exr:
            exr.write(str(path))
        return
    if fmt == "png16":
        pixels = np.clip(np.rint(frame * 65535.0), 0, 65535).astype(np.uint16)
    else:
        pixels = to_uint8(frame)
    code = cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR
    if not cv2.imwrite(str(path), cv2.cvtColor(pixels, code), [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"could not write frame {path}")
