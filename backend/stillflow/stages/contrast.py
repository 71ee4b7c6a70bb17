"""Restoring the contrast that splatting takes from zero-mean detail bands.

A splatted pixel is a weighted mean of the particles that land on it. For a detail band that
mean is smaller in amplitude than the particles themselves wherever they disagree: bilinear
taps at half-pixel offsets and the loop's mix of two copies in the middle of the loop both
average uncorrelated detail, so it fades and flickers. Splatting the squared band alongside
gives the particles' mean energy E; the energy of the mean is O = mean^2. Scaling the mean by
sqrt(E / O), both smoothed over a small window and clamped, brings the amplitude back
without moving anything (contrast-preserving blending, cf. Heitz & Neyret 2018).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .._cv import cv2
from . import cpu_kernels

__all__ = ["restore_contrast", "restore_contrast_", "restore_contrast_torch", "band_energy", "box_mean", "MAX_GAIN"]

MAX_GAIN = 2.0
"""Largest amplification. An even blend of two uncorrelated copies needs sqrt(2) ~ 1.41 on average,
but over a 5x5 box the copies' chance correlation swings E / O well past 1.41^2: a cap of 1.5 left
the middle of the loop at 0.88 of an ideal shift's band energy on a uniform translation; 2.0 keeps
0.94 there and lifts the real clips' softest loop frame by 0 to 0.04 of frame 0's sharpness, dots
unchanged (docs/benchmarks.md, issue 29 round 4, variants A and C). Before the per-copy blend
and the outlier limit a higher cap over-sharpened the real clips (sharpness ratio 1.2 instead of ~1.0);
now the ratio moves by less than 0.03."""


def band_energy(band: torch.Tensor) -> torch.Tensor:
    """Per-pixel energy of a band, summed over channels: (C, H, W) -> (1, H, W)."""
    return (band * band).sum(dim=0, keepdim=True)


def restore_contrast(mean: torch.Tensor, energy: torch.Tensor, window: int = 5) -> torch.Tensor:
    """Scale a splatted detail band so its local energy matches that of the particles.

    Args:
        mean: (C, H, W) float32 splatted band (normalised weighted mean).
        energy: (1, H, W) float32 splatted ``band_energy`` of the band (same weights).
        window: side of the box over which energies are averaged, px.

    Returns:
        (C, H, W) float32 band times a gain in [1, MAX_GAIN] per pixel (shared by channels).
    """
    return restore_contrast_(mean.clone(memory_format=torch.contiguous_format), energy, window)


def restore_contrast_(mean: torch.Tensor, energy: torch.Tensor, window: int = 5) -> torch.Tensor:
    """``restore_contrast`` in place on a contiguous ``mean`` (no copy of a fresh splat result)."""
    if mean.device.type == "cpu" and cpu_kernels.available() and mean.is_contiguous():
        cpu_kernels.restore_gain_cpu(mean.numpy(), energy[0].contiguous().numpy(), MAX_GAIN, window, _box_cpu)
        return mean
    return mean.copy_(restore_contrast_torch(mean, energy, window))


def restore_contrast_torch(mean: torch.Tensor, energy: torch.Tensor, window: int = 5) -> torch.Tensor:
    """The torch reference of ``restore_contrast`` (any device)."""
    energy_particles = energy
    energy_mean = band_energy(mean)
    # Running-sum box filters can leave -1e-9 where the energy is 0: clamp before sqrt.
    gain = torch.sqrt(box_mean(energy_particles, window).clamp(min=0) / box_mean(energy_mean, window).clamp(min=1e-12))
    return mean * gain.clamp_(1.0, MAX_GAIN)


def box_mean(values: torch.Tensor, window: int) -> torch.Tensor:
    """Box average over window x window pixels with replicated borders: (1, H, W) -> (1, H, W)."""
    if values.device.type == "cpu":
        return torch.from_numpy(_box_cpu(values[0].contiguous().numpy(), window))[None]
    pad = window // 2
    padded = F.pad(values[None], (pad, pad, pad, pad), mode="replicate")
    rows = F.avg_pool2d(padded, (1, window), stride=1)
    return F.avg_pool2d(rows, (window, 1), stride=1)[0]


def _box_cpu(values: np.ndarray, window: int) -> np.ndarray:
    """Box average of an (H, W) float32 array with replicated borders (OpenCV running sums)."""
    # ~10x faster than avg_pool2d on one CPU channel.
    return cv2.blur(values, (window, window), borderType=cv2.BORDER_REPLICATE)
