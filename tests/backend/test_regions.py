"""Motion regions: arrows densified inside their own region, overlaps blended by weight, one region = one mask."""
from __future__ import annotations

import numpy as np
import pytest

from stillflow import MotionSpec, RenderOptions, render_frames
from stillflow.errors import InputError
from stillflow.options import ARROW_PX_PER_SPEED, Region, SwaySpec
from stillflow.pipeline import prepare
from stillflow.stages.regions import densify_in_region, geodesic_distances

from ..tolerances import FLOAT32_ATOL

_EXACT = RenderOptions(refine_mask=False, feather=0.0)


def _band(height: int, width: int, rows: slice) -> np.ndarray:
    """A (height, width) float32 mask, 1 on ``rows``."""
    mask = np.zeros((height, width), np.float32)
    mask[rows] = 1.0
    return mask


def _arrow(x: float, y: float, vx: float, vy: float) -> tuple[float, float, float, float]:
    """An arrow at (x, y) that moves content (vx, vy) px/frame."""
    return (x, y, x + vx * ARROW_PX_PER_SPEED, y + vy * ARROW_PX_PER_SPEED)


class TestGeodesicDistances:
    def test_path_goes_around_what_is_outside(self) -> None:
        inside = np.zeros((50, 50), bool)
        inside[:, :5] = inside[:, 45:] = inside[45:, :] = True  # a U: two arms joined at the bottom
        dist = geodesic_distances(inside, np.array([[0, 0]]))[0]
        assert dist[49, 0] == pytest.approx(49.0)
        assert dist[0, 49] > 120  # straight across is 49 cells, through the bottom about 133
        assert np.isinf(dist[20, 20])


class TestDensifyInRegion:
    def test_without_a_region_it_is_the_plain_rbf(self) -> None:
        from stillflow.stages.hints import densify_hints

        hints = [_arrow(10, 10, 1, 0), _arrow(50, 30, 0, 1)]
        assert np.array_equal(densify_in_region(40, 60, hints, region=None), densify_hints(40, 60, hints))

    def test_an_arrow_does_not_reach_across_static_land(self) -> None:
        """In a U-shaped region, the top of the left arm follows the left arm's arrow, not the nearer
        (in a straight line) arrow of the right arm; a global RBF blends them half and half."""
        height, width = 120, 120
        region = np.zeros((height, width), np.float32)
        region[:, :20] = region[:, 100:] = region[100:, :] = 1.0
        hints = [_arrow(10, 100, 1, 0), _arrow(110, 10, 0, -1)]
        field = densify_in_region(height, width, hints, region=region)
        assert field[0, 10, 18] > 0.95 and abs(field[1, 10, 18]) < 0.05
        assert field[1, 10, 102] < -0.95
        assert not field[:, :100, 20:100].any()


