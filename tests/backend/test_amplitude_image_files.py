"""An amplitude image FILE reads the same on every backend route (the CLI's --region and --regions, the Python
API, batch sidecars and the Ray task's shipped copy, ``stillflow submit``): as the add-on reads the image in
Blender, the mean of its colour channels (io.images.load_amplitude_file), not a mask's channel 0."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from stillflow import render
from stillflow.batch import work
from stillflow.batch.items import load_items
from stillflow.batch.local import LocalExecutor
from stillflow.batch.ray_task import _render, input_bytes
from stillflow.batch.run import run_batch
from stillflow.batch.work import input_key, plan_task
from stillflow.cli import main
from stillflow.io.images import load_amplitude_file, save_frame
from stillflow.link.wire_amplitude import channel_mean, levels_to_amplitude
from stillflow.options import MotionSpec, Region, RenderOptions, SwaySpec
from stillflow.region_file import parse_region_arg
from stillflow.service.commands import _regions_as_arrays

from .batch_helpers import frames_of, write_still

GIVEN = {"frames": 4, "levels": 2, "refine_mask": False}
FLAGS = ["--frames", "4", "--levels", "2", "--no-refine-mask"]
SWAY = {"amplitude": 3, "cycles": 1, "angle": 0}
Meadow = tuple[Path, np.ndarray, dict[str, bytes]]
"""The meadow's folder, its amplitude image's levels, and the frames rendered from them as the add-on's array."""


def _levels(seed: int) -> np.ndarray:
    """(48, 64, 3) uint8 RGB levels whose channels differ a lot (channel 0 is not their mean), dark on the left."""
    rng = np.random.default_rng(seed)
    levels = np.stack([rng.integers(0, 64, (48, 64)), rng.integers(96, 256, (48, 64)),
                       rng.integers(0, 256, (48, 64))], axis=2).astype(np.uint8)
    levels[:, :24] //= 8
    return levels


def _meadow(folder: Path, levels: np.ndarray) -> Path:
    """meadow.png, meadow_grass_mask.png, meadow_grass_amplitude.png (RGB ``levels``, written by cv2: BGR order)
    and meadow.regions.json (the grass sways, scaled by the amplitude image)."""
    write_still(folder / "meadow.png", 11)
    mask = np.zeros((48, 64), np.uint8)
    mask[20:] = 255
    cv2.imwrite(str(folder / "meadow_grass_mask.png"), mask)
    assert cv2.imwrite(str(folder / "meadow_grass_amplitude.png"), np.ascontiguousarray(levels[..., ::-1]))
    (folder / "meadow.regions.json").write_text(json.dumps([{"mask": "meadow_grass_mask.png", "motion": {
        "kind": "sway", "sway": dict(SWAY, amplitude_image="meadow_grass_amplitude.png")}}]))
    return folder


def _api(folder: Path, out: Path, amplitude: str | Path | np.ndarray) -> dict[str, bytes]:
    """The frames (name: PNG bytes) the Python API renders for the meadow with ``amplitude`` as its amplitude image."""
    region = Region(mask=str(folder / "meadow_grass_mask.png"),
                    motion=MotionSpec(kind="sway", sway=SwaySpec(amplitude=3.0, cycles=1, angle=0.0,
                                                                 amplitude_image=amplitude)))
    return frames_of(render(folder / "meadow.png", out, regions=[region], options=RenderOptions(**GIVEN)).out_dir)


@pytest.fixture(scope="module")
def meadow(tmp_path_factory: pytest.TempPathFactory) -> Meadow:
    """(folder, levels, frames rendered from the add-on's values for them given as an array)."""
    folder, levels = tmp_path_factory.mktemp("meadow"), _levels(3)
    _meadow(folder, levels)
    as_array = _api(folder, tmp_path_factory.mktemp("array") / "out", levels_to_amplitude(levels))
    channel_0 = _api(folder, tmp_path_factory.mktemp("channel0") / "out", levels[..., 0].astype(np.float32) / 255)
    assert as_array != channel_0, "the test's image must read differently by channel 0 and by the mean"
    return folder, levels, as_array


