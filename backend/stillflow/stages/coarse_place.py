"""The loop's middle keeps the still's coarse contrast at each place, so it changes per frame as the ends do.

In the middle of a loop two copies far apart are mixed, one stretched by the field, and on fast
footage much of the frame has flowed in from outside it, where the coarsest band is a smooth guess
(stages/padding.continue_edge). The middle's clouds are then flatter at the scale of a few tens of
pixels than the still's: they change less per frame than at the loop's ends, where one copy shows the
input's own structure, and the wrap between the ends stands out against the middle (on a real sunset
at twice its speed the seam was 1.09 of the median step; docs/benchmarks.md, issue 29 round 9).

Where a frame's luma band at 1/4 or 1/8 scale has less local energy than the still's at the same
place, each channel's band there is raised by sqrt(still / frame), up to a cap that grows from 1 where the cross-over
begins and ends to COARSE_GAIN at its middle (4 a (1 - a) for the second copy's share a): frames with
one copy are the input's own structure moved and are left alone, and so is a frame as contrasty as
the still. It only raises, as the fine detail's stage does (stages/place.py).
"""
from __future__ import annotations

import numpy as np
import torch

from .._cv import cv2
from .contrast import box_mean
from .place import luma_cpu, pyr_down_reflect, pyr_up_reflect

__all__ = ["COARSE_GAIN", "COARSE_LEVELS", "COARSE_MIN_SIDE", "COARSE_REACH", "COARSE_WINDOW", "coarse_energy",
           "coarse_energy_torch", "keep_coarse_in_place_", "keep_coarse_in_place_torch_", "middle_cap"]

COARSE_LEVELS = (2, 3)
"""Pyramid levels whose band is kept (1/4 and 1/8 scale). Level 3 alone left the seam at 1.060; levels
1-3 scored about as 2-3 (1.050 against 1.057, both at gain 1.5) at more cost (docs/benchmarks.md)."""

COARSE_WINDOW = 9
"""Side of the box, in each level's pixels, over which its energy is compared (5 scored worse, 15 alike)."""

COARSE_GAIN = 3.0
"""Largest gain, at the middle of the cross-over: the fast sunset's seam 1.042 (3.5: 1.030, 4: 1.020; 2 in a
prototype: 1.053), at -0.02 to -0.09 dB over all frames of the shared clips."""

