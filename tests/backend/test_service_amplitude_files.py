"""A region's sway amplitude image sent as its file (capability region_amplitude_file): the wire form, its checks,
and a real `stillflow serve` decoding it to exactly the array the add-on would have sent."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from stillflow.errors import InputError
from stillflow.io.images import load_frame_uint8, save_frame
from stillflow.link.client import Client
from stillflow.link.client_inputs import add_regions
from stillflow.link.launcher import LocalBackend
from stillflow.link.wire_amplitude import (FILE_CAPABILITY, channel_mean, file_sources, levels_to_amplitude,
                                           region_amplitude_file_part)
from stillflow.link.wire_regions import AMPLITUDE_CAPABILITY, REGIONS_CAPABILITY, regions_from_wire
from stillflow.options import MotionSpec, Region, RenderOptions, SwaySpec

from .service_helpers import image, module_backend

OPTIONS = RenderOptions(frames=4, levels=2, refine_mask=False)
CAPABILITIES = [REGIONS_CAPABILITY, AMPLITUDE_CAPABILITY, FILE_CAPABILITY]


def _levels(seed: int, height: int = 48, width: int = 64) -> np.ndarray:
    """An RGB amplitude image: its channels differ (so the mean, not channel 0, is what reads), dark on the left."""
    levels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    levels[:, : width // 2] //= 8
    return levels


def _png(path: Path, levels: np.ndarray) -> Path:
    """``levels`` (h, w, 3) uint8 saved as an 8-bit RGB PNG."""
    save_frame(path, levels.astype(np.float32) / 255.0, "png")
    return path


def _regions(amplitude: Any) -> list[Region]:
    """A still band (top rows) and a swaying ground (bottom rows) whose sway reads ``amplitude``."""
    sky = np.zeros((48, 64), np.uint8)
    sky[:18] = 255
    ground = np.zeros((48, 64), np.float32)
    ground[30:] = 1.0
    return [Region(mask=sky, motion=MotionSpec(kind="drift", drift=(0.0, 0.5))),
            Region(mask=ground, motion=MotionSpec(kind="sway", sway=SwaySpec(amplitude=3.0, cycles=1,
                                                                              amplitude_image=amplitude)))]


def _wire(amplitude: Any, readable: Any = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The submit body and parts ``add_regions`` makes for ``_regions(amplitude)``."""
    body: dict[str, Any] = {}
    parts: dict[str, np.ndarray] = {}
    add_regions(_regions(amplitude), body, parts, CAPABILITIES, readable)
    return body, parts


class TestLevels:
    def test_the_mean_of_the_channels_as_blender_reads_them(self) -> None:
        levels = _levels(1)
        scaled = levels.astype(np.float32) * np.float32(1.0 / 255.0)
        expected = ((scaled[..., 0] + scaled[..., 1]) + scaled[..., 2]) / np.float32(3.0)
        np.testing.assert_array_equal(levels_to_amplitude(levels), expected)
        grey = levels[..., 0]
        np.testing.assert_array_equal(levels_to_amplitude(grey), levels_to_amplitude(np.dstack([grey] * 3)))

    def test_the_same_bits_for_any_layout(self) -> None:
        scaled = _levels(2).astype(np.float32) / 255.0
        padded = np.concatenate([scaled, np.ones_like(scaled[..., :1])], axis=2)[::-1]  # Blender's RGBA, bottom-up
        np.testing.assert_array_equal(channel_mean([padded[::-1][..., c] for c in range(3)]),
                                      channel_mean([np.ascontiguousarray(scaled[..., c]) for c in range(3)]))

    @pytest.mark.parametrize("levels", [np.zeros((4, 4), np.uint16), np.zeros((4, 4, 2), np.uint8),
                                        np.zeros((4, 4, 3), np.float32)], ids=["16-bit", "grey+alpha", "float"])
    def test_other_files_are_refused(self, levels: np.ndarray) -> None:
        with pytest.raises(InputError, match="must be an 8-bit grey or RGB PNG or JPEG"):
            levels_to_amplitude(levels)


