"""Regions as plain values: the region file, --region, and `stillflow render` with several regions."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stillflow.cli import main
from stillflow.errors import InputError
from stillflow.io.images import load_image, save_frame
from stillflow.options import MotionSpec, Region, SwaySpec
from stillflow.region_file import (load_region_file, motion_to_plain, parse_region_arg, region_from_plain,
                                   region_to_plain)


def _write_mask(path: Path, rows: slice, shape: tuple[int, int] = (64, 80)) -> Path:
    """A white band on ``rows`` of a black mask image."""
    mask = np.zeros((*shape, 3), np.float32)
    mask[rows] = 1.0
    save_frame(path, mask, "png")
    return path


class TestPlainRegions:
    def test_round_trip(self) -> None:
        region = Region(mask="sky.png", speed=0.5, motion=MotionSpec(
            kind="drift", drift=(10.0, 1.5), sway=SwaySpec(amplitude=1.0, cycles=2, shimmer=True, gust_speed=None)))
        assert region_from_plain(region_to_plain(region), "region") == region
        sway = MotionSpec(kind="sway", hints=((1, 2, 3, 4),), sway=SwaySpec(angle=None, gust_angle=30.0))
        assert region_from_plain({"motion": motion_to_plain(sway)}, "region").motion == sway

    @pytest.mark.parametrize("plain, message", [
        ({"motion": {"kind": "auto"}}, "motion kind must be one of"),
        ({"motion": {"kind": "sway", "sway": {"amplitude": 2, "cycles": 1.5}}}, "sway cycles has the wrong type"),
        ({"motion": {"kind": "sway", "sway": {"amplitude": 200}}}, "sway amplitude must be 0 to 64"),
        ({"motion": {"kind": "sway", "sway": {"wind": 1}}}, "unknown sway key"),
        ({"motion": {"kind": "drift", "drift": [1]}}, "drift must be a list of 2 numbers"),
        ({"motion": {"kind": "drift", "drift": [0, 1]}, "colour": 1}, "unknown key"),
        ({"motion": {"kind": "hints"}}, "at least one arrow"),
        ({"speed": "fast"}, "speed must be a number"),
        ({"motion": {"kind": "sway", "sway": {"amplitude_image": 1}}}, "sway amplitude_image has the wrong type"),
    ], ids=["auto", "cycles", "amplitude", "sway-key", "drift", "key", "no-arrow", "speed", "amplitude-image"])
    def test_bad_plain_regions(self, plain: dict, message: str) -> None:
        with pytest.raises(InputError, match=message):
            region_from_plain(plain, "region 1")

    def test_region_file_paths_are_relative_to_it(self, tmp_path: Path) -> None:
        (tmp_path / "sub").mkdir()
        file = tmp_path / "sub" / "regions.json"
        file.write_text(json.dumps({"regions": [
            {"mask": "sky.png", "motion": {"kind": "hints", "hints": [[1, 2, 51, 2]]}},
            {"mask": "water.png", "motion": {"kind": "file", "path": "water.npy"}, "speed": 2}]}))
        sky, water = load_region_file(file)
        assert sky.mask == str(tmp_path / "sub" / "sky.png") and sky.motion.hints == ((1, 2, 51, 2),)
        assert water.motion.path == str(tmp_path / "sub" / "water.npy") and water.speed == 2.0

    def test_amplitude_image_is_relative_to_the_file_and_round_trips(self, tmp_path: Path) -> None:
        file = tmp_path / "regions.json"
        file.write_text(json.dumps([{"mask": "tree.png", "motion": {
            "kind": "sway", "sway": {"amplitude": 2, "amplitude_image": "tree_amplitude.png"}}}]))
        (tree,) = load_region_file(file)
        assert tree.motion.sway.amplitude_image == str(tmp_path / "tree_amplitude.png")
        assert region_from_plain(region_to_plain(tree), "region") == tree

    def test_bad_region_files(self, tmp_path: Path) -> None:
        file = tmp_path / "regions.json"
        file.write_text("{not json")
        with pytest.raises(InputError, match="is not valid JSON"):
            load_region_file(file)
        file.write_text("[]")
        with pytest.raises(InputError, match="1 to 16 regions"):
            load_region_file(file)
        with pytest.raises(InputError, match="cannot read the region file"):
            load_region_file(tmp_path / "missing.json")


class TestRegionArg:
    def test_sources(self, tmp_path: Path) -> None:
        hints = tmp_path / "sky.hints.txt"
        hints.write_text("10,10,60,10\nanchor 5,5\n")
        sky = parse_region_arg(f"sky.png:hints={hints}:speed=0.5")
        assert sky.mask == "sky.png" and sky.speed == 0.5
        assert sky.motion.kind == "hints" and sky.motion.anchors == ((5, 5),)
        trees = parse_region_arg("C:/stills/trees.png:sway=2,3,90")
        assert trees.mask == "C:/stills/trees.png"
        assert trees.motion.kind == "sway" and trees.motion.sway == SwaySpec(amplitude=2.0, cycles=3, angle=90.0)
        water = parse_region_arg("water.png:drift=0,1:shimmer=1,2")
        assert water.motion.kind == "drift" and water.motion.sway.shimmer and water.motion.sway.cycles == 2
        assert parse_region_arg("w.png:motion=w.npy").motion == MotionSpec(kind="file", path="w.npy")
        canopy = parse_region_arg("trees.png:amplitude_image=trees_amplitude.png:sway=2,1,0")
        assert canopy.motion.sway == SwaySpec(amplitude=2.0, cycles=1, angle=0.0, amplitude_image="trees_amplitude.png")

    @pytest.mark.parametrize("text, message", [
        ("sky.png", "needs MASK:SOURCE"),
        ("sky.png:speed=2", "has no motion"),
        ("sky.png:sway=2,1.5,0", "cycles must be a whole number"),
        ("sky.png:drift=a,b", "comma-separated numbers"),
        ("sky.png:wind=3", "is not hints=FILE"),
        ("sky.png:hints=/no/such/file.txt", "cannot read the hints file"),
        ("sky.png:drift=0,1:amplitude_image=a.png", "amplitude_image= scales a sway; this region has none"),
    ], ids=["no-source", "no-motion", "cycles", "numbers", "unknown", "missing-hints", "amplitude-without-sway"])
    def test_bad_region_args(self, text: str, message: str) -> None:
        with pytest.raises(InputError, match=message):
            parse_region_arg(text)


class TestRenderRegions:
    def test_two_regions_from_the_command_line(self, smooth_image: np.ndarray, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
        """Sky flows, foreground sways; the land between never changes, and the manifest names both regions."""
        still = tmp_path / "still.png"
        save_frame(still, smooth_image, "png")
        sky = _write_mask(tmp_path / "sky.png", slice(0, 24))
        ground = _write_mask(tmp_path / "ground.png", slice(40, 64))
        out = tmp_path / "out"
        code = main(["render", str(still), "--out", str(out), "--frames", "6", "--no-refine-mask",
                     "--region", f"{sky}:drift=0,1", "--region", f"{ground}:sway=2,1,0"])
        assert code == 0, capsys.readouterr().err
        frames = [load_image(out / f"frame_{t:04d}.png") for t in range(6)]
        first = frames[0]
        assert all(np.array_equal(frame[24:40], first[24:40]) for frame in frames)
        assert not np.array_equal(frames[2][:24], first[:24]) and not np.array_equal(frames[2][40:], first[40:])
        manifest = json.loads((out / "manifest.json").read_text())
        assert [region["motion"]["kind"] for region in manifest["regions"]] == ["drift", "sway"]

    def test_regions_refuse_a_mask_or_motion_of_their_own(self, smooth_image: np.ndarray, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
        still = tmp_path / "still.png"
        save_frame(still, smooth_image, "png")
        code = main(["render", str(still), "--drift", "0,1", "--region", f"{still}:drift=0,1"])
        assert code == 2 and "--region/--regions replace --mask and the motion source" in capsys.readouterr().err


class TestSample:
    def test_the_demo_renders_two_regions_of_the_sample(self) -> None:
        """scripts/demo.sh's --region arguments name the sample's files: a flowing sky and a swaying meadow."""
        import re

        repo = Path(__file__).resolve().parents[2]
        demo = (repo / "scripts" / "demo.sh").read_text()
        sample = str(repo / "samples" / "picos")
        args = [text.replace("$sample", sample) for text in re.findall(r'--region "([^"]+)"', demo)]
        sky, meadow = (parse_region_arg(text) for text in args)
        assert sky.motion.kind == "hints" and meadow.motion.kind == "sway"
        sky_mask, meadow_mask = (load_image(region.mask)[:, :, 0] > 0.5 for region in (sky, meadow))
        assert meadow_mask.mean() > 0.1 and not (sky_mask & meadow_mask).any()
