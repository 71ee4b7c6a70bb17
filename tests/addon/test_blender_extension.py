"""The extension in real bpy 5.0.1 (background): install from the zip, register, masks, arrows, errors.

Runs under ``.venv-blender`` (skips elsewhere). Tests that need the backend are in
test_blender_generate.py.
"""
from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

pytestmark = pytest.mark.blender

REPO = Path(__file__).resolve().parents[2]


def make_mask(name: str, *, square: tuple[float, float] | None = (0.25, 0.75),
              arrows: list[list[tuple[float, float]]] = (), anchors: list[tuple[float, float]] = ()) -> object:
    """A Mask datablock: a closed filled square region and an arrows layer (blender5.md §1.3 recipe)."""
    mask = bpy.data.masks.new(name)
    if square is not None:
        lo, hi = square
        region = mask.layers.new(name="region")
        spline = region.splines.new()
        spline.points.add(3)
        for point, co in zip(spline.points, [(lo, lo), (hi, lo), (hi, hi), (lo, hi)]):
            point.co = co
        for point in spline.points:
            point.handle_left_type = point.handle_right_type = "VECTOR"
        spline.use_cyclic = spline.use_fill = True
    if arrows or anchors:
        layer = mask.layers.new(name="arrows")
        for points in [*arrows, *[[a] for a in anchors]]:
            spline = layer.splines.new()
            if len(points) > 1:
                spline.points.add(len(points) - 1)
            for point, co in zip(spline.points, points):
                point.co = co
            spline.use_cyclic = spline.use_fill = False
    return mask


class TestInstall:
    def test_validate_zip(self, extension_zips: dict[str, Path]) -> None:
        import subprocess

        blender_ext = next((REPO / ".venv-blender").glob("lib/python3.*/site-packages/bpy/5.0/scripts/addons_core/"
                                                         "bl_pkg/cli/blender_ext.py"))
        for platform in ("linux_x64", "windows_x64", "macos_arm64"):
            done = subprocess.run([sys.executable, str(blender_ext), "validate", str(extension_zips[platform])],
                                  capture_output=True, text=True)
            assert done.returncode == 0, done.stdout + done.stderr

    def test_zip_contents(self, extension_zips: dict[str, Path]) -> None:
        import zipfile

        names = zipfile.ZipFile(extension_zips["linux_x64"]).namelist()
        for needed in ("blender_manifest.toml", "__init__.py", "_vendor/stillflow/link/client.py",
                       "_vendor/stillflow/link/protocol.py", "_vendor/stillflow/link/launcher.py", "_vendor/stillflow/stages/hints.py"):
            assert needed in names
        wheels = [n for n in names if n.startswith("wheels/")]
        assert any("pyzmq" in w and "manylinux" in w for w in wheels)
        assert any("msgpack" in w and "manylinux" in w for w in wheels)
        assert not any("win_amd64" in w or "macosx" in w for w in wheels)
        assert not any(n.endswith(("pipeline.py", "cli.py")) or "torch" in n for n in names)

    def test_registered(self, sf: ModuleType) -> None:
        assert sf.__name__ == "bl_ext.user_default.stillflow"
        for op in ("generate", "cancel", "check_backend", "add_to_compositor", "add_to_sequencer",
                   "add_to_material", "batch_generate"):
            assert hasattr(bpy.ops.stillflow, op) and getattr(bpy.ops.stillflow, op).idname() == f"STILLFLOW_OT_{op}"
        for panel in ("STILLFLOW_PT_main", "STILLFLOW_PT_advanced", "STILLFLOW_PT_result", "STILLFLOW_PT_preview"):
            assert getattr(bpy.types, panel).bl_space_type == "IMAGE_EDITOR"
        prefs = bpy.context.preferences.addons[sf.__name__].preferences
        assert prefs.backend_mode == "LOCAL"
        settings = bpy.context.scene.stillflow
        defaults = sf.core.lib.load("options").RenderOptions()
        assert (settings.frames, settings.fps, settings.speed, settings.format) == (
            defaults.frames, pytest.approx(defaults.fps), pytest.approx(defaults.speed), defaults.format)
        assert not hasattr(settings, "loops"), "the render option Loops did nothing in Blender"
        assert settings.show_motion_overlay is False and settings.show_loop_preview is False

    def test_disable_enable(self, sf: ModuleType) -> None:
        import addon_utils

        addon_utils.disable(sf.__name__)
        assert not hasattr(bpy.types.Scene, "stillflow") and not hasattr(bpy.types, "STILLFLOW_PT_main")
        addon_utils.enable(sf.__name__, default_set=True)
        assert hasattr(bpy.types.Scene, "stillflow") and hasattr(bpy.ops.stillflow, "generate")


