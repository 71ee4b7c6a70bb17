"""Numeric tolerances shared by the tests, with the reason for each."""
from __future__ import annotations

FLOAT32_ATOL = 1e-6
"""One or two float32 roundings of values in [0, 1]."""

SPLAT_ORDER_ATOL = 1e-4
"""The compiled CPU splat and the torch reference sum the same taps in another order;
a pixel reached by a few tiny bilinear tails divides two small sums, which amplifies that."""

MULTISCALE_TRANSLATION_MAE = 0.01
"""Laplacian bands of a natural photo moved by an integer shift at full resolution move by a
half-pixel at coarser levels, where the bilinear splat smooths slightly; mean abs error bound."""

MULTISCALE_SHARP_MAE = 0.02
"""The default detail mode restores the contrast that the linear blend of two copies loses, so
it departs from the single-scale blend by design (mean abs error bound)."""

STRIP_MEAN_ABS = 1e-5
"""Strips decompose the same pixels on the same pyramid grid as a whole-image render; only hole
filling (push-pull across a strip, Telea) sees a shorter neighbourhood, at a handful of pixels
(mean abs difference bound)."""

STRIP_CHANGED_FRACTION = 1e-4
"""Fraction of pixels allowed to differ by more than one 8-bit level between strips and a
whole-image render (the hole-filling pixels above)."""

CARRIED_SUBPIXEL_MAX_ERROR = 0.08
"""Keys' cubic (A = -1) resampling a 3 px period pattern (0.33 cycles/px, the finest band's
content) at a fractional offset departs from an exact shift by up to 6 % of the [0, 1] range
(whole pixels: 25-45 %, bilinear taps: 18-25 %); max abs error bound."""
