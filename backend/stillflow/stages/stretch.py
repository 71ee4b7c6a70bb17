"""Particles torn from their neighbours by a step in the motion: their detail fades instead of dotting.

Where the motion field has a step in speed (a motion file, a clip's unsmoothed flow, two arrows
close together), Euler-integrated particles on either side of it drift apart: a row, a thin
filament or a single pixel of an object is pulled out of its neighbourhood and lands alone among
other content, in every band. The splat is normalised, so a lone particle shows at full strength
however far it was carried from its neighbours: a dark object at the field's step is torn into a
diagonal line of dots with hooks beside it. Hole filling does not see them (there are no holes)
and neither does the finest band's outlier limit (each particle was unremarkable among its old
neighbours).

The particle map itself says where this happens, without touching the user's field: a particle's
*isolation* is how far, along each axis, its nearer neighbour on that axis lands from it (the
column gap to its left or right neighbour, the row gap to the one above or below), the larger of
the two axes: 1 = intact, 2 = stretched twice, and a filament torn off both sides of one axis is
far from both. A neighbour that slides past along the other axis does not count: rows sliding along
themselves (a shear parallel to a cloud's rim) leave no gap, and on the real fast clips counting
the slide faded whole rims and the loop's middle softened to 0.78 of frame 0's sharpness
(docs/benchmarks.md). A neighbour that crossed over (a fold, where particles pile up) counts by
how far it went. Beyond ``STRETCH_ONSET`` band pixels the particle's detail fades (gain 1 -> 0 at
``STRETCH_GONE``): a torn particle carries the smooth colour of the low-pass band only, which moves
as before (letting its torn particles give way to hole filling cost 0.2 dB over all frames of a
real fast clip: the colour they carry is right). A smooth field keeps every gap near 1, so its
frames are unchanged; the edge of an intact region is not isolated (one neighbour along each axis
stays close), so a tear's sides keep their detail.

Convention: the gain multiplies a particle's band values (its energies, squared values, by gain²)
in the splat's sums, never its splat weight, so a torn particle still covers its pixel.
"""
from __future__ import annotations

import torch

__all__ = ["STRETCH_GONE", "STRETCH_ONSET", "stretch_gain_torch"]

STRETCH_ONSET = 2.0
"""Isolation (band px to the nearer neighbour) up to which a particle keeps its whole detail: a
region stretched 2x is intact (the one-ring crack fill closes its gaps)."""

STRETCH_GONE = 4.0
"""Isolation at which a particle's detail is gone (gain 0). On the bench's unsmoothed flow 2-4 left
fewer short dashes of the torn line than 3-6 and 4-8, and cost the real fast clip no sharpness
(docs/benchmarks.md, issue 29)."""


def stretch_gain_torch(disp: torch.Tensor, onset: float = STRETCH_ONSET, gone: float = STRETCH_GONE) -> torch.Tensor:
    """Each particle's detail gain from its isolation: the torch reference (any device).

    The compiled splat computes the same float32 gain per particle as it reads it
    (``cpu_stretch.gain_at``); ``splat.splat_joint(..., fade_torn=True)`` applies it.

    Args:
        disp: (2, H, W) float32 displacement in band pixels, x then y.

    Returns:
        (H, W) float32 gain clamp((gone - isolation) / (gone - onset), 0, 1).
    """
    disp = disp.float()
    _, height, width = disp.shape
    # Column (row) gap at which the right (lower) neighbour lands: its own offset 1 plus the step.
    apart_x = (disp[0, :, 1:] - disp[0, :, :-1] + 1.0).abs()
    apart_y = (disp[1, 1:, :] - disp[1, :-1, :] + 1.0).abs()
    far = torch.tensor(float("inf"), device=disp.device)
    edge_x, edge_y = far.expand(height, 1), far.expand(1, width)
    near_x = torch.minimum(torch.cat([edge_x, apart_x], 1), torch.cat([apart_x, edge_x], 1))
    near_y = torch.minimum(torch.cat([edge_y, apart_y], 0), torch.cat([apart_y, edge_y], 0))
    # A canvas one pixel wide or high has no neighbour along that axis: it counts as intact.
    isolation = torch.maximum(torch.where(near_x.isinf(), 1.0, near_x), torch.where(near_y.isinf(), 1.0, near_y))
    return ((gone - isolation) / (gone - onset)).clamp_(0.0, 1.0)

