"""Animation mask: resize, the StyleCineGAN refinement recipe, and the feathered composite mask (algorithm.md §4)."""
from __future__ import annotations

import numpy as np

from .._cv import cv2
from .guided import guided_filter

__all__ = ["resize_mask", "refine_mask", "snap_to_edges", "feather_mask"]

_REFINE_SIDE = 512
SNAP_EPS = 1e-3
"""Guided-filter regularisation of the edge snap: colour variance (of [0, 1] values) that counts as an edge."""


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a (h, w) float mask to (height, width), clipped to [0, 1]."""
    mask = mask.astype(np.float32)
    if mask.shape != (height, width):
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(mask, 0.0, 1.0)


def _fill_small(binary: np.ndarray, max_area: float) -> np.ndarray:
    """Set to 1 every 0-region not touching the border whose area is below ``max_area`` pixels."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((binary == 0).astype(np.uint8), connectivity=4)
    height, width = binary.shape
    x, y, w, h, area = (stats[:, i] for i in range(5))
    touches_border = (x == 0) | (y == 0) | (x + w == width) | (y + h == height)
    fill = (area < max_area) & ~touches_border
    fill[0] = False  # label 0 is the painted region itself
    out = binary.copy()
    out[fill[labels]] = 1
    return out


def _drop_small(binary: np.ndarray, max_area: float) -> np.ndarray:
    """Set to 0 every 1-region whose area is below ``max_area`` pixels."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=4)
    drop = stats[:, 4] < max_area
    drop[0] = False  # label 0 is the background
    out = binary.copy()
    out[drop[labels]] = 0
    return out


def _drop_specks(binary: np.ndarray, regions: np.ndarray, region_area: np.ndarray, frac: float) -> np.ndarray:
    """Set to 0 every 1-region of ``binary`` smaller than ``frac`` of the drawn region it lies in.

    ``regions`` labels the drawn regions (0 = none) and ``region_area`` gives each label's area; an
    island of ``binary`` lies inside one drawn region, so a region kept whole is never a speck.
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=4)
    region_of = np.zeros(count, np.int64)
    region_of[labels.ravel()] = regions.ravel()  # every pixel of an island names the same region
    drop = stats[:, 4] < frac * region_area[region_of]
    drop[0] = False  # label 0 is the background
    out = binary.copy()
    out[drop[labels]] = 0
    return out


