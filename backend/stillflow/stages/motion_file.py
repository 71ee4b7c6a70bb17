"""Reading StyleCineGAN-layout motion files (.npy) and rejecting non-finite motion.

numpy only (no torch, no cv2, no bpy): the add-on bundles this module so its preview reads
motion files exactly as the engine does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["load_motion_file", "check_finite_motion"]


def check_finite_motion(field: np.ndarray, source: str) -> None:
    """Raise InputError when a motion field holds NaN or infinity."""
    bad = int(np.count_nonzero(~np.isfinite(field)))
    if bad:
        raise InputError(f"{source} holds {bad} non-finite value(s) (NaN or infinity)",
                         hint="fix or regenerate the motion; the splat cannot move pixels by NaN")


def load_motion_file(path: str | Path) -> np.ndarray:
    """Read a StyleCineGAN-layout motion file: float .npy of shape (1, 2, h, w) or (2, h, w).

    Returns:
        (2, h, w) float32, px/frame at width w; channel 0 = x (right), 1 = y (down).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"motion file {path} does not exist", hint="check the --motion path")
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
    check_finite_motion(field, f"motion file {path.name}")
    return field.astype(np.float32)
