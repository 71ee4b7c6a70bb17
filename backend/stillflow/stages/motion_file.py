"""Reading StyleCineGAN-layout motion files (.npy) and rejecting non-finite motion.

numpy only (no torch, no cv2, no bpy): the add-on bundles this module so its preview reads
motion files exactly as the engine does.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import InputError
from ..options import MAX_IMAGE_SIDE

__all__ = ["load_motion_file", "check_finite_motion", "check_motion_header", "MAX_MOTION_PX"]

MAX_MOTION_PX = 256.0
"""Fastest motion in px/frame a drift, field or file may ask for: a 4K still crossed in 15 frames (half a
second) is already a blur, and bounded values stay finite through resizing and any speed. A faster
drift on a small still only pads the canvas by its travel (1000 px/frame: 3 GB for a 16x16 still)."""

_NPY_HEADER_BYTES = 64 << 10


def check_finite_motion(field: np.ndarray, source: str, limit: float | None = None) -> None:
    """Raise InputError when a motion field holds NaN or infinity (or, given ``limit``, a |value| above it)."""
    bad = int(np.count_nonzero(~np.isfinite(field)))
    if bad:
        raise InputError(f"{source} holds {bad} non-finite value(s) (NaN or infinity)",
                         hint="fix or regenerate the motion; the splat cannot move pixels by NaN")
    if limit is not None and field.size and float(np.abs(field).max()) > limit:
        # bounded sources stay finite after resizing and the speed multiplier
        raise InputError(f"{source} holds motion beyond {limit:g} px/frame", hint="scale the motion down")


def load_motion_file(path: str | Path) -> np.ndarray:
    """Read a StyleCineGAN-layout motion file: float .npy of shape (1, 2, h, w) or (2, h, w).

    Returns:
        (2, h, w) float32, px/frame at width w; channel 0 = x (right), 1 = y (down).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"motion file {path} does not exist", hint="check the --motion path")
    check_motion_header(path, f"motion file {path.name}")
    try:
        field = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise InputError(f"motion file {path} is not a plain .npy array ({exc})",
                         hint="save it with numpy.save(float32 array); pickled files are refused") from None
    except OSError as exc:
        raise InputError(f"motion file {path} cannot be read: {exc}") from None
    if field.ndim == 4 and field.shape[:2] == (1, 2):
        field = field[0]
    if field.ndim != 3 or field.shape[0] != 2 or min(field.shape[1:]) < 1:
        raise InputError(f"motion file {path.name} has shape {tuple(field.shape)}; expected (2, H, W) or (1, 2, H, W)")
    if not np.issubdtype(field.dtype, np.floating):
        raise InputError(f"motion file {path.name} has dtype {field.dtype}; expected float32")
    check_finite_motion(field, f"motion file {path.name}", MAX_MOTION_PX)
    return field.astype(np.float32)


def check_motion_header(source: str | Path | bytes | memoryview, what: str, max_side: int = MAX_IMAGE_SIDE) -> None:
    """Raise InputError unless a .npy file (path or bytes) declares a float (2, h, w) or (1, 2, h, w)
    array with sides up to ``max_side`` that its size actually holds, read from the header alone.

    A 128-byte file can declare 75 GiB; this refuses it before anything is allocated.
    """
    try:
        if isinstance(source, (str, Path)):
            with open(source, "rb") as handle:
                shape, dtype, offset = _npy_header(handle)
            size = os.path.getsize(source)
        else:
            data = memoryview(source).cast("B")
            shape, dtype, offset = _npy_header(io.BytesIO(bytes(data[:_NPY_HEADER_BYTES])))
            size = data.nbytes
    except OSError as exc:
        raise InputError(f"{what} cannot be read: {exc.strerror}") from None
    except ValueError as exc:
        raise InputError(f"{what} is not a plain .npy array ({str(exc)[:120]})",
                         hint="save it with numpy.save(float32 array); pickled files are refused") from None
    sides = shape[-2:] if len(shape) in (3, 4) else ()
    if (len(shape) == 4 and shape[:2] != (1, 2)) or (len(shape) == 3 and shape[0] != 2) or not sides:
        raise InputError(f"{what} has shape {shape}; expected (2, H, W) or (1, 2, H, W)")
    if not 1 <= min(sides) or max(sides) > max_side:
        raise InputError(f"{what} is {sides[1]}x{sides[0]}; sides must be 1 to {max_side}")
    if dtype.kind != "f" or dtype.itemsize > 8:
        raise InputError(f"{what} has dtype {dtype}; expected float32")
    needed = offset + 2 * sides[0] * sides[1] * dtype.itemsize
    if size < needed:
        raise InputError(f"{what} declares {needed} bytes but holds {size}", hint="the file is cut short")


def _npy_header(handle: BinaryIO) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) from a .npy header; ValueError when it is not one."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    else:
        raise ValueError(f"npy format version {version} is not read here")
    if dtype.hasobject:
        raise ValueError("object arrays are refused")
    return tuple(int(side) for side in shape), dtype, handle.tell()
