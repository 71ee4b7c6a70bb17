"""Joint symmetric softmax splatting with one shared normaliser (algorithm.md §1.2 steps 4-5).

num(y) = sum_x [w_f(x) b(y - x - F_f(x)) + w_b(x) b(y - x - F_b(x))] f(x), den(y) = same with
f = 1, out = num / den only where den > 0 (zero-eps), accumulated in float32. Taps that land
outside the canvas are dropped.
"""
from __future__ import annotations

import torch

from . import cpu_kernels
from .stretch import STRETCH_GONE, STRETCH_ONSET, stretch_gain_torch

__all__ = ["splat_joint", "splat_sum_torch", "softmax_weights", "resample_remainder", "channels_last"]


def softmax_weights(importance: torch.Tensor | None, shape: tuple[int, int], device: torch.device) -> torch.Tensor:
    """Per-pixel softmax-splat weights e^(Z - max Z), exponent clamped to [-20, 0].

    Args:
        importance: (H, W) float Z, or None for Z = 0 (all weights 1).

    Returns:
        (H, W) float32 weights in [e^-20, 1].
    """
    if importance is None:
        return torch.ones(shape, dtype=torch.float32, device=device)
    z = importance.to(device=device, dtype=torch.float32)
    return torch.exp((z - z.max()).clamp_(-20.0, 0.0))


def splat_sum_torch(values: torch.Tensor, disps: list[torch.Tensor], weights: list[torch.Tensor],
                    gains: list[torch.Tensor | None] | None = None, gained: int = 0) -> torch.Tensor:
    """Reference bilinear forward splat of ``values`` moved by each displacement, summed.

    Args:
        values: (C, H, W) float tensor on any device.
        disps: per source (2, H, W) displacement in pixels.
        weights: per source (H, W) float32 weight.
        gains: per source None or (H, W) float32: each particle's first ``gained`` channels count
            gain times, the rest gain² (stages/stretch.py); its weight is unchanged.

    Returns:
        acc: (C + 1, H, W) float32: sum of w * value per channel, then sum of w.
    """
    channels, height, width = values.shape
    device = values.device
    rows = torch.cat([values.reshape(channels, -1).float(),
                      torch.ones(1, height * width, device=device)]).t()
    acc = torch.zeros(height * width, channels + 1, dtype=torch.float32, device=device)
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32),
                            torch.arange(width, device=device, dtype=torch.float32), indexing="ij")
    for disp, weight, gain in zip(disps, weights, gains or [None] * len(disps)):
        scaled = rows if gain is None else rows * _gain_columns(gain.reshape(-1, 1).float(), channels, gained)
        tx = (xs + disp[0]).reshape(-1)
        ty = (ys + disp[1]).reshape(-1)
        x0 = torch.floor(tx)
        y0 = torch.floor(ty)
        fx = tx - x0
        fy = ty - y0
        w0 = weight.reshape(-1).float()
        for dy, wy in ((0, 1.0 - fy), (1, fy)):
            for dx, wx in ((0, 1.0 - fx), (1, fx)):
                xi = x0 + dx
                yi = y0 + dy
                inside = (xi >= 0) & (xi <= width - 1) & (yi >= 0) & (yi <= height - 1)
                # Zero weight instead of boolean selection: no host sync, no ragged copies on a GPU.
                w = torch.where(inside, w0 * wy * wx, 0.0)
                target = (yi.clamp(0, height - 1) * width + xi.clamp(0, width - 1)).long()
                acc.index_add_(0, target, scaled * w[:, None])
    return acc.t().reshape(channels + 1, height, width)


def _gain_columns(gain: torch.Tensor, channels: int, gained: int) -> torch.Tensor:
    """(P, C + 1) per-particle scale of [values..., weight]: gain, then gain², then 1 for the weight."""
    energies = channels - gained
    return torch.cat([gain.expand(-1, gained), (gain * gain).expand(-1, energies), torch.ones_like(gain)], dim=1)


