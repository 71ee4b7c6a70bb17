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


def _decoded(backend_python: str, folder: Path, pattern: str = "frame_*.png") -> np.ndarray:
    """The folder's PNGs (the result's frames) decoded by OpenCV in the backend env: (N, H, W, 3) int RGB, top-down."""
    paths = [str(p) for p in sorted(folder.glob(pattern))]
    out = folder.parent / f"{folder.name}_{Path(pattern).stem.strip('*_')}_decoded.npy"
    code = ("import sys, cv2, numpy as np; "
            "np.save(sys.argv[1], np.stack([cv2.imread(p, cv2.IMREAD_COLOR)[..., ::-1] for p in sys.argv[2:]]))")
    subprocess.run([backend_python, "-c", code, str(out), *paths], check=True, timeout=120)
    return np.load(out).astype(int)


@pytest.fixture(scope="module", autouse=True)
def window_scene() -> Iterator[None]:
    """Give the window its scene back after this module (a later module's tests use the window's scene)."""
    window = bpy.context.window_manager.windows[0]
    previous = window.scene
    yield
    window.scene = previous


def _scene(sf: ModuleType, backend_python: str, folder: Path, name: str) -> tuple[object, object]:
    """(scene, still): a new scene shown in the window with a saved still, a local backend and small options."""
    prefs = bpy.context.preferences.addons[sf.__name__].preferences
    prefs.backend_mode, prefs.python_path, prefs.output_dir = "LOCAL", backend_python, str(folder / "out")
    window = bpy.context.window_manager.windows[0]
    scene = bpy.data.scenes.new(name)
    window.scene = scene
    still = saved_still(folder, "lake", _rgba())
    area = window.screen.areas[0]
    area.type = "IMAGE_EDITOR"
    area.spaces.active.image = still
    settings = scene.stillflow
    settings.image = still
    settings.frames, settings.levels, settings.device, settings.refine_mask = FRAMES, 2, "cpu", False
    return scene, still


@pytest.fixture(scope="module")
def generated(sf: ModuleType, backend_python: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A sky region (arrows to the right) and a water region (sway) in one Generate, in background mode."""
    folder = tmp_path_factory.mktemp("regions")
    scene, still = _scene(sf, backend_python, folder, "regions test")
    settings = scene.stillflow
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


def _whole_mask() -> object:
    """A Mask with one closed filled square over the whole mask frame: the whole still is the region."""
    return region_mask("trees", [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)], ((0.4, 0.5), (0.6, 0.5)))


def _grey(folder: Path, name: str, value_left: float, value_right: float, shape: tuple[int, int]) -> object:
    """A grayscale image saved as folder/name.png and loaded back: its left half one value, its right half another."""
    height, width = shape
    rgba = np.ones((height, width, 4), np.float32)
    rgba[:, : width // 2, :3], rgba[:, width // 2:, :3] = value_left, value_right
    return saved_still(folder, name, rgba)


def _gone(folder: Path) -> object:
    """An amplitude image whose file was deleted after it was loaded."""
    image = _grey(folder, "gone", 0.0, 1.0, (HEIGHT, WIDTH))
    (folder / "gone.png").unlink()
    return image


@pytest.fixture(scope="module")
def amplitude_generated(sf: ModuleType, backend_python: str,
                        tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """One swaying region over the whole still whose amplitude image is black on its left half, generated."""
    folder = tmp_path_factory.mktemp("amplitude")
    scene, still = _scene(sf, backend_python, folder, "amplitude test")
    settings = scene.stillflow
    assert bpy.ops.stillflow.region_add() == {"FINISHED"}
    region = settings.regions[0]
    region.name, region.mask, region.motion = "trees", _whole_mask(), "SWAY"
    region.amplitude, region.cycles, region.sway_angle = 2.0, 1, 0.0
    region.amplitude_image = _grey(folder, "trees_amplitude", 0.0, 1.0, (HEIGHT, WIDTH))
    assert bpy.ops.stillflow.generate() == {"FINISHED"}
    yield {"scene": scene, "folder": folder, "backend_python": backend_python, "still": still}
    sf.runner.CONNECTION.close()


class TestAmplitudeImage:
    def test_black_half_holds_still(self, amplitude_generated: dict) -> None:
        settings = amplitude_generated["scene"].stillflow
        assert settings.status.startswith(f"Done: {FRAMES} frames"), settings.status
        python, folder = amplitude_generated["backend_python"], amplitude_generated["folder"]
        frames, (still,) = _decoded(python, Path(settings.result_dir)), _decoded(python, folder, "lake.png")
        assert frames.shape == (FRAMES, HEIGHT, WIDTH, 3)
        left, right = slice(0, WIDTH // 2), slice(WIDTH // 2 + 8, WIDTH - 6)
        for t in range(FRAMES):
            assert np.array_equal(frames[t][:, left], still[:, left]), ("black half", t)
        for t in range(1, FRAMES):
            assert np.abs(frames[t][6:42, right] - still[6:42, right]).mean() > 1.0, ("white half", t)

    def test_an_older_backend_is_reported(self, amplitude_generated: dict, monkeypatch: pytest.MonkeyPatch,
                                          sf: ModuleType) -> None:
        """A backend without the region_amplitude capability (its hello, as an older one answers): one line."""
        client = sf.runner.CONNECTION.client
        monkeypatch.setitem(client._hello, "capabilities",
                            [c for c in client._hello["capabilities"] if c != "region_amplitude"])
        with pytest.raises(RuntimeError, match="this backend does not know sway amplitude images"):
            bpy.ops.stillflow.generate()
        assert amplitude_generated["scene"].stillflow.status.startswith("Error: this backend does not know sway")

    @pytest.mark.parametrize("make, message", [
        (lambda folder: _grey(folder, "tall", 0.0, 1.0, (WIDTH, HEIGHT)),
         "region 'trees': the amplitude image is 48x64 px but the still is 64x48 px"),
        (_gone, "region 'trees': amplitude image 'gone.png' is missing: no file at "),
    ], ids=["shape", "missing"])
    def test_a_bad_one_names_the_region(self, amplitude_generated: dict, make: object, message: str) -> None:
        region = amplitude_generated["scene"].stillflow.regions[0]
        kept = region.amplitude_image
        try:
            region.amplitude_image = make(amplitude_generated["folder"])
            with pytest.raises(RuntimeError, match=message):
                bpy.ops.stillflow.generate()
        finally:
            region.amplitude_image = kept

    def test_saved_with_the_blend(self, amplitude_generated: dict) -> None:
        path = amplitude_generated["folder"] / "amplitude.blend"
        assert bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True) == {"FINISHED"}
        with bpy.data.libraries.load(str(path)) as (_source, target):
            target.scenes = ["amplitude test"]
        loaded = target.scenes[0].stillflow.regions[0]
        assert (loaded.motion, loaded.amplitude_image.name.split(".")[0]) == ("SWAY", "trees_amplitude")
        bpy.data.scenes.remove(target.scenes[0])