class TestMasks:
    def test_rasterise_square(self, sf: ModuleType) -> None:
        mask = make_mask("square", arrows=[[(0.1, 0.1), (0.9, 0.9)]])
        raster = sf.inputs.rasterise_mask(mask, 48, 48)
        assert raster.shape == (48, 48)
        assert float((raster > 0.5).mean()) == pytest.approx(0.25, abs=0.005)
        assert raster[:12, :12].max() == 0.0 and raster[12:36, 12:36].min() == 1.0
        # the arrows layer was hidden only while rendering
        assert all(not layer.hide_render for layer in mask.layers)

    def test_rasterise_agrees_with_point_mapping(self, sf: ModuleType) -> None:
        mask = make_mask("wide", square=(0.25, 0.75))
        raster = sf.inputs.rasterise_mask(mask, 64, 40)
        rows, cols = np.nonzero(raster > 0.5)
        corners = sf.core.mask_sources.normalised_to_pixels([(0.25, 0.75), (0.75, 0.25)], 64, 40)
        # pixel centres inside the square: from the first centre >= the edge to the last one <= it
        (x0, y0), (x1, y1) = corners
        assert (cols.min(), cols.max()) == (int(np.ceil(x0)), int(np.floor(x1)))
        assert (rows.min(), rows.max()) == (int(np.ceil(y0)), int(np.floor(y1)))

    def test_arrows_from_splines(self, sf: ModuleType, scene: object) -> None:
        mask = make_mask("arrows", arrows=[[(0.25, 0.5), (0.5, 0.55), (0.75, 0.5)]], anchors=[(0.5, 0.25)])
        scene.stillflow.mask = mask
        hints, anchors = sf.inputs.motion_hints(scene.stillflow, 48, 32)
        assert len(hints) == 1 and hints[0] == pytest.approx((11.5, 15.5, 35.5, 15.5))
        assert len(anchors) == 1 and anchors[0] == pytest.approx((23.5, 27.5))

    def test_painted_mask_image(self, sf: ModuleType, scene: object) -> None:
        image = bpy.data.images.new("painted", 8, 4, alpha=True)
        pixels = np.zeros((4, 8, 4), np.float32)
        pixels[..., 3] = 1.0
        pixels[3, :2, :3] = 1.0  # top row (Blender rows are bottom-up)
        image.pixels.foreach_set(pixels.ravel())
        scene.stillflow.mask_source, scene.stillflow.mask_image = "IMAGE", image
        mask = sf.inputs.mask_array(scene.stillflow, 8, 4)
        expected = np.zeros((4, 8), np.float32)
        expected[0, :2] = 1.0
        np.testing.assert_array_equal(mask, expected)


def saved_still(tmp_path: Path, name: str = "still.png", size: tuple[int, int] = (48, 32)) -> object:
    """A small still saved as PNG and loaded back from disk (as an artist's file would be)."""
    width, height = size
    image = bpy.data.images.new(name, width, height, alpha=False)
    rng = np.random.default_rng(7)
    pixels = np.ones((height, width, 4), np.float32)
    pixels[..., :3] = rng.integers(0, 256, (height, width, 3)) / 255.0
    image.pixels.foreach_set(pixels.ravel())
    image.filepath_raw = str(tmp_path / name)
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)
    return bpy.data.images.load(str(tmp_path / name), check_existing=False)


class TestErrors:
    """Each message the artist sees (operator report -> RuntimeError in bpy.ops, and the panel status)."""

    def test_image_not_saved(self, sf: ModuleType, scene: object) -> None:
        scene.stillflow.image = bpy.data.images.new("unsaved", 8, 8)
        with pytest.raises(RuntimeError, match="image 'unsaved' is not saved or packed"):
            bpy.ops.stillflow.generate()
        assert scene.stillflow.status.startswith("Error: image 'unsaved' is not saved")

    def test_mask_empty(self, sf: ModuleType, scene: object, tmp_path: Path) -> None:
        scene.stillflow.image = saved_still(tmp_path)
        scene.stillflow.mask = make_mask("empty", square=None, arrows=[[(0.2, 0.5), (0.8, 0.5)]])
        with pytest.raises(RuntimeError, match="the mask 'empty' is empty"):
            bpy.ops.stillflow.generate()

    def test_arrows_missing(self, sf: ModuleType, scene: object, tmp_path: Path) -> None:
        scene.stillflow.image = saved_still(tmp_path)
        scene.stillflow.mask = make_mask("no arrows")
        with pytest.raises(RuntimeError, match="motion arrows are missing \\(Mask 'no arrows'\\)"):
            bpy.ops.stillflow.generate()

    def test_no_mask_chosen(self, sf: ModuleType, scene: object, tmp_path: Path) -> None:
        scene.stillflow.image = saved_still(tmp_path)
        scene.stillflow.motion_source = "FILE"
        with pytest.raises(RuntimeError, match="no motion file chosen"):
            bpy.ops.stillflow.generate()

    def test_backend_not_running(self, sf: ModuleType, scene: object, tmp_path: Path) -> None:
        import socket

        with socket.socket() as probe:  # a loopback port nobody listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        prefs = bpy.context.preferences.addons[sf.__name__].preferences
        prefs.backend_mode, prefs.endpoint, prefs.timeout = "REMOTE", f"tcp://127.0.0.1:{port}", 0.2
        try:
            with pytest.raises(RuntimeError, match=f"Cannot connect: .*127.0.0.1:{port}"):
                bpy.ops.stillflow.check_backend()
            scene.stillflow.image = saved_still(tmp_path)
            scene.stillflow.mask = make_mask("ok", arrows=[[(0.3, 0.5), (0.7, 0.5)]])
            with pytest.raises(RuntimeError, match=f"127.0.0.1:{port}"):
                bpy.ops.stillflow.generate()
        finally:
            prefs.backend_mode, prefs.timeout = "LOCAL", 2.5
            sf.runner.CONNECTION.close()

    def test_poll_messages(self, sf: ModuleType, scene: object) -> None:
        assert not bpy.ops.stillflow.generate.poll()
        assert not bpy.ops.stillflow.add_to_sequencer.poll()
        assert not bpy.ops.stillflow.cancel.poll()
