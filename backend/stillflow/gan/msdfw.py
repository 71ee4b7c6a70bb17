"""Multi-scale deep feature warping (MSDFW): splat generator features with the loop's displacement.

Stillflow's version of algorithm.md §5.3-5.4: the motion is integrated once on a reflect-
padded canvas at the base resolution, the displacement is resampled to each feature level
(§1.2 step 3), the feature is border-cut, reflect-padded, jointly splatted with weights
(1 - t/N, t/N), holes are filled push-pull and the padding is cropped. Reuses the default
engine's stages, so both engines share one integrator and one splat.
"""
from __future__ import annotations

import logging
import math

import torch

from ..stages.holes import fill_holes
from ..stages.integrate import LoopTrajectories, resample_displacement
from ..stages.padding import loop_padding, pad_reflect
from ..stages.splat import splat_joint

__all__ = ["LoopWarper", "FrameWarp", "border_cut"]

log = logging.getLogger(__name__)


def border_cut(side: int, base_side: int) -> int:
    """Border pixels replaced by reflection at a level: 0/1/2/3 at S/8, S/4, S/2, S (algorithm.md §5.4)."""
    ratio = side * 8 // base_side
    return int(math.log2(ratio)) if ratio >= 1 else 0


class FrameWarp:
    """The warp of one frame: ``warp(feature (B, C, r, r), r)`` at any level of the base canvas."""

    def __init__(self, warper: "LoopWarper", t: int) -> None:
        self.warper = warper
        self.disp_fwd, self.valid_fwd, self.disp_bwd, self.valid_bwd, self.alpha = warper.trajectories.at(t)

    def __call__(self, feature: torch.Tensor, side: int) -> torch.Tensor:
        """Splat every batch item of ``feature`` (B, C, side, side); returns the same shape and dtype."""
        warper = self.warper
        factor = warper.base_side // side
        pad = warper.pad // factor
        disp_f, valid_f = resample_displacement(self.disp_fwd, self.valid_fwd, factor)
        disp_b, valid_b = resample_displacement(self.disp_bwd, self.valid_bwd, factor)
        weight_f = valid_f.float() * (1.0 - self.alpha)
        weight_b = valid_b.float() * self.alpha
        cut = border_cut(side, warper.base_side) if warper.use_border_cut else 0
        out = []
        for item in feature:
            core = item[:, cut:side - cut, cut:side - cut] if cut else item
            canvas = pad_reflect(core.float(), pad + cut)
            if cut:
                # the padding mirrors the cut core, the frame itself keeps every pixel (zero motion = synthesis)
                canvas[:, pad:pad + side, pad:pad + side] = item
            values, den = splat_joint(canvas, disp_f, weight_f, disp_b, weight_b)
            values = fill_holes(values, den, warper.hole_threshold)
            out.append(values[:, pad:pad + side, pad:pad + side])
        return torch.stack(out).to(feature.dtype)


class LoopWarper:
    """Trajectories of an N-frame loop on a padded square canvas, usable at every level 2^-k of it.

    Args:
        motion: (2, S, S) float32, px/frame at the base resolution S (already masked and scaled).
        frames: loop length N.
        levels: sides of the levels that will be warped (each divides S; the padding is a
            multiple of S / min(levels) so every level's canvas is whole).
        hole_threshold: splat weight at or below which a pixel is filled.
        once: forward motion only.
        use_border_cut: build the padding from the level without its 0-3 outer pixels, which
            carry StyleGAN border artefacts; the frame keeps them.
    """

    def __init__(self, motion: torch.Tensor, frames: int, levels: list[int], *, hole_threshold: float = 1e-3,
                 once: bool = False, use_border_cut: bool = True) -> None:
        _, height, width = motion.shape
        assert height == width and all(height % side == 0 for side in levels)
        self.base_side = height
        self.hole_threshold = hole_threshold
        self.use_border_cut = use_border_cut
        max_speed = float(torch.linalg.vector_norm(motion, dim=0).max()) if motion.numel() else 0.0
        self.pad = loop_padding(max_speed, frames, multiple=height // min(levels))
        self.trajectories = LoopTrajectories(pad_reflect(motion.float(), self.pad), frames, once=once)
        log.debug("loop warper: side %d, pad %d, levels %s", height, self.pad, levels)

    def frame(self, t: int) -> FrameWarp:
        """The warp of frame t (0 <= t <= N; frame N equals frame 0)."""
        return FrameWarp(self, t)
