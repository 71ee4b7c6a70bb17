"""The live preview's flow with Motion Regions: the flowing regions' field at the preview's size.

No ``bpy`` module use. Each flowing region's field comes from the engine's own bundled numpy code
(``stages/regions.py`` for arrows densified inside the region, ``stages/hints.py`` for a drift),
weighted by its share and speed as ``stillflow.motion_plan`` does, at the preview's field size
(``preview_math.field_shape``). The shader draws speed * S * M (shaders/preview_common.glsl
``sf_motion_at``), so M is the regions' summed field divided by their summed share S.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from .lib import load
from .preview_math import field_shape
from .preview_sway import region_shares

__all__ = ["region_flow"]


def _field(spec: Any, height: int, width: int, inside: npt.NDArray[np.float32] | None,
           scale: float) -> npt.NDArray[np.float32]:
    """One flowing region's field (2, height, width) in field px/frame, before its share and speed.

    ``inside`` is the region's extent at that size (None: the whole image, the plain RBF).
    """
    if spec.kind == "hints":
        return load("stages.regions").densify_in_region(height, width, spec.hints, spec.anchors, region=inside,
                                                        anchor_radius=spec.anchor_radius, scale=scale)
    if spec.kind == "drift":
        return load("stages.hints").drift_field(height, width, *spec.drift) * np.float32(scale)
    raise ValueError(f"the preview cannot show a region's {spec.kind} motion; render the loop to see it")


def region_flow(regions: Sequence[Any], height: int, width: int, *,
                refine: bool = False) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(M (2, h, w) field px/frame, S (h, w) in [0, 1]) of validated Regions over a width x height still.

    ``h, w`` is the preview's field size; speed * S * M is the engine's motion (its ``motion_px``,
    resampled) with ``speed`` = RenderOptions.speed. Regions that only sway add nothing but count in
    the shares, as in the engine.

    Raises:
        ValueError: a flowing region's motion is a file or a clip (the panel's regions never are).
    """
    field_h, field_w, scale = field_shape(width, height)
    shares = region_shares([region.mask for region in regions], field_h, field_w, refine=refine)
    total = np.zeros((2, field_h, field_w), np.float32)
    weight = np.zeros((field_h, field_w), np.float32)
    for region, share in zip(regions, shares):
        if not region.motion.has_flow:
            continue
        # Arrows reach only what they can reach inside their region (its extent, not its soft weight).
        inside = (share > 0).astype(np.float32) if region.mask is not None else None
        total += _field(region.motion, field_h, field_w, inside, scale) * (region.speed * share)[None]
        weight += share
    motion = np.divide(total, weight[None], out=np.zeros_like(total), where=weight[None] > 0)
    return motion, np.minimum(weight, 1.0)
