"""The live preview's sway: the swaying regions as shader inputs (shaders/preview_common.glsl ``sf_sway``).

No ``bpy`` module use. Each swaying or shimmering region is planned by the engine's own numpy
planner (``stillflow.stages.sway``, bundled into the add-on and loaded through ``core.lib``), with
the shares, seeds and speeds ``stillflow.motion_plan`` gives it, so the preview sways as the render
does. ``addon/preview.py`` uploads the result in Blender; ``tests/shaders`` feed the same data to
the same GLSL with moderngl.

Convention:
    Regions' masks are top-down (H, W) arrays in [0, 1]; texture data is in Blender's layout
    (rows bottom-up, y up), as in ``preview_math``. Without Refine Mask the shares are the
    engine's exactly; with it the preview keeps what is painted above 0.5, the core of what the
    engine's refinement keeps (its hole filling and edge snapping need OpenCV).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import numpy.typing as npt

from .lib import load
from .preview_math import mask_texture, sway_texture

__all__ = ["SWAY_LAYERS", "SwayTextures", "no_sway", "region_shares", "plan_regions", "sway_textures",
           "check_cycles", "check_regions", "preview_sway", "srgb_to_linear", "base_texture"]

_errors = load("errors")

SWAY_LAYERS = 4
"""Layers the preview draws at once, one per cycle count and kind (shaders/preview_common.glsl:
``sway_cycles`` is an ivec4; a shimmer's layer is its count negated)."""


@dataclass(frozen=True)
class SwayTextures:
    """What the preview programs need to draw the swaying regions.

    Attributes:
        waves: (L H, W, 4) float32 texture data, layer l in rows l H .. l H + H - 1, each
            (C.x, C.y, S.x, S.y) px with rows bottom-up and y up (``preview_math.sway_texture``).
        cycles: k of layers 0-3, -k for a shimmer's layer (its detail stays in place), 0 for an unused
            layer (the ``sway_cycles`` uniform).
        shimmer: (h, w) float32 texture data, the shimmering regions' share (``shimmer_tex``).
        largest: the largest summed amplitude in px (the overlay's ``sway_max``), 0 without sway.
    """

    waves: npt.NDArray[np.float32]
    cycles: tuple[int, int, int, int]
    shimmer: npt.NDArray[np.float32]
    largest: float

    @property
    def active(self) -> bool:
        """Whether any region sways."""
        return any(self.cycles)


def no_sway() -> SwayTextures:
    """Placeholders for a still without swaying regions (1x1 zero textures, every k = 0)."""
    return SwayTextures(np.zeros((1, 1, 4), np.float32), (0, 0, 0, 0), np.zeros((1, 1), np.float32), 0.0)


def _drawn(mask: npt.NDArray[np.floating] | None, height: int, width: int, refine: bool) -> npt.NDArray[np.float32]:
    """A region's drawn mask at the image's size (nearest rows and columns), kept above 0.5 when refined."""
    if mask is None:
        return np.ones((height, width), np.float32)
    mask = np.asarray(mask, np.float32)
    if mask.shape != (height, width):
        rows = np.minimum(((np.arange(height) + 0.5) * mask.shape[0] / height).astype(np.int64), mask.shape[0] - 1)
        cols = np.minimum(((np.arange(width) + 0.5) * mask.shape[1] / width).astype(np.int64), mask.shape[1] - 1)
        mask = mask[rows[:, None], cols[None, :]]
    mask = np.clip(mask, 0.0, 1.0)
    return (mask > 0.5).astype(np.float32) if refine else mask


def region_shares(masks: Sequence[npt.NDArray[np.floating] | None], height: int, width: int, *,
                  refine: bool = False) -> list[npt.NDArray[np.float32]]:
    """Each region's share (H, W) float32, as stillflow.motion_plan: drawn / max(1, sum of drawn)."""
    drawn = [_drawn(mask, height, width, refine) for mask in masks]
    total = np.maximum(1.0, sum(drawn)).astype(np.float32)
    return [share / total for share in drawn]


def _amplitude_map(spec: Any, height: int, width: int) -> npt.NDArray[np.float32] | None:
    """A sway's amplitude image given as a float array, at the image's size (channel 0 of a colour one)."""
    image = getattr(spec, "amplitude_image", None)
    if not isinstance(image, np.ndarray) or not np.issubdtype(image.dtype, np.floating):
        return None
    return _drawn(image[..., 0] if image.ndim == 3 else image, height, width, refine=False)


def plan_regions(regions: Sequence[Any], options: Any, height: int, width: int, *,
                 should_cancel: Callable[[], bool] = lambda: False) -> tuple[Any | None, npt.NDArray[np.float32]]:
    """(SwayPlan or None, shimmer share (H, W) top-down) of validated Regions over a width x height still.

    ``regions`` are every region of the request in order (flowing ones count in the shares and the
    seeds); ``options`` the RenderOptions (frames, seed, speed, refine_mask). A sway without an
    angle follows a flow the preview does not compute, and an amplitude image given as a file is
    not read: the add-on's panel always gives an angle, and its amplitude images as arrays.

    Raises:
        Cancelled: ``should_cancel()`` was true before a layer (the preview's worker was superseded).
    """
    sway = load("stages.sway")
    shares = region_shares([region.mask for region in regions], height, width, refine=options.refine_mask)
    shimmer = np.zeros((height, width), np.float32)
    layers = []
    for index, (region, share) in enumerate(zip(regions, shares)):
        spec = region.motion.sway
        if spec is None:
            continue
        if should_cancel():
            raise _errors.Cancelled("a newer preview plan superseded this one")
        layers.append(sway.plan_sway_layer(share, spec, frames=options.frames, seed=options.seed + index,
                                           speed=region.speed * options.speed,
                                           amplitude_map=_amplitude_map(spec, height, width)))
        if spec.shimmer:
            shimmer += share
    return sway.combine_sway(layers, options.frames), shimmer


def sway_textures(plan: Any | None, height: int, width: int,
                  shimmer: npt.NDArray[np.floating] | None = None) -> SwayTextures:
    """The shader inputs of a SwayPlan (stages/sway.py) over a width x height still; ``no_sway()`` for None.

    Raises:
        ValueError: the plan has more cycle counts than the preview draws (SWAY_LAYERS).
    """
    if plan is None:
        return no_sway()
    keys = [layer.cycles if layer.moves_detail else -layer.cycles for layer in plan.layers]
    check_cycles(keys)
    waves = np.zeros((len(plan.layers) * height, width, 4), np.float32)
    largest = np.zeros(plan.layers[0].wave_cos.shape[1:], np.float32)
    rows, cols = plan.window
    flipped = slice(height - rows.stop, height - rows.start)  # the window's rows, counted bottom-up
    for index, layer in enumerate(plan.layers):
        waves[index * height:(index + 1) * height][flipped, cols] = sway_texture(layer.wave_cos, layer.wave_sin)
        largest += np.sqrt((layer.wave_cos ** 2).sum(axis=0) + (layer.wave_sin ** 2).sum(axis=0))
    cycles = tuple(keys) + (0,) * (SWAY_LAYERS - len(plan.layers))
    shimmer_data = mask_texture(shimmer) if shimmer is not None and shimmer.any() else np.zeros((1, 1), np.float32)
    return SwayTextures(waves, cycles, shimmer_data, float(largest.max()))


def check_cycles(cycles: Sequence[int]) -> None:
    """Raise ValueError when the regions need more layers than the preview draws (SWAY_LAYERS).

    ``cycles``: each region's k, negated for a shimmer (a shimmer and a sway of the same k are two layers).
    """
    counts = sorted(set(cycles), key=lambda k: (abs(k), k))
    if len(counts) > SWAY_LAYERS:
        named = ", ".join(f"{abs(k)} (shimmer)" if k < 0 else str(k) for k in counts)
        raise ValueError(f"the preview sways at most {SWAY_LAYERS} different Cycles at once (a shimmer's apart "
                         f"from a sway's), the regions have {named}; give some regions the same Cycles "
                         "(the render is not limited)")


def check_regions(regions: Sequence[Any]) -> None:
    """Raise ValueError when the regions sway at more cycle counts than the preview draws (before planning)."""
    check_cycles([-sway.cycles if sway.shimmer else sway.cycles
                  for sway in (region.motion.sway for region in regions) if sway is not None])


def preview_sway(regions: Sequence[Any], options: Any, height: int, width: int, *,
                 should_cancel: Callable[[], bool] = lambda: False) -> SwayTextures:
    """The swaying regions of a request as shader inputs (``plan_regions`` then ``sway_textures``).

    Raises:
        ValueError: more cycle counts than the preview draws, said before any planning.
    """
    check_regions(regions)
    plan, shimmer = plan_regions(regions, options, height, width, should_cancel=should_cancel)
    return sway_textures(plan, height, width, shimmer)


def srgb_to_linear(values: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """sRGB-encoded values in [0, 1] -> linear light (the standard piecewise curve), float32."""
    x = np.clip(np.asarray(values, np.float32), 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def base_texture(texture: npt.NDArray[np.floating], *, encoded: bool = False) -> npt.NDArray[np.float32]:
    """The base (``stages.sway_split.gaussian_base``) of (H, W, C) image texture data: (H, W, 4), same layout.

    Args:
        texture: 1-4 channels (alpha 1 where absent), rows in either order: the Gaussian reflects
            alike at the top and the bottom, so rows bottom-up give the base's rows bottom-up.
        encoded: the colours are sRGB-encoded (a byte image's pixels in Blender) and are decoded to
            the linear light its GPU texture gives the shader.
    """
    height, width, channels = texture.shape
    rgba = np.ones((height, width, 4), np.float32)
    rgba[..., :min(channels, 4)] = texture[..., :4]
    if encoded:
        rgba[..., :3] = srgb_to_linear(rgba[..., :3])
    return load("stages.sway_split").gaussian_base(rgba)

