"""The default engine: one frame of the seamless loop at a time (algorithm.md §1).

A render reads as one typed plan (``LoopPlan``, from RenderOptions) through two stages: the flow
(``LoopRenderer``) and, where regions oscillate, the sway warped over the flow's frame
(``sway_frame``, stages/sway_warp.py). In the flow, bands of the Laplacian pyramid are splatted
at their own level with the displacement of the once-integrated motion, forward and backward;
the backward copy's share follows ``blend_schedule(t/N)`` (0 in the first quarter, 1 in the last,
one copy alone is splatted there), holes are filled, the bands are collapsed and the result is
composited over the input.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ._cv import cv2
from .options import RenderOptions
from .stages.blend import COVERAGE_WINDOW, blend_schedule, real_hole_box, splat_blend
from .stages.coarse_place import coarse_energy, keep_coarse_in_place_, middle_cap
from .stages.composite import composite
from .stages.contrast import band_energy, restore_contrast_
from .stages.holes import fill_holes, inpaint_telea
from .stages.integrate import LoopTrajectories, resample_displacement
from .stages.inflow import synthesize_inflow
from .stages.layer import fill_behind_mask
from .stages.outliers import limit_outliers_, luma_deviation
from .stages.padding import continue_edge, fade_padding, loop_padding, pad_reflect
from .stages.place import keep_in_place_, place_energy
from .stages.pyramid import laplacian_bands, pyramid_levels, reconstruct
from .stages.shading import Shading, shading_at
from .stages.splat import channels_last, softmax_weights, splat_joint
from .stages.sway import SwayPlan
from .stages.sway_warp import warp_sway

__all__ = ["DetailRules", "LoopPlan", "LoopRenderer", "active_region", "detail_rules", "sway_frame"]

log = logging.getLogger(__name__)

WHOLE_PIXEL_MODES = ("sharp", "precise")
"""Detail modes whose finest band lands on whole pixels (no bilinear blur)."""

INFLOW_RAMP = 4.0
"""Pixels (of each band) over which the reflection beyond one frame's travel outside the frame gives
way to what flows in instead: texture (a loop's detail bands, stages/inflow.py), nothing (a drift's,
stages/padding.fade_padding) or the edge's colours (the low-pass band, stages/padding.continue_edge).
For the detail bands 4, 8 and 16 scored alike on the real clips. For the low-pass band, in a drift
8 and 16 scored up to 0.1 and 0.3 dB higher over all frames and 4 higher over the first 8; in a
loop 4 scored higher over the first 8 and kept the fast seams within 1.05 (docs/benchmarks.md)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class LoopPlan:
    """What the loop engine renders, derived once from RenderOptions: the flow's settings and the sway.

    Attributes:
        frames: loop length N.
        levels: requested pyramid levels (fewer are used on small images).
        once: forward motion only, no loop blend (a one-shot drift).
        hole_threshold: splat weight at or below which a pixel is refilled.
        inpaint: Telea-inpaint pixels that were holes at every level.
        detail: how detail bands move (RenderOptions.detail, see ``detail_rules``).
        inflow: what a loop's detail bands carry in from outside the frame (RenderOptions.inflow):
            "texture" (stages/inflow.py) or "smooth" (faded out, as a one-shot drift always is).
        inflow_keep: px beyond the frame's edge whose reflected detail a loop keeps whole; None = one
            frame's travel of the renderer's own motion, max|M| (strips of a larger image pass the
            whole image's, so that every strip treats the frame's edges alike).
        sway: the oscillating regions, warped over each whole frame after the flow (None: none sway).
        shading: the moving region's smooth brightness, kept in place while the rest moves
            (stages/shading.py; None: everything moves, as single-scale renders do).
    """

    frames: int
    levels: int
    once: bool
    hole_threshold: float
    inpaint: bool
    detail: str
    inflow: str
    inflow_keep: float | None = None
    sway: SwayPlan | None = None
    shading: Shading | None = None

    @classmethod
    def from_options(cls, options: RenderOptions, *, inflow_keep: float | None = None,
                     sway: SwayPlan | None = None, shading: Shading | None = None) -> LoopPlan:
        """The plan of a render with ``options`` (validated), the whole image's max|M|, sway and shading."""
        return cls(frames=options.frames, levels=options.levels, once=options.once,
                   hole_threshold=options.hole_threshold, inpaint=options.inpaint, detail=options.detail,
                   inflow=options.inflow, inflow_keep=inflow_keep, sway=sway, shading=shading)


