"""Filling pixels that no particle reached (algorithm.md §1.2 step 7).

Push-pull (a normalised-convolution pyramid): known pixels are averaged down with their
weights until every pixel of the coarsest level is covered, then holes take the bilinear
upsampling of the coarser filled level. Unlike a box mean with holes counted as zero it
does not darken. Telea inpainting (cv2) handles what no pyramid level could cover.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .._cv import cv2
from . import cpu_kernels

__all__ = ["fill_holes", "fill_cracks", "fill_from_neighbours_torch", "inpaint_telea"]

_NEIGHBOUR_PASSES = 4
_FILLED_WEIGHT = 1e-3
"""Weight of a pixel filled by an earlier pass: small beside real particles when both border a hole."""


def fill_holes(values: torch.Tensor, den: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """Replace pixels whose splat weight is <= threshold by an average of their known surroundings.

    Args:
        values: (C, H, W) float32 normalised splat output.
        den: (H, W) float32 summed splat weights.
        threshold: weight at or below which a pixel is a hole.

    Returns:
        (C, H, W) float32, holes filled; unchanged where den > threshold. If nothing is
        known at all the input is returned as is.
    """
    if not bool((den <= threshold).any()):
        return values
    # Most holes are cracks a pixel or two wide: den-weighted 3x3 means fill them ring by ring in
    # a few cheap passes; only wide holes go on to the push-pull pyramid.
    values, holes = fill_cracks(values, den, threshold)
    if not bool(holes.any()):
        return values
    known = (~holes).to(values.dtype)
    if not bool(known.any()):
        return values
    sums = [values * known]
    weights = [known]
    while bool((weights[-1] == 0).any()) and min(weights[-1].shape[-2:]) > 1:
        sums.append(F.avg_pool2d(sums[-1][None], 2, ceil_mode=True)[0])
        weights.append(F.avg_pool2d(weights[-1][None, None], 2, ceil_mode=True)[0, 0])
    filled = sums[-1] / weights[-1].clamp(min=1e-12)
    for level in range(len(sums) - 2, -1, -1):
        size = sums[level].shape[-2:]
        upsampled = F.interpolate(filled[None], size=size, mode="bilinear", align_corners=False)[0]
        own = sums[level] / weights[level].clamp(min=1e-12)
        filled = torch.where(weights[level] > 0, own, upsampled)
    return torch.where(known > 0, values, filled)


def fill_cracks(values: torch.Tensor, den: torch.Tensor, threshold: float = 0.0, *,
                in_place: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill holes up to a few pixels from known ones with den-weighted 3x3 means, ring by ring.

    Every device runs the same passes (compiled on a CPU), so CPU and GPU renders agree on cracks.

    Args:
        values: (C, H, W) float32 normalised splat output (modified only with ``in_place``,
            which needs it contiguous).
        den: (H, W) float32 summed splat weights.
        threshold: weight at or below which a pixel is a hole.

    Returns:
        (C, H, W) float32 with the cracks filled, and (H, W) bool of the holes still left (all
        farther than the passes reach from any known pixel).
    """
    remaining = den <= threshold
    if not bool(remaining.any()):
        return values.contiguous(), remaining
    values = values if in_place else values.contiguous().clone()
    work = den.contiguous().clone()
    for _ in range(_NEIGHBOUR_PASSES):
        remaining = _fill_from_neighbours(values, work, threshold)
        if not bool(remaining.any()):
            break
        work[(work <= threshold) & ~remaining] = _FILLED_WEIGHT + threshold
    return values, remaining


def _fill_from_neighbours(values: torch.Tensor, den: torch.Tensor, threshold: float) -> torch.Tensor:
    """One ring of crack filling in place; returns the holes with no known neighbour."""
    if values.device.type == "cpu" and cpu_kernels.available():
        return torch.from_numpy(cpu_kernels.fill_from_neighbours_cpu(values.numpy(), den.numpy(), threshold))
    return fill_from_neighbours_torch(values, den, threshold)


def fill_from_neighbours_torch(values: torch.Tensor, den: torch.Tensor, threshold: float) -> torch.Tensor:
    """The torch reference of ``cpu_kernels.fill_from_neighbours_cpu`` (any device).

    Holes (den <= threshold) take the den-weighted mean of their known 3x3 neighbours, in place.

    Args:
        values: (C, H, W) float32, modified at hole pixels.
        den: (H, W) float32 splat weights.

    Returns:
        (H, W) bool: holes with no known neighbour.
    """
    holes = den <= threshold
    weight = torch.where(holes, 0.0, den)[None, None]
    ones = torch.ones((1, 1, 3, 3), dtype=values.dtype, device=values.device)
    total = F.conv2d(weight, ones, padding=1)[0, 0]
    acc = F.conv2d((values * weight[0]).unsqueeze(1), ones, padding=1)[:, 0]
    fill = holes & (total > 0)
    values.copy_(torch.where(fill[None], acc / torch.where(fill, total, torch.ones_like(total))[None], values))
    return holes & (total == 0)


def inpaint_telea(image: np.ndarray, holes: np.ndarray, radius: float = 5.0) -> np.ndarray:
    """Telea fast-marching inpainting of ``holes`` in a float image, channel by channel.

    Args:
        image: (H, W, C) float32.
        holes: (H, W) bool, True = to inpaint.
        radius: neighbourhood radius in pixels.

    Returns:
        (H, W, C) float32 with the hole pixels replaced.
    """
    if not holes.any():
        return image
    mask = holes.astype(np.uint8)
    out = image.copy()
    known = ~holes
    for c in range(image.shape[2]):
        channel = image[:, :, c]
        low = float(channel[known].min()) if known.any() else 0.0
        high = float(channel[known].max()) if known.any() else 1.0
        span = max(high - low, 1e-12)
        # OpenCV's float Telea extrapolates gradients and overshoots on textured images;
        # inpainting a 16-bit copy of the known range keeps the fill inside that range.
        scaled = np.clip(np.rint((channel - low) / span * 65535.0), 0, 65535).astype(np.uint16)
        filled = cv2.inpaint(scaled, mask, radius, cv2.INPAINT_TELEA).astype(np.float32) / 65535.0 * span + low
        out[:, :, c] = np.where(holes, filled, channel)
    return out
