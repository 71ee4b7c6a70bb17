"""GAN inversion: find (w+, D_k) whose synthesis reconstructs a square image (algorithm.md §8).

Two ways: the Feature-Style encoder in one pass, or Adam optimisation of D_k and w+ from the
mean latent (DeepLandscape recipe, latents-and-feature variant), optionally followed by a
short fine-tune of the generator layers the reconstruction uses.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..errors import Cancelled, InputError
from ..progress import CancelFn, Progress, ProgressFn
from .encoder import FeatureStyleEncoder, encoder_input
from .model import Generator

__all__ = ["InversionSettings", "Inversion", "invert_with_encoder", "invert_by_optimisation",
           "reconstruction_loss", "finetune_generator"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class InversionSettings:
    """Optimisation knobs; defaults from algorithm.md §8.2 (no perceptual term: no LPIPS weights here)."""

    steps: int = 500
    lr: float = 0.1
    l1_weight: float = 1.0
    l2_weight: float = 1.0
    latent_weight: float = 1.0
    plateau_patience: int = 20
    finetune_steps: int = 0
    finetune_lr: float = 1e-3


@dataclass
class Inversion:
    """Result of an inversion: latents, deep feature, the generator to use and the loss per step."""

    w_plus: torch.Tensor
    feature: torch.Tensor
    generator: Generator
    losses: list[float] = field(default_factory=list)


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor, settings: InversionSettings) -> torch.Tensor:
    """l1_weight * L1 + l2_weight * MSE between two (B, 3, S, S) images in [-1, 1]."""
    return settings.l1_weight * F.l1_loss(recon, target) + settings.l2_weight * F.mse_loss(recon, target)


def _report(progress: ProgressFn | None, should_cancel: CancelFn | None, done: int, total: int) -> None:
    """Send an "invert" progress report; raise Cancelled when asked to stop."""
    if should_cancel is not None and should_cancel():
        raise Cancelled("inversion cancelled")
    if progress is not None:
        progress(Progress("invert", done, total))


@torch.no_grad()
def invert_with_encoder(encoder: FeatureStyleEncoder, generator: Generator, mean_w: torch.Tensor,
                        image: torch.Tensor, index: int) -> Inversion:
    """w+ = encoder offsets + mean w and D_k = encoder feature for a square image.

    Args:
        image: (1, 3, S', S') float32 in [0, 1] on the generator's device.
        mean_w: (1, style_dim).

    Raises:
        InputError: the encoder's outputs do not fit this generator and feature index.
    """
    offsets, feature = encoder(encoder_input(image, generator.config.size))
    side = generator.feature_resolution(index)
    expected = (generator.config.channel(side), side, side)
    if offsets.shape[1:] != (generator.n_latent, generator.config.style_dim) or tuple(feature.shape[1:]) != expected:
        raise InputError(f"the encoder predicts w+ {tuple(offsets.shape[1:])} and a feature {tuple(feature.shape[1:])}, "
                         f"but the generator needs ({generator.n_latent}, {generator.config.style_dim}) and {expected}",
                         hint="use the encoder trained for this generator (k = 10 for sg2-lhq-1024)")
    return Inversion(offsets + mean_w[:, None], feature, generator)


def invert_by_optimisation(generator: Generator, mean_w: torch.Tensor, image: torch.Tensor, index: int,
                           settings: InversionSettings = InversionSettings(), *, progress: ProgressFn | None = None,
                           should_cancel: CancelFn | None = None) -> Inversion:
    """Adam on D_k and w+ from the mean latent, then an optional generator fine-tune.

    Only w_k ... w_{n-1} and D_k reach the output (algorithm.md §5.2); all of w+ is returned.
    Progress is reported per step as stage "invert" (optimisation steps then fine-tune steps).

    Args:
        image: (1, 3, S, S) float32 in [0, 1] at the generator size, on its device.
        mean_w: (1, style_dim), the start of every w.

    Raises:
        Cancelled: ``should_cancel()`` returned true between steps.
    """
    target = image * 2.0 - 1.0
    total = settings.steps + settings.finetune_steps
    with torch.no_grad():
        w_start = mean_w[:, None].repeat(1, generator.n_latent, 1)
        feature = generator.feature_at(w_start, index).clone()
    w_plus = w_start.clone().requires_grad_(True)
    feature.requires_grad_(True)
    optimiser = torch.optim.Adam([w_plus, feature], lr=settings.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=0.5, patience=settings.plateau_patience)
    losses: list[float] = []
    for step in range(settings.steps):
        optimiser.zero_grad(set_to_none=True)
        recon = generator.synthesize_from_feature(w_plus, feature, index)
        loss = reconstruction_loss(recon, target, settings)
        if settings.latent_weight:
            loss = loss + settings.latent_weight * F.mse_loss(w_plus[:, index:], w_start[:, index:])
        loss.backward()
        optimiser.step()
        scheduler.step(loss.item())
        losses.append(loss.item())
        _report(progress, should_cancel, step + 1, total)
    result = Inversion(w_plus.detach(), feature.detach(), generator, losses)
    if settings.finetune_steps:
        result.generator = finetune_generator(result, target, index, settings, progress=progress,
                                              should_cancel=should_cancel, done=settings.steps, total=total)
    log.info("inversion: %d steps, loss %.4f -> %.4f", len(losses), losses[0] if losses else float("nan"),
             losses[-1] if losses else float("nan"))
    return result


def finetune_generator(inversion: Inversion, target: torch.Tensor, index: int, settings: InversionSettings, *,
                       progress: ProgressFn | None = None, should_cancel: CancelFn | None = None,
                       done: int = 0, total: int | None = None) -> Generator:
    """A copy of the generator whose layers after D_k are tuned to reconstruct ``target`` (B, 3, S, S) in [-1, 1]."""
    tuned = copy.deepcopy(inversion.generator)
    first_rgb = (index - 2) // 2
    params = [p for p in [*tuned.convs[index - 1:].parameters(), *tuned.to_rgbs[first_rgb:].parameters()]]
    for p in params:
        p.requires_grad_(True)
    optimiser = torch.optim.Adam(params, lr=settings.finetune_lr)
    total = total if total is not None else settings.finetune_steps
    for step in range(settings.finetune_steps):
        optimiser.zero_grad(set_to_none=True)
        recon = tuned.synthesize_from_feature(inversion.w_plus, inversion.feature, index)
        loss = reconstruction_loss(recon, target, settings)
        loss.backward()
        optimiser.step()
        inversion.losses.append(loss.item())
        _report(progress, should_cancel, done + step + 1, total)
    return tuned.eval().requires_grad_(False)
