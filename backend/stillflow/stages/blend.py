"""Blending the loop's two copies, each normalised on its own, by a weight that follows its coverage.

The joint splat (one shared normaliser) weights each copy at a pixel by (1 - alpha) or alpha
times the number of its particles that landed there. Whole-pixel landing makes that count lumpy
(0, 1 or 2 particles next to each other), so the mix of the two copies changes from pixel to
pixel: where the copies differ (a cloud edge in one, sky in the other) that reads as single-pixel
speckle, and early in the loop the far-travelled backward copy takes over every crack of the
forward one. Here each copy is normalised and crack-filled by itself, and the copies are mixed by
(1 - alpha) and alpha times a coverage reliability: the copy's splat weight averaged over 3x3 and
capped at 1. A pile next to a crack averages out; where a copy is stretched thin or has a real
hole (a disocclusion, content that left the frame) the other one takes over in proportion.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import cpu_kernels
from .holes import fill_cracks

__all__ = ["blend_copies", "blend_copies_torch", "blend_schedule"]


def blend_schedule(phase: float) -> float:
    """The backward copy's share at loop phase t/N: smoothstep, 3u² - 2u³.

    Near either end of the loop one copy has travelled far (N - t or t steps) and is the less
    faithful one; smoothstep keeps its share small there (quadratically instead of linearly) and
    crosses over mid-loop. Symmetric, so the loop plays the same forwards and backwards, and 0 and
    1 at the ends, so frame 0 is the input and frame N - 1 leads into it.
    """
    return phase * phase * (3.0 - 2.0 * phase)


def _coverage(den: torch.Tensor) -> torch.Tensor:
    """A copy's reliability per pixel: its splat weight averaged over 3x3, capped at 1."""
    mean = F.avg_pool2d(den[None, None], 3, stride=1, padding=1, count_include_pad=False)[0, 0]
    return mean.clamp_(max=1.0)


def blend_copies(out_f: torch.Tensor, den_f: torch.Tensor, out_b: torch.Tensor, den_b: torch.Tensor,
                 alpha: float, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(1 - alpha) F + alpha B with weights moved off a copy where it has a hole.

    Args:
        out_f, out_b: (C, H, W) float32 forward and backward copies, each normalised by its own
            weight (fresh splat results: their cracks are filled in place).
        den_f, den_b: (H, W) float32 their splat weights (validity x softmax weight; 0 = hole); set
            them above ``threshold`` where nothing is read, or those holes are filled for nothing.
        alpha: the backward copy's share.
        threshold: splat weight at or below which a pixel is a hole.

    Returns:
        out: (C, H, W) float32 blend (holes of both copies still holes).
        den: (H, W) float32 the blend's weight (<= threshold where both copies had a hole).
    """
    # Only cracks need a value: a pixel the passes cannot reach has no covered neighbour, so its
    # coverage and share are 0 (and where both copies lack one, the caller fills the blend).
    out_f, _ = fill_cracks(out_f.contiguous(), den_f, threshold, in_place=True)
    out_b, _ = fill_cracks(out_b.contiguous(), den_b, threshold, in_place=True)
    if out_f.device.type == "cpu" and cpu_kernels.available():
        out, den = cpu_kernels.blend_copies_cpu(out_f.numpy(), den_f.contiguous().numpy(), out_b.numpy(),
                                                den_b.contiguous().numpy(), alpha, threshold)
        return torch.from_numpy(out), torch.from_numpy(den)
    return blend_copies_torch(out_f, den_f, out_b, den_b, alpha, threshold)


def blend_copies_torch(out_f: torch.Tensor, den_f: torch.Tensor, out_b: torch.Tensor, den_b: torch.Tensor,
                       alpha: float, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The torch reference of the mix in ``blend_copies`` (cracks already filled; any device)."""
    weight_f = (1.0 - alpha) * _coverage(den_f)
    weight_b = alpha * _coverage(den_b)
    den = weight_f + weight_b
    covered = den > threshold
    share_b = torch.where(covered, weight_b / torch.where(covered, den, torch.ones_like(den)), 0.0)
    return out_f + share_b[None] * (out_b - out_f), den
