"""addon/core/preview_plan.py: the whole regions plan the preview's worker computes (no bpy, no GL)."""
from __future__ import annotations

import numpy as np
import pytest

from addon.core import preview_flow, preview_plan, preview_sway
from addon.core.lib import load
from addon.core.request import build_options, build_region

_errors = load("errors")

HEIGHT, WIDTH = 40, 64
OPTIONS = build_options({"frames": 12, "speed": 1.5, "refine_mask": False})


def _regions(sway: bool = True) -> list[object]:
    """A drifting top band and, with ``sway``, a swaying bottom band."""
    top, bottom = np.zeros((HEIGHT, WIDTH), np.float32), np.zeros((HEIGHT, WIDTH), np.float32)
    top[2:18, 4:60] = 1.0
    bottom[20:38, 4:60] = 1.0
    regions = [build_region("DRIFT", top, name="sky", drift=(30.0, 0.5))]
    if sway:
        regions.append(build_region("SWAY", bottom, name="trees", amplitude=2.0, cycles=2, angle=20.0))
    return regions


def _still() -> preview_plan.StillPixels:
    """Blender-layout pixels of a byte still (sRGB-encoded)."""
    texture = np.random.default_rng(5).random((HEIGHT, WIDTH, 4), dtype=np.float32)
    return preview_plan.StillPixels(("still", WIDTH, HEIGHT), texture, encoded=True)


class TestPlanPreview:
    def test_the_same_as_its_parts(self) -> None:
        still = _still()
        plan = preview_plan.plan_preview(_regions(), OPTIONS, HEIGHT, WIDTH, still=still)
        motion, weight = preview_flow.region_flow(_regions(), HEIGHT, WIDTH)
        sway = preview_sway.preview_sway(_regions(), OPTIONS, HEIGHT, WIDTH)
        np.testing.assert_array_equal(plan.motion, motion)
        np.testing.assert_array_equal(plan.weight, weight)
        np.testing.assert_array_equal(plan.sway.waves, sway.waves)
        assert plan.sway.cycles == sway.cycles == (2, 0, 0, 0)
        assert plan.base_key == still.key
        np.testing.assert_array_equal(plan.base, preview_sway.base_texture(still.texture, encoded=True))

    def test_no_base_unless_something_sways_and_pixels_come(self) -> None:
        assert preview_plan.plan_preview(_regions(sway=False), OPTIONS, HEIGHT, WIDTH, still=_still()).base is None
        kept = preview_plan.plan_preview(_regions(), OPTIONS, HEIGHT, WIDTH)  # the caller's base is current
        assert kept.sway.active and kept.base is None and kept.base_key is None

    @pytest.mark.parametrize("checks_before_stop", [0, 1, 2])
    def test_stops_between_steps_when_superseded(self, checks_before_stop: int) -> None:
        checks = []

        def should_cancel() -> bool:
            checks.append(True)
            return len(checks) > checks_before_stop

        with pytest.raises(_errors.Cancelled):
            preview_plan.plan_preview(_regions(), OPTIONS, HEIGHT, WIDTH, still=_still(), should_cancel=should_cancel)

    def test_too_many_cycle_counts_before_planning(self) -> None:
        mask = np.ones((8, 8), np.float32)
        regions = [build_region("SWAY", mask, name=f"r{k}", cycles=k) for k in range(1, 6)]
        with pytest.raises(ValueError, match="at most 4 different Cycles"):
            preview_plan.plan_preview(regions, OPTIONS, 8, 8, should_cancel=lambda: pytest.fail("planned"))
