"""Motion regions from real bpy: a sky region (arrows) and a water region (sway) in one Generate.

Runs under ``.venv-blender``; the backend is started by the add-on itself with ``<repo>/.venv/bin/python``.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from types import ModuleType
from typing import Iterator

import numpy as np
import pytest

from tests.addon.blender_scenes import region_mask, saved_still

bpy = pytest.importorskip("bpy")

pytestmark = [pytest.mark.blender, pytest.mark.slow]

FRAMES = 6
WIDTH, HEIGHT = 64, 48


def _rgba() -> np.ndarray:
    """(H, W, 4) float32 with fine structure everywhere (rows bottom-up, as Blender stores them)."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    rng = np.random.default_rng(5)
    rgba = np.ones((HEIGHT, WIDTH, 4), np.float32)
    for c in range(3):
        rgba[..., c] = 0.5 + 0.3 * np.sin(xx / (2.0 + c)) * np.cos(yy / 3.0) + 0.1 * rng.random((HEIGHT, WIDTH))
    return rgba


def _water_mask() -> object:
    """A Mask with one closed filled rectangle over the bottom third (normalised, origin bottom-left)."""
    mask = bpy.data.masks.new("water")
    spline = mask.layers.new(name="region").splines.new()
    spline.points.add(3)
    for point, co in zip(spline.points, [(0.05, 0.05), (0.95, 0.05), (0.95, 0.35), (0.05, 0.35)]):
        point.co = co
    for point in spline.points:
        point.handle_left_type = point.handle_right_type = "VECTOR"
    spline.use_cyclic = spline.use_fill = True
    return mask


def _decoded(backend_python: str, folder: Path) -> np.ndarray:
    """The result's frames decoded by OpenCV in the backend env: (N, H, W, 3) int RGB, rows top-down."""
    paths = [str(p) for p in sorted(folder.glob("frame_*.png"))]
    out = folder.parent / f"{folder.name}_decoded.npy"
    code = ("import sys, cv2, numpy as np; "
            "np.save(sys.argv[1], np.stack([cv2.imread(p, cv2.IMREAD_COLOR)[..., ::-1] for p in sys.argv[2:]]))")
    subprocess.run([backend_python, "-c", code, str(out), *paths], check=True, timeout=120)
    return np.load(out).astype(int)


@pytest.fixture(scope="module")
def generated(sf: ModuleType, backend_python: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A sky region (arrows to the right) and a water region (sway) in one Generate, in background mode."""
    folder = tmp_path_factory.mktemp("regions")
    prefs = bpy.context.preferences.addons[sf.__name__].preferences
    prefs.backend_mode, prefs.python_path, prefs.output_dir = "LOCAL", backend_python, str(folder / "out")
    window = bpy.context.window_manager.windows[0]
    scene = bpy.data.scenes.new("regions test")
    window.scene = scene
    still = saved_still(folder, "lake", _rgba())
    area = window.screen.areas[0]
    area.type = "IMAGE_EDITOR"
    area.spaces.active.image = still
    settings = scene.stillflow
    settings.image = still
    settings.frames, settings.levels, settings.device, settings.refine_mask = FRAMES, 2, "cpu", False
    sky = region_mask("sky", [(0.05, 0.65), (0.95, 0.65), (0.95, 0.95), (0.05, 0.95)], ((0.2, 0.8), (0.8, 0.8)))
    assert bpy.ops.stillflow.region_add() == {"FINISHED"}
    assert bpy.ops.stillflow.region_add() == {"FINISHED"}
    first, second = settings.regions
    first.name, first.mask, first.motion = "sky", sky, "ARROWS"
    second.name, second.mask, second.motion = "water", _water_mask(), "SWAY"
    second.amplitude, second.cycles, second.sway_angle = 2.0, 1, 0.0
    assert settings.use_regions
    assert bpy.ops.stillflow.generate() == {"FINISHED"}
    yield {"scene": scene, "folder": folder, "backend_python": backend_python, "still": still}
    sf.runner.CONNECTION.close()


class TestRegionsGenerate:
    def test_each_region_moves_and_nothing_else(self, generated: dict) -> None:
        settings = generated["scene"].stillflow
        assert settings.status.startswith(f"Done: {FRAMES} frames"), settings.status
        frames = _decoded(generated["backend_python"], Path(settings.result_dir))
        assert frames.shape == (FRAMES, HEIGHT, WIDTH, 3)
        sky, middle, water = slice(6, 14), slice(20, 28), slice(34, 42)  # image rows, top-down
        inner = slice(12, 52)
        for t in range(1, FRAMES):
            assert np.abs(frames[t][sky, inner] - frames[0][sky, inner]).mean() > 1.0, ("sky", t)
            assert np.abs(frames[t][water, inner] - frames[0][water, inner]).mean() > 1.0, ("water", t)
            assert np.array_equal(frames[t][middle], frames[0][middle]), ("between", t)

    def test_regions_are_saved_with_the_blend(self, generated: dict) -> None:
        path = generated["folder"] / "regions.blend"
        assert bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True) == {"FINISHED"}
        with bpy.data.libraries.load(str(path)) as (source, target):
            target.scenes = ["regions test"]
        loaded = target.scenes[0].stillflow
        # the loaded copies of the Masks are named sky.001 and water.001 beside the open ones
        assert [(r.name, r.mask.name.split(".")[0], r.motion) for r in loaded.regions] == [
            ("sky", "sky", "ARROWS"), ("water", "water", "SWAY")]
        assert loaded.use_regions and loaded.regions[1].amplitude == 2.0
        bpy.data.scenes.remove(target.scenes[0])