def splat_joint(values: torch.Tensor, disp_fwd: torch.Tensor, weight_fwd: torch.Tensor | None,
                disp_bwd: torch.Tensor, weight_bwd: torch.Tensor | None, *,
                whole_pixels: bool = False, carry_remainder: bool = False, reach: int | None = None,
                crop: tuple[int, int, int, int] | None = None, fade_torn: bool = False,
                gained: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Splat ``values`` forward and backward at once and normalise by the shared weight sum.

    Args:
        values: (C, H, W) float tensor (bands or features; accumulation is float32).
        disp_fwd, disp_bwd: (2, H, W) float32 displacement in pixels, x then y.
        weight_fwd, weight_bwd: (H, W) float32 weights, already (1 - alpha) / alpha x validity
            x softmax weight; None skips that source (zero-weight particles are skipped too).
        whole_pixels: round every displacement to whole pixels (half to even; one tap per
            particle on the CPU).
        carry_remainder: with ``whole_pixels``, each particle carries its values resampled
            (Keys' bicubic, border-clamped taps) at its sub-pixel remainder d - round(d):
            content lands sub-pixel accurate without the blur of bilinear taps.
        reach: an upper bound of any |displacement| in pixels (measured when None).
        crop: (top, left, h, w) of the only target pixels wanted (default: all of H x W).
        fade_torn: particles torn from their neighbours fade (a detail band; stages/stretch.py): the
            first ``gained`` channels count the particle's gain times, the rest (energies) gain².

    Returns:
        out: (C, h, w) float32, num / den where den > 0, else 0.
        den: (h, w) float32 summed weights (0 = hole).
    """
    sources = [(d, w) for d, w in ((disp_fwd, weight_fwd), (disp_bwd, weight_bwd)) if w is not None]
    channels = values.shape[0]
    top, left, height, width = crop if crop is not None else (0, 0, *values.shape[1:])
    if not sources:
        return (torch.zeros((channels, height, width), dtype=torch.float32, device=values.device),
                torch.zeros((height, width), dtype=torch.float32, device=values.device))
    if values.device.type == "cpu" and cpu_kernels.available():
        # A CHW view of channels-last storage (see channels_last) is passed without a copy.
        out, den = cpu_kernels.splat_normalised_cpu(
            values.permute(1, 2, 0).float().contiguous().numpy(),
            [d.float().contiguous().numpy() for d, _ in sources],
            [w.float().contiguous().numpy() for _, w in sources],
            threads=max(1, torch.get_num_threads()), whole_pixels=whole_pixels,
            carry_remainder=carry_remainder, reach=reach, crop=(top, left, height, width),
            fade_torn=(STRETCH_ONSET, STRETCH_GONE) if fade_torn else None, gained=gained)
        return torch.from_numpy(out), torch.from_numpy(den)
    # The gain of a particle comes from its unrounded displacement, as in the compiled splat.
    gains = [stretch_gain_torch(d) if fade_torn else None for d, _ in sources]
    if whole_pixels and carry_remainder:
        acc = sum(splat_sum_torch(resample_remainder(values, d), [torch.round(d)], [w], [g], gained)
                  for (d, w), g in zip(sources, gains))
    else:
        disps = [torch.round(d) if whole_pixels else d for d, _ in sources]
        acc = splat_sum_torch(values, disps, [w for _, w in sources], gains, gained)
    acc = acc[:, top:top + height, left:left + width]
    den = acc[channels]
    covered = den > 0
    out = torch.where(covered, acc[:channels] / torch.where(covered, den, torch.ones_like(den)), 0.0)
    return out, den.contiguous()


def resample_remainder(values: torch.Tensor, disp: torch.Tensor) -> torch.Tensor:
    """``values`` sampled bicubically at x - (d - round(d)): what each particle carries to round(d).

    Keys' cubic with A = ``cpu_kernels.CUBIC_A``, taps clamped to the border (as the CPU kernel).

    Args:
        values: (C, H, W) float tensor.
        disp: (2, H, W) displacement in pixels, x then y.

    Returns:
        (C, H, W) float32.
    """
    channels, height, width = values.shape
    device = values.device
    remainder = disp.float() - torch.round(disp.float())
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32),
                            torch.arange(width, device=device, dtype=torch.float32), indexing="ij")
    sx, sy = xs - remainder[0], ys - remainder[1]
    ix, iy = torch.floor(sx), torch.floor(sy)
    wx, wy = _keys_weights(sx - ix), _keys_weights(sy - iy)
    flat = values.float().reshape(channels, -1)
    out = torch.zeros((channels, height * width), dtype=torch.float32, device=device)
    for j in range(4):
        row = (iy + (j - 1)).clamp(0, height - 1).long() * width
        for i in range(4):
            col = (ix + (i - 1)).clamp(0, width - 1).long()
            out += (wy[j] * wx[i]).reshape(1, -1) * flat[:, (row + col).reshape(-1)]
    return out.reshape(channels, height, width)


def _keys_weights(t: torch.Tensor) -> list[torch.Tensor]:
    """Keys' cubic weights of the taps at -1, 0, 1, 2 for fractional offsets ``t`` in [0, 1)."""
    a = cpu_kernels.CUBIC_A
    near = lambda x: ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0  # noqa: E731  |x| <= 1
    far = lambda x: ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a  # noqa: E731  1 < |x| < 2
    return [far(1.0 + t), near(t), near(1.0 - t), far(2.0 - t)]


def channels_last(values: torch.Tensor) -> torch.Tensor:
    """The same (C, H, W) values stored channels-last, as the compiled CPU splat reads them."""
    return values.permute(1, 2, 0).contiguous().permute(2, 0, 1)
