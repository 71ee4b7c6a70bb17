"""Keeping whole-pixel landing from leaving single-pixel outliers (speckle) in a loop's finest band.

A loop's finest band moves by whole pixels (loop.py), so every particle lands next to new
neighbours. Where the rounded displacement steps (a 1-px staircase along a cloud's rim) or the
loop's two copies mix, a pixel can stand out from its new 3x3 neighbourhood far more than it did
from its old one: isolated dark or bright dots that real footage does not have. Each particle
carries how far its luma stood from its own 3x3 median (``luma_deviation``); after the splat, a
pixel that stands farther from its frame's 3x3 median than what landed there is pulled back to
that distance (``limit_outliers_``). Pulling in only ever removes detail, so the energy it took is
given back to the surrounding texture (a box of ``ENERGY_WINDOW`` px, gain capped by
``GIVE_BACK_GAIN``): the band does not soften as the loop goes on, and the loop does not breathe. Frame 0 is the input and is never touched.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .._cv import cv2
from .contrast import band_energy, box_mean

__all__ = ["luma_deviation", "limit_outliers_", "median3", "median3_torch", "ENERGY_WINDOW"]

GIVE_BACK_GAIN = 1.5
"""Largest gain that gives the energy taken from outliers back (the contrast restoration's cap
before issue 29's round 4; only the restoration's was raised, docs/benchmarks.md)."""

ENERGY_WINDOW = 15
"""Side (px) of the box over which the energy taken from outliers is given back. Without it
(measured with the deviations mixed linearly) the middle of a loop softened to 0.70 of frame 0's
sharpness on a real clip; 15 and 31 px scored alike (docs/benchmarks.md, tenth session)."""

_ROWS_PER_CHUNK = 256
"""Rows whose 3x3 windows ``median3_torch`` gathers at once: the nine-fold copy stays small."""


def median3(values: torch.Tensor) -> torch.Tensor:
    """3x3 median of each channel with replicated borders: (C, H, W) -> (C, H, W)."""
    if values.device.type == "cpu":
        return torch.stack([torch.from_numpy(cv2.medianBlur(plane.contiguous().numpy(), 3)) for plane in values])
    return median3_torch(values)


def median3_torch(values: torch.Tensor) -> torch.Tensor:
    """The torch reference of ``median3`` (any device)."""
    padded = F.pad(values[None], (1, 1, 1, 1), mode="replicate")[0]
    out = torch.empty_like(values)
    for top in range(0, values.shape[1], _ROWS_PER_CHUNK):
        rows = padded[:, top: top + _ROWS_PER_CHUNK + 2]
        windows = rows.unfold(1, 3, 1).unfold(2, 3, 1)
        out[:, top: top + windows.shape[1]] = windows.reshape(*windows.shape[:3], 9).median(dim=-1).values
    return out


def luma_deviation(band: torch.Tensor) -> torch.Tensor:
    """How far each pixel's luma (the channels' mean) stands from its 3x3 median: (C, H, W) -> (1, H, W)."""
    luma = band.mean(dim=0, keepdim=True)
    return (luma - median3(luma)).abs_()


def limit_outliers_(band: torch.Tensor, allowed: torch.Tensor, window: int = ENERGY_WINDOW) -> torch.Tensor:
    """Pull pixels back to at most ``allowed`` from their 3x3 median, then give the taken energy back.

    Args:
        band: (C, H, W) float32 splatted finest band, modified in place.
        allowed: (1, H, W) float32 the deviation that landed at each pixel (the RMS of the splatted
            ``luma_deviation`` of the particles; not scaled by the contrast restoration's gain).
        window: side of the box over which the band's energy is kept, px.

    Returns:
        ``band``: each pixel's luma moved to within ``allowed`` of its 3x3 median as it was before
        any pixel moved (the same offset is taken from every channel), then the band scaled by a
        gain in [1, GIVE_BACK_GAIN] that restores its box energy. Neither step is repeated, so a pixel
        may end a little beyond its limit where its neighbours moved too or the gain lifted it.
    """
    luma = band.mean(dim=0, keepdim=True)
    excess = luma.sub_(median3(luma))  # the deviation, then (in place) what exceeds ``allowed``
    excess.sub_(excess.clamp(min=-allowed, max=allowed))
    if not bool(excess.any()):
        return band
    before = box_mean(band_energy(band), window).clamp_(min=0)
    band -= excess
    after = box_mean(band_energy(band), window).clamp_(min=1e-12)
    return band.mul_(torch.sqrt(before / after).clamp_(1.0, GIVE_BACK_GAIN))
