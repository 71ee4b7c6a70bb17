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


def _half_black(height: int = 48, width: int = 64) -> np.ndarray:
    """An amplitude image: black (still) left half, white (full amplitude) right half."""
    image = np.ones((height, width), np.float32)
    image[:, : width // 2] = 0.0
    return image


class TestAmplitudeImage:
    @pytest.mark.parametrize("kind", ["SWAY", "SHIMMER"])
    def test_feature_sent_as_the_regions_part(self, kind: str) -> None:
        """The array rides on the region's sway and travels as its region_amplitude part (docs/protocol.md)."""
        wire = load("link.wire_regions")
        amplitude = _half_black()
        region = build_region(kind, MASK, name="trees", amplitude=3.0, amplitude_image=amplitude, still_size=(64, 48))
        assert region.motion.sway.amplitude_image is amplitude and region.motion.sway.amplitude == 3.0
        plain, parts = wire.regions_to_wire([region])
        assert plain[0]["motion"]["sway"]["amplitude_image"] is True
        np.testing.assert_array_equal(parts["region_amplitude_0"], amplitude)
        assert build_region(kind, MASK, name="trees").motion.sway.amplitude_image is None

    def test_an_older_backend_is_named(self) -> None:
        """A backend without the region_amplitude capability: the Client's one line (the add-on reports it)."""
        region = build_region("SWAY", MASK, name="trees", amplitude_image=_half_black(), still_size=(64, 48))
        with pytest.raises(_errors.InputError, match="this backend does not know sway amplitude images"):
            load("link.client_inputs").add_regions([region], {}, {}, ["regions"])

    def test_shape_checked_against_the_mask_by_default(self) -> None:
        build_region("SWAY", np.ones((12, 16), np.float32), name="trees", amplitude_image=_half_black())
        with pytest.raises(_errors.InputError, match="region 'trees': the amplitude image is 64x48 px but the "
                                                     "still is 8x8 px"):
            build_region("SWAY", MASK, name="trees", amplitude_image=_half_black())

    @pytest.mark.parametrize("kind, amplitude, message", [
        ("SWAY", _half_black(64, 48), ("region 'r': the amplitude image is 48x64 px but the still is 64x48 px: "
                                       "another shape, so it would be stretched; give it the still's size")),
        ("SHIMMER", _half_black(10, 64), "region 'r': the amplitude image is 64x10 px"),
        ("ARROWS", _half_black(), "region 'r': an amplitude image only scales a sway or a shimmer, not arrows"),
        ("DRIFT", _half_black(), "region 'r': an amplitude image only scales a sway or a shimmer, not drift"),
    ], ids=["turned", "strip", "arrows", "drift"])
    def test_exception_names_the_region(self, kind: str, amplitude: np.ndarray, message: str) -> None:
        with pytest.raises(_errors.InputError, match=message):
            build_region(kind, MASK, name="r", hints=[(1, 2, 51, 2)], amplitude_image=amplitude, still_size=(64, 48))
