"""Each frame as sharp as the still at the same place, where the field stretched the texture.

How sharp a region of a photo looks is partly a property of the place, not of what moves through
it: the camera's resolution and grain, haze, and perspective (clouds near the horizon are farther
away, so their texture is finer). A splatted copy carries its texture along, so where the field
stretches the texture a copy softens as it travels (on a real sunset the loop's middle fell to 0.81
of the still's sharpness, each copy alone to 0.62-0.76). Where a frame's local sharpness (the
energy of the luma's Laplacian over a box, what the eye and a sharpness measure see) is below the
still's at the same place, its fine detail (what one pyramid step removes) is raised by a gain in
[1, PLACE_GAIN]. It only raises: lowering too softened a loop where a strong structure (a dark cloud
band) moved into a smoother place (docs/benchmarks.md, issue 29 round 8). Pixels that already
stand out from their neighbours keep their detail: texture is raised, dots are not. Nothing moves, and a
frame as sharp as the still keeps gain 1: frame 0 is the input. Re-graining a warped plate to match
the original is the compositing analogue.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .._cv import cv2
from .contrast import band_energy, box_mean
from .outliers import median3

__all__ = ["PLACE_GAIN", "PLACE_REACH", "PLACE_WINDOW", "STANDING_OUT", "fine_detail", "fine_detail_torch",
           "keep_in_place_", "keep_in_place_torch_", "laplacian_torch", "luma_cpu", "place_energy", "pyr_down_reflect",
           "pyr_up_reflect", "sharpness_map", "sharpness_map_torch"]

PLACE_WINDOW = 31
"""Side (px) of the box over which a frame's sharpness is compared with the still's. On the real
clips Gaussians of sigma 7, 15 and 31 px scored alike (this box is about sigma 9)."""

PLACE_GAIN = 1.15
"""Largest gain on a frame's fine detail. 1.25 (with lowering too) lifted some frames of a real clip
above 1.15 of the still's sharpness; 1.15 keeps every loop frame of both clips within 0.86-1.07."""

STANDING_OUT = 12.0 / 255.0
"""A pixel whose luma stands this far from its 3x3 median is an isolated outlier (issue 29's dots).
A pixel within PLACE_GAIN of it keeps its detail as it is, so that raising texture makes no new dots:
unguarded, the real clips' dots rose from 1.12 to 1.20 of the still's and the defect cases' cracks
by up to 3x frame 0's count (docs/benchmarks.md, issue 29 round 8)."""

PLACE_REACH = PLACE_WINDOW // 2 + 4
"""Pixels beyond a pixel that its gain reads (the box, and the pyramid step's support)."""

_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)
_LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


def fine_detail(image: torch.Tensor) -> torch.Tensor:
    """What one pyramid step (binomial blur, halve, double) removes: (C, H, W) -> (C, H, W)."""
    if image.device.type != "cpu":
        return fine_detail_torch(image)
    return torch.from_numpy(np.stack([_fine_detail_cpu(np.ascontiguousarray(plane)) for plane in image.numpy()]))


def _fine_detail_cpu(plane: np.ndarray) -> np.ndarray:
    """``fine_detail`` of one contiguous (H, W) float32 plane with OpenCV."""
    return cv2.subtract(plane, cv2.pyrUp(cv2.pyrDown(plane), dstsize=plane.shape[::-1]))


def fine_detail_torch(image: torch.Tensor) -> torch.Tensor:
    """The torch reference of ``fine_detail`` (any device; borders reflected as OpenCV's)."""
    return image - pyr_up_reflect(pyr_down_reflect(image), image.shape[-2:])


def _blur_reflect(image: torch.Tensor) -> torch.Tensor:
    """The 5-tap binomial blur of each channel of (C, H, W) ``image``, borders reflected as OpenCV's."""
    channels = image.shape[0]
    kernel = torch.tensor(_BINOMIAL, dtype=image.dtype, device=image.device) / 16.0
    padded = F.pad(image[None], (2, 2, 2, 2), mode="reflect")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, 5).expand(channels, 1, 1, 5), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, 5, 1).expand(channels, 1, 5, 1), groups=channels)[0]


def pyr_down_reflect(image: torch.Tensor) -> torch.Tensor:
    """OpenCV's pyrDown in torch: (C, H, W) -> (C, ceil(H/2), ceil(W/2))."""
    return _blur_reflect(image)[:, ::2, ::2]


