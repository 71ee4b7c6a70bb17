"""Regenerate without friction and tell the artist what happened (issue 24, points 3, 4, 7, 9, 10; issue 30, 7), in real bpy.

Generate runs synchronously here (background mode, ``runner.WAIT_IN_BACKGROUND``) against a real
``stillflow serve`` that the add-on starts with ``<repo>/.venv/bin/python``.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pytest

bpy = pytest.importorskip("bpy")

from tests.addon.blender_probe import file_pixels  # noqa: E402
from tests.addon.blender_scenes import region_mask  # noqa: E402
from tests.addon.test_blender_responsive import _job, prefs  # noqa: E402,F401

pytestmark = [pytest.mark.blender, pytest.mark.slow]


@pytest.fixture()
def editor(scene: Any) -> Iterator[Any]:
    """Operators run as from the Image Editor (its space is ``context.space_data``)."""
    window = bpy.context.window_manager.windows[0]
    area = window.screen.areas[0]
    area.type = "IMAGE_EDITOR"
    region = next(r for r in area.regions if r.type == "WINDOW")
    with bpy.context.temp_override(window=window, area=area, region=region):
        yield area


class TestRegenerate:
    def test_generate_on_the_loop_regenerates_its_still(self, sf: ModuleType, prefs: Any, scene: Any, editor: Any,
                                                        tmp_path: Path) -> None:
        still = _job(scene, tmp_path)
        scene.stillflow.image = None  # the still comes from the Image Editor
        assert bpy.ops.stillflow.generate() == {"FINISHED"}
        loop = scene.stillflow.result
        assert editor.spaces.active.image == loop  # the loop replaced the still in the editor
        assert bpy.ops.stillflow.generate.poll()
        assert sf.operators.source_image(bpy.context) == still
        assert bpy.ops.stillflow.generate() == {"FINISHED"}
        assert scene.stillflow.result == loop and Path(scene.stillflow.result_dir).name == "take_0002"

    def test_a_loop_whose_still_is_gone_says_so(self, sf: ModuleType, prefs: Any, scene: Any, editor: Any,
                                                tmp_path: Path) -> None:
        still = _job(scene, tmp_path)
        scene.stillflow.image = None
        assert bpy.ops.stillflow.generate() == {"FINISHED"}
        bpy.data.images.remove(still)
        assert not bpy.ops.stillflow.generate.poll()


    def test_placing_a_take_keeps_decoded_frames_whose_colour_space_holds(self, sf: ModuleType, scene: Any,
                                                                         tmp_path: Path) -> None:
        """Point 6: re-tagging a loop (or a strip) with the colour space it has must not drop its decoded frames."""
        still = _job(scene, tmp_path)
        assert still.colorspace_settings.name == "sRGB"
        still.pixels[0]  # decoded, as an Image Editor showing it would have
        assert still.has_data
        sf.results.tag_colorspace(still, ".png")
        assert still.has_data


class TestSmallRegion:
    def test_a_region_of_two_percent_animates(self, sf: ModuleType, prefs: Any, scene: Any, tmp_path: Path) -> None:
        _job(scene, tmp_path, size=(160, 120))
        # a waterfall: 10 % of the width by 20 % of the height, under Refine Mask's 3 % island size
        scene.stillflow.mask = region_mask("waterfall", [(0.45, 0.3), (0.55, 0.3), (0.55, 0.5), (0.45, 0.5)],
                                           ((0.5, 0.45), (0.5, 0.35)))
        assert scene.stillflow.refine_mask
        assert bpy.ops.stillflow.generate() == {"FINISHED"}
        assert scene.stillflow.status.startswith("Done: 6 frames"), scene.stillflow.status


class TestWarnings:
    def test_the_backends_warning_reaches_the_panel(self, sf: ModuleType, prefs: Any, scene: Any,
                                                    tmp_path: Path) -> None:
        _job(scene, tmp_path, size=(192, 144), frames=48)  # the arrow carries content 39 % of the width
        assert bpy.ops.stillflow.generate() == {"FINISHED"}
        status, loop = scene.stillflow.status, scene.stillflow.result
        shown = sf.placement.loop_warnings(loop)  # what the Result panel lists
        assert len(shown) == 1 and shown[0].startswith("content travels up to ") and "ghosting" in shown[0]
        assert status.startswith("Done: 48 frames") and status.endswith(f"; warning: {shown[0]}"), status

    def test_result_dir_takes_a_blend_relative_path_silently(self, sf: ModuleType, scene: Any) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            scene.stillflow.result_dir = "//stillflow/still.png/take_0001"
        assert scene.stillflow.result_dir == "//stillflow/still.png/take_0001"


class TestMessages:
    def test_a_backend_python_that_does_not_exist(self, sf: ModuleType, prefs: Any, tmp_path: Path) -> None:
        sf.runner.CONNECTION.close()
        missing = tmp_path / "no-env" / "bin" / "python"
        prefs.python_path = str(missing)
        with pytest.raises(RuntimeError, match="does not exist"):
            bpy.ops.stillflow.check_backend()
        assert prefs.backend_status == (f"Cannot connect: the Backend Python {missing} does not exist, so it cannot "
                                        "import stillflow; fix the path in the Stillflow preferences (the python of the "
                                        "environment that has stillflow), or clear it and press Install Backend")

    def test_a_still_whose_file_is_gone_is_missing(self, sf: ModuleType, prefs: Any, scene: Any,
                                                   tmp_path: Path) -> None:
        still = _job(scene, tmp_path)
        Path(bpy.path.abspath(still.filepath)).unlink()
        with pytest.raises(RuntimeError, match=f"image '{still.name}' is missing: no file at "):
            bpy.ops.stillflow.generate()
        assert "not saved or packed" not in scene.stillflow.status


class TestReading:
    def test_generate_leaves_decoding_a_saved_photo_to_the_backend(self, sf: ModuleType, prefs: Any, scene: Any,
                                                                   tmp_path: Path) -> None:
        """Point 10: Generate never reads a plain 8-bit still's pixels on Blender's main thread; frame 0 is exact."""
        still = _job(scene, tmp_path)
        fresh = bpy.data.images.load(bpy.path.abspath(still.filepath), check_existing=False)
        scene.stillflow.image = fresh
        assert not fresh.has_data  # Blender has not decoded this datablock yet
        assert bpy.ops.stillflow.generate() == {"FINISHED"}
        assert scene.stillflow.status.startswith("Done: 6 frames"), scene.stillflow.status
        assert not fresh.has_data  # ... and Generate did not either: the backend decoded the file
        frame0 = Path(bpy.path.abspath(scene.stillflow.result_dir)) / "frame_0000.png"
        assert (file_pixels(frame0) == file_pixels(bpy.path.abspath(still.filepath))).all()
