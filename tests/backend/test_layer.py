"""The moving layer: static content behind the mask is filled from the moving region before the pyramid."""
from __future__ import annotations

import numpy as np
import pytest

from stillflow import MotionSpec, RenderOptions, render_frames
from stillflow.stages.layer import FILL_REACH, fill_behind_mask


def _sky_with_pole(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A bright textured sky with a dark 3-px pole (left out of the mask) in it: (image, mask)."""
    height, width = 96, 160
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    sky = 0.75 + 0.08 * np.sin(xs / 5.0) * np.cos(ys / 7.0)
    image = np.stack([sky * 0.8, sky * 0.9, sky], axis=-1) + rng.normal(0, 0.01, (height, width, 3))
    mask = np.ones((height, width), np.float32)
    image[:, 60:63] = 0.1
    mask[:, 60:63] = 0.0
    return np.clip(image, 0, 1).astype(np.float32), mask


class TestFillBehindMask:
    def test_static_pixels_take_the_moving_regions_colour(self, rng: np.random.Generator) -> None:
        image, mask = _sky_with_pole(rng)
        layer = fill_behind_mask(image, mask > 0)
        assert layer[:, 60:63].min() > 0.5, "the pole must be filled with sky"
        inner = np.ones(mask.shape, bool)
        inner[:, 59:64] = False  # the pole and the mask's rim, filled as well
        assert np.array_equal(layer[inner], image[inner])

    def test_nothing_to_fill_returns_the_image(self, rng: np.random.Generator) -> None:
        image = rng.random((20, 30, 3)).astype(np.float32)
        assert fill_behind_mask(image, np.ones((20, 30), bool)) is image
        assert fill_behind_mask(image, np.zeros((20, 30), bool)) is image

    def test_a_crop_fills_as_the_whole_image_does(self, rng: np.random.Generator) -> None:
        """A strip's renderer fills its crop alike wherever the crop holds FILL_REACH px around a pixel."""
        image = rng.random((300, 120, 3)).astype(np.float32)
        moving = np.zeros((300, 120), bool)
        moving[:150] = True
        moving[40:60, 30:50] = False
        whole = fill_behind_mask(image, moving)
        top = 100
        crop = fill_behind_mask(image[top:], moving[top:])
        keep = slice(FILL_REACH + 2, None)
        np.testing.assert_allclose(crop[keep], whole[top:][keep], atol=1e-6)


class TestNothingStaticIsCarried:
    @pytest.mark.parametrize("once", [False, True])
    def test_a_dark_pole_leaves_no_plume_in_the_sky(self, rng: np.random.Generator, once: bool) -> None:
        """Sky drifting away from a static pole: no pole colour trails into it (the pyramid sees no pole)."""
        image, mask = _sky_with_pole(rng)
        frames = list(render_frames(image, mask=mask, motion=MotionSpec(kind="drift", drift=(0.0, 1.5)),
                                    options=RenderOptions(frames=16, once=once)))
        sky = np.ones(mask.shape, bool)
        sky[:, 57:66] = False  # the pole and the composite's feather beside it
        darkest = float(image[:, :, 2][sky].min())
        for t, frame in enumerate(frames):
            assert frame[:, :, 2][sky].min() > darkest - 0.05, f"frame {t}: pole colour carried into the sky"