def pyr_up_reflect(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """OpenCV's pyrUp in torch: (C, h, w) -> (C, size[0], size[1]), size <= (2h, 2w)."""
    channels, height, width = image.shape
    up = image.new_zeros(channels, 2 * height, 2 * width)
    up[:, ::2, ::2] = 4.0 * image
    return _blur_reflect(up)[:, : size[0], : size[1]]


def laplacian_torch(image: torch.Tensor) -> torch.Tensor:
    """The 3x3 Laplacian of each channel (borders reflected, as OpenCV's): (C, H, W) -> (C, H, W)."""
    channels = image.shape[0]
    kernel = torch.tensor(_LAPLACIAN, dtype=image.dtype, device=image.device).view(1, 1, 3, 3)
    padded = F.pad(image[None], (1, 1, 1, 1), mode="reflect")
    return F.conv2d(padded, kernel.expand(channels, 1, 3, 3), groups=channels)[0]


def sharpness_map(image: torch.Tensor, window: int = PLACE_WINDOW) -> torch.Tensor:
    """Local sharpness, the energy of the luma's Laplacian over a box: (C, H, W) -> (1, H, W).

    The luma is the channels' mean, as for the outlier limit (stages/outliers.py).
    """
    if image.device.type == "cpu" and image.is_contiguous():
        return torch.from_numpy(_sharpness_cpu(image.numpy(), window))[None]
    return sharpness_map_torch(image, window)


def sharpness_map_torch(image: torch.Tensor, window: int = PLACE_WINDOW) -> torch.Tensor:
    """The torch reference of ``sharpness_map`` (any device)."""
    return box_mean(band_energy(laplacian_torch(image.mean(dim=0, keepdim=True))), window)


def place_energy(image: torch.Tensor, window: int = PLACE_WINDOW) -> torch.Tensor:
    """The still's local sharpness, what each frame's is kept at: (C, H, W) -> (1, H, W)."""
    return sharpness_map(image, window)


def keep_in_place_(frame: torch.Tensor, place: torch.Tensor, window: int = PLACE_WINDOW,
                   gain: float = PLACE_GAIN) -> torch.Tensor:
    """Raise ``frame``'s fine detail (in place) where its local sharpness fell below ``place``.

    Args:
        frame: (C, H, W) float32 contiguous animated frame, modified in place.
        place: (1, H, W) float32 ``place_energy`` of the still over the same pixels.
        window: side of the box the sharpness is taken over, px (as ``place``'s).
        gain: largest gain on the fine detail.

    Returns:
        ``frame`` with its fine detail times a gain in [1, gain] per pixel (shared by channels); pixels
        standing out from their 3x3 median by more than STANDING_OUT / gain keep theirs.
    """
    if frame.device.type == "cpu" and frame.is_contiguous():
        _keep_in_place_cpu(frame, place[0].numpy(), window, gain)
        return frame
    return keep_in_place_torch_(frame, place, window, gain)


def keep_in_place_torch_(frame: torch.Tensor, place: torch.Tensor, window: int = PLACE_WINDOW,
                         gain: float = PLACE_GAIN) -> torch.Tensor:
    """The torch reference of ``keep_in_place_`` (any device)."""
    luma = frame.mean(dim=0, keepdim=True)
    landed = box_mean(band_energy(laplacian_torch(luma)), window).clamp_(min=1e-12)
    # Clamped before the root: a box's running sums can leave -1e-9 where the still is flat.
    scale = (place / landed).clamp_(1.0, gain * gain).sqrt_().sub_(1.0)
    scale.masked_fill_((luma - median3(luma)).abs_() > STANDING_OUT / gain, 0.0)
    return frame.add_(fine_detail_torch(frame).mul_(scale))


def _sharpness_cpu(image: np.ndarray, window: int, luma: np.ndarray | None = None) -> np.ndarray:
    """``sharpness_map`` of a (C, H, W) float32 array with OpenCV (``luma``: its channels' mean, if known)."""
    luma = luma_cpu(image) if luma is None else luma
    lap = cv2.Laplacian(luma, cv2.CV_32F)
    return cv2.blur(cv2.multiply(lap, lap), (window, window), borderType=cv2.BORDER_REPLICATE)


def luma_cpu(image: np.ndarray) -> np.ndarray:
    """The channels' mean of a (C, H, W) float32 array."""
    return image.sum(axis=0) * np.float32(1.0 / image.shape[0])


def _keep_in_place_cpu(frame: torch.Tensor, place: np.ndarray, window: int, gain: float) -> None:
    """``keep_in_place_`` on a contiguous CPU frame with OpenCV (about 4x faster than torch ops there)."""
    planes = frame.numpy()
    luma = luma_cpu(planes)
    landed = np.maximum(_sharpness_cpu(planes, window, luma), np.float32(1e-12))
    ratio = cv2.divide(place, landed)
    scale = cv2.sqrt(np.clip(ratio, 1.0, gain * gain, out=ratio))  # clamped first, as in the torch path
    scale -= np.float32(1.0)
    scale[np.abs(luma - cv2.medianBlur(luma, 3)) > STANDING_OUT / gain] = 0.0
    if not scale.any():
        return
    for plane in planes:  # views: cv2 writes each plane in place
        detail = _fine_detail_cpu(plane)
        cv2.add(plane, cv2.multiply(detail, scale, dst=detail), dst=plane)
