"""addon/core/preview_flow.py: the flowing regions' field of the live preview (no bpy, no GL).

The comparison with the engine's motion runs in the backend environment (it needs torch); the
rest runs in both.
"""
from __future__ import annotations

import numpy as np
import pytest

from addon.core import preview_flow
from addon.core.lib import load
from addon.core.request import build_region

_options = load("options")
_errors = load("errors")

HEIGHT, WIDTH = 40, 64
ARROWS = ((10.0, 6.0, 40.0, 6.0), (50.0, 10.0, 50.0, 2.0))


def _masks() -> list[np.ndarray]:
    """A top band (arrows), a middle band (drift) touching it, a bottom band (sway) overlapping the middle one."""
    masks = [np.zeros((HEIGHT, WIDTH), np.float32) for _ in range(3)]
    masks[0][0:14, 4:60] = 1.0
    masks[1][14:26, 4:60] = 0.8
    masks[2][24:36, 2:62] = 1.0
    return masks


def _regions() -> list[object]:
    """The panel's regions: arrows, drift, sway."""
    sky, mist, trees = _masks()
    return [build_region("ARROWS", sky, name="sky", hints=ARROWS, speed=1.5),
            build_region("DRIFT", mist, name="mist", drift=(135.0, 0.5)),
            build_region("SWAY", trees, name="trees", amplitude=2.0, cycles=2, angle=10.0)]


class TestAgainstTheEngine:
    def test_speed_times_weight_times_field_is_the_engines_motion(self) -> None:
        pytest.importorskip("torch")
        from stillflow import MotionSpec, Region, RenderOptions, SwaySpec
        from stillflow.pipeline import prepare

        sky, mist, trees = _masks()
        engine_regions = [
            Region(mask=sky, speed=1.5, motion=MotionSpec(kind="hints", hints=ARROWS)),
            Region(mask=mist, motion=MotionSpec(kind="drift", drift=(135.0, 0.5))),
            Region(mask=trees, motion=MotionSpec(kind="sway", sway=SwaySpec(amplitude=2.0, cycles=2, angle=10.0)))]
        options = RenderOptions(frames=12, speed=0.75, refine_mask=False)
        engine = prepare(np.full((HEIGHT, WIDTH, 3), 0.5, np.float32), mask=None, motion=MotionSpec(),
                         regions=engine_regions, options=options).motion_px
        motion, weight = preview_flow.region_flow(_regions(), HEIGHT, WIDTH)
        assert motion.shape == (2, HEIGHT, WIDTH)  # a small still's field has its own size
        np.testing.assert_allclose(options.speed * weight[None] * motion, engine, atol=1e-5)
        assert np.abs(engine[:, :14]).max() > 0.3 and np.abs(engine[:, 14:24]).max() > 0.2


class TestRegionFlow:
    def test_nothing_flows_outside_the_flowing_regions(self) -> None:
        motion, weight = preview_flow.region_flow(_regions(), HEIGHT, WIDTH)
        flowing = (_masks()[0] + _masks()[1]) > 0
        assert not (weight[None] * motion)[:, ~flowing].any()
        assert not weight[26:].any()  # the swaying band below the drift flows nowhere
        # the sky's arrows point right and up: nothing of them reaches the mist below
        np.testing.assert_allclose(motion[:, 16, 30], [-0.5 * np.sqrt(0.5), -0.5 * np.sqrt(0.5)], rtol=1e-5)
        assert motion[0, 6, 20] > 0

    def test_shares_where_regions_overlap(self) -> None:
        _, weight = preview_flow.region_flow(_regions(), HEIGHT, WIDTH)
        assert weight[20, 30] == pytest.approx(0.8)
        assert weight[25, 30] == pytest.approx(0.8 / 1.8)  # the mist shares the row with the trees

    def test_field_pixels_on_a_large_still(self) -> None:
        mask = np.zeros((50, 100), np.float32)
        mask[:, 50:] = 1.0
        regions = [build_region("DRIFT", mask, name="mist", drift=(0.0, 2.0))]
        motion, weight = preview_flow.region_flow(regions, 512, 1024)
        assert motion.shape == (2, 128, 256) and weight.shape == (128, 256)
        # 2 px/frame of the still = 0.5 px/frame of a field a quarter its size
        assert motion[0, 64, 200] == pytest.approx(0.5) and motion[0, 64, 10] == 0.0
        assert weight[:, :128].max() == 0.0 and weight[:, 128:].min() == 1.0

    def test_only_swaying_regions(self) -> None:
        regions = [build_region("SWAY", np.ones((8, 8), np.float32), name="trees")]
        motion, weight = preview_flow.region_flow(regions, 8, 8)
        assert not motion.any() and not weight.any()

    def test_a_file_region_says_what_to_do(self) -> None:
        region = _options.Region(mask=np.ones((8, 8), np.float32),
                                 motion=_options.MotionSpec(kind="field", field=np.zeros((2, 8, 8), np.float32)))
        with pytest.raises(ValueError, match="cannot show a region's field motion; render the loop"):
            preview_flow.region_flow([region], 8, 8)
