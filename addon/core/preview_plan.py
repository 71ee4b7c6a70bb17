"""The live preview's whole plan of the Motion Regions: flow, sway and the still's base, from plain inputs.

No ``bpy`` module use. This is what ``core.preview_worker`` runs off Blender's main thread
(seconds at 12 megapixels): ``addon/preview.py`` reads the regions and the still's pixels from
Blender, submits ``plan_preview`` with them and installs the ``PreviewPlan`` when it is ready.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

import numpy as np
import numpy.typing as npt

from . import preview_flow, preview_sway
from .lib import load

__all__ = ["StillPixels", "PreviewPlan", "plan_preview"]

_errors = load("errors")


@dataclass(frozen=True)
class StillPixels:
    """The still's pixels as Blender holds them, read on the main thread for the worker's base.

    Attributes:
        key: what the pixels depend on (name, size, file, colour space): the base's key.
        texture: (H, W, C) float32, rows bottom-up (Blender's texture layout).
        encoded: the colours are sRGB-encoded (a byte image) and are decoded before the blur.
    """

    key: Hashable
    texture: npt.NDArray[np.float32]
    encoded: bool


@dataclass(frozen=True)
class PreviewPlan:
    """What the preview programs draw for the regions.

    Attributes:
        motion: (2, h, w) float32 M at the preview's field size, px/frame (``preview_flow.region_flow``).
        weight: (h, w) float32 S in [0, 1].
        sway: the swaying regions' textures (``preview_sway.preview_sway``).
        base_key, base: the still's base for the sway ((H, W, 4) float32, texture layout) and its
            key; None when nothing sways or when the caller's base is still current (not recomputed).
    """

    motion: npt.NDArray[np.float32]
    weight: npt.NDArray[np.float32]
    sway: preview_sway.SwayTextures
    base_key: Hashable | None = None
    base: npt.NDArray[np.float32] | None = None


def _check(should_cancel: Callable[[], bool]) -> None:
    """Raise Cancelled when a newer plan superseded this one."""
    if should_cancel():
        raise _errors.Cancelled("a newer preview plan superseded this one")


def plan_preview(regions: Sequence[Any], options: Any, height: int, width: int, *,
                 still: StillPixels | None = None,
                 should_cancel: Callable[[], bool] = lambda: False) -> PreviewPlan:
    """The regions' flow and sway over a width x height still, and the base of ``still`` when something sways.

    Args:
        regions: validated Regions in the request's order (masks top-down, any size of the still's aspect).
        options: the RenderOptions (frames, seed, speed, refine_mask).
        still: the still's pixels when the base must be (re)computed; None keeps the caller's base.
        should_cancel: checked between steps (and between sway layers).

    Raises:
        ValueError: more cycle counts than the preview draws, or a region motion it cannot show.
        Cancelled: ``should_cancel`` turned true.
    """
    sway = preview_sway.preview_sway(regions, options, height, width, should_cancel=should_cancel)
    _check(should_cancel)
    motion, weight = preview_flow.region_flow(regions, height, width, refine=options.refine_mask)
    if not sway.active or still is None:
        return PreviewPlan(motion, weight, sway)
    _check(should_cancel)
    base = preview_sway.base_texture(still.texture, encoded=still.encoded)
    return PreviewPlan(motion, weight, sway, still.key, base)
