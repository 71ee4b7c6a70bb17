"""Reflect padding sized to how far content travels over the loop (algorithm.md §1.2 step 2)."""
from __future__ import annotations

import math

import torch

__all__ = ["loop_padding", "pad_reflect", "reflect_indices", "fade_padding", "continue_edge"]


def loop_padding(max_speed_px: float, frames: int, multiple: int = 1) -> int:
    """Padding P >= ceil(N * max|M|) + 2 pixels, rounded up to a multiple of ``multiple``."""
    pad = math.ceil(frames * max(0.0, float(max_speed_px))) + 2
    return -(-pad // multiple) * multiple


def reflect_indices(size: int, pad: int, device: torch.device | None = None) -> torch.Tensor:
    """Source index for every position of a reflect-padded axis (edge pixel not repeated).

    Works for any pad, also larger than the axis (the reflection repeats).

    Returns:
        (size + 2 * pad,) int64 indices into the unpadded axis.
    """
    positions = torch.arange(-pad, size + pad, device=device)
    if size == 1:
        return torch.zeros_like(positions)
    period = 2 * (size - 1)
    folded = torch.remainder(positions, period)
    return torch.where(folded < size, folded, period - folded)


def pad_reflect(values: torch.Tensor, pad: int) -> torch.Tensor:
    """Reflect-pad the last two axes by ``pad`` pixels on every side; vectors are not negated.

    Args:
        values: (..., H, W) tensor.
        pad: pixels added on each side.

    Returns:
        (..., H + 2 * pad, W + 2 * pad) tensor of the same dtype and device.
    """
    if pad == 0:
        return values
    height, width = values.shape[-2:]
    rows = reflect_indices(height, pad, values.device)
    cols = reflect_indices(width, pad, values.device)
    return values.index_select(-2, rows).index_select(-1, cols)


def fade_padding(values: torch.Tensor, pad: int, keep: float, ramp: float) -> torch.Tensor:
    """Scale a padded detail band down to 0 from ``keep`` to ``keep + ramp`` pixels outside the unpadded region.

    Content that flows in from outside the frame is the reflected padding. For the low-pass band
    that is the right guess (sky colour goes on), but reflected detail repeats whatever touches
    the edge (a dark wire, a cloud's rim) as a mirrored streak that grows into the frame. Fading
    the detail bands out lets the inflow carry the smooth continuation only. The first ``keep``
    pixels (one frame's travel) keep their detail: the frames next to the input (t = 1 and, in a
    loop, N - 1) then continue its edge without a step, so the seam does not jump.

    Args:
        values: (..., H + 2 pad, W + 2 pad) reflect-padded band.
        pad: the padding of each side.
        keep: distance outside the edge, in this band's pixels, up to which detail is kept whole.
        ramp: distance over which it then fades out.

    Returns:
        A new tensor: ``values`` times per-axis weights clamp(1 - (d - keep) / ramp, 0, 1)
        (d = pixels outside).
    """
    if pad == 0:
        return values
    height, width = values.shape[-2:]

    def weights(size: int) -> torch.Tensor:
        index = torch.arange(size, device=values.device, dtype=torch.float32)
        outside = torch.clamp(torch.maximum(pad - index, index - (size - 1 - pad)), min=0.0)
        return torch.clamp(1.0 - (outside - keep) / ramp, min=0.0, max=1.0)

    return values * (weights(height)[:, None] * weights(width)[None, :]).to(values.dtype)


def _edge_means(view: torch.Tensor, pad: int, size: int, far: bool) -> torch.Tensor:
    """(C, A, pad): the edge line of a (C, A, B) band, averaged along the edge over about d px at distance d."""
    channels, along, _ = view.shape
    edge = view[:, :, pad + size - 1] if far else view[:, :, pad]
    mean = edge.mean(dim=-1, keepdim=True)
    # Running sums of the centred line: float64 where the device has it (not MPS, where float32 sums
    # of a very long edge can be off by ~1e-4, still well under an 8-bit level).
    exact = torch.float32 if view.device.type == "mps" else torch.float64
    sums = torch.cat([torch.zeros((channels, 1), dtype=exact, device=view.device),
                      (edge - mean).to(exact).cumsum(-1)], -1)
    radius = (torch.arange(1, pad + 1, device=view.device) // 2)[None, :]
    position = torch.arange(along, device=view.device)[:, None]
    low, high = (position - radius).clamp(0, along - 1), (position + radius).clamp(0, along - 1)
    means = (sums[:, high + 1] - sums[:, low]) / (high - low + 1)
    return means.to(view.dtype) + mean[:, :, None]


def continue_edge(values: torch.Tensor, pad: int, keep: float, ramp: float) -> torch.Tensor:
    """Replace a padded low-pass band's reflection beyond ``keep`` px by the edge's local mean, smoother farther out.

    Reflected low-pass content is a mirror image of the frame's edge: a dark cloud or the darker
    top of a sky next to the edge flows back in as a growing dark mass. What lies beyond the edge
    is unknown; its best smooth guess is the edge itself, averaged along the edge over a span that
    grows with the distance (about d px at d px out), so nearby inflow keeps the edge's colours and
    far inflow their broad mean, without streaks. The first ``keep`` pixels (one frame's travel)
    stay reflected so the frames next to the input continue it; over ``ramp`` px the two mix.

    Args:
        values: (C, H + 2 pad, W + 2 pad) reflect-padded band.
        pad: the padding of each side.
        keep: distance outside the edge up to which the reflection is kept, band pixels.
        ramp: distance over which it then gives way to the edge's means.

    Returns:
        A new tensor; the unpadded region is ``values``' own. Left and right come first over the
        image's rows, then top and bottom over the whole width (corners from the continued columns).
    """
    if pad == 0:
        return values
    out = values.clone()
    height, width = values.shape[-2] - 2 * pad, values.shape[-1] - 2 * pad
    distance = torch.arange(1, pad + 1, device=values.device, dtype=torch.float32)
    reflected = torch.clamp(1.0 - (distance - keep) / ramp, min=0.0, max=1.0).to(values.dtype)
    for view, size in ((out[:, pad:pad + height, :], width), (out.transpose(-1, -2), height)):
        if size == height:
            # The corners' kept rows reflect the continued columns, not the original corner.
            out.copy_(out.index_select(-2, reflect_indices(height, pad, values.device) + pad))
        for far in (False, True):
            means = _edge_means(view, pad, size, far)
            target = view[..., pad + size:] if far else view[..., :pad].flip(-1)  # distance 1 first
            mixed = reflected * target + (1 - reflected) * means
            if far:
                view[..., pad + size:] = mixed
            else:
                view[..., :pad] = mixed.flip(-1)
    return out
