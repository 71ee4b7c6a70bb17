"""Feature-Style encoder (``fs_encoder_v2`` layout): image -> (w+ offsets, deep feature D_k).

An iResNet-50 backbone whose four stage outputs are pooled to 3x3 and read by one linear
head per latent, plus a content head on the stem output that predicts the deep feature.
Module names and shapes follow the published state dict (algorithm.md §7, §8.1); the code
is ours. Sizes are parameters so that tests can build a small copy of the same architecture.

Convention:
    Input (B, 3, 2r, 2r) in [-1, 1], where r is the side of the predicted feature (256 px in,
    128 px D10 out for the 1024 px model). Output w+ offsets (B, n_styles, style_dim): the
    caller adds the mean w. Feature (B, feature_channels, r, r): the BN output, no activation.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EncoderConfig", "FeatureStyleEncoder", "encoder_input"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderConfig:
    """Backbone depth and widths, latent count and width, content-head widths."""

    layers: tuple[int, int, int, int] = (3, 4, 14, 3)
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    n_styles: int = 18
    style_dim: int = 512
    content_hidden: int = 512
    feature_channels: int = 256
    pool: int = 3


class IBasicBlock(nn.Module):
    """iResNet residual block: BN, conv3x3, BN, PReLU, conv3x3 (strided), BN, plus the shortcut."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, eps=1e-5)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels, eps=1e-5)
        self.prelu = nn.PReLU(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels, eps=1e-5)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(channels, eps=1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in, H, W) -> (B, channels, H / stride, W / stride)."""
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


def _stage(in_channels: int, channels: int, blocks: int) -> nn.Sequential:
    """One backbone stage: a stride-2 block then ``blocks - 1`` stride-1 blocks."""
    return nn.Sequential(IBasicBlock(in_channels, channels, 2),
                         *[IBasicBlock(channels, channels, 1) for _ in range(blocks - 1)])


class FeatureStyleEncoder(nn.Module):
    """Predicts w+ offsets and the deep feature D_k from a square image."""

    def __init__(self, config: EncoderConfig = EncoderConfig()) -> None:
        super().__init__()
        self.config = config
        stem = config.widths[0]
        self.conv = nn.Sequential(nn.Conv2d(3, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem, eps=1e-5),
                                  nn.PReLU(stem))
        in_ch = stem
        for n, (blocks, width) in enumerate(zip(config.layers, config.widths), start=1):
            setattr(self, f"block_{n}", _stage(in_ch, width, blocks))
            in_ch = width
        hidden = config.content_hidden
        self.content_layer = nn.Sequential(
            nn.BatchNorm2d(stem), nn.Conv2d(stem, hidden, 3, 1, 1, bias=False), nn.BatchNorm2d(hidden),
            nn.PReLU(hidden), nn.Conv2d(hidden, config.feature_channels, 3, 2, 1, bias=False),
            nn.BatchNorm2d(config.feature_channels))
        pooled = sum(config.widths) * config.pool ** 2
        self.styles = nn.ModuleList([nn.Linear(pooled, config.style_dim) for _ in range(config.n_styles)])

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image (B, 3, 2r, 2r) in [-1, 1] -> (w+ offsets (B, n_styles, D), feature (B, C, r, r))."""
        batch = image.shape[0]
        x = self.conv(image)
        feature = self.content_layer(x)
        pooled = []
        for block in (self.block_1, self.block_2, self.block_3, self.block_4):
            x = block(x)
            pooled.append(F.adaptive_avg_pool2d(x, self.config.pool))
        flat = torch.cat(pooled, dim=1).reshape(batch, -1)
        offsets = torch.stack([head(flat) for head in self.styles], dim=1)
        return offsets, feature


def encoder_input(image: torch.Tensor, generator_size: int) -> torch.Tensor:
    """Square RGB in [0, 1] -> the encoder's input: generator size, [-1, 1], then two bilinear halvings.

    Args:
        image: (B, 3, H, H) float in [0, 1].
        generator_size: S; the result is (B, 3, S/4, S/4) in [-1, 1] (256 px for S = 1024).
    """
    x = image * 2.0 - 1.0
    if x.shape[-1] != generator_size:
        x = F.interpolate(x, size=(generator_size, generator_size), mode="bilinear", align_corners=False,
                          antialias=True)
    for _ in range(2):
        # the published encoder was trained on plain (non-antialiased) bilinear halvings (algorithm.md §8.1)
        x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
    return x