class TestWire:
    def test_bytes_outside_the_readable_folders(self, tmp_path: Path) -> None:
        path = _png(tmp_path / "trees amplitude.png", _levels(3))
        body, parts = _wire(str(path))
        assert body["regions"][1]["motion"]["sway"]["amplitude_image"] == {"name": "trees amplitude.png"}
        assert parts[region_amplitude_file_part(1)].tobytes() == path.read_bytes()
        regions = regions_from_wire(body["regions"], parts)
        assert regions[1].motion.sway is not None and regions[1].motion.sway.amplitude_image is None
        (index, (name, data)), = file_sources(body["regions"], parts).items()
        assert (index, name, data.tobytes()) == (1, "trees amplitude.png", path.read_bytes())

    def test_a_path_inside_one(self, tmp_path: Path) -> None:
        path = _png(tmp_path / "a.png", _levels(3))
        body, parts = _wire(str(path), [str(tmp_path)])
        assert body["regions"][1]["motion"]["sway"]["amplitude_image"] == {"path": str(path)}
        assert region_amplitude_file_part(1) not in parts
        assert file_sources(body["regions"], parts) == {1: str(path)}

    def test_an_older_backend_is_told_apart(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="this backend cannot read amplitude image files"):
            add_regions(_regions(str(_png(tmp_path / "a.png", _levels(3)))), {}, {}, CAPABILITIES[:2])

    @pytest.mark.parametrize("change, message", [
        (lambda sway, parts: sway.update(amplitude_image={"name": "a.png", "path": "/a.png"}), "must be true, false"),
        (lambda sway, parts: sway.update(amplitude_image={"file": "a.png"}), "must be true, false"),
        (lambda sway, parts: sway.update(amplitude_image={"name": 3}), "must be true, false"),
        (lambda sway, parts: parts.pop("region_amplitude_file_1"), "gives a name but the region_amplitude_file_1 "
                                                                   "part is missing"),
        (lambda sway, parts: sway.update(amplitude_image={"path": "/a.png"}), "gives a path but the "
                                                                              "region_amplitude_file_1 part is there"),
        (lambda sway, parts: parts.update(region_amplitude_file_1=np.zeros((4, 4), np.uint8)), "1-D uint8 part"),
        (lambda sway, parts: parts.update(region_amplitude_1=np.zeros((48, 64), np.uint8)), "gives a file but the "
                                                                                           "region_amplitude_1 part"),
        (lambda sway, parts: parts.update(region_amplitude_file_0=parts["region_amplitude_file_1"]),
         "region_amplitude_file_0 part is there but"),
        (lambda sway, parts: parts.update(region_amplitude_file_5=parts["region_amplitude_file_1"]), "unexpected part"),
    ], ids=["both", "unknown", "not-a-string", "no-bytes", "bytes-beside-a-path", "2-d", "array-too", "stray-part",
                                  "beyond-the-regions"])
    def test_bad_forms_are_refused(self, tmp_path: Path, change: Any, message: str) -> None:
        body, parts = _wire(str(_png(tmp_path / "a.png", _levels(3))))
        change(body["regions"][1]["motion"]["sway"], parts)
        with pytest.raises(InputError, match=message):
            regions_from_wire(body["regions"], parts)