class TestRegions:
    def test_hints_of_one_region_never_move_another_or_the_land_between(self, smooth_image: np.ndarray) -> None:
        """Sky (top) flows right, water (bottom) left; land between is static. A global RBF of the
        same arrows, times the union mask, gives the water a share of the sky's arrow."""
        height, width = smooth_image.shape[:2]
        sky, water = _band(height, width, slice(0, 24)), _band(height, width, slice(40, 64))
        regions = [Region(mask=sky, motion=MotionSpec(kind="hints", hints=(_arrow(10, 10, 1, 0),))),
                   Region(mask=water, motion=MotionSpec(kind="hints", hints=(_arrow(70, 60, -0.5, 0),)))]
        prepared = prepare(smooth_image, mask=None, motion=MotionSpec(), options=_EXACT, regions=regions)
        np.testing.assert_allclose(prepared.motion_px[0, :24], 1.0, atol=FLOAT32_ATOL)
        np.testing.assert_allclose(prepared.motion_px[0, 40:], -0.5, atol=FLOAT32_ATOL)
        assert not prepared.motion_px[1].any()
        assert not prepared.motion_px[:, 24:40].any()
        frames = list(render_frames(smooth_image, regions=regions, options=RenderOptions(frames=6, feather=0.0,
                                                                                        refine_mask=False)))
        for frame in frames:
            assert np.array_equal(frame[24:40], smooth_image[24:40])

    def test_one_mask_in_two_parts_keeps_each_part_to_its_own_arrows(self, smooth_image: np.ndarray) -> None:
        """Distance is measured inside the mask: the global RBF of today blended the two arrows everywhere."""
        height, width = smooth_image.shape[:2]
        both = _band(height, width, slice(0, 24)) + _band(height, width, slice(40, 64))
        motion = MotionSpec(kind="hints", hints=(_arrow(10, 20, 1, 0), _arrow(70, 44, -0.5, 0)))
        prepared = prepare(smooth_image, mask=both, motion=motion, options=_EXACT)
        np.testing.assert_allclose(prepared.motion_px[0, :24], 1.0, atol=FLOAT32_ATOL)
        np.testing.assert_allclose(prepared.motion_px[0, 40:], -0.5, atol=FLOAT32_ATOL)
        assert not prepared.motion_px[:, 24:40].any()

    def test_overlapping_regions_blend_by_weight(self, smooth_image: np.ndarray) -> None:
        height, width = smooth_image.shape[:2]
        left = Region(mask=_band(height, width, slice(0, 40)), motion=MotionSpec(kind="drift", drift=(0.0, 1.0)))
        right = Region(mask=_band(height, width, slice(24, 64)), motion=MotionSpec(kind="drift", drift=(90.0, 2.0)),
                       speed=0.5)
        prepared = prepare(smooth_image, mask=None, motion=MotionSpec(), options=_EXACT, regions=[left, right])
        np.testing.assert_allclose(prepared.motion_px[:, 30], np.array([0.5, -0.5])[:, None] * np.ones((1, width)),
                                   atol=FLOAT32_ATOL)
        np.testing.assert_allclose(prepared.motion_px[:, 10, 0], [1.0, 0.0], atol=FLOAT32_ATOL)
        np.testing.assert_allclose(prepared.motion_px[:, 50, 0], [0.0, -1.0], atol=FLOAT32_ATOL)
        assert prepared.composite_mask.max() <= 1.0

    def test_one_mask_and_motion_is_one_region(self, smooth_image: np.ndarray) -> None:
        mask = _band(*smooth_image.shape[:2], slice(10, 50))
        motion = MotionSpec(kind="hints", hints=(_arrow(20, 20, 1, 0), _arrow(60, 40, 0, 0.5)), anchors=((40, 30),))
        options = RenderOptions(frames=4)
        single = prepare(smooth_image, mask=mask, motion=motion, options=options)
        region = prepare(smooth_image, mask=None, motion=MotionSpec(), options=options,
                         regions=[Region(mask=mask, motion=motion)])
        assert np.array_equal(single.motion_px, region.motion_px)
        assert np.array_equal(single.composite_mask, region.composite_mask)

    @pytest.mark.parametrize("kwargs, message", [
        (dict(mask=np.ones((4, 4), np.float32)), "either regions or one mask"),
        (dict(motion=MotionSpec(kind="drift", drift=(0.0, 1.0))), "either regions or one mask"),
    ], ids=["mask", "motion"])
    def test_regions_with_a_mask_or_motion_of_their_own(self, smooth_image: np.ndarray, kwargs: dict,
                                                        message: str) -> None:
        with pytest.raises(InputError, match=message):
            prepare(smooth_image, options=_EXACT, regions=[Region()],
                    **{"mask": None, "motion": MotionSpec(), **kwargs})

    def test_bad_regions(self, smooth_image: np.ndarray) -> None:
        with pytest.raises(InputError, match="1 to 16 motion regions"):
            prepare(smooth_image, mask=None, motion=MotionSpec(), options=_EXACT, regions=[])
        with pytest.raises(InputError, match="region speed"):
            prepare(smooth_image, mask=None, motion=MotionSpec(), options=_EXACT, regions=[Region(speed=-1.0)])
        empty = Region(mask=np.zeros((64, 80), np.float32), motion=MotionSpec(kind="drift", drift=(0.0, 1.0)))
        with pytest.raises(InputError, match="region 2's mask is empty"):
            prepare(smooth_image, mask=None, motion=MotionSpec(), options=_EXACT, regions=[Region(), empty])
        sway = Region(motion=MotionSpec(kind="sway", sway=SwaySpec()))
        with pytest.raises(InputError, match="loop engine"):
            prepare(smooth_image, mask=None, motion=MotionSpec(), options=RenderOptions(engine="stylegan"),
                    regions=[sway])
        with pytest.raises(InputError, match="along the arrows"):
            Region(motion=MotionSpec(kind="sway", sway=SwaySpec(angle=None))).validate()
        with pytest.raises(InputError, match="whole number"):
            SwaySpec(cycles=1.5).validate()
