"""Laplacian pyramid bands, the GAN-free analogue of multi-scale deep feature warping (algorithm.md §1.3)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import cpu_kernels

__all__ = ["pyramid_levels", "pyr_down", "pyr_up", "laplacian_bands", "reconstruct"]

_KERNEL_1D = (1.0, 4.0, 6.0, 4.0, 1.0)
_MIN_SIDE = 8


def pyramid_levels(height: int, width: int, levels: int) -> int:
    """The number of levels that keeps the coarsest side at least 8 px (at least 1)."""
    count = 1
    while count < levels and min(height, width) >> count >= _MIN_SIDE:
        count += 1
    return count


def _blur(values: torch.Tensor, gain: float, pad: bool = True) -> torch.Tensor:
    """Separable 5-tap binomial blur scaled by ``gain`` per axis; replicated borders or none (valid)."""
    channels = values.shape[0]
    kernel = torch.tensor(_KERNEL_1D, dtype=values.dtype, device=values.device) * (gain / 16.0)
    x = values[None]
    if pad:
        x = F.pad(x, (2, 2, 2, 2), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, 5).expand(channels, 1, 1, 5), groups=channels)
    x = F.conv2d(x, kernel.view(1, 1, 5, 1).expand(channels, 1, 5, 1), groups=channels)
    return x[0]


def pyr_down(values: torch.Tensor) -> torch.Tensor:
    """Blur and keep every second pixel: (C, H, W) -> (C, ceil(H/2), ceil(W/2))."""
    return _blur(values, 1.0)[:, ::2, ::2]


def _up_axis(values: torch.Tensor, axis: int) -> torch.Tensor:
    """Double one axis by the polyphase form of zero insertion + the x2-gain binomial kernel.

    With the axis border-replicated by one pixel (p), even outputs are (p[m] + 6 p[m+1] + p[m+2]) / 8
    and odd outputs (p[m+1] + p[m+2]) / 2: the same numbers as blurring the zero-inserted
    signal, without multiplying the zeros.
    """
    length = values.shape[axis]
    padded = torch.cat([values.narrow(axis, 0, 1), values, values.narrow(axis, length - 1, 1)], dim=axis)
    left, centre, right = (padded.narrow(axis, k, length) for k in range(3))
    shape = list(values.shape)
    shape[axis] = 2 * length
    out = values.new_empty(shape)
    index = [slice(None)] * values.dim()
    index[axis] = slice(0, None, 2)
    out[tuple(index)] = (left + 6.0 * centre + right) * 0.125
    index[axis] = slice(1, None, 2)
    out[tuple(index)] = (centre + right) * 0.5
    return out


def pyr_up(values: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Insert zeros and blur (x4 gain): (C, h, w) -> (C, size[0], size[1]), size <= (2h, 2w).

    The coarse image is border-replicated *before* the zeros are inserted, so every output
    pixel sees the same kernel taps; padding the zero-inserted image instead would make the
    border 1.5x too bright, and the detail band would carry that error into the interior
    once it moves.
    """
    rows = _up_axis(values, 1)[:, : size[0]]
    return _up_axis(rows, 2)[:, :, : size[1]]


def laplacian_bands(image: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Bands B_0 (finest) .. B_{L-1} (low-pass residual) with sum of upsampled bands = image.

    Args:
        image: (C, H, W) float32.
        levels: L >= 1; L = 1 returns [image].

    Returns:
        L tensors, band l of size ceil(H / 2^l) x ceil(W / 2^l).
    """
    bands = []
    current = image
    for _ in range(levels - 1):
        coarser = pyr_down(current)
        bands.append(current - pyr_up(coarser, current.shape[-2:]))
        current = coarser
    bands.append(current)
    return bands


def reconstruct(bands: list[torch.Tensor]) -> torch.Tensor:
    """Collapse bands from coarse to fine: Y = B_{L-1}; Y = up(Y) + B_l."""
    image = bands[-1]
    for band in reversed(bands[:-1]):
        if band.device.type == "cpu" and cpu_kernels.available() and band.dtype == torch.float32:
            from .cpu_pyramid import pyr_up_add_cpu

            image = torch.from_numpy(pyr_up_add_cpu(image.numpy(), band.numpy()))
        else:
            image = pyr_up(image, band.shape[-2:]) + band
    return image