def _drawn_regions(allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels (0 = unpainted) and areas of the drawn regions (8-connected, holes included)."""
    _, regions, stats, _ = cv2.connectedComponentsWithStats(allowed.astype(np.uint8), connectivity=8)
    area = stats[:, 4].astype(np.float64)
    area[0] = 0.0
    return regions, area


def refine_mask(mask: np.ndarray, *, min_region_frac: float = 0.03, min_mask_frac: float = 0.0,
                image: np.ndarray | None = None, fill_unpainted: bool = False) -> np.ndarray:
    """Clean a hand-drawn or predicted mask without growing it past what was painted.

    Works at about 512 px on the long side: dilate once (4x4 ellipse), erode twice (3x3
    ellipse) and fill holes smaller than ``min_region_frac`` of the image (StyleCineGAN recipe).
    The result is then limited to the painted pixels plus the holes that were filled: the
    recipe's closing and resampling never animate a pixel the user left unpainted. A filled hole
    keeps its pixels whose mask is exactly 0 unless ``fill_unpainted`` (a predicted mask's holes
    are noise; a drawn mask's 0 is the user's word). With ``image``, the edge is also snapped to
    the photo inside the painted region (``snap_to_edges``).

    Islands: a drawn mask loses only specks smaller than ``min_region_frac`` of the drawn region
    they belong to, and a drawn region that refinement would mostly remove (under half of its
    painted pixels left) comes back as painted (a small waterfall is the user's word too); a predicted mask (``fill_unpainted``) loses
    islands smaller than ``min_region_frac`` of the image. Falls back to all-animate when less
    than ``min_mask_frac`` remains.

    Args:
        mask: (H, W) float32 in [0, 1], 1 = animate.
        min_region_frac: holes smaller than this fraction of the image are filled; islands
            smaller than it (of their drawn region, or of a predicted mask's image) are removed.
        min_mask_frac: a result smaller than this fraction becomes all ones.
        image: optional (H, W, C) float32 photo in [0, 1] to snap the edge to.
        fill_unpainted: a predicted mask: also fill a hole's pixels whose mask is exactly 0, and
            drop islands by the image's size.

    Returns:
        (H, W) float32 binary mask (0 or 1) at the input size.
    """
    height, width = mask.shape
    scale = min(1.0, _REFINE_SIDE / max(height, width))
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(mask.astype(np.float32), small_size, interpolation=cv2.INTER_AREA)
    binary = (small > 0.5).astype(np.uint8)
    binary = cv2.dilate(binary, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (4, 4)), iterations=1)
    binary = cv2.erode(binary, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)), iterations=2)
    if min_region_frac > 0:
        binary = _fill_small(binary, min_region_frac * binary.size)
        if fill_unpainted:
            binary = _drop_small(binary, min_region_frac * binary.size)
    full = cv2.resize(binary.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR) > 0.5
    painted = (mask > 0.5).astype(np.uint8)
    allowed = _fill_small(painted, min_region_frac * painted.size) if min_region_frac > 0 else painted
    if not fill_unpainted:
        # A rock or buoy left out of a drawn sky or lake is an enclosed hole, often with an
        # anti-aliased rim: its rim may join, its unpainted pixels never move.
        allowed = allowed & (mask > 0)
    refined = (full & (allowed > 0)).astype(np.uint8)
    regions, region_area = _drawn_regions(allowed) if not fill_unpainted else (None, None)
    if regions is not None and min_region_frac > 0:
        refined = _drop_specks(refined, regions, region_area, min_region_frac)
    if image is not None and refined.any() and not refined.all():
        refined = snap_to_edges(refined, image)
        if regions is not None and min_region_frac > 0:
            refined = _drop_specks(refined, regions, region_area, min_region_frac)
        elif min_region_frac > 0:
            refined = _drop_small(refined, min_region_frac * refined.size)
    if regions is not None:  # a drawn region is never refined away: one that kept under half comes back
        painted_in = np.bincount(regions[painted > 0], minlength=region_area.size)
        kept_in = np.bincount(regions[(refined > 0) & (painted > 0)], minlength=region_area.size)
        lost = kept_in < 0.5 * painted_in
        lost[0] = False
        refined[lost[regions] & (painted > 0)] = 1
    if refined.mean() < min_mask_frac:
        return np.ones((height, width), np.float32)
    return refined.astype(np.float32)


def snap_to_edges(binary: np.ndarray, image: np.ndarray, *, radius: int | None = None,
                  eps: float = SNAP_EPS) -> np.ndarray:
    """Drop the painted pixels near the mask's edge that belong with the unpainted side of a photo edge.

    The mask is guided-filtered by the photo (colour guided filter): near the painted edge
    it follows the photo's edges, and a painted pixel whose filtered value falls below 1/2
    looks like its unpainted neighbours (rock painted as sky). Only removes pixels: the
    result never reaches past the painted region.

    Args:
        binary: (H, W) uint8 0/1 mask.
        image: (H, W, C) float32 photo in [0, 1].
        radius: filter window radius in px (default: 1/128 of the shorter side, at least 2).
        eps: guided-filter regularisation (colour variance below it counts as flat).

    Returns:
        (H, W) uint8 0/1 mask, a subset of ``binary``.
    """
    if radius is None:
        radius = max(2, round(min(binary.shape) / 128))
    guide = np.clip(image[:, :, :3], 0.0, 1.0)
    if guide.shape[2] < 3:
        guide = np.repeat(guide[:, :, :1], 3, axis=2)
    soft = guided_filter(guide, binary.astype(np.float32), radius, eps)
    return (binary.astype(bool) & (soft > 0.5)).astype(np.uint8)


def feather_mask(mask: np.ndarray, radius: float) -> np.ndarray:
    """Soft composite mask that fades in over ``radius`` px inside the mask and is 0 wherever it is.

    The feather grows inwards only: every pixel the mask leaves at 0 keeps weight 0 and is
    composited bit-exact from the input. The weight rises with the distance to the nearest
    unmasked pixel (smoothstep over ``radius + 1`` px), times the mask's own value.

    Args:
        mask: (H, W) float32 in [0, 1].
        radius: feather width in pixels (0 = no feathering).

    Returns:
        (H, W) float32 in [0, 1], never above ``mask``.
    """
    mask = np.clip(mask.astype(np.float32), 0.0, 1.0)
    if radius <= 0 or mask.all():
        return mask
    inside = (mask > 0).astype(np.uint8)
    # Pixels on the image border count as inside: the frame's edge is no mask edge.
    padded = cv2.copyMakeBorder(inside, 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    ramp = np.clip(distance / (radius + 1.0), 0.0, 1.0)
    ramp = ramp * ramp * (3.0 - 2.0 * ramp)
    return (mask * ramp).astype(np.float32)
