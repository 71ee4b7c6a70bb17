"""The panel's motion regions as backend Regions (addon/core/request.py, no bpy)."""
from __future__ import annotations

import numpy as np
import pytest

from addon.core.lib import load
from addon.core.request import build_region, sway_default

_errors = load("errors")
_options = load("options")

MASK = np.ones((8, 8), np.float32)


class TestBuildRegion:
    def test_each_motion(self) -> None:
        arrows = build_region("ARROWS", MASK, name="sky", hints=[(1, 2, 51, 2)], anchors=[(4, 4)], speed=0.5)
        assert arrows.motion.kind == "hints" and arrows.motion.anchors == ((4.0, 4.0),) and arrows.speed == 0.5
        assert build_region("DRIFT", MASK, name="mist", drift=(90.0, 0.5)).motion.drift == (90.0, 0.5)
        sway = build_region("SWAY", MASK, name="trees", amplitude=3.0, cycles=2, angle=45.0).motion
        assert sway.kind == "sway" and sway.sway == _options.SwaySpec(amplitude=3.0, cycles=2, angle=45.0)
        assert build_region("SHIMMER", MASK, name="lake").motion.sway.shimmer

    def test_defaults_come_from_the_sway_spec(self) -> None:
        assert sway_default("amplitude") == _options.SwaySpec().amplitude
        assert sway_default("cycles") == _options.SwaySpec().cycles

    @pytest.mark.parametrize("kind, kwargs, message", [
        ("ARROWS", {}, "region 'r': it has no arrows"),
        ("SWAY", {"amplitude": 500.0}, "region 'r': sway amplitude must be 0 to 64"),
        ("DRIFT", {"speed": -1.0}, "region 'r': region speed must be"),
        ("WAVE", {}, "unknown region motion"),
    ], ids=["no-arrows", "amplitude", "speed", "kind"])
    def test_errors_name_the_region(self, kind: str, kwargs: dict, message: str) -> None:
        with pytest.raises(_errors.InputError, match=message):
            build_region(kind, MASK, name="r", **kwargs)
