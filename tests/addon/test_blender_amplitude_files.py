"""A region's amplitude image that is a plain saved 8-bit PNG/JPEG travels as its file (real bpy, real backend).

Generate reads none of its pixels on Blender's main thread; the backend decodes the file to the bits Blender's
pixels give, so the frames equal those of the pixel route (the same image packed, which forces that route), and a
backend without the ``region_amplitude_file`` capability still gets the pixels. Runs under ``.venv-blender``; the
backend is started by the add-on itself with ``<repo>/.venv/bin/python``.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from types import ModuleType
from typing import Iterator

import numpy as np
import pytest

# window_scene: that module's autouse fixture, which gives the window its scene back after this module too
from tests.addon.test_blender_regions import FRAMES, HEIGHT, WIDTH, _decoded, _scene, _whole_mask, window_scene  # noqa: F401

bpy = pytest.importorskip("bpy")

pytestmark = [pytest.mark.blender, pytest.mark.slow]

FILES = {
    "rgb.png": "np.dstack([levels, levels[::-1], levels // 2])",  # channels differ: their mean is read
    "grey.png": "levels",
    "rgb.jpg": "np.dstack([levels // 2, levels, levels[::-1]])",
}


def _write(backend_python: str, path: Path) -> None:
    """An amplitude image at ``path`` written by OpenCV in the backend env: dark on the left, bright on the right."""
    code = ("import sys, cv2, numpy as np; rng = np.random.default_rng(11); "
            f"levels = rng.integers(0, 256, ({HEIGHT}, {WIDTH}), dtype=np.uint8); levels[:, :{WIDTH // 2}] //= 6; "
            f"image = {FILES[path.name]}; "
            "assert cv2.imwrite(sys.argv[1], image[..., ::-1] if image.ndim == 3 else image)")
    subprocess.run([backend_python, "-c", code, str(path)], check=True, timeout=120)


@pytest.fixture(scope="module")
def swaying(sf: ModuleType, backend_python: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A scene whose one region sways over the whole still; the test picks its amplitude image."""
    folder = tmp_path_factory.mktemp("amplitude_files")
    scene, _still = _scene(sf, backend_python, folder, "amplitude files test")
    assert bpy.ops.stillflow.region_add() == {"FINISHED"}
    region = scene.stillflow.regions[0]
    region.name, region.mask, region.motion = "trees", _whole_mask(), "SWAY"
    region.amplitude, region.cycles, region.sway_angle = 2.0, 1, 0.0
    yield {"scene": scene, "folder": folder, "backend_python": backend_python}
    sf.runner.CONNECTION.close()


def _generate(swaying: dict, image: object) -> np.ndarray:
    """Generate with ``image`` as the region's amplitude image; the frames (N, H, W, 3)."""
    settings = swaying["scene"].stillflow
    settings.regions[0].amplitude_image = image
    assert bpy.ops.stillflow.generate() == {"FINISHED"}
    assert settings.status.startswith(f"Done: {FRAMES} frames"), settings.status
    return _decoded(swaying["backend_python"], Path(settings.result_dir))


def _fresh(swaying: dict, name: str) -> object:
    """The amplitude file ``name`` written and loaded into a new datablock, not yet decoded by Blender."""
    path = swaying["folder"] / name
    if not path.exists():
        _write(swaying["backend_python"], path)
    image = bpy.data.images.load(str(path), check_existing=False)
    assert not image.has_data
    return image


@pytest.mark.parametrize("name", sorted(FILES))
def test_a_saved_file_is_sent_undecoded_and_reads_as_its_pixels(swaying: dict, name: str) -> None:
    image = _fresh(swaying, name)
    from_file = _generate(swaying, image)
    assert not image.has_data  # Generate never read its pixels: the backend decoded the file
    left, right = slice(0, WIDTH // 2 - 8), slice(WIDTH // 2 + 8, WIDTH - 6)
    assert np.abs(from_file[2][6:42, right] - from_file[0][6:42, right]).mean() > \
        2 * np.abs(from_file[2][6:42, left] - from_file[0][6:42, left]).mean()  # the bright half sways more
    image.pack()  # a packed image takes the pixel route: Blender's pixels, read on the main thread
    from_pixels = _generate(swaying, image)
    assert image.has_data
    np.testing.assert_array_equal(from_file, from_pixels)


def test_an_older_backend_gets_the_pixels(swaying: dict, sf: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend without region_amplitude_file (its hello, as an older one answers): the pixels go instead."""
    image = _fresh(swaying, "rgb.png")
    expected = _generate(swaying, image)
    assert not image.has_data
    client = sf.runner.CONNECTION.client
    monkeypatch.setitem(client._hello, "capabilities",
                        [c for c in client._hello["capabilities"] if c != "region_amplitude_file"])
    np.testing.assert_array_equal(_generate(swaying, image), expected)
    assert image.has_data
