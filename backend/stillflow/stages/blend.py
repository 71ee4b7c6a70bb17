"""Blending the loop's two copies, each normalised on its own, by a weight that follows its coverage.

The joint splat (one shared normaliser) weights each copy at a pixel by (1 - alpha) or alpha
times the number of its particles that landed there. Whole-pixel landing makes that count lumpy
(0, 1 or 2 particles next to each other), so the mix of the two copies changes from pixel to
pixel: where the copies differ (a cloud edge in one, sky in the other) that reads as single-pixel
speckle, and early in the loop the far-travelled backward copy takes over every crack of the
forward one. Here each copy is normalised and crack-filled by itself, and the copies are mixed by
(1 - alpha) and alpha times a coverage reliability: the copy's splat weight averaged over
``COVERAGE_WINDOW`` band pixels square and capped at 1. A pile next to a crack averages out; where
a copy is stretched thin or has a real hole (a disocclusion, content that left the frame) the other
one takes over in proportion.

Only a copy's cracks need a value of their own: a pixel with no covered 3x3 neighbour has coverage
0, so that copy has no share there (and where neither copy has one, the caller fills the blend).
A crack takes the weighted mean of its covered neighbours. Such a pixel is a copy's real hole (a
disocclusion: the upstream side of a mask's edge, where content moved on and nothing followed), and
the share a copy has where its holes lie passes to the other one (``mix_weights``), even where the
schedule gives the other copy no share: so a frame with one copy alone takes the other where that
one has a hole, as the method's joint splat does (algorithm.md, edge cases), instead of inventing
it. On a CPU the two copies are splatted into raw accumulators and mixed in one compiled pass
(stages/cpu_blend.py).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import cpu_kernels
from .splat import splat_joint
from .stretch import STRETCH_GONE, STRETCH_ONSET

__all__ = ["splat_blend", "blend_copies", "blend_schedule", "coverage_means", "real_hole_box", "mix_weights",
           "BLEND_SPAN", "COVERAGE_WINDOW"]


BLEND_SPAN = 0.5
"""Fraction of the loop, centred on its middle, over which the copies cross over (see blend_schedule)."""

COVERAGE_WINDOW = 9
"""Side of the square, band pixels, over which a copy's splat weight is averaged into its coverage.
A copy stretched by a smooth field lands its particles in a moire (rows of 0, 1 and 2 particles
that bend with the field); averaged over 3x3 the coverage kept that pattern, and where the copies
differ in colour the mix drew it as bright arcs mid-loop (sky-0623c, T 48). Over 9x9 the moire
averages out (docs/benchmarks.md, issue 29 round 6)."""


def blend_schedule(phase: float, span: float = BLEND_SPAN) -> float:
    """The backward copy's share at loop phase u = t/N: rising linearly from 1/2 - span/2 to 1/2 + span/2.

    Near either end of the loop one copy has travelled far (N - t or t steps) and is the less
    faithful one; in the outer (1 - span) / 2 of the loop at each end it has no share at all.
    Both copies at once show every moving edge twice (a faint echo, and the doubled fine texture
    reads as speckle), so a shorter cross-over also shows fewer echoes. Over the whole loop
    (span 1) the echo lasted twice as long: on the real clips the span of 1/2 scored higher PSNR
    and SSIM over all frames, less speckle and a steadier seam, at -0.03 to -0.07 dB over the
    first 8 frames (docs/benchmarks.md). Symmetric, so the loop plays the same forwards and
    backwards, and 0 and 1 at the ends, so frame 0 is the input and frame N - 1 leads into it.
    Linear, because the dissolve between two copies far apart is itself a change per frame, in
    proportion to the share's rate: a smoothstep's peak rate (1.5 / span) showed as a surge in the
    middle of fast loops (up to 1.84x the median step); the steady rate (1 / span) keeps it at 1.59x
    and scored alike or higher on every other figure (docs/benchmarks.md, issue 29 round 5).
    The live preview shader uses the same schedule (GLSL clamp((u - 0.25) / 0.5, 0.0, 1.0)).
    """
    if not 0.0 < span <= 1.0:
        raise ValueError(f"the cross-over span must be in (0, 1], got {span}")
    return min(1.0, max(0.0, (phase - 0.5) / span + 0.5))


def splat_blend(values: torch.Tensor, fwd: tuple[torch.Tensor, torch.Tensor], bwd: tuple[torch.Tensor, torch.Tensor],
                alpha: float, threshold: float, ignore: torch.Tensor, **splat) -> tuple[torch.Tensor, torch.Tensor]:
    """Splat the forward and backward copies of ``values`` and mix them by coverage.

    Args:
        values: (C, H, W) float tensor (channels-last storage on a CPU, see splat.channels_last).
        fwd, bwd: (displacement (2, H, W), weight (H, W)) of each copy, as ``splat_joint`` takes them.
        alpha: the backward copy's share.
        threshold: splat weight at or below which a pixel is a hole.
        ignore: (h, w) bool target pixels nothing reads (treated as covered).
        **splat: ``splat_joint``'s keyword options (whole_pixels, carry_remainder, reach, crop, fade_torn,
            gained).

    Returns:
        out: (C, h, w) float32 blend; den: (h, w) float32 its weight (<= threshold: hole of both).
    """
    if values.device.type == "cpu" and cpu_kernels.available():
        from .cpu_blend import blend_accumulated_cpu

        acc = cpu_kernels.splat_accumulate_cpu(
            values.permute(1, 2, 0).float().contiguous().numpy(),
            [d.float().contiguous().numpy() for d, _ in (fwd, bwd)],
            [w.float().contiguous().numpy() for _, w in (fwd, bwd)],
            threads=max(1, torch.get_num_threads()), separate=True, **_compiled(splat))
        out, den = blend_accumulated_cpu(acc, ignore.contiguous().numpy(), alpha, threshold)
        return torch.from_numpy(out), torch.from_numpy(den)
    out_f, den_f = splat_joint(values, fwd[0], fwd[1], fwd[0], None, **splat)
    out_b, den_b = splat_joint(values, bwd[0], bwd[1], bwd[0], None, **splat)
    return blend_copies(out_f, den_f.masked_fill(ignore, 1.0), out_b, den_b.masked_fill(ignore, 1.0), alpha, threshold)


def real_hole_box(den: torch.Tensor, threshold: float, ignore: torch.Tensor,
                  grow: int = 0) -> tuple[int, int, int, int] | None:
    """Rows and columns (top, bottom, left, right; end exclusive) spanning a copy's real holes grown by ``grow``.

    A real hole is a pixel that is read (not ``ignore``) and has no covered 3x3 neighbour in the copy's
    splat weight ``den`` (H, W); None when there is none.
    """
    known = (den > threshold) | ignore
    if bool(known.all()):
        return None
    if known.device.type == "cpu":  # a 3x3 dilation of bytes: a fraction of a one-copy frame's time
        from .._cv import cv2

        near = cv2.dilate(known.numpy().view(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT,
                          borderValue=0)
        holes = torch.from_numpy(near == 0)
    else:
        holes = F.max_pool2d(known[None, None].float(), 3, stride=1, padding=1)[0, 0] == 0
    rows = torch.nonzero(holes.any(dim=1)).flatten()
    if rows.numel() == 0:
        return None
    cols = torch.nonzero(holes.any(dim=0)).flatten()
    height, width = den.shape
    return (max(0, int(rows[0]) - grow), min(height, int(rows[-1]) + 1 + grow),
            max(0, int(cols[0]) - grow), min(width, int(cols[-1]) + 1 + grow))


def _compiled(splat: dict) -> dict:
    """``splat_joint``'s options as ``cpu_kernels.splat_accumulate_cpu`` takes them."""
    fade = splat.get("fade_torn", False)
    return {**splat, "fade_torn": (STRETCH_ONSET, STRETCH_GONE) if fade else None}


