"""The moving region's shading: the brightness gradient from top to bottom, which stays in place.

A sky is darker at the zenith than near the horizon, and a lake's light changes with its distance;
in a time-lapse the clouds pass through that gradient while the gradient itself stays where it is.
Carried with the content, the darker top of the frame slides down over the sky as the loop goes on
(the real frames do not darken so: over all frames of a long or fast loop this scored 0.4-1.2 dB
lower on the shared clips). Here the moving region's colour is fitted by a
straight line in the image row, per channel (the least-squares gradient); the engine moves the still
minus that shading and adds it back in place (loop.py). Frame 0 is still the input: the split is exact.

Only the vertical line is kept: a full-plane line and curves in the row or in both axes were
measured too, and the curves (which follow a horizon glow and cloud banks that do move) lost up to
2 dB (docs/benchmarks.md). The line is fitted once on the whole still and evaluated on a window by
whole-image rows, so strips of a large still (tiles.py) get the same shading as the whole image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DEGREE", "Shading", "fit_shading", "shading_at"]

DEGREE = 1
"""Polynomial degree of the shading in the row (1: a straight gradient; 2 lost 0.3-0.8 dB)."""

_MAX_SAMPLES = 1 << 18
"""Pixels the least-squares fit reads at most (a regular subsample of a larger still)."""

_MIN_PIXELS = 64
"""Fewer moving pixels than this fit no shading (a tiny region has no gradient to keep)."""


@dataclass(frozen=True, slots=True)
class Shading:
    """A per-channel polynomial of the whole still's row, normalised to [-1, 1].

    Attributes:
        coefficients: (C, degree + 1) float64, one row per channel, lowest power first.
        height: rows of the whole still the row is normalised by.
    """

    coefficients: np.ndarray
    height: int


def _powers(rows: np.ndarray, height: int, degree: int) -> np.ndarray:
    """(degree + 1, ...) the powers of the pixel centres' rows mapped to [-1, 1] over the whole still."""
    y = (rows + 0.5) * (2.0 / height) - 1.0
    return np.stack([y ** i for i in range(degree + 1)])


def fit_shading(image: np.ndarray, weight: np.ndarray, degree: int = DEGREE) -> Shading | None:
    """The least-squares shading of ``image`` (H, W, C) over ``weight`` (H, W) in [0, 1]; None when too few pixels move."""
    height, width = weight.shape
    step = max(1, int(np.ceil(np.sqrt(height * width / _MAX_SAMPLES))))
    w = weight[::step, ::step].astype(np.float64)
    rows, cols = np.nonzero(w > 0)
    if rows.size < _MIN_PIXELS or np.unique(rows).size <= degree:
        return None  # too few pixels, or too few rows to fit a gradient
    basis = _powers(rows * step, height, degree).T  # (n, degree + 1)
    sqrt_w = np.sqrt(w[rows, cols])[:, None]
    values = image[::step, ::step][rows, cols].astype(np.float64)  # (n, C)
    coefficients, *_ = np.linalg.lstsq(basis * sqrt_w, values * sqrt_w, rcond=None)
    return Shading(np.ascontiguousarray(coefficients.T), height)


def shading_at(shading: Shading, rows: slice) -> np.ndarray:
    """The shading of whole-still ``rows`` as (h, 1, C) float32 (the same across every column)."""
    degree = shading.coefficients.shape[1] - 1
    powers = _powers(np.arange(rows.start, rows.stop, dtype=np.float64), shading.height, degree)  # (K, h)
    return np.ascontiguousarray((shading.coefficients @ powers).T[:, None, :].astype(np.float32))
