"""StyleGAN2 generator in plain PyTorch ops, parameter names and shapes in the rosinality layout.

Read bottom-up: FIR resampling, equalised layers, modulated convolution, noise, the styled
conv and ToRGB, then the Generator. The rosinality ``model.py`` key names and shapes are the
interface (algorithm.md §5.1, §7); the code is ours. No custom CUDA: runs on CUDA, MPS and CPU.

Convention:
    Images are (B, 3, S, S) in [-1, 1]. Latents w+ are (B, n_latent, style_dim), n_latent =
    2 log2(S) - 2. ``convs[j]`` uses latent j + 1 and noise j + 1; ``to_rgbs[m]`` uses latent
    2m + 3; the block of ``convs[2m]`` (upsampling) and ``convs[2m + 1]`` outputs 2^(m + 3) px.
    Feature index k (even) = the input of the conv that uses latent k, i.e. the output of
    ``convs[k - 2]`` ("D10" for k = 10 at 1024 px: (B, 256, 128, 128)).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GeneratorConfig", "Generator", "full_channels", "upfirdn2d", "FeatureWarp"]

log = logging.getLogger(__name__)

BLUR_KERNEL = (1.0, 3.0, 3.0, 1.0)
"""The FIR filter of every up-sampler (rosinality default)."""

FeatureWarp = Callable[[torch.Tensor, int], torch.Tensor]
"""warp(feature (B, C, r, r), r) -> warped feature of the same shape."""


def full_channels(channel_multiplier: int = 2) -> dict[int, int]:
    """Feature channels per resolution of the published 1024 px configuration."""
    return {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * channel_multiplier, 128: 128 * channel_multiplier,
            256: 64 * channel_multiplier, 512: 32 * channel_multiplier, 1024: 16 * channel_multiplier}


@dataclass(frozen=True)
class GeneratorConfig:
    """Shape of a generator: output side, latent width, mapping depth, channels per resolution."""

    size: int = 1024
    style_dim: int = 512
    n_mlp: int = 8
    channels: tuple[tuple[int, int], ...] = tuple(full_channels(2).items())

    @property
    def log_size(self) -> int:
        """log2 of the output side."""
        return int(math.log2(self.size))

    @property
    def n_latent(self) -> int:
        """Entries of w+."""
        return 2 * self.log_size - 2

    def channel(self, resolution: int) -> int:
        """Feature channels at ``resolution`` px."""
        return dict(self.channels)[resolution]


def make_kernel(taps: tuple[float, ...]) -> torch.Tensor:
    """Separable 2-D FIR kernel (K, K) from 1-D taps, normalised to sum 1."""
    k1 = torch.tensor(taps, dtype=torch.float32)
    kernel = k1[None, :] * k1[:, None]
    return kernel / kernel.sum()


def upfirdn2d(image: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Upsample by zero insertion, pad, convolve with a FIR kernel, downsample by striding.

    Args:
        image: (B, C, H, W).
        kernel: (K, K) filter (applied flipped, i.e. true convolution).
        up, down: integer factors.
        pad: (before, after) pixels on both axes (negative crops).

    Returns:
        (B, C, (H * up + pad0 + pad1 - K) // down + 1, same for W).
    """
    batch, channels, height, width = image.shape
    if up > 1:
        spread = image.new_zeros(batch, channels, height, up, width, up)
        spread[:, :, :, 0, :, 0] = image
        image = spread.reshape(batch, channels, height * up, width * up)
    pad0, pad1 = pad
    image = F.pad(image, [max(pad0, 0), max(pad1, 0), max(pad0, 0), max(pad1, 0)])
    if pad0 < 0 or pad1 < 0:
        h, w = image.shape[-2:]
        image = image[:, :, max(-pad0, 0):h - max(-pad1, 0), max(-pad0, 0):w - max(-pad1, 0)]
    weight = torch.flip(kernel, [0, 1]).to(image.dtype)[None, None].expand(channels, 1, *kernel.shape)
    out = F.conv2d(image, weight, groups=channels)
    return out[:, :, ::down, ::down] if down > 1 else out


class Upsample(nn.Module):
    """2x FIR up-sampler of the RGB skip branch."""

    def __init__(self, taps: tuple[float, ...] = BLUR_KERNEL, factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(taps) * factor ** 2)
        p = len(taps) - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, 2H, 2W)."""
        return upfirdn2d(image, self.kernel, up=self.factor, pad=self.pad)


class Blur(nn.Module):
    """FIR low-pass after a transposed convolution (anti-aliasing of the up-sampling conv)."""

    def __init__(self, taps: tuple[float, ...], pad: tuple[int, int], upsample_factor: int = 1) -> None:
        super().__init__()
        self.register_buffer("kernel", make_kernel(taps) * upsample_factor ** 2)
        self.pad = pad

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Filter (B, C, H, W) with the padding set at construction."""
        return upfirdn2d(image, self.kernel, pad=self.pad)


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor, slope: float = 0.2) -> torch.Tensor:
    """Bias, leaky ReLU and the sqrt(2) gain that keeps the activation variance at 1."""
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return F.leaky_relu(x + bias.view(shape), slope) * math.sqrt(2.0)


