"""addon/core/mask_sources.py: Blender buffers and Mask points -> backend arrays and pixels (plain Python)."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from addon.core import mask_sources
from addon.core.lib import load

InputError = load("errors").InputError


class TestNormalisedToPixels:
    def test_feature(self) -> None:
        # a 4 x 2 image sits centred in the 4 x 4 mask square: y in 0.25..0.75 covers its rows
        got = mask_sources.normalised_to_pixels([(0.0, 0.25), (1.0, 0.75), (0.625, 0.5), (0.0, 0.0)], 4, 2)
        np.testing.assert_allclose(got, [(-0.5, 1.5), (3.5, -0.5), (2.0, 0.5), (-0.5, 2.5)])

    def test_feature_square(self) -> None:
        got = mask_sources.normalised_to_pixels([(0.0, 0.0), (1.0, 1.0), (0.125, 0.75)], 4, 4)
        np.testing.assert_allclose(got, [(-0.5, 3.5), (3.5, -0.5), (0.0, 0.5)])


class TestHintsFromSplines:
    def test_feature(self) -> None:
        splines = [
            mask_sources.Spline(points=((0.25, 0.5), (0.5, 0.6), (0.75, 0.5)), is_cyclic=False),  # arrow
            mask_sources.Spline(points=((0.1, 0.1), (0.9, 0.1), (0.9, 0.9)), is_cyclic=True),  # region
            mask_sources.Spline(points=((0.5, 0.25),), is_cyclic=False),  # anchor
            mask_sources.Spline(points=((0.3, 0.3), (0.3, 0.3)), is_cyclic=False),  # no direction
        ]
        hints, anchors = mask_sources.hints_from_splines(splines, 100, 40)
        assert hints == ((24.5, 19.5, 74.5, 19.5),)
        assert anchors == ((49.5, 44.5),)

    def test_smoke_empty(self) -> None:
        assert mask_sources.hints_from_splines([], 10, 10) == ((), ())


class TestImageFromPixels:
    def test_feature_rows_flipped_and_alpha_dropped(self) -> None:
        flat = np.zeros((2, 3, 4), np.float32)
        flat[0, :, 0] = 1.0  # bottom row red in Blender's bottom-up buffer
        flat[..., 3] = 1.0
        image = mask_sources.image_from_pixels(flat.ravel(), 3, 2, 4, is_linear=False)
        assert image.shape == (2, 3, 3)
        assert image[1, :, 0].tolist() == [1.0, 1.0, 1.0] and image[0, :, 0].tolist() == [0.0, 0.0, 0.0]

    def test_feature_alpha_kept_and_linear_encoded(self) -> None:
        flat = np.full((1, 2, 4), 0.0031308, np.float32)
        flat[0, 0, 3] = 0.5
        image = mask_sources.image_from_pixels(flat.ravel(), 2, 1, 4, is_linear=True)
        assert image.shape == (1, 2, 4)
        np.testing.assert_allclose(image[0, 0, :3], 12.92 * 0.0031308, rtol=1e-5)
        assert image[0, 0, 3] == pytest.approx(0.5)

    def test_srgb_matches_reference_value(self) -> None:
        # blender5.md §1.2: linear 0.125 <-> 0.389 in 8-bit sRGB output
        assert float(mask_sources.srgb_encode(np.float32([0.125]))[0]) == pytest.approx(0.389, abs=1e-3)


class TestMaskFromPixels:
    def test_feature(self) -> None:
        flat = np.zeros((2, 2, 4), np.float32)
        flat[1, 0, :3] = 1.0  # top-left in the top-down result
        flat[0, 1, :3] = (0.0, 0.5, 1.0)
        mask = mask_sources.mask_from_pixels(flat.ravel(), 2, 2, 4)
        np.testing.assert_allclose(mask, [[1.0, 0.0], [0.0, 0.5]])


class TestCheckMask:
    def test_exception(self) -> None:
        with pytest.raises(InputError, match="the mask 'M' is empty"):
            mask_sources.check_mask(np.zeros((4, 4), np.float32), "'M'")

    def test_smoke(self) -> None:
        mask = np.zeros((4, 4), np.float32)
        mask[1, 1] = 0.2
        assert mask_sources.check_mask(mask, "x") is mask


class TestCheckAspect:
    @pytest.mark.parametrize("shape", [(48, 64), (24, 32), (480, 640, 3), (48, 65)], ids=["same", "half", "rgb", "1.6%"])
    def test_smoke_same_shape(self, shape: tuple[int, ...]) -> None:
        mask_sources.check_aspect(shape, 64, 48, "amplitude image")

    @pytest.mark.parametrize("shape", [(64, 48), (48, 66), (0, 64)], ids=["turned", "3%", "empty"])
    def test_exception(self, shape: tuple[int, ...]) -> None:
        with pytest.raises(InputError, match=f"the amplitude image is {shape[1]}x{shape[0]} px but the still is "
                                             "64x48 px: another shape, so it would be stretched"):
            mask_sources.check_aspect(shape, 64, 48, "amplitude image")

    def test_tolerance_is_the_backends(self) -> None:
        """The backend's constant lives in io/images.py (OpenCV, not bundled): read it from its source."""
        source = (Path(__file__).resolve().parents[2] / "backend" / "stillflow" / "io" / "images.py").read_text()
        values = [ast.literal_eval(node.value) for node in ast.parse(source).body if isinstance(node, ast.Assign)
                  and any(getattr(target, "id", "") == "MASK_ASPECT_TOLERANCE" for target in node.targets)]
        assert values == [mask_sources.ASPECT_TOLERANCE]
