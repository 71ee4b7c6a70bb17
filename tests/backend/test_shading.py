"""The moving region's brightness gradient stays in place while its content moves (stages/shading.py)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import stillflow.stages.shading
from stillflow import MotionSpec, RenderOptions, render_frames
from stillflow.stages.shading import fit_shading, shading_at

HEIGHT, WIDTH = 128, 160


def _sky(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A still whose top 96 rows are sky (dark at the top, light below, with fine texture) over ground."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0.0, 1.0, HEIGHT, dtype=np.float32)[:, None, None]
    image = np.clip(0.25 + 0.5 * rows * np.array([0.9, 1.0, 1.1], np.float32)
                    + 0.04 * rng.standard_normal((HEIGHT, WIDTH, 3)).astype(np.float32), 0, 1)
    mask = np.zeros((HEIGHT, WIDTH), np.float32)
    mask[:96] = 1.0
    image[96:] = 0.1
    return image.astype(np.float32), mask


def test_the_fit_is_the_regions_own_gradient() -> None:
    image, mask = _sky()
    shading = fit_shading(image, mask)
    assert shading is not None
    whole = shading_at(shading, slice(0, HEIGHT))
    rows = image[:96].mean(axis=1)  # (96, 3) the sky's row means: a line in the row plus noise
    assert whole.shape == (HEIGHT, 1, 3) and np.abs(whole[:96, 0] - rows).max() < 0.02
    # evaluated on whole-still rows: a strip's window gets the rows of the whole image's
    np.testing.assert_array_equal(shading_at(shading, slice(40, 72)), whole[40:72])


def test_no_shading_without_enough_moving_rows() -> None:
    image, _ = _sky()
    mask = np.zeros((HEIGHT, WIDTH), np.float32)
    assert fit_shading(image, mask) is None
    mask[50, :] = 1.0  # a single row has no gradient
    assert fit_shading(image, mask) is None


@pytest.mark.parametrize("once", [False, True], ids=["loop", "once"])
def test_the_gradient_stays_where_the_sky_moves_down(once: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mid-loop, the sky's rows keep their brightness; carrying the gradient drags the dark top down."""
    image, mask = _sky(1)
    field = np.zeros((2, HEIGHT, WIDTH), np.float32)
    field[1] = 2.0  # 2 px/frame down: 16 px at t = 8 over a gradient of 0.004 per row
    options = RenderOptions(frames=16, levels=3, once=once, refine_mask=False)

    def drift(t: int) -> float:
        frames = render_frames(image, mask=mask, motion=MotionSpec(kind="field", field=field), options=options)
        frame = next(itertools.islice(frames, t, None))
        return float(np.abs(frame[:96].mean(axis=1) - image[:96].mean(axis=1)).max())

    kept = drift(8)
    monkeypatch.setattr(stillflow.stages.shading, "fit_shading", lambda *args, **kwargs: None)
    carried = drift(8)
    assert kept < 0.03, f"the sky's row means moved by up to {kept:.3f} with the gradient kept in place"
    assert carried > 2 * kept, f"carried {carried:.3f} against kept {kept:.3f}: the test no longer tells them apart"