class TestRoutes:
    def test_the_api_with_a_path(self, meadow: Meadow, tmp_path: Path) -> None:
        folder, _, as_array = meadow
        assert _api(folder, tmp_path / "out", str(folder / "meadow_grass_amplitude.png")) == as_array

    def test_the_cli_region_and_region_file(self, meadow: Meadow, tmp_path: Path) -> None:
        folder, _, as_array = meadow
        region = f"{folder / 'meadow_grass_mask.png'}:sway=3,1,0:amplitude_image={folder}/meadow_grass_amplitude.png"
        still = str(folder / "meadow.png")
        assert main(["render", still, "--region", region, "--out", str(tmp_path / "a"), *FLAGS]) == 0
        assert frames_of(tmp_path / "a") == as_array
        assert main(["render", still, "--regions", str(folder / "meadow.regions.json"), "--out", str(tmp_path / "b"),
                     *FLAGS]) == 0
        assert frames_of(tmp_path / "b") == as_array

    def test_batch_sidecars_and_the_shipped_copy(self, meadow: Meadow, tmp_path: Path) -> None:
        folder, _, as_array = meadow
        items, _ = load_items(folder)
        outcome = run_batch(items, tmp_path / "out", LocalExecutor(1, gpus=0), given=GIVEN, default_motion=None)
        assert [o.status for o in outcome.outcomes] == ["done"], outcome.outcomes
        assert frames_of(tmp_path / "out" / "meadow") == as_array
        task = plan_task(items[0], tmp_path / "ray", common={}, given=GIVEN, default_motion=None, default_mask=None,
                         video=None)
        shipped, files = _render(task, input_bytes(task), lambda: False)
        assert shipped.status == "done", shipped
        assert {name: data for name, data in files.items() if name.endswith(".png")} == as_array

    def test_stillflow_submit_reads_the_file_into_the_addons_array(self, meadow: Meadow) -> None:
        folder, levels, _ = meadow
        region = parse_region_arg(f"{folder / 'meadow_grass_mask.png'}:sway=3,1,0:"
                                  f"amplitude_image={folder / 'meadow_grass_amplitude.png'}")
        (loaded,) = _regions_as_arrays((region,))
        assert loaded.motion.sway is not None
        np.testing.assert_array_equal(loaded.motion.sway.amplitude_image, levels_to_amplitude(levels))


class TestBatchKey:
    def test_the_key_follows_the_pixels_and_the_reading(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        folder = _meadow(tmp_path / "src", _levels(4))

        def key() -> str:
            """The meadow task's input key as the folder now is."""
            items, _ = load_items(folder)
            return input_key(plan_task(items[0], tmp_path / "out", common={}, given=GIVEN, default_motion=None,
                                       default_mask=None, video=None))

        before = key()
        levels = _levels(4)
        levels[0, 40, 1] += 1  # one level of one channel
        cv2.imwrite(str(folder / "meadow_grass_amplitude.png"), np.ascontiguousarray(levels[..., ::-1]))
        changed = key()
        assert changed != before
        # a result read another way (before: channel 0) renders again
        monkeypatch.setattr(work, "_AMPLITUDE_READING", "channel 0")
        assert key() != changed


class TestOtherFiles:
    def test_rgba_reads_the_colour_channels(self, meadow: Meadow, tmp_path: Path) -> None:
        folder, levels, as_array = meadow
        alpha = np.random.default_rng(6).integers(0, 256, (48, 64, 1), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / "a.png"), np.concatenate([levels[..., ::-1], alpha], axis=2))
        assert _api(folder, tmp_path / "out", tmp_path / "a.png") == as_array

    def test_a_colour_array_reads_as_its_file_does(self, meadow: Meadow, tmp_path: Path) -> None:
        folder, levels, as_array = meadow
        assert _api(folder, tmp_path / "levels", levels) == as_array  # uint8 (h, w, 3): the file's very bits
        floats = levels.astype(np.float32) / 255
        assert _api(folder, tmp_path / "floats", np.concatenate([floats, np.ones_like(floats[..., :1])], axis=2)) \
            == _api(folder, tmp_path / "mean", channel_mean([floats[..., c] for c in range(3)]))

    def test_16_bit_and_float_read_their_stored_values(self, tmp_path: Path) -> None:
        wide = np.random.default_rng(7).integers(0, 65536, (48, 64, 3), dtype=np.uint16)
        cv2.imwrite(str(tmp_path / "a16.png"), np.ascontiguousarray(wide[..., ::-1]))
        values = wide.astype(np.float32) / np.float32(65535)
        np.testing.assert_array_equal(load_amplitude_file(tmp_path / "a16.png", "amplitude image"),
                                      channel_mean([values[..., c] for c in range(3)]))
        grey = wide[..., 1]
        cv2.imwrite(str(tmp_path / "g16.png"), grey)
        scaled = grey.astype(np.float32) / np.float32(65535)
        np.testing.assert_array_equal(load_amplitude_file(tmp_path / "g16.png", "amplitude image"),
                                      channel_mean((scaled, scaled, scaled)))
        linear = np.random.default_rng(8).uniform(-0.5, 1.5, (48, 64, 3)).astype(np.float32)
        save_frame(tmp_path / "a.exr", linear, "exr")
        np.testing.assert_array_equal(load_amplitude_file(tmp_path / "a.exr", "amplitude image"),
                                      channel_mean([linear[..., c] for c in range(3)]))

    def test_a_file_of_another_kind_is_one_clear_line(self, tmp_path: Path) -> None:
        from stillflow.errors import InputError

        bad = np.full((48, 64, 3), 0.5, np.float32)
        bad[3, 4, 1] = np.nan
        save_frame(tmp_path / "a.exr", bad, "exr")
        with pytest.raises(InputError, match="amplitude image a.exr holds non-finite pixel values"):
            load_amplitude_file(tmp_path / "a.exr", "amplitude image")
