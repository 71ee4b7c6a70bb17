"""The ``--engine stylegan`` renderer: invert a square crop, warp its deep features, paste back.

Per job: load the generator (and encoder, mean w when present), pick the square crop of side
min(H, W) that best covers the mask, resize it to the generator size S, invert it to (w+, D10),
run the unwarped main chain once, then per frame warp the four level features (MSDFW) and sum
their ToRGB branches. The animated crop is pasted back through the composite mask at the
full input resolution, so static pixels stay bit-exact.

Detail transfer (default): the crop's own detail that the GAN cannot reconstruct,
R = crop - G_0, is splatted at the crop resolution with the same loop, and the output is
crop + mask x ((G_t - G_0) + (R_t - R)); frame 0 (and frame N) equal the input exactly.
Without it the crop shows the GAN output G_t itself, as StyleCineGAN does.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..devices import pick
from ..errors import Cancelled
from ..options import RenderOptions
from ..progress import CancelFn, Progress, ProgressFn
from ..stages.motion import resize_motion
from .checkpoint import load_encoder, load_generator, load_mean_latent
from .invert import Inversion, InversionSettings, invert_by_optimisation, invert_with_encoder
from .model import Generator
from .models_dir import find_model, require_model
from .msdfw import LoopWarper

__all__ = ["render_frames_stylegan", "animate_square", "square_crop", "load_inversion", "GanModels",
           "load_models"]

log = logging.getLogger(__name__)

_PURPOSE = "the stylegan engine"


@dataclass
class GanModels:
    """What the engine loaded from the models folder."""

    generator: Generator
    mean_w: torch.Tensor
    encoder: torch.nn.Module | None


def load_models(models_dir: str | None, device: torch.device) -> GanModels:
    """Generator (required), mean w (file, else sampled) and encoder (optional) from the models folder."""
    generator = load_generator(require_model(models_dir, "generator", _PURPOSE), device)
    mean_path = find_model(models_dir, "mean_latent")
    if mean_path is not None:
        mean_w = load_mean_latent(mean_path, generator.config.style_dim, device)
    else:
        log.info("no mean-w file in %s; estimating it from 4096 samples of the mapping network", models_dir)
        mean_w = generator.mean_latent()
    encoder_path = find_model(models_dir, "encoder")
    encoder = load_encoder(encoder_path, device) if encoder_path is not None else None
    return GanModels(generator, mean_w, encoder)


def square_crop(mask: np.ndarray) -> tuple[int, int, int]:
    """(top, left, side) of the min(H, W) square whose centre is nearest the mask's bounding-box centre.

    Args:
        mask: (H, W) float32, > 0 = animated.
    """
    height, width = mask.shape
    side = min(height, width)
    rows = np.flatnonzero(mask.max(axis=1) > 0)
    cols = np.flatnonzero(mask.max(axis=0) > 0)
    centre_y = (rows[0] + rows[-1]) / 2 if rows.size else (height - 1) / 2
    centre_x = (cols[0] + cols[-1]) / 2 if cols.size else (width - 1) / 2
    top = int(np.clip(round(centre_y - (side - 1) / 2), 0, height - side))
    left = int(np.clip(round(centre_x - (side - 1) / 2), 0, width - side))
    return top, left, side


def load_inversion(models: GanModels, square: torch.Tensor, index: int, settings: InversionSettings,
                   progress: ProgressFn | None, should_cancel: CancelFn | None) -> Inversion:
    """Encoder inversion when an encoder is present, else optimisation from the mean latent."""
    if models.encoder is not None:
        return invert_with_encoder(models.encoder, models.generator, models.mean_w, square, index)
    return invert_by_optimisation(models.generator, models.mean_w, square, index, settings,
                                  progress=progress, should_cancel=should_cancel)


def _to_unit(image: torch.Tensor) -> torch.Tensor:
    """Generator output (1, 3, S, S) in [-1, 1] -> (3, S, S) in [0, 1] (not clipped)."""
    return (image[0] + 1.0) * 0.5


def _resize(image: torch.Tensor, side: int) -> torch.Tensor:
    """(C, H, W) -> (C, side, side), bilinear (antialiased when shrinking)."""
    if image.shape[-1] == side and image.shape[-2] == side:
        return image
    return F.interpolate(image[None], size=(side, side), mode="bilinear", align_corners=False, antialias=True)[0]


def animate_square(models: GanModels, crop: np.ndarray, motion_px: np.ndarray, options: RenderOptions, *,
                   index: int | None = None, settings: InversionSettings = InversionSettings(),
                   use_detail: bool = True, progress: ProgressFn | None = None,
                   should_cancel: CancelFn | None = None) -> Iterator[np.ndarray]:
    """Frames of the animated square crop, before compositing.

    Args:
        crop: (s, s, 3) float32 RGB in [0, 1].
        motion_px: (2, s, s) float32, px/frame at the crop resolution (masked and scaled).
        index: feature index k (even); default S/8 px, i.e. 10 for the 1024 px model.
        use_detail: carry the crop's unreconstructed detail along (frame 0 = crop exactly).

    Yields:
        options.frames frames (s, s, 3) float32: with detail, the change to add to the crop
        (exactly 0 at frame 0); without, the GAN output itself in [0, 1].
    """
    generator = models.generator
    device = generator.input.input.device
    size = generator.config.size
    index = generator.default_feature_index() if index is None else index
    generator.check_feature_index(index)
    side = crop.shape[0]
    crop_t = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))).to(device)
    square = _resize(crop_t, size)[None]
    inversion = load_inversion(models, square, index, settings, progress, should_cancel)
    gen = inversion.generator
    with torch.no_grad():
        levels = gen.level_features(inversion.w_plus, inversion.feature, index)
        recon = _to_unit(gen.render_levels(levels, inversion.w_plus, index))
        motion_gen = torch.from_numpy(resize_motion(motion_px, size, size)).to(device)
        warper = LoopWarper(motion_gen, options.frames, [lvl.shape[-1] for lvl in levels],
                            hole_threshold=options.hole_threshold, once=options.once)
        detail_warper = None
        if use_detail:
            residual = crop_t - _resize(recon, side)
            detail_warper = LoopWarper(torch.from_numpy(motion_px).to(device), options.frames, [side],
                                       hole_threshold=options.hole_threshold, once=options.once,
                                       use_border_cut=False)
        for t in range(options.frames):
            if should_cancel is not None and should_cancel():
                raise Cancelled("render cancelled")
            frame_gan = _to_unit(gen.render_levels(levels, inversion.w_plus, index, warp=warper.frame(t)))
            if detail_warper is None:
                out = _resize(frame_gan, side)
            else:
                moved_detail = detail_warper.frame(t)(residual[None], side)[0]
                out = _resize(frame_gan - recon, side) + (moved_detail - residual)
            yield out.permute(1, 2, 0).float().cpu().numpy()


def render_frames_stylegan(image: np.ndarray, mask: np.ndarray, motion_px: np.ndarray, options: RenderOptions,
                           progress: ProgressFn | None = None, should_cancel: CancelFn | None = None, *,
                           use_detail: bool = True, settings: InversionSettings = InversionSettings()
                           ) -> Iterator[np.ndarray]:
    """Frames of the loop rendered with the StyleGAN deep-feature engine, at the input resolution.

    Args:
        image: (H, W, C) float32 in [0, 1], C = 3 or 4 (alpha is passed through).
        mask: (H, W) float32 composite mask in [0, 1] at image size (1 = animate).
        motion_px: (2, H, W) float32 px/frame at image size (already x speed x flow mask).
        options: frames, once, hole_threshold, device and models are read.
        use_detail: detail transfer (see the module docstring); False shows the GAN output as
            StyleCineGAN does, and frame 0 is then the reconstruction, not the input.
        settings: optimisation knobs, used when the models folder has no encoder.

    Yields:
        options.frames frames (H, W, C) float32 (per-frame progress is the caller's, as for the
        default engine); frame 0 and every pixel with mask 0 (or outside
        the square crop) equal the input bit for bit.

    Raises:
        ModelMissing: no models folder or no generator in it (the message names the file).
        Cancelled: ``should_cancel()`` returned true.
    """
    height, width = mask.shape
    top, left, side = square_crop(mask)
    rows, cols = slice(top, top + side), slice(left, left + side)
    crop_mask = mask[rows, cols]
    crop_motion = np.ascontiguousarray(motion_px[:, rows, cols])
    if not np.any(crop_motion) or not np.any(crop_mask):
        log.info("no motion inside the animated square: every frame is the input")
        for t in range(options.frames):
            if should_cancel is not None and should_cancel():
                raise Cancelled("render cancelled")
            yield image.copy()
        return
    if progress is not None:
        progress(Progress("prepare", 0, 1))
    models = load_models(options.models, pick(options.device))
    outside = float(mask.sum() - crop_mask.sum())
    if outside > 0:
        log.warning("%.0f px of mask lie outside the %d px square the GAN sees; they stay still", outside, side)
    crop_rgb = np.ascontiguousarray(image[rows, cols, :3], dtype=np.float32)
    weight = crop_mask[:, :, None].astype(np.float32)
    frames = animate_square(models, crop_rgb, crop_motion, options, settings=settings, use_detail=use_detail,
                            progress=progress, should_cancel=should_cancel)
    for t, out in enumerate(frames):
        change = out if use_detail else out - crop_rgb
        frame = image.copy()
        animated = np.clip(crop_rgb + weight * change, 0.0, 1.0)
        frame[rows, cols, :3] = np.where(weight > 0, animated, crop_rgb)
        yield frame
