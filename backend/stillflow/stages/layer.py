"""The moving layer: the still with its static part filled from the moving region (layered methods).

The Laplacian bands of a moving pixel next to the mask's edge hold the static side's edge energy
(a dark ridge leaves a dark lobe in the sky's detail bands and its colour in the low-pass band),
and the splat carries that into the moving region: dark streaks trailing off a ridge, a light halo
along it. Building the pyramid over a layer whose static pixels are filled from the moving ones
(normalised convolution at widening scales) leaves nothing of the static scene to carry; the
composite still shows the static pixels as they are.
"""
from __future__ import annotations

import numpy as np

from .._cv import cv2

__all__ = ["FILL_REACH", "RIM", "fill_behind_mask"]

RIM = 1
"""Pixels of the moving region's outer rim filled as well: they mix both sides (anti-aliasing, an edge
drawn a pixel off) and carried a dotted line of the static side's colour into the moving region."""

_RADII = (2, 4, 8, 16, 32, 64)
_MIN_WEIGHT = 1e-12
FILL_REACH = _RADII[-1]
"""Pixels from the moving region that the fill reaches, and that a filled pixel depends on (a strip's
renderer needs this many more rows of margin). Farther static pixels keep their own values: the
splat never reads them (loop.py gives particles beyond the pyramid's reach weight 0)."""


def fill_behind_mask(image: np.ndarray, moving: np.ndarray, rim: int = RIM) -> np.ndarray:
    """``image`` with its static pixels (``moving`` False) filled from the moving ones near them.

    Each scale r is a normalised convolution (a tent of radius r over the moving pixels' values and
    over their indicator); finer scales weigh 4x more per step, so the fill continues the
    moving region's local colour at its edge and its broad mean farther out. The blurs see zeros
    beyond the image, so a filled pixel depends only on moving pixels within FILL_REACH (the same
    in any crop that holds them: strips agree with the whole image).

    Args:
        image: (H, W, C) float32.
        moving: (H, W) bool, True where the content moves.
        rim: pixels of ``moving``'s edge (next to a static pixel, 8-connected) filled as well.

    Returns:
        (H, W, C) float32; ``image`` itself when every or no pixel moves.
    """
    if moving.all() or not moving.any():
        return image
    if rim > 0:
        # The image's border is no edge: erode() treats pixels beyond it as moving.
        moving = cv2.erode(moving.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=rim) > 0
    height, width, channels = image.shape
    known = moving.astype(np.float32)
    stacked = np.concatenate([image * known[:, :, None], known[:, :, None]], axis=2)
    total = np.zeros_like(stacked)
    for step, radius in enumerate(_RADII):
        # Two box blurs make a tent of this radius; OpenCV sums a box in double, so unlike a stack
        # blur's float running sums the result does not depend on where the crop starts.
        size = (radius + 1, radius + 1)
        tent = cv2.blur(cv2.blur(stacked, size, borderType=cv2.BORDER_CONSTANT), size, borderType=cv2.BORDER_CONSTANT)
        total += tent * np.float32(4.0 ** -step)
    weight = total[:, :, channels:]
    # Reached pixels only (beyond FILL_REACH the weight is exactly 0).
    reached = (weight[:, :, 0] > _MIN_WEIGHT) & ~moving
    out = image.copy()
    out[reached] = total[:, :, :channels][reached] / weight[reached]
    return out