class FusedLeakyReLU(nn.Module):
    """Per-channel bias followed by the scaled leaky ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, ...) -> same shape."""
        return fused_leaky_relu(x, self.bias)


class PixelNorm(nn.Module):
    """Normalise each latent vector to unit mean square."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, D)."""
        return z * torch.rsqrt(torch.mean(z ** 2, dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Linear layer with the equalised learning rate (weights scaled at run time)."""

    def __init__(self, in_dim: int, out_dim: int, *, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) -> (B, out_dim)."""
        if self.activate:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}, lr_mul={self.lr_mul}, activate={self.activate}"


class ModulatedConv2d(nn.Module):
    """Convolution whose weights are scaled per input channel by the style, then demodulated."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int, *,
                 demodulate: bool = True, upsample: bool = False) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.demodulate, self.upsample = demodulate, upsample
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size ** 2)
        if upsample:
            factor = 2
            p = len(BLUR_KERNEL) - factor - (kernel_size - 1)
            self.blur = Blur(BLUR_KERNEL, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """x (B, in, H, W), style (B, style_dim) -> (B, out, H, W), or (B, out, 2H, 2W) when upsampling."""
        batch, in_channels, height, width = x.shape
        k = self.kernel_size
        gains = self.modulation(style).view(batch, 1, in_channels, 1, 1)
        weight = self.scale * self.weight * gains
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(batch, self.out_channels, 1, 1, 1)
        grouped = x.reshape(1, batch * in_channels, height, width)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(batch * in_channels, self.out_channels, k, k)
            out = F.conv_transpose2d(grouped, weight, padding=0, stride=2, groups=batch)
            out = out.view(batch, self.out_channels, *out.shape[-2:])
            return self.blur(out)
        weight = weight.reshape(batch * self.out_channels, in_channels, k, k)
        out = F.conv2d(grouped, weight, padding=k // 2, groups=batch)
        return out.view(batch, self.out_channels, height, width)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, {self.kernel_size}, "
                f"demodulate={self.demodulate}, upsample={self.upsample}")


class NoiseInjection(nn.Module):
    """Adds per-pixel noise scaled by one learned weight."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, image: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """image (B, C, H, W) + weight * noise (B or 1, 1, H, W)."""
        return image + self.weight * noise


class ConstantInput(nn.Module):
    """The learned 4x4 tensor the synthesis starts from."""

    def __init__(self, channels: int, side: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, side, side))

    def forward(self, batch: int) -> torch.Tensor:
        """(batch, C, 4, 4)."""
        return self.input.expand(batch, -1, -1, -1)


class StyledConv(nn.Module):
    """Modulated 3x3 conv, noise, bias and activation: one synthesis layer."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, *, upsample: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channels)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x (B, in, H, W) -> (B, out, H', W')."""
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    """1x1 modulated conv to RGB plus the up-sampled RGB skip of the coarser level."""

    def __init__(self, in_channels: int, style_dim: int, *, upsample: bool = True) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample()
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, r, r) -> (B, 3, r, r); skip (B, 3, r/2, r/2) is up-sampled and added."""
        out = self.conv(x, style) + self.bias
        return out if skip is None else out + self.upsample(skip)


class Generator(nn.Module):
    """StyleGAN2 generator (mapping + synthesis) with fixed noise buffers and deep-feature entry points."""

    def __init__(self, config: GeneratorConfig = GeneratorConfig()) -> None:
        super().__init__()
        self.config = config
        dim = config.style_dim
        ch = config.channel
        self.style = nn.Sequential(PixelNorm(), *[EqualLinear(dim, dim, lr_mul=0.01, activate=True)
                                                  for _ in range(config.n_mlp)])
        self.input = ConstantInput(ch(4))
        self.conv1 = StyledConv(ch(4), ch(4), dim)
        self.to_rgb1 = ToRGB(ch(4), dim, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        num_layers = (config.log_size - 2) * 2 + 1
        for idx in range(num_layers):
            side = 2 ** ((idx + 5) // 2)
            self.noises.register_buffer(f"noise_{idx}", torch.randn(1, 1, side, side))
        in_ch = ch(4)
        for log_res in range(3, config.log_size + 1):
            out_ch = ch(2 ** log_res)
            self.convs.append(StyledConv(in_ch, out_ch, dim, upsample=True))
            self.convs.append(StyledConv(out_ch, out_ch, dim))
            self.to_rgbs.append(ToRGB(out_ch, dim))
            in_ch = out_ch

    @property
    def n_latent(self) -> int:
        """Entries of w+."""
        return self.config.n_latent

    def noise_buffer(self, idx: int) -> torch.Tensor:
        """Fixed noise buffer ``noise_idx`` (1, 1, side, side)."""
        return getattr(self.noises, f"noise_{idx}")

    def map_styles(self, z: torch.Tensor) -> torch.Tensor:
        """Mapping network: z (B, style_dim) -> w (B, style_dim)."""
        return self.style(z)

    @torch.no_grad()
    def mean_latent(self, samples: int = 4096, seed: int = 0) -> torch.Tensor:
        """Mean w over ``samples`` random z (used when no mean-w file is given): (1, style_dim)."""
        gen = torch.Generator(device="cpu").manual_seed(seed)
        device = self.input.input.device
        z = torch.randn(samples, self.config.style_dim, generator=gen).to(device)
        return self.map_styles(z).mean(0, keepdim=True)

    def synthesize(self, w_plus: torch.Tensor) -> torch.Tensor:
        """Ordinary synthesis with every ToRGB skip: w+ (B, n_latent, D) -> image (B, 3, S, S)."""
        out = self.conv1(self.input(w_plus.shape[0]), w_plus[:, 0], self.noise_buffer(0))
        skip = self.to_rgb1(out, w_plus[:, 1])
        for m, to_rgb in enumerate(self.to_rgbs):
            out = self.convs[2 * m](out, w_plus[:, 2 * m + 1], self.noise_buffer(2 * m + 1))
            out = self.convs[2 * m + 1](out, w_plus[:, 2 * m + 2], self.noise_buffer(2 * m + 2))
            skip = to_rgb(out, w_plus[:, 2 * m + 3], skip)
        return skip

    def check_feature_index(self, index: int) -> None:
        """Raise ValueError unless ``index`` is an even feature index this generator has."""
        if index % 2 or not 2 <= index <= self.n_latent - 2:
            raise ValueError(f"feature index {index} not supported: use an even index from 2 to {self.n_latent - 2}")

    def feature_resolution(self, index: int) -> int:
        """Side in px of feature D_index (output of convs[index - 2])."""
        return 2 ** ((index - 2) // 2 + 3)

    def feature_at(self, w_plus: torch.Tensor, index: int) -> torch.Tensor:
        """D_index of the ordinary synthesis of w+: (B, C, r, r), r = feature_resolution(index)."""
        self.check_feature_index(index)
        out = self.conv1(self.input(w_plus.shape[0]), w_plus[:, 0], self.noise_buffer(0))
        for j in range(index - 1):
            out = self.convs[j](out, w_plus[:, j + 1], self.noise_buffer(j + 1))
        return out

    def block_outputs(self, w_plus: torch.Tensor, feature: torch.Tensor, index: int) -> list[torch.Tensor]:
        """Every conv output of the unwarped main chain from D_index: convs[index - 1], convs[index], ...

        Latents 0 .. index - 1 play no part: the feature replaces everything before it (algorithm.md §5.2).

        Args:
            w_plus: (B, n_latent, D).
            feature: D_index (B, C_r, r, r).

        Returns:
            [(B, C_r, r, r), (B, C, 2r, 2r), (B, C, 2r, 2r), (B, C, 4r, 4r), ...] up to S px.
        """
        self.check_feature_index(index)
        out = feature
        outputs = []
        for j in range(index - 1, len(self.convs)):
            out = self.convs[j](out, w_plus[:, j + 1], self.noise_buffer(j + 1))
            outputs.append(out)
        return outputs

    def level_features(self, w_plus: torch.Tensor, feature: torch.Tensor, index: int) -> list[torch.Tensor]:
        """The second-conv output of every block from D_index's resolution r up to S (the tensors MSDFW warps)."""
        return self.block_outputs(w_plus, feature, index)[0::2]

    def render_levels(self, levels: list[torch.Tensor], w_plus: torch.Tensor, index: int,
                      warp: FeatureWarp | None = None) -> torch.Tensor:
        """Sum of the levels' ToRGB branches; each branch may see a warped copy of its level (MSDFW).

        image = sum_r Up(ToRGB_r(warp(F_r, r))); coarser ToRGB skips are dropped (algorithm.md §5.3).

        Returns:
            (B, 3, S, S) in about [-1, 1].
        """
        first_rgb = (index - 2) // 2
        skip: torch.Tensor | None = None
        for m, level in enumerate(levels):
            rgb_idx = first_rgb + m
            branch = level if warp is None else warp(level, level.shape[-1])
            skip = self.to_rgbs[rgb_idx](branch, w_plus[:, 2 * rgb_idx + 3], skip)
        assert skip is not None
        return skip

    def synthesize_from_feature(self, w_plus: torch.Tensor, feature: torch.Tensor, index: int) -> torch.Tensor:
        """Plain synthesis from (w+, D_index): (B, 3, S, S), the reconstruction the engine animates."""
        return self.render_levels(self.level_features(w_plus, feature, index), w_plus, index)

    def default_feature_index(self) -> int:
        """Feature index at S/8 px: 10 for the 1024 px model (D10, algorithm.md §5.2)."""
        return 2 * (self.config.log_size - 5) if self.config.log_size >= 6 else 2
