"""The default engine: one frame of the seamless loop at a time (algorithm.md §1).

Bands of the Laplacian pyramid are splatted at their own level with the displacement of the
once-integrated motion, forward with weight 1 - t/N and backward with weight t/N, holes are
filled, the bands are collapsed and the result is composited over the input.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from .stages.composite import composite
from .stages.holes import fill_holes, inpaint_telea
from .stages.integrate import LoopTrajectories, resample_displacement
from .stages.padding import loop_padding, pad_reflect
from .stages.pyramid import laplacian_bands, pyramid_levels, reconstruct
from .stages.splat import softmax_weights, splat_joint

__all__ = ["LoopRenderer"]

log = logging.getLogger(__name__)


class LoopRenderer:
    """Renders frame t of an N-frame loop (or of a one-shot drift) from prepared inputs.

    Args:
        image: (H, W, C) float32 still.
        composite_mask: (H, W) float32 in [0, 1]; 0 = static, copied bit-exact from the input.
        motion_px: (2, H, W) float32 final motion, px/frame (speed and flow mask applied).
        frames: loop length N.
        levels: requested pyramid levels (fewer are used on small images).
        once: forward motion only, no loop blend.
        hole_threshold: splat weight at or below which a pixel is refilled.
        inpaint: Telea-inpaint pixels that were holes at every level.
        importance: optional (H, W) float32 Z for softmax splatting.
        device: torch device for the work.
        sharp_detail: move the finest band by whole pixels (no bilinear blur) when more than
            one level is used.
    """

    def __init__(self, image: np.ndarray, composite_mask: np.ndarray, motion_px: np.ndarray, *, frames: int,
                 levels: int, once: bool, hole_threshold: float, inpaint: bool,
                 importance: np.ndarray | None, device: torch.device, sharp_detail: bool = True) -> None:
        self.image = image
        self.frames = frames
        self.once = once
        self.hole_threshold = hole_threshold
        self.inpaint = inpaint
        self.device = device
        self.sharp_detail = sharp_detail
        height, width, _ = image.shape
        self.is_static = not bool(np.any(motion_px)) or not bool(np.any(composite_mask))
        self.levels = pyramid_levels(height, width, levels)
        self.sharp_detail = sharp_detail and self.levels > 1
        max_speed = float(np.sqrt((motion_px.astype(np.float64) ** 2).sum(axis=0)).max()) if motion_px.size else 0.0
        self.padding = loop_padding(max_speed, frames, multiple=2 ** (self.levels - 1))
        self.max_speed = max_speed
        if self.is_static:
            return
        self._image_t = torch.from_numpy(image).to(device).permute(2, 0, 1).contiguous()
        self._mask_t = torch.from_numpy(composite_mask).to(device)
        motion_pad = pad_reflect(torch.from_numpy(motion_px).to(device), self.padding)
        self._trajectories = LoopTrajectories(motion_pad, frames, once=once)
        z = None if importance is None else pad_reflect(torch.from_numpy(importance).to(device), self.padding)
        self._weights = softmax_weights(z, tuple(motion_pad.shape[1:]), device)
        bands = laplacian_bands(self._image_t, self.levels)
        self._bands = [pad_reflect(band, self.padding >> level) for level, band in enumerate(bands)]
        self._band_sizes = [tuple(band.shape[1:]) for band in bands]

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as (H, W, C) float32; t = 0 (and t = N in a loop) is the input itself."""
        step = t if self.once else t % self.frames
        if self.is_static or step == 0:
            # alpha = 0 and zero displacement make the splat an identity: return the input
            # itself rather than its float round trip, so frame 0 is bit-exact.
            return self.image.copy()
        disp_f, valid_f, disp_b, valid_b, alpha = self._trajectories.at(step)
        splatted = []
        everywhere_hole = None
        for level, band in enumerate(self._bands):
            factor = 2 ** level
            pad = self.padding >> level
            df, vf = resample_displacement(disp_f, valid_f, factor)
            db, vb = resample_displacement(disp_b, valid_b, factor)
            if level == 0 and self.sharp_detail:
                # Bilinear taps at a fractional offset f scale the finest frequencies by
                # |1 - 2f|: details would fade and flicker as particles pass half-pixels.
                # Whole-pixel moves keep the finest band sharp; coarser bands stay sub-pixel.
                df, db = torch.round(df), torch.round(db)
            weights = self._weights[::factor, ::factor]
            out, den = splat_joint(band, df, (1.0 - alpha) * vf * weights, db, alpha * vb * weights)
            height, width = self._band_sizes[level]
            out = out[:, pad:pad + height, pad:pad + width]
            den = den[pad:pad + height, pad:pad + width]
            splatted.append(fill_holes(out, den, self.hole_threshold))
            if self.inpaint:
                hole = (den <= self.hole_threshold).float()[None, None]
                full = F.interpolate(hole, size=self._band_sizes[0], mode="nearest")[0, 0] > 0
                everywhere_hole = full if everywhere_hole is None else everywhere_hole & full
        result = reconstruct(splatted)
        if everywhere_hole is not None and bool((everywhere_hole & (self._mask_t > 0)).any()):
            holes = (everywhere_hole & (self._mask_t > 0)).cpu().numpy()
            filled = inpaint_telea(result.permute(1, 2, 0).cpu().numpy(), holes)
            result = torch.from_numpy(filled).to(self.device).permute(2, 0, 1)
        return composite(self.image, composite_mask_t=self._mask_t, result=result)