@pytest.fixture(scope="module")
def readable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the backend may read (--allow-read)."""
    return tmp_path_factory.mktemp("readable")


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory, readable: Path) -> Iterator[LocalBackend]:
    yield from module_backend(tmp_path_factory, "amplitude-files", "--allow-read", str(readable))


@pytest.mark.slow
class TestService:
    def _frames(self, endpoint: str, still: np.ndarray, amplitude: Any) -> np.ndarray:
        """The frames a backend renders for ``_regions(amplitude)``."""
        with Client(endpoint, timeout=10.0) as client:
            assert FILE_CAPABILITY in client.capabilities()
            return client.wait(client.submit(still, regions=_regions(amplitude), options=OPTIONS),
                               timeout=120)["frames"]

    @pytest.mark.parametrize("where", ["bytes", "path"])
    def test_a_file_renders_as_the_array_the_addon_sends(self, backend: LocalBackend, readable: Path,
                                                         tmp_path: Path, where: str) -> None:
        levels, still = _levels(4), image(4)
        path = _png((readable if where == "path" else tmp_path) / "amplitude.png", levels)
        from_file = self._frames(backend.endpoint, still, str(path))
        from_array = self._frames(backend.endpoint, still, levels_to_amplitude(levels))
        np.testing.assert_array_equal(from_file, from_array)
        assert not np.array_equal(from_file[2][30:, 34:], still[30:, 34:])  # the bright half sways
        # channel 0 (what a mask file gives) would be another image: the mean is what was read
        assert not np.array_equal(from_file, self._frames(backend.endpoint, still,
                                                          levels[..., 0].astype(np.float32) / 255.0))

    def test_a_16_bit_file_reads_as_on_every_route(self, backend: LocalBackend, tmp_path: Path) -> None:
        """Its stored values' channel mean (io.images.load_amplitude_file), as a local render reads the same file."""
        from stillflow import render

        path, still = tmp_path / "amplitude.png", image(9)
        save_frame(path, _levels(9).astype(np.float32) / 255.0, "png16")
        from_file = self._frames(backend.endpoint, still, str(path))
        local = render(still, tmp_path / "local", regions=_regions(str(path)), options=OPTIONS)
        np.testing.assert_array_equal(from_file, [load_frame_uint8(frame) for frame in local.frame_paths])

    @pytest.mark.parametrize("make, message", [
        (lambda path: path.write_bytes(path.read_bytes()[:60]), "is truncated or damaged"),
        (lambda path: _png(path, _levels(5, 64, 48)), "region 2's amplitude image is 48x64 px but the image is 64x48"),
    ], ids=["truncated", "shape"])
    def test_a_bad_file_is_one_clear_line(self, backend: LocalBackend, tmp_path: Path, make: Any,
                                          message: str) -> None:
        path = _png(tmp_path / "amplitude.png", _levels(6))
        make(path)
        with Client(backend.endpoint, timeout=10.0) as client:
            job = client.submit(image(6), regions=_regions(str(path)), options=OPTIONS)
            with pytest.raises(InputError, match=message) as caught:
                client.wait(job, timeout=120)
        assert "\n" not in str(caught.value) and "scratch" not in str(caught.value)

    def test_a_file_too_large_is_refused_before_decoding(self, backend: LocalBackend, tmp_path: Path) -> None:
        path = _png(tmp_path / "amplitude.png", _levels(7))
        data = bytearray(path.read_bytes())
        data[16:24] = (100000).to_bytes(4, "big") + (75000).to_bytes(4, "big")  # IHDR width and height
        path.write_bytes(bytes(data))
        with Client(backend.endpoint, timeout=10.0) as client:
            with pytest.raises(InputError, match="region 2's amplitude image file 'amplitude-1.png' is 100000x75000"):
                client.submit(image(7), regions=_regions(str(path)), options=OPTIONS)

    def test_a_path_outside_the_readable_folders_is_refused(self, backend: LocalBackend, tmp_path: Path) -> None:
        body, parts = _wire(str(_png(tmp_path / "a.png", _levels(8))), [str(tmp_path)])  # as if it were readable
        with Client(backend.endpoint, timeout=10.0) as client:
            client.hello()
            submit_body = dict(body, options={"frames": 4, "levels": 2, "refine_mask": False})
            with pytest.raises(InputError, match="the backend may not read region 2's amplitude_image path"):
                client._request("submit", body=submit_body, parts=dict(parts, image=image(8)))