_DEEPEST = COARSE_LEVELS[-1]
_BELOW = 2 ** (_DEEPEST + 1)  # full-resolution pixels per pixel of the level below the deepest band
COARSE_REACH = 2 * (_BELOW - 1) + _BELOW + (COARSE_WINDOW // 2) * 2 ** _DEEPEST + _BELOW - 2
"""Pixels beyond a pixel that its raise reads (92): the 5-tap pyramid down to one level below the
deepest band, that level's way back up into the band, the band's box, and the raise's way up."""

COARSE_MIN_SIDE = 3 * _BELOW
"""Smallest side of a frame the stage works on (48): the level below the deepest band keeps 3 px, as
the reflected 5-tap blur needs. A smaller frame is left as it is."""


def middle_cap(share: float, gain: float = COARSE_GAIN) -> float:
    """The largest gain for a frame whose second copy has ``share`` of the mix: 1 at 0 and 1, ``gain`` at 0.5."""
    return 1.0 + (gain - 1.0) * 4.0 * share * (1.0 - share)


def coarse_energy(image: torch.Tensor, window: int = COARSE_WINDOW) -> list[torch.Tensor]:
    """Local energy of the luma's band at each of COARSE_LEVELS: (C, H, W) -> [(1, h_l, w_l)] ([] if too small)."""
    if min(image.shape[-2:]) < COARSE_MIN_SIDE:
        return []
    if image.device.type == "cpu" and image.is_contiguous():
        return [torch.from_numpy(_energy_cpu(band, window))[None] for band in _bands_cpu(luma_cpu(image.numpy()))]
    return coarse_energy_torch(image, window)


def coarse_energy_torch(image: torch.Tensor, window: int = COARSE_WINDOW) -> list[torch.Tensor]:
    """The torch reference of ``coarse_energy`` (any device)."""
    if min(image.shape[-2:]) < COARSE_MIN_SIDE:
        return []
    return [box_mean(band.square(), window) for band in _bands_torch(image.mean(dim=0, keepdim=True))]


def keep_coarse_in_place_(frame: torch.Tensor, place: list[torch.Tensor], cap: float,
                          window: int = COARSE_WINDOW) -> torch.Tensor:
    """Raise ``frame``'s coarse bands (in place) where their energy fell below ``place``'s.

    Args:
        frame: (C, H, W) float32 contiguous animated frame, modified in place.
        place: ``coarse_energy`` of the still over the same pixels.
        cap: largest gain (``middle_cap``); 1 leaves the frame as it is.
        window: side of the box the energies are taken over (as ``place``'s).

    Returns:
        ``frame`` with each band at COARSE_LEVELS times a gain in [1, cap] per pixel of that level
        (taken from the luma, applied to every channel's band); as it is if a side is under COARSE_MIN_SIDE.
    """
    if cap <= 1.0 or min(frame.shape[-2:]) < COARSE_MIN_SIDE:
        return frame
    if frame.device.type == "cpu" and frame.is_contiguous():
        _keep_cpu(frame.numpy(), [energy[0].numpy() for energy in place], cap, window)
        return frame
    return keep_coarse_in_place_torch_(frame, place, cap, window)


def keep_coarse_in_place_torch_(frame: torch.Tensor, place: list[torch.Tensor], cap: float,
                                window: int = COARSE_WINDOW) -> torch.Tensor:
    """The torch reference of ``keep_coarse_in_place_`` (any device)."""
    if cap <= 1.0 or min(frame.shape[-2:]) < COARSE_MIN_SIDE:
        return frame
    # The luma's own pyramid, not the channels' bands' mean: the same numbers as the still's, so a
    # frame as contrasty as the still is left exactly as it is.
    luma = _bands_torch(frame.mean(dim=0, keepdim=True))
    gains = [(still / box_mean(band.square(), window).clamp_(min=1e-12)).clamp_(1.0, cap * cap).sqrt_().sub_(1.0)
             for still, band in zip(place, luma)]
    lift = None
    for band, gain in reversed(list(zip(_bands_torch(frame), gains))):
        part = band * gain
        lift = part if lift is None else part + pyr_up_reflect(lift, part.shape[-2:])
    for size in _sizes_up(tuple(frame.shape[-2:])):
        lift = pyr_up_reflect(lift, size)
    return frame.add_(lift)


def _sizes_up(size: tuple[int, int]) -> list[tuple[int, int]]:
    """The (H, W) of each pyramid level from the finest band's up to ``size``, that a lift is doubled through."""
    sizes = [size]
    for _ in range(COARSE_LEVELS[0] - 1):
        sizes.append(((sizes[-1][0] + 1) // 2, (sizes[-1][1] + 1) // 2))
    return sizes[::-1]


def _bands_torch(image: torch.Tensor) -> list[torch.Tensor]:
    """The Laplacian bands of (C, H, W) ``image`` at COARSE_LEVELS, OpenCV's pyramid (reflected borders)."""
    levels = [image]
    for _ in range(_DEEPEST + 1):
        levels.append(pyr_down_reflect(levels[-1]))
    return [levels[k] - pyr_up_reflect(levels[k + 1], levels[k].shape[-2:]) for k in COARSE_LEVELS]


def _bands_cpu(plane: np.ndarray) -> list[np.ndarray]:
    """``_bands_torch`` of one contiguous (H, W) float32 plane with OpenCV."""
    levels = [plane]
    for _ in range(_DEEPEST + 1):
        levels.append(cv2.pyrDown(levels[-1]))
    return [cv2.subtract(levels[k], cv2.pyrUp(levels[k + 1], dstsize=levels[k].shape[::-1])) for k in COARSE_LEVELS]


def _energy_cpu(band: np.ndarray, window: int) -> np.ndarray:
    """Local energy of an (h, w) float32 band over a box of ``window`` px."""
    return cv2.blur(cv2.multiply(band, band), (window, window), borderType=cv2.BORDER_REPLICATE)


def _keep_cpu(planes: np.ndarray, place: list[np.ndarray], cap: float, window: int) -> None:
    """``keep_coarse_in_place_`` on a contiguous CPU frame with OpenCV."""
    gains = []
    for still, band in zip(place, _bands_cpu(luma_cpu(planes))):  # the luma's own pyramid, as the torch path
        energy = _energy_cpu(band, window)
        ratio = cv2.divide(still, np.maximum(energy, np.float32(1e-12)))
        gain = cv2.sqrt(np.clip(ratio, 1.0, cap * cap, out=ratio))
        gain -= np.float32(1.0)
        gains.append(gain)
    if not any(gain.any() for gain in gains):
        return
    for plane in planes:  # views: written in place
        lift = None
        for band, gain in reversed(list(zip(_bands_cpu(plane), gains))):
            part = cv2.multiply(band, gain)
            lift = part if lift is None else cv2.add(part, cv2.pyrUp(lift, dstsize=part.shape[::-1]))
        for size in _sizes_up(plane.shape):
            lift = cv2.pyrUp(lift, dstsize=size[::-1])
        cv2.add(plane, lift, dst=plane)
