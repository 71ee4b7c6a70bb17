"""Texture for the detail that flows into a loop from outside the frame (by-example noise).

Content that enters the frame comes from the padding. Reflected detail repeats whatever touches
the edge as a mirrored streak; faded detail (stages/padding.fade_padding) leaves the inflow smooth,
so as more of the frame flows in the loop's frames change less per step and the loop's ends (where
the input's own detail fills the frame) stand out. Here the padding of a detail band is filled
with translated patches of the band's own content near the edge: tiles on a square lattice, each
copied from a pseudo-random place within ``depth`` of the edge, overlapped with cos^2 windows and
mixed with variance-preserving weights (sum w_k v_k / sqrt(sum w_k^2)), so a zero-mean band keeps
its amplitude and no tile shows a join (cf. Heitz & Neyret 2018, by-example noise). The lattice and
its choices are keyed on the image's own coordinates, so a strip of a still (tiles.py) fills its
edges as the whole image does.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .padding import reflect_indices

__all__ = ["synthesize_inflow", "inflow_reach", "TILE"]

TILE = 12
"""Lattice spacing of the patches, band pixels (each patch spans two)."""

_DEPTH_TILES = 6
"""Patches come from within this many spacings of the edge (the texture next to it, strip-safe)."""

_MAX_GAIN = 1.5
"""Largest amplification when levelling a patch's energy to the edge's."""

_SHIFT_TILES = 2
"""Largest sideways offset of a patch along the edge, in spacings."""


def inflow_reach(levels: int) -> tuple[int, int]:
    """Full-resolution pixels any band's inflow copies from: (along the edge either side of its own
    row or column, inside the edge)."""
    scale = TILE * 2 ** max(0, levels - 2)
    return (_SHIFT_TILES + 1) * scale, _DEPTH_TILES * scale


def _hash(*keys: np.ndarray) -> np.ndarray:
    """A 32-bit integer hash of integer arrays (broadcast), the same on every machine."""
    value = np.uint64(0x9E3779B97F4A7C15)
    out = np.zeros(np.broadcast(*keys).shape, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for key in keys:
            out = (out ^ (np.asarray(key).astype(np.int64).astype(np.uint64) + value)) * np.uint64(0xBF58476D1CE4E5B9)
            out ^= out >> np.uint64(31)
    return (out & np.uint64(0xFFFFFFFF)).astype(np.int64)


def _fill_side(canvas: torch.Tensor, inner: tuple[int, int], pad: int, far: bool, origin: int,
               salt: int, spacing: int) -> torch.Tensor:
    """The padding beyond one edge of the last axis, synthesised: (C, A, pad), distance 1 first.

    Args:
        canvas: (C, A, B) padded band; axis -1 is the one padded here, axis -2 runs along the edge.
        inner: (first, end) of axis -1's unpadded range.
        pad: padding width on this side.
        far: the side after ``inner`` (else before).
        origin: the image coordinate of canvas row 0 along axis -2 (keys the lattice).
        salt: distinguishes sides and bands in the lattice's choices.
        spacing: lattice spacing, px.
    """
    channels, along, _ = canvas.shape
    first, end = inner
    size = end - first
    # One spacing more than asked: the levelling box near the far end then sees texture, not a
    # replicated border, so a padding of any width gives the same texture (strips differ in it).
    wanted, pad = pad, pad + spacing
    depth = min(size, _DEPTH_TILES * spacing)
    shift = min(_SHIFT_TILES * spacing, max(0, (along - 1) // 2))
    device = canvas.device
    d = torch.arange(1, pad + 1, device=device, dtype=torch.float32)  # distance outside the edge
    a = torch.arange(along, device=device, dtype=torch.float32) + origin  # image position along the edge
    jd, fd = torch.floor(d / spacing), torch.frac(d / spacing)
    ja, fa = torch.floor(a / spacing), torch.frac(a / spacing)
    # The choices of every tile that touches this side: its depth inside the edge and its sideways shift.
    tile_a0 = int(ja[0].item())
    tiles_a = np.arange(tile_a0, int(ja[-1].item()) + 2)
    tiles_d = np.arange(0, int(jd[-1].item()) + 2)
    code = _hash(tiles_a[:, None], tiles_d[None, :], np.array(salt))
    inward = torch.from_numpy(code % max(1, depth - 2 * spacing + 1)).to(device)
    sideways = torch.from_numpy((code >> 16) % (2 * shift + 1) - shift).to(device)
    index_a, index_d = (ja - tile_a0).long(), jd.long()
    rows = torch.arange(along, device=device)[:, None]
    width = canvas.shape[-1]
    flat = canvas.reshape(channels, -1)
    total = torch.zeros((channels, along, pad), dtype=canvas.dtype, device=device)
    norm = torch.zeros((along, pad), dtype=torch.float32, device=device)
    for step_a, wa in ((0, torch.cos(0.5 * math.pi * fa) ** 2), (1, torch.sin(0.5 * math.pi * fa) ** 2)):
        for step_d, wd in ((0, torch.cos(0.5 * math.pi * fd) ** 2), (1, torch.sin(0.5 * math.pi * fd) ** 2)):
            tile = (index_a + step_a)[:, None], (index_d + step_d)[None, :]
            # A translated patch: the tile's centre, (j + step) spacings outside, lands s + r inside.
            inside = (spacing + inward[tile] + ((jd + step_d) * spacing - d).long()[None, :]).clamp_(0, size - 1)
            col = end - 1 - inside if far else first + inside
            row = (rows + sideways[tile]).clamp(0, along - 1)
            weight = wa[:, None] * wd[None, :]
            total += weight * flat[:, row * width + col]
            norm += weight * weight
    texture = total / norm.sqrt().clamp(min=1e-6)
    # Level the texture's local energy to that of the edge it was taken from: a strong feature
    # at the edge (a wire, a bird) copied into several tiles would otherwise crowd the inflow.
    strip = canvas[:, :, end - depth:end] if far else canvas[:, :, first:first + depth]
    reach = shift + spacing
    edge = (strip * strip).sum(0).mean(-1)[None, None]
    edge = F.avg_pool1d(F.pad(edge, (reach, reach), mode="replicate"), 2 * reach + 1, stride=1)[0, 0]
    energy = (texture * texture).sum(0)[None, None]
    energy = F.pad(energy, (spacing,) * 4, mode="replicate")
    energy = F.avg_pool2d(F.avg_pool2d(energy, (1, 2 * spacing + 1), stride=1), (2 * spacing + 1, 1), stride=1)[0, 0]
    gain = torch.sqrt(edge[:, None] / energy.clamp(min=1e-12)).clamp(max=_MAX_GAIN)
    return (texture * gain)[:, :, :wanted]


def synthesize_inflow(values: torch.Tensor, pad: int, keep: float, ramp: float,
                      origin: tuple[int, int] = (0, 0), salt: int = 0) -> torch.Tensor:
    """A reflect-padded detail band whose padding beyond ``keep`` px is texture from near the edge.

    Args:
        values: (C, H + 2 pad, W + 2 pad) reflect-padded zero-mean band.
        pad: the padding of each side, band pixels.
        keep: distance outside the edge up to which the reflection is kept whole (one frame's travel,
            so the frames beside the input continue its edge).
        ramp: distance over which the reflection then gives way to the texture (variance-preserving).
        origin: (row, column) in the image's band grid of the unpadded band's first pixel.
        salt: distinguishes bands in the lattice's choices.

    Returns:
        A new (C, H + 2 pad, W + 2 pad) tensor; the unpadded region is ``values``' own.
    """
    if pad == 0:
        return values
    out = values.clone()
    height, width = values.shape[-2] - 2 * pad, values.shape[-1] - 2 * pad
    distance = torch.arange(1, pad + 1, device=values.device, dtype=torch.float32)
    reflected = torch.clamp(1.0 - (distance - keep) / ramp, min=0.0, max=1.0)  # the reflection's share
    # Left and right over the image's rows first; then above and below over the whole padded width,
    # corners included (their sources, the first rows, are complete by then).
    sides = ((out[:, pad:pad + height, :], width, origin[0], 0),
             (out.transpose(-1, -2), height, origin[1] - pad, 1))
    for view, size, base, axis in sides:
        if axis == 1:
            # Above and below keep a reflection of the rows as the first pass left them, so the
            # corners' kept rows mirror the side texture, not the original corner.
            out.copy_(out.index_select(-2, reflect_indices(height, pad, values.device) + pad))
        spacing = max(2, min(TILE, size // 4))
        for far in (False, True):
            texture = _fill_side(view, (pad, pad + size), pad, far, base, 4 * salt + 2 * axis + far, spacing)
            target = view[..., pad + size:] if far else view[..., :pad].flip(-1)  # distance 1 first
            mixed = reflected * target + (1 - reflected) * texture
            blended = mixed / torch.sqrt(reflected ** 2 + (1 - reflected) ** 2)
            if far:
                view[..., pad + size:] = blended
            else:
                view[..., :pad] = blended.flip(-1)
    return out
