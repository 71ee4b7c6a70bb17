"""Sway and shimmer: regions that oscillate in place, planned as a periodic displacement of a frame.

A region's pixels move by d(x, t) = A(x) · u(x) · (sin(2π k t / N + φ(x)) − sin φ(x)): the
oscillation of docs/regions.md, less its value at t = 0, so frame 0 is the input itself and,
with k whole cycles, frame N is frame 0 (seamless by construction). A(x) tapers to 0 over the
region's edge, so the warp (stages/sway_warp.py) reads only the region near its own pixels.
A shimmer (water) is the sum of a few plane waves of its wavelength in other directions, each
dominating patches of a few wavelengths: u(x) and φ(x) vary with the patch.
numpy only (no torch, no cv2, no bpy): the add-on's live preview can plan a region's sway with it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..options import SwaySpec
from .regions import upsample_cells
from .sway_split import SPLIT_SIGMA

__all__ = ["SPLIT_SIGMA", "SwayLayer", "SwayPlan", "plan_sway_layer", "combine_sway", "sway_displacement"]

_TAPER_MIN_PX = 4.0

SHIMMER_WAVES = 5
"""Plane-wave directions of a shimmer, spread evenly over the half turn."""
SHIMMER_PATCH = 3.0
"""Wavelengths between the shimmer's random weights: the size of a patch where one wave dominates."""
SHIMMER_CONTRAST = 2.0
"""How strongly one wave dominates its patch (the weights are a softmax of this times unit noise)."""


@dataclass(frozen=True)
class SwayLayer:
    """Oscillations of k cycles per loop: D(x, t) = sin a · C(x) + (cos a − 1) · S(x), a = 2π k t / N.

    Attributes:
        wave_cos: (2, H, W) float32 px, C = A(x) · u(x) · cos φ(x) (times the region's weight);
            channel 0 = x, 1 = y.
        wave_sin: (2, H, W) float32 px, S = A(x) · u(x) · sin φ(x), the oscillation's value at t = 0.
        cycles: k whole cycles per loop.
        moves_detail: whether the detail moves by whole pixels with the base (a sway) or stays in
            place while the base ripples (a shimmer: stages/sway_warp.py says why).
    """

    wave_cos: np.ndarray
    wave_sin: np.ndarray
    cycles: int
    moves_detail: bool = True


@dataclass(frozen=True)
class SwayPlan:
    """Every oscillating region's layer, cropped to the window that can change.

    Attributes:
        window: (rows, columns) of the image the displacement is non-zero in.
        layers: the regions' layers cropped to ``window``, one per cycle count and kind (sways with
            the same k add up, and shimmers with the same k: the live preview draws one such layer,
            shaders/loop_preview.frag.glsl).
        frames: loop length N.
        reach: px beyond the window a frame's warp may read (the largest displacement).
        rest: (2, h, w) float32 px, P(0) = Σ A · u · sin φ over the layers that move the detail (where
            its whole pixels count from).
    """

    window: tuple[slice, slice]
    layers: tuple[SwayLayer, ...]
    frames: int
    reach: int
    rest: np.ndarray