def coverage_means(known: torch.Tensor, window: int = COVERAGE_WINDOW) -> torch.Tensor:
    """(H, W) mean of ``known`` (H, W) over a ``window`` square around each pixel, clipped to the image."""
    half = window // 2
    pooled = F.avg_pool2d(known[None, None], (1, window), stride=1, padding=(0, half), count_include_pad=False)
    return F.avg_pool2d(pooled, (window, 1), stride=1, padding=(half, 0), count_include_pad=False)[0, 0]


def mix_weights(coverage_f: torch.Tensor, coverage_b: torch.Tensor, hole_f: torch.Tensor, hole_b: torch.Tensor,
                alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Each copy's weight: its coverage times its share, plus the other copy's share where that one has holes.

    Args:
        coverage_f, coverage_b: (H, W) each copy's coverage in [0, 1].
        hole_f, hole_b: (H, W) the fraction of the COVERAGE_WINDOW square that is each copy's real hole
            (no covered 3x3 neighbour): 0 away from holes, so only there does a share pass over.
        alpha: the backward copy's share.
    """
    weight_f = coverage_f * ((1.0 - alpha) + alpha * hole_b)
    weight_b = coverage_b * (alpha + (1.0 - alpha) * hole_f)
    return weight_f, weight_b


def _fill_and_cover(values: torch.Tensor, den: torch.Tensor,
                    threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A copy with its cracks filled from covered 3x3 neighbours, its coverage (0 where no 3x3
    neighbour is covered, else the COVERAGE_WINDOW mean, capped at 1) and its holes' share of that window."""
    known = torch.where(den > threshold, den, 0.0)
    ones = torch.ones((1, 1, 3, 3), dtype=torch.float32, device=den.device)
    total = F.conv2d(known[None, None], ones, padding=1)[0, 0]
    sums = F.conv2d((values * known).unsqueeze(1), ones, padding=1)[:, 0]
    cracks = (known == 0) & (total > 0)
    filled = torch.where(cracks, sums / torch.where(cracks, total, torch.ones_like(total)), 0.0)
    coverage = torch.where(total > 0, coverage_means(known), 0.0).clamp_(max=1.0)
    hole = coverage_means((total <= 0).float())
    return torch.where(known > 0, values, filled), coverage, hole


def blend_copies(out_f: torch.Tensor, den_f: torch.Tensor, out_b: torch.Tensor, den_b: torch.Tensor,
                 alpha: float, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(1 - alpha) F + alpha B with weights moved off a copy where it has a hole (any device).

    Each copy's share follows its coverage, and the share a copy has over its own holes goes to the
    other one (``mix_weights``): with alpha 0 or 1 the other copy shows only where the first has a hole.

    Args:
        out_f, out_b: (C, H, W) float32 forward and backward copies, each normalised by its own
            weight.
        den_f, den_b: (H, W) float32 their splat weights (0 = hole); set them to 1 where nothing
            is read.
        alpha: the backward copy's share.
        threshold: splat weight at or below which a pixel is a hole.

    Returns:
        out: (C, H, W) float32 blend (holes of both copies still holes).
        den: (H, W) float32 the blend's weight (<= threshold where both copies had a hole).
    """
    out_f, coverage_f, hole_f = _fill_and_cover(out_f.float(), den_f.float(), threshold)
    out_b, coverage_b, hole_b = _fill_and_cover(out_b.float(), den_b.float(), threshold)
    weight_f, weight_b = mix_weights(coverage_f, coverage_b, hole_f, hole_b, alpha)
    den = weight_f + weight_b
    covered = den > threshold
    share_b = torch.where(covered, weight_b / torch.where(covered, den, torch.ones_like(den)), 0.0)
    return out_f + share_b[None] * (out_b - out_f), den
