"""Motion regions through a real `stillflow serve` process on loopback: the same frames as the engine."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from stillflow import render_frames
from stillflow.errors import InputError
from stillflow.io.images import to_uint8
from stillflow.link.client import Client
from stillflow.link.launcher import LocalBackend
from stillflow.link.wire_regions import AMPLITUDE_CAPABILITY, REGIONS_CAPABILITY, regions_from_wire, regions_to_wire
from stillflow.options import MotionSpec, Region, RenderOptions, SwaySpec

from .service_helpers import image, module_backend

pytestmark = pytest.mark.slow

OPTIONS = RenderOptions(frames=4, levels=2, refine_mask=False)


def _regions() -> list[Region]:
    """Sky (top rows) flows right; the foreground (bottom rows) sways; a band between stays still."""
    sky = np.zeros((48, 64), np.uint8)
    sky[:18] = 255
    ground = np.zeros((48, 64), np.float32)
    ground[30:] = 1.0
    return [Region(mask=sky, motion=MotionSpec(kind="hints", hints=((10, 5, 60, 5),))),
            Region(mask=ground, speed=0.5, motion=MotionSpec(kind="sway", sway=SwaySpec(amplitude=3.0, cycles=1)))]


def _amplitude_regions() -> list[Region]:
    """The regions of ``_regions`` whose swaying foreground has an amplitude image black on its left half."""
    sky, ground = _regions()
    amplitude = np.zeros((48, 64, 3), np.uint8)  # RGB: channel 0 is read, as from a mask file
    amplitude[:, 32:] = 255
    sway = dataclasses.replace(ground.motion.sway, amplitude_image=amplitude)
    return [sky, dataclasses.replace(ground, motion=dataclasses.replace(ground.motion, sway=sway))]


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBackend]:
    yield from module_backend(tmp_path_factory, "regions")


class TestWireRegions:
    def test_round_trip(self) -> None:
        regions = _regions()
        plain, parts = regions_to_wire(regions)
        assert sorted(parts) == ["region_mask_0", "region_mask_1"]
        back = regions_from_wire(plain, parts)
        assert [r.motion for r in back] == [r.motion for r in regions] and back[1].speed == 0.5
        np.testing.assert_array_equal(back[1].mask, regions[1].mask)

    @pytest.mark.parametrize("change, message", [
        (lambda plain, parts: parts.pop("region_mask_1"), "part is missing"),
        (lambda plain, parts: parts.update(region_mask_5=parts["region_mask_0"]), "unexpected part"),
        (lambda plain, parts: plain[0]["motion"].update(kind="file", path="x.npy"), "cannot be sent"),
        (lambda plain, parts: plain[1].update(mask="yes"), "mask must be true"),
        (lambda plain, parts: plain[0]["motion"].update(kind="sway"), "needs a SwaySpec"),
    ], ids=["missing-mask", "extra-mask", "file", "mask-flag", "sway-without-spec"])
    def test_bad_regions_are_refused(self, change: object, message: str) -> None:
        plain, parts = regions_to_wire(_regions())
        change(plain, parts)  # type: ignore[operator]
        with pytest.raises(InputError, match=message):
            regions_from_wire(plain, parts)


class TestWireAmplitudeImage:
    def test_round_trip(self) -> None:
        plain, parts = regions_to_wire(_amplitude_regions())
        assert sorted(parts) == ["region_amplitude_1", "region_mask_0", "region_mask_1"]
        assert plain[1]["motion"]["sway"]["amplitude_image"] is True
        back = regions_from_wire(plain, parts)
        np.testing.assert_array_equal(back[1].motion.sway.amplitude_image, _amplitude_regions()[1].motion.sway
                                      .amplitude_image[:, :, 0])
        assert back[0].motion.sway is None

    @pytest.mark.parametrize("change, message", [
        (lambda plain, parts: parts.pop("region_amplitude_1"), "amplitude_image is true but the region_amplitude_1"),
        (lambda plain, parts: parts.update(region_amplitude_0=parts["region_amplitude_1"]), "part is there"),
        (lambda plain, parts: parts.update(region_amplitude_7=parts["region_amplitude_1"]), "unexpected part"),
        (lambda plain, parts: plain[1]["motion"]["sway"].update(amplitude_image="/etc/passwd"),
         "amplitude_image must be true"),
        (lambda plain, parts: parts.update(region_amplitude_1=np.zeros((4, 4, 3), np.uint8)),
         "region 2's amplitude image: mask has shape"),
    ], ids=["missing", "without-flag", "extra", "a-path", "rgb"])
    def test_bad_amplitude_parts_are_refused(self, change: object, message: str) -> None:
        plain, parts = regions_to_wire(_amplitude_regions())
        change(plain, parts)  # type: ignore[operator]
        with pytest.raises(InputError, match=message):
            regions_from_wire(plain, parts)

    def test_stillflow_submit_sends_the_file_as_an_array(self, tmp_path: Path) -> None:
        from stillflow.io.images import save_frame
        from stillflow.region_file import parse_region_arg
        from stillflow.service.commands import _regions_as_arrays

        for name in ("ground_mask.png", "ground_amplitude.png"):
            save_frame(tmp_path / name, np.full((48, 64, 3), 0.5, np.float32), "png")
        region = parse_region_arg(f"{tmp_path / 'ground_mask.png'}:sway=2,1,0"
                                  f":amplitude_image={tmp_path / 'ground_amplitude.png'}")
        plain, parts = regions_to_wire(_regions_as_arrays((region,)))
        assert parts["region_amplitude_0"].shape == (48, 64) and plain[0]["motion"]["sway"]["amplitude_image"]

    def test_a_file_name_is_not_sent(self) -> None:
        sky, ground = _regions()
        sway = dataclasses.replace(ground.motion.sway, amplitude_image="ground_amplitude.png")
        with pytest.raises(InputError, match="its amplitude image must be an array to be sent"):
            regions_to_wire([sky, dataclasses.replace(ground, motion=dataclasses.replace(ground.motion, sway=sway))])

    def test_a_single_motion_does_not_carry_one(self) -> None:
        """A name would be a path on the backend's machine: only a region's part carries an amplitude image."""
        from stillflow.link.wire_options import motion_from_wire, motion_to_wire

        sway = MotionSpec(kind="sway", sway=SwaySpec(amplitude=2.0, amplitude_image=np.ones((48, 64), np.float32)))
        with pytest.raises(InputError, match="amplitude image travels with a motion region"):
            motion_to_wire(sway)
        body, parts = motion_to_wire(MotionSpec(kind="sway", sway=SwaySpec(amplitude=2.0)))
        body["sway"]["amplitude_image"] = "/etc/passwd"
        with pytest.raises(InputError, match="amplitude image travels only with a motion region"):
            motion_from_wire(body, parts)


class TestServiceRegions:
    def test_regions_render_as_the_engine_does(self, backend: LocalBackend) -> None:
        still = image(3)
        with Client(backend.endpoint, timeout=10.0) as client:
            assert REGIONS_CAPABILITY in client.hello()["capabilities"]
            result = client.wait(client.submit(still, regions=_regions(), options=OPTIONS), timeout=120)
        direct = np.stack(list(render_frames(still, regions=_regions(), options=OPTIONS)))
        np.testing.assert_array_equal(result["frames"], to_uint8(direct))
        assert np.array_equal(result["frames"][2][18:30], still[18:30])
        assert not np.array_equal(result["frames"][2][30:], still[30:])

    def test_an_amplitude_image_renders_as_the_engine_does(self, backend: LocalBackend) -> None:
        still = image(8)
        with Client(backend.endpoint, timeout=10.0) as client:
            assert AMPLITUDE_CAPABILITY in client.hello()["capabilities"]
            result = client.wait(client.submit(still, regions=_amplitude_regions(), options=OPTIONS), timeout=120)
        direct = np.stack(list(render_frames(still, regions=_amplitude_regions(), options=OPTIONS)))
        np.testing.assert_array_equal(result["frames"], to_uint8(direct))
        assert all(np.array_equal(frame[30:, :32], still[30:, :32]) for frame in result["frames"])
        assert not np.array_equal(result["frames"][2][30:, 34:], still[30:, 34:])

    def test_a_backend_without_amplitude_images_is_told_apart(self, backend: LocalBackend,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
        with Client(backend.endpoint, timeout=10.0) as client:
            hello = client.hello()
            monkeypatch.setattr(client, "_hello", {**hello, "capabilities": [REGIONS_CAPABILITY]})
            with pytest.raises(InputError, match="does not know sway amplitude images"):
                client.submit(image(9), regions=_amplitude_regions(), options=OPTIONS)

    def test_a_single_motion_keeps_its_shimmer(self, backend: LocalBackend) -> None:
        still = image(4)
        motion = MotionSpec(kind="drift", drift=(0.0, 0.5), sway=SwaySpec(amplitude=1.0, cycles=2, shimmer=True))
        with Client(backend.endpoint, timeout=10.0) as client:
            result = client.wait(client.submit(still, motion=motion, options=OPTIONS), timeout=120)
        direct = np.stack(list(render_frames(still, motion=motion, options=OPTIONS)))
        np.testing.assert_array_equal(result["frames"], to_uint8(direct))

    def test_regions_and_a_mask_are_refused(self, backend: LocalBackend) -> None:
        with Client(backend.endpoint, timeout=10.0) as client:
            with pytest.raises(InputError, match="either regions or one mask"):
                client.submit(image(5), mask=np.ones((48, 64), np.uint8), regions=_regions(), options=OPTIONS)

    def test_a_backend_without_regions_is_told_apart(self, backend: LocalBackend,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
        with Client(backend.endpoint, timeout=10.0) as client:
            hello = client.hello()
            monkeypatch.setattr(client, "_hello", {**hello, "capabilities": ["arrays"]})
            with pytest.raises(InputError, match="does not know motion regions"):
                client.submit(image(7), regions=_regions(), options=OPTIONS)