@dataclass(frozen=True, slots=True)
class DetailRules:
    """How the bands of one window move, from the plan's detail mode, its loop or drift and its levels.

    Attributes:
        detail: the mode in effect ("smooth" when the window has a single level).
        whole_pixels: the finest band lands on whole pixels (no bilinear blur).
        restores: each detail band carries its energy and has its contrast restored (stages/contrast.py).
        carries: the finest band's particles carry their sub-pixel remainder (bicubic).
        limits: the finest band's pixels stand out of their new neighbours no more than what landed
            there (stages/outliers.py); its deviation rides beside the energy.
    """

    detail: str
    whole_pixels: bool
    restores: bool
    carries: bool
    limits: bool


def detail_rules(detail: str, once: bool, levels: int) -> DetailRules:
    """The band rules of ``detail`` ("sharp", "precise", "restore" or "smooth") in a loop or drift of ``levels``.

    "sharp" moves the finest band by whole pixels and, in a loop, restores the contrast that the
    blend of two copies loses (a one-shot drift carries the sub-pixel remainder instead, as
    "precise"); "precise" does the same with each particle carrying its detail resampled at its
    sub-pixel remainder; "restore" splats sub-pixel with that restoration; "smooth" is the plain
    bilinear splat.
    """
    detail = detail if levels > 1 else "smooth"
    whole = detail in WHOLE_PIXEL_MODES
    # Contrast restoration undoes the loop's blend of two copies (and, for "restore", sub-pixel
    # taps). A one-shot drift has one copy and whole-pixel fine detail in "sharp": restoring
    # there only amplified the coarser bands' detail (lower PSNR and SSIM on the real clips).
    restores = detail == "restore" or (whole and not once)
    # A one-shot drift in "sharp" carries the finest band's sub-pixel remainder too: with one
    # copy there is no blend to hide the up-to-half-pixel misplacement of whole-pixel landing
    # (on the real clips: +0.24 dB PSNR over 8 frames, SSIM up at both horizons). A loop keeps
    # whole pixels: resampling softens every frame but the input, and the loop breathes.
    carries = detail == "precise" or (detail == "sharp" and once)
    # A loop's whole-pixel finest band carries each particle's own outlyingness, so that no pixel
    # stands out from its new neighbours more than it did from its old ones (stages/outliers.py;
    # on the real clips the loop's speckle fell by 4-12 %, docs/benchmarks.md).
    # Its channel rides with the restoration's energy (the band's last channel), so it needs it.
    limits = restores and whole and not once
    return DetailRules(detail, whole, restores, carries, limits)


def active_region(composite_mask: np.ndarray, motion_px: np.ndarray, margin: int,
                  align: int = 1) -> tuple[slice, slice]:
    """Rows and columns that can change: mask or motion support, grown by ``margin`` pixels.

    Content outside it neither moves nor is composited, so rendering only this window gives
    the same frame (static particles land exactly on themselves).
    """
    support = (composite_mask > 0) | np.any(motion_px != 0, axis=0)
    rows = np.flatnonzero(support.any(axis=1))
    cols = np.flatnonzero(support.any(axis=0))
    height, width = composite_mask.shape
    # Starting on a multiple of ``align`` keeps every pyramid level on the image's own pixel grid,
    # so any window (or strip, see tiles.py) decomposes the same pixels the same way.
    top = max(0, rows[0] - margin) // align * align
    left = max(0, cols[0] - margin) // align * align
    return (slice(top, min(height, rows[-1] + 1 + margin)), slice(left, min(width, cols[-1] + 1 + margin)))


