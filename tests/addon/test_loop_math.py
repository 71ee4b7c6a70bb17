"""addon/core/loop_math.py: ImageUser mapping, VSE repeat counts and scene fps (plain Python)."""
from __future__ import annotations

import pytest

from addon.core import loop_math


def blender_image_frame(scene_frame: int, mapping: loop_math.ImageUserMapping) -> int:
    """Blender's cyclic ImageUser rule (blender5.md §1.1, verified there by rendering)."""
    return (scene_frame - mapping.frame_start) % mapping.frame_duration + 1 + mapping.frame_offset


class TestImageUserMapping:
    @pytest.mark.parametrize("scene_start", [1, 0, 1001], ids=["start1", "start0", "start1001"])
    @pytest.mark.parametrize("first_file", [0, 1], ids=["files0", "files1"])
    def test_feature(self, scene_start: int, first_file: int) -> None:
        mapping = loop_math.image_user_mapping(8, scene_start=scene_start, first_file_number=first_file)
        shown = [blender_image_frame(scene_start + k, mapping) for k in range(17)]
        assert shown == [first_file + k % 8 for k in range(17)]
        assert mapping.use_cyclic

    def test_exception(self) -> None:
        with pytest.raises(ValueError, match="at least one frame"):
            loop_math.image_user_mapping(0)


class TestLoopFrameAt:
    def test_feature(self) -> None:
        assert [loop_math.loop_frame_at(f, 4, scene_start=1) for f in range(1, 10)] == [0, 1, 2, 3, 0, 1, 2, 3, 0]
        assert loop_math.loop_frame_at(0, 4, scene_start=1) == 3


class TestLoopsToCover:
    @pytest.mark.parametrize(("frames", "start", "end", "loops"),
                             [(8, 1, 250, 32), (8, 1, 8, 1), (8, 1, 9, 2), (60, 10, 9, 1)],
                             ids=["default-range", "exact", "one-over", "empty-range"])
    def test_feature(self, frames: int, start: int, end: int, loops: int) -> None:
        assert loop_math.loops_to_cover(frames, start, end) == loops
        assert loops * frames >= end - start + 1


class TestStripElements:
    def test_cardinality(self) -> None:
        names = [f"frame_{i:04d}.png" for i in range(4)]
        elements = loop_math.strip_elements(names, 3)
        assert len(elements) == 12
        assert elements[4:8] == names

    def test_exception(self) -> None:
        with pytest.raises(ValueError, match="loops must be >= 1"):
            loop_math.strip_elements(["a.png"], 0)


class TestSceneFps:
    @pytest.mark.parametrize(("fps", "whole", "base"), [(30.0, 30, 1.0), (29.97, 30, 30 / 29.97), (12.5, 12, 12 / 12.5)],
                             ids=["30", "29.97", "12.5"])
    def test_feature(self, fps: float, whole: int, base: float) -> None:
        got_whole, got_base = loop_math.scene_fps(fps)
        assert got_whole == whole
        assert got_whole / got_base == pytest.approx(fps)
        assert got_base == pytest.approx(base)

    def test_exception(self) -> None:
        with pytest.raises(ValueError, match="fps must be a positive number"):
            loop_math.scene_fps(0.0)
