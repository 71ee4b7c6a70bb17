"""The artist's inputs as plain arrays: image pixels, mask pixels, arrows and anchors.

No ``bpy`` module use. The bpy layer (``addon/masks.py``) reads Blender data into flat float
buffers and point lists; this module turns them into what ``stillflow.link.client`` sends.

Convention:
    Blender pixel buffers are flat RGBA/... float32, rows bottom-up. Mask datablock points are
    normalised with the origin at the bottom-left: 0..1 spans the image's longer side, and the
    shorter side is centred in that square (Blender's mask frame; the compositor's Mask node
    rasterises the same way). Backend arrays are
    top-down (H, W, C); backend points are pixels with x right, y down and pixel centres at
    integer coordinates (options.MotionSpec).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import numpy.typing as npt

from .lib import load

__all__ = [
    "Spline",
    "normalised_to_pixels",
    "pixels_to_normalised",
    "hints_from_splines",
    "image_from_pixels",
    "mask_from_pixels",
    "check_mask",
    "ASPECT_TOLERANCE",
    "check_aspect",
    "srgb_encode",
]

_errors = load("errors")
_wire_amplitude = load("link.wire_amplitude")

ASPECT_TOLERANCE = 0.02
"""How far a mask-like image's aspect ratio may differ from the still's, as a fraction: the backend's
``stillflow.io.images.MASK_ASPECT_TOLERANCE`` (that module needs OpenCV and is not bundled; a test
keeps the two equal)."""


@dataclass(frozen=True, slots=True)
class Spline:
    """One Mask spline as plain data: its points (normalised, origin bottom-left) and whether it is closed."""

    points: tuple[tuple[float, float], ...]
    is_cyclic: bool


def normalised_to_pixels(points: npt.ArrayLike, width: int, height: int) -> npt.NDArray[np.float64]:
    """Mask points (K, 2) -> pixel coordinates (K, 2), x right, y down, pixel centres at integers."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    side = max(width, height)
    return np.stack([(pts[:, 0] - 0.5) * side + width / 2 - 0.5,
                     height / 2 - (pts[:, 1] - 0.5) * side - 0.5], axis=1)


def pixels_to_normalised(points: npt.ArrayLike, width: int, height: int) -> npt.NDArray[np.float64]:
    """Pixel coordinates (K, 2), x right, y down -> Mask points (K, 2); the inverse of normalised_to_pixels."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    side = max(width, height)
    return np.stack([(pts[:, 0] + 0.5 - width / 2) / side + 0.5,
                     (height / 2 - 0.5 - pts[:, 1]) / side + 0.5], axis=1)


def hints_from_splines(splines: Sequence[Spline], width: int, height: int
                       ) -> tuple[tuple[tuple[float, float, float, float], ...], tuple[tuple[float, float], ...]]:
    """Arrows (x0, y0, x1, y1) and anchors (x, y) in pixels from Mask splines.

    An open spline with two or more points is one arrow from its first to its last point; a
    spline with a single point is an anchor; closed splines outline the region and are skipped.
    Arrows shorter than a hundredth of a pixel carry no direction and are skipped too.
    """
    arrows: list[tuple[float, float, float, float]] = []
    anchors: list[tuple[float, float]] = []
    for spline in splines:
        if len(spline.points) == 1:
            (x, y), = normalised_to_pixels(spline.points, width, height)
            anchors.append((float(x), float(y)))
        elif len(spline.points) >= 2 and not spline.is_cyclic:
            (x0, y0), (x1, y1) = normalised_to_pixels([spline.points[0], spline.points[-1]], width, height)
            if np.hypot(x1 - x0, y1 - y0) >= 0.01:
                arrows.append((float(x0), float(y0), float(x1), float(y1)))
    return tuple(arrows), tuple(anchors)


def srgb_encode(linear: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Scene-linear values -> sRGB-encoded values in [0, 1] (IEC 61966-2-1 transfer curve)."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055).astype(np.float32)


def image_from_pixels(flat: npt.NDArray[np.float32], width: int, height: int, channels: int, *,
                      is_linear: bool) -> npt.NDArray[np.float32]:
    """Blender pixel buffer -> backend image.

    Args:
        flat: (height * width * channels,) float32, rows bottom-up, as ``Image.pixels.foreach_get`` gives.
        width, height, channels: the Image's size and channel count (1 to 4).
        is_linear: True for float images in a linear colour space (their values get sRGB-encoded,
            because the backend treats float images as display values in [0, 1]).

    Returns:
        image: (H, W, 3) or (H, W, 4) float32 in [0, 1], rows top-down; alpha is kept only when
        some pixel is not opaque.
    """
    pixels = np.asarray(flat, np.float32).reshape(height, width, channels)[::-1]
    if channels < 3:
        rgb = np.repeat(pixels[..., :1], 3, axis=2)
    else:
        rgb = pixels[..., :3]
    rgb = srgb_encode(rgb) if is_linear else np.clip(rgb, 0.0, 1.0)
    if channels in (2, 4) and float(pixels[..., -1].min()) < 1.0:
        return np.ascontiguousarray(np.concatenate([rgb, np.clip(pixels[..., -1:], 0.0, 1.0)], axis=2))
    return np.ascontiguousarray(rgb, np.float32)


def mask_from_pixels(flat: npt.NDArray[np.float32], width: int, height: int,
                     channels: int) -> npt.NDArray[np.float32]:
    """Blender pixel buffer of a grayscale mask -> (H, W) float32 in [0, 1], rows top-down, 1 = animate.

    The mean of the colour channels is used, so a mask painted in any grey or white works; it is
    ``link.wire_amplitude.channel_mean``, so an amplitude image's file decoded by the backend
    (``levels_to_amplitude``) gives the same bits.
    """
    pixels = np.asarray(flat, np.float32).reshape(height, width, channels)[::-1]
    colour = pixels[..., : min(3, channels)] if channels != 2 else pixels[..., :1]
    return _wire_amplitude.channel_mean([colour[..., c] for c in range(colour.shape[2])])


def check_mask(mask: npt.NDArray[np.float32], source: str) -> npt.NDArray[np.float32]:
    """Raise InputError when the mask marks nothing to animate; return it unchanged."""
    if mask.size == 0 or float(mask.max()) <= 0.0:
        raise _errors.InputError(f"the mask {source} is empty (all black)",
                                 hint="paint or draw white where the picture should move")
    return mask


def check_aspect(shape: tuple[int, ...], width: int, height: int, what: str) -> None:
    """Raise InputError when an (h, w, ...) array's aspect ratio is not the width x height still's.

    The backend resizes a mask-like image to the still, so only its shape must match: one of another
    shape would be stretched (``what`` names it in the message).
    """
    rows, cols = shape[:2]
    if rows == 0 or cols == 0 or abs((cols / rows) / (width / height) - 1.0) > ASPECT_TOLERANCE:
        raise _errors.InputError(f"the {what} is {cols}x{rows} px but the still is {width}x{height} px: another "
                                 "shape, so it would be stretched",
                                 hint=f"give it the still's size ({width}x{height}) or shape")