def _smooth_noise(rng: np.random.Generator, height: int, width: int, scale: float) -> np.ndarray:
    """Smooth (H, W) float32 noise of unit standard deviation: random values ``scale`` px apart, bilinear between."""
    cell = max(1, round(scale))
    cells = rng.standard_normal((1, height // cell + 2, width // cell + 2)).astype(np.float32)
    noise = upsample_cells(cells, cell, height, width)[0]
    return (noise - noise.mean()) / max(float(noise.std()), 1e-12)


def _shimmer_waves(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray,
                   wavelength: float) -> tuple[np.ndarray, np.ndarray]:
    """Water's ripples at unit amplitude: (C, S), each (2, H, W) float32, for pixel coordinates ``xs``, ``ys``.

    SHIMMER_WAVES plane waves of ``wavelength`` px, evenly spread over the half turn (a wave and its
    opposite differ only in phase), each with a random phase; smooth random weights, renewed every
    SHIMMER_PATCH wavelengths, let one wave or two dominate each patch (their squares sum to 1).
    """
    height, width = xs.shape
    k = 2.0 * math.pi / wavelength
    offset = rng.uniform(0.0, math.pi / SHIMMER_WAVES)
    logits = np.stack([SHIMMER_CONTRAST * _smooth_noise(rng, height, width, SHIMMER_PATCH * wavelength)
                       for _ in range(SHIMMER_WAVES)])
    weights = np.exp(logits - logits.max(axis=0))
    weights /= np.sqrt((weights ** 2).sum(axis=0))
    wave_cos = np.zeros((2, height, width), np.float32)
    wave_sin = np.zeros((2, height, width), np.float32)
    for j in range(SHIMMER_WAVES):
        angle = offset + math.pi * j / SHIMMER_WAVES
        ux, uy = math.cos(angle), math.sin(angle)
        phase = k * (ux * xs + uy * ys) + rng.uniform(0.0, 2.0 * math.pi)
        direction = np.array([ux, uy], np.float32)[:, None, None]
        wave_cos += direction * (weights[j] * np.cos(phase))[None]
        wave_sin += direction * (weights[j] * np.sin(phase))[None]
    return wave_cos, wave_sin


def _inner_distance(inside: np.ndarray, limit: int) -> np.ndarray:
    """(H, W) float32 steps (8-neighbour) from each inside pixel to the nearest outside one, capped at ``limit``.

    The image's own border is not an edge: a region that touches it sways right up to it.
    """
    distance = np.zeros(inside.shape, np.float32)
    current = inside.copy()
    height, width = inside.shape
    for _ in range(limit):
        if not current.any():
            break
        distance += current
        padded = np.pad(current, 1, mode="edge")
        current = np.logical_and.reduce([padded[1 + dy:1 + dy + height, 1 + dx:1 + dx + width]
                                         for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    return distance


def _unit(angle_deg: float) -> tuple[float, float]:
    """Unit vector (x, y) of an angle in degrees, 0 = right, 90 = up (y grows downwards)."""
    angle = math.radians(angle_deg)
    return math.cos(angle), -math.sin(angle)


def plan_sway_layer(weight: np.ndarray, spec: SwaySpec, *, frames: int, seed: int, speed: float = 1.0,
                    along: np.ndarray | None = None, amplitude_map: np.ndarray | None = None) -> SwayLayer:
    """The oscillation of one region from its weight and its SwaySpec.

    Args:
        weight: (H, W) float32 in [0, 1], the region's share of each pixel (0 outside it).
        spec: a validated SwaySpec.
        frames: loop length N.
        seed: seeds the phase noise and the shimmer's random fields.
        speed: multiplies the amplitude (the region's speed times RenderOptions.speed).
        along: (2, H, W) float32 motion whose direction the sway follows when ``spec.angle`` is None.
        amplitude_map: (H, W) float32 in [0, 1] multiplying A(x) (the spec's amplitude image, loaded
            and resized to the image); None = 1 everywhere.

    Returns:
        The region's SwayLayer (zero wherever ``weight`` is 0).
    """
    height, width = weight.shape
    amplitude = spec.amplitude * speed
    inside = weight > 0
    # A tapers to 0 towards the region's edge, over at least twice the amplitude: the warp never
    # reads across the edge much, and the still's pixels next to a static neighbour stay put.
    taper = max(2.0 * amplitude, _TAPER_MIN_PX)
    ramp = np.clip(_inner_distance(inside, int(math.ceil(taper))) / taper, 0.0, 1.0)
    strength = (amplitude * ramp * ramp * (3.0 - 2.0 * ramp) * weight).astype(np.float32)
    if amplitude_map is not None:
        strength *= amplitude_map
    rng = np.random.default_rng([seed, 0x5A4F])
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if spec.shimmer:
        # Water: ripples of the wavelength asked for; their detail stays in place (stages/sway_warp.py).
        wave_cos, wave_sin = _shimmer_waves(rng, xs, ys, spec.wavelength)
        return SwayLayer((wave_cos * strength[None]).astype(np.float32),
                         (wave_sin * strength[None]).astype(np.float32), spec.cycles, moves_detail=False)
    if spec.angle is None and along is not None:
        norm = np.sqrt((along.astype(np.float64) ** 2).sum(axis=0))
        direction = np.where(norm > 1e-9, along / np.maximum(norm, 1e-9), 0.0).astype(np.float32)
    else:
        ux, uy = _unit(spec.angle if spec.angle is not None else 0.0)
        direction = np.stack([np.full_like(xs, ux), np.full_like(xs, uy)])
    if spec.gust_angle is not None:
        gx, gy = _unit(spec.gust_angle)
    else:  # the wind blows the way the region sways
        mean = direction[:, inside].mean(axis=1) if inside.any() else np.array([1.0, 0.0])
        gx, gy = (mean / np.linalg.norm(mean)) if np.linalg.norm(mean) > 1e-9 else (1.0, 0.0)
    along_gust = xs * gx + ys * gy
    covered = along_gust[inside]
    extent = float(covered.max() - covered.min()) + 1.0 if covered.size else 1.0
    # A crest moving at c px/frame: phase -2πk s / (c N). Default: one wave across the region.
    gust_speed = spec.gust_speed if spec.gust_speed is not None else extent * spec.cycles / frames
    phase = (-2.0 * math.pi * spec.cycles * along_gust / (gust_speed * frames) if gust_speed > 0
             else np.zeros_like(xs))
    if spec.noise > 0:
        phase = phase + 2.0 * math.pi * spec.noise * _smooth_noise(rng, height, width, extent / 8)
    vector = direction * strength[None]
    return SwayLayer((vector * np.cos(phase)[None]).astype(np.float32),
                     (vector * np.sin(phase)[None]).astype(np.float32), spec.cycles)


def combine_sway(layers: list[SwayLayer], frames: int) -> SwayPlan | None:
    """The regions' layers cropped to the window where any of them moves; None when none does."""
    if not layers:
        return None
    support = np.zeros(layers[0].wave_cos.shape[1:], bool)
    for layer in layers:
        support |= np.any(layer.wave_cos != 0, axis=0) | np.any(layer.wave_sin != 0, axis=0)
    if not support.any():
        return None
    rows = np.flatnonzero(support.any(axis=1))
    cols = np.flatnonzero(support.any(axis=0))
    window = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    grouped: dict[tuple[int, bool], SwayLayer] = {}
    for layer in layers:
        key = (layer.cycles, layer.moves_detail)
        wave_cos, wave_sin = layer.wave_cos[:, window[0], window[1]], layer.wave_sin[:, window[0], window[1]]
        if key in grouped:
            wave_cos, wave_sin = grouped[key].wave_cos + wave_cos, grouped[key].wave_sin + wave_sin
        grouped[key] = SwayLayer(np.ascontiguousarray(wave_cos), np.ascontiguousarray(wave_sin), *key)
    cropped = tuple(grouped.values())
    # |D| <= |sin a C + (cos a - 1) S| <= |C| + 2 |S| per layer
    reach = int(math.ceil(sum(float(np.abs(layer.wave_cos).max()) + 2.0 * float(np.abs(layer.wave_sin).max())
                              for layer in cropped)))
    rest = np.zeros_like(cropped[0].wave_sin)
    for layer in cropped:
        if layer.moves_detail:
            rest += layer.wave_sin
    return SwayPlan(window, cropped, frames, reach, rest)


def sway_displacement(plan: SwayPlan, t: int, *, detail_only: bool = False) -> np.ndarray:
    """D(x, t) over the plan's window: (2, h, w) float32 px, 0 at t = 0 and at every multiple of N.

    ``detail_only`` sums only the layers that move the detail (not a shimmer's).
    """
    displacement = np.zeros_like(plan.layers[0].wave_cos)
    for layer in plan.layers:
        if detail_only and not layer.moves_detail:
            continue
        angle = 2.0 * math.pi * ((layer.cycles * t) % plan.frames) / plan.frames
        # A u (sin(a + φ) − sin φ) = sin a · A u cos φ + (cos a − 1) · A u sin φ
        displacement += (np.float32(math.sin(angle)) * layer.wave_cos
                         + np.float32(math.cos(angle) - 1.0) * layer.wave_sin)
    return displacement