class LoopRenderer:
    """The flow: frame t of an N-frame loop (or of a one-shot drift) from prepared inputs and a plan.

    Args:
        image: (H, W, C) float32 still.
        composite_mask: (H, W) float32 in [0, 1]; 0 = static, copied bit-exact from the input.
        motion_px: (2, H, W) float32 final motion, px/frame (speed and flow mask applied).
        plan: the render's settings (its ``sway`` is not this stage's: see ``sway_frame``).
        importance: optional (H, W) float32 Z for softmax splatting.
        device: torch device for the work.
        should_cancel: checked at every integration step and before every band of a frame.
        origin: (row, column) of ``image``'s first pixel in the whole still (a strip's offset), which
            keys the inflow's texture so that strips fill the frame's edges as the whole image does.
    """

    def __init__(self, image: np.ndarray, composite_mask: np.ndarray, motion_px: np.ndarray, plan: LoopPlan, *,
                 importance: np.ndarray | None = None, device: torch.device,
                 should_cancel: Callable[[], bool] | None = None, origin: tuple[int, int] = (0, 0)) -> None:
        self.image = image
        self.plan = plan
        self.device = device
        self.is_static = not bool(np.any(motion_px)) or not bool(np.any(composite_mask))
        if self.is_static:
            return
        max_speed = float(np.sqrt((motion_px.astype(np.float64) ** 2).sum(axis=0)).max())
        travel = loop_padding(max_speed, plan.frames)
        levels = pyramid_levels(*image.shape[:2], plan.levels)
        # The window keeps a margin for the travel plus the blur support of the coarsest band,
        # so bands inside the moving region are the same as those of the whole image.
        self.window = active_region(composite_mask, motion_px, travel + 2 ** (levels + 1), align=2 ** (levels - 1))
        self._image_w = np.ascontiguousarray(image[self.window])
        self.levels = pyramid_levels(*self._image_w.shape[:2], plan.levels)
        self.rules = detail_rules(plan.detail, plan.once, self.levels)
        self.padding = loop_padding(max_speed, plan.frames, multiple=2 ** (self.levels - 1))
        mask_w = composite_mask[self.window]
        self._mask_t = torch.from_numpy(np.ascontiguousarray(mask_w)).to(device)
        motion_w = np.ascontiguousarray(motion_px[:, self.window[0], self.window[1]])
        motion_pad = pad_reflect(torch.from_numpy(motion_w).to(device), self.padding)
        self._trajectories = LoopTrajectories(motion_pad, plan.frames, once=plan.once, should_cancel=should_cancel)
        z = None
        if importance is not None:
            z = pad_reflect(torch.from_numpy(np.ascontiguousarray(importance[self.window])).to(device), self.padding)
        self._channels = image.shape[2]
        keep = 0.0 if plan.once else (max_speed if plan.inflow_keep is None else plan.inflow_keep)
        at = (origin[0] + self.window[0].start, origin[1] + self.window[1].start)
        self._values = self._padded_bands(mask_w > 0, keep, at)
        # Static particles land on themselves. Away from the composited region (farther than the
        # coarsest band's upsampling support) nothing reads them: weight 0 skips their splat.
        reach = 3 * 2 ** (self.levels - 1) + 1
        moving = (np.any(motion_w != 0, axis=0) | (mask_w > 0)).astype(np.uint8)
        source = torch.from_numpy(cv2.dilate(moving, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) > 0)
        self._weights = softmax_weights(z, tuple(motion_pad.shape[1:]), device)
        self._weights = self._weights * pad_reflect(source.to(device).float(), self.padding)
        # Holes outside that region are never read either: they are not filled.
        self._ignore = [~source[::2 ** level, ::2 ** level].to(device) for level in range(self.levels)]

    def _padded_bands(self, moving: np.ndarray, keep: float, at: tuple[int, int]) -> list[torch.Tensor]:
        """The window's bands, padded with what flows in, channels last, with the energies that travel along.

        Args:
            moving: (h, w) bool, the window's composited pixels.
            keep: px beyond the frame's edge whose reflected detail stays whole (finest level's px).
            at: (row, column) of the window's first pixel in the whole still (keys the inflow texture).
        """
        plan, rules = self.plan, self.rules
        # The pyramid is built over the moving layer: static pixels filled from the moving region, so
        # that no band carries the static side's edge into the moving one (stages/layer.py).
        layer = fill_behind_mask(self._image_w, moving)
        self._shade = None
        if plan.shading is not None and self.levels > 1:
            # The shading stays in place: only the rest moves (stages/shading.py). Single-scale
            # renders move it all, as the live preview does.
            shade = shading_at(plan.shading, slice(at[0], at[0] + layer.shape[0]))  # (h, 1, C)
            layer = layer - shade
            self._shade = torch.from_numpy(shade).to(self.device).permute(2, 0, 1)  # (C, h, 1)
        layer_t = torch.from_numpy(layer).to(self.device).permute(2, 0, 1).contiguous()
        # Where a frame is softer than the still at the same place, its fine detail is raised
        # (stages/place.py): a copy that the field stretches softens as it travels.
        self._place = place_energy(layer_t) if rules.restores and self.levels > 1 else None
        # And where the loop's middle is flatter than the still at a coarser scale, that scale is
        # raised, so the middle changes per frame as the ends do (stages/coarse_place.py).
        self._coarse = coarse_energy(layer_t) if self._place is not None and not plan.once else None
        bands = laplacian_bands(layer_t, self.levels)
        self._band_sizes = [tuple(band.shape[1:]) for band in bands]
        values = []
        for level, band in enumerate(bands):
            pad = self.padding >> level
            padded = pad_reflect(band, pad)
            # What flows in from outside the frame. A loop keeps one frame's travel of the
            # reflection whole, so the frames beside the input continue its edge and the seam does
            # not step. Beyond it the low-pass band is the edge's local mean, not its mirror image;
            # the detail bands carry texture from near the edge (stages/inflow.py), so the loop's
            # middle, where much of the frame flowed in, changes per frame as its ends do. A drift
            # has no seam to hide: its detail fades out (docs/benchmarks.md).
            keep_l = keep / 2 ** level
            if self.levels == 1:
                pass  # single-scale: the plain method, reflected whole (as the live preview samples it)
            elif level == self.levels - 1:
                padded = continue_edge(padded, pad, keep_l, INFLOW_RAMP)
            elif plan.once or plan.inflow == "smooth":
                padded = fade_padding(padded, pad, keep_l, INFLOW_RAMP)
            else:
                padded = synthesize_inflow(padded, pad, keep_l, INFLOW_RAMP, (at[0] >> level, at[1] >> level), level)
            if rules.restores and level < self.levels - 1:
                # The particles' own energy travels with them; see stages/contrast.py.
                extra = [luma_deviation(padded).square_()] if level == 0 and rules.limits else []
                padded = torch.cat([padded, *extra, band_energy(padded)])
            values.append(channels_last(padded))
        return values

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as (H, W, C) float32; t = 0 (and t = N in a loop) is the input itself."""
        plan = self.plan
        step = t if plan.once else t % plan.frames
        if self.is_static or step == 0:
            # alpha = 0 and zero displacement make the splat an identity: return the input
            # itself rather than its float round trip, so frame 0 is bit-exact.
            return self.image.copy()
        rules = self.rules
        disp_f, valid_f, disp_b, valid_b, phase = self._trajectories.at(step)
        alpha = blend_schedule(phase)
        splatted = []
        dens = []
        for level, values in enumerate(self._values):
            self._trajectories.check_cancel()  # a frame of a big window takes seconds per band
            factor = 2 ** level
            pad = self.padding >> level
            df, vf = resample_displacement(disp_f, valid_f, factor)
            db, vb = resample_displacement(disp_b, valid_b, factor)
            # Bilinear taps at a fractional offset f scale the finest frequencies by |1 - 2f|:
            # details would fade and flicker as particles pass half-pixels. In "sharp" the finest
            # band moves by whole pixels (rounded in the splat); "precise" also carries the
            # remainder (bicubic) so the detail stays sub-pixel accurate. Coarser bands stay bilinear.
            weights = self._weights[::factor, ::factor]
            height, width = self._band_sizes[level]
            # Only the unpadded band is read afterwards: accumulate just that. No particle moves
            # farther than the padding (N * max|M| < P), which bounds the rows the splat scans.
            splat = dict(whole_pixels=level == 0 and rules.whole_pixels,
                         carry_remainder=rules.carries, reach=pad, crop=(pad, pad, height, width),
                         # A detail band's particles torn from their neighbours by a step in the
                         # motion fade instead of dotting (stages/stretch.py).
                         fade_torn=level < self.levels - 1, gained=self._channels)
            fwd, bwd = (df, vf * weights), (db, vb * weights)
            if 0.0 < alpha < 1.0:
                # Each copy normalised by itself, mixed by its coverage: see stages/blend.py.
                out, den = splat_blend(values, fwd, bwd, alpha, plan.hole_threshold, self._ignore[level], **splat)
            else:
                # Outside the cross-over one copy alone is splatted (the other has no share): the
                # outer quarters of the loop cost half, and both ends are rendered alike. Where that
                # copy has a real hole (content moved on from a mask's upstream edge and nothing
                # followed) the other copy fills it, as in the cross-over (stages/blend.py).
                (disp, weight) = fwd if alpha <= 0.0 else bwd
                out, den = splat_joint(values, disp, weight, disp, None, **splat)
                self._fill_real_holes(out, den, values, fwd, bwd, alpha, level, splat)
            den = den.masked_fill(self._ignore[level], 1.0)
            # Cracks are filled before the restoration, so that a crack's mean of its neighbours gets
            # its contrast back too, in one copy as in the blend (a copy alone was 0.81-0.94 of frame
            # 0's sharpness where the blend of it was ~1.0, docs/benchmarks.md).
            out = fill_holes(out, den, plan.hole_threshold)
            limits = level == 0 and rules.limits
            if limits:
                # Mixed as an energy (the copies' and duplicates' RMS), as the restoration mixes its
                # own: a linear mean let the middle of the loop soften to 0.80 of frame 0 at T 48.
                # A crack's too, in one copy as in the blend (which fills them before this).
                out[self._channels].clamp_(min=0).sqrt_()
            if out.shape[0] > self._channels:
                # The energy is the last channel. A limit's allowed deviation, mixed as an RMS, is at
                # the particles' own amplitude already: gaining it too let the blend's dots through.
                restore_contrast_(out[: self._channels], out[-1:])
                out = out[:-1]
            if limits:
                out = limit_outliers_(out[: self._channels], out[self._channels:])
            splatted.append(out)
            dens.append(den)
        result = reconstruct(splatted)
        if self._shade is not None:
            result += self._shade  # with more than one level, reconstruct() returns a new tensor
        if self._coarse is not None:
            keep_coarse_in_place_(result, self._coarse, middle_cap(alpha))
        if self._place is not None:
            keep_in_place_(result, self._place)
        if plan.inpaint:
            result = self._inpaint_deep_holes(result, dens)
        frame = self.image.copy()
        composite(self._image_w, composite_mask_t=self._mask_t, result=result, out=frame[self.window])
        return frame

    def _fill_real_holes(self, out: torch.Tensor, den: torch.Tensor, values: torch.Tensor, fwd: tuple, bwd: tuple,
                         alpha: float, level: int, splat: dict) -> None:
        """Mix the other copy into a one-copy band ``out`` / ``den`` (in place) around the copy's real holes.

        Only the rows and columns the holes' share reaches are splatted again, both copies, with a
        margin that gives each of those pixels the whole coverage window it has in a full mix.
        """
        margin = COVERAGE_WINDOW // 2 + 1  # a hole's share spreads over the window; a hole is told by its 3x3
        box = real_hole_box(den, self.plan.hole_threshold, self._ignore[level], grow=margin)
        if box is None:
            return
        height, width = den.shape
        top, bottom, left, right = box
        ctop, cbottom = max(0, top - margin), min(height, bottom + margin)
        cleft, cright = max(0, left - margin), min(width, right + margin)
        pad = self.padding >> level
        sub = dict(splat, crop=(pad + ctop, pad + cleft, cbottom - ctop, cright - cleft))
        mixed, mixed_den = splat_blend(values, fwd, bwd, alpha, self.plan.hole_threshold,
                                       self._ignore[level][ctop:cbottom, cleft:cright], **sub)
        inner = (slice(top - ctop, bottom - ctop), slice(left - cleft, right - cleft))
        out[:, top:bottom, left:right] = mixed[:, inner[0], inner[1]]
        den[top:bottom, left:right] = mixed_den[inner]

    def _inpaint_deep_holes(self, result: torch.Tensor, dens: list[torch.Tensor]) -> torch.Tensor:
        """Telea-fill animated pixels that were holes at every level (no band had content there)."""
        threshold = self.plan.hole_threshold
        coarse_hole = dens[-1] <= threshold
        if not bool(coarse_hole.any()):
            return result
        everywhere = None
        for den in dens:
            hole = (den <= threshold).float()[None, None]
            full = F.interpolate(hole, size=self._band_sizes[0], mode="nearest")[0, 0] > 0
            everywhere = full if everywhere is None else everywhere & full
        holes = everywhere & (self._mask_t > 0)
        if not bool(holes.any()):
            return result
        filled = inpaint_telea(result.permute(1, 2, 0).cpu().numpy(), holes.cpu().numpy())
        return torch.from_numpy(filled).to(self.device).permute(2, 0, 1)


def sway_frame(frame: np.ndarray, plan: LoopPlan, t: int) -> np.ndarray:
    """Frame ``t`` with the plan's oscillating regions moved over the flow's ``frame`` (H, W, C) float32.

    The sway warps the whole frame the flow left (the still there, or a flow under a shimmer),
    so strips of a large still get it once they are assembled (stages/sway_warp.py).
    """
    return frame if plan.sway is None else warp_sway(frame, plan.sway, t)
