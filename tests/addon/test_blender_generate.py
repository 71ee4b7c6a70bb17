"""Generate against a real CPU backend process from real bpy, then use the loop (compositor, VSE, material, batch).

Runs under ``.venv-blender``; the backend is started by the add-on itself with ``<repo>/.venv/bin/python``.
"""
from __future__ import annotations

import importlib
import json
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Iterator

import numpy as np
import pytest

from tests.addon.blender_probe import file_pixels, render_frames

bpy = pytest.importorskip("bpy")

pytestmark = [pytest.mark.blender, pytest.mark.slow]

FRAMES = 4
SIZE = (48, 32)


def _still(folder: Path, name: str, seed: int) -> object:
    """A 48 x 32 still with smooth structure (so motion shows), saved as PNG and loaded from disk."""
    width, height = SIZE
    yy, xx = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    pixels = np.ones((height, width, 4), np.float32)
    for c in range(3):
        pixels[..., c] = 0.5 + 0.4 * np.sin(xx / (3.0 + c) + rng.uniform(0, 6)) * np.cos(yy / 5.0)
    image = bpy.data.images.new(name, width, height, alpha=False)
    image.pixels.foreach_set(pixels.ravel())
    image.filepath_raw = str(folder / f"{name}.png")
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)
    return bpy.data.images.load(str(folder / f"{name}.png"), check_existing=False)


def _mask() -> object:
    """Region: the middle square; arrows layer: one arrow to the right and one anchor."""
    mask = bpy.data.masks.new("sky")
    region = mask.layers.new(name="region")
    spline = region.splines.new()
    spline.points.add(3)
    for point, co in zip(spline.points, [(0.2, 0.3), (0.8, 0.3), (0.8, 0.7), (0.2, 0.7)]):
        point.co = co
    for point in spline.points:
        point.handle_left_type = point.handle_right_type = "VECTOR"
    spline.use_cyclic = spline.use_fill = True
    arrows = mask.layers.new(name="arrows")
    arrow = arrows.splines.new()
    arrow.points.add(1)
    arrow.points[0].co, arrow.points[1].co = (0.3, 0.5), (0.9, 0.5)
    return mask


def _read_png_frames(backend_python: str, paths: list[str]) -> np.ndarray:
    """Frames decoded independently of Blender (OpenCV in the backend env): (N, H, W, 3) uint8 RGB."""
    out = Path(paths[0]).parent.parent / f"{Path(paths[0]).parent.name}_decoded.npy"
    code = ("import sys, cv2, numpy as np; "
            "np.save(sys.argv[1], np.stack([cv2.imread(p, cv2.IMREAD_COLOR)[..., ::-1] for p in sys.argv[2:]]))")
    subprocess.run([backend_python, "-c", code, str(out), *paths], check=True, timeout=120)
    return np.load(out)


@pytest.fixture(scope="module")
def generated(sf: ModuleType, backend_python: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """One Generate through the operator in background mode (synchronous there)."""
    folder = tmp_path_factory.mktemp("generate")
    prefs = bpy.context.preferences.addons[sf.__name__].preferences
    prefs.backend_mode, prefs.python_path, prefs.output_dir = "LOCAL", backend_python, str(folder / "out")
    window = bpy.context.window_manager.windows[0]
    scene = bpy.data.scenes.new("generate test")
    window.scene = scene
    scene.frame_start, scene.frame_end = 1, 10
    scene.view_settings.view_transform = "Standard"
    still = _still(folder, "lake", 1)
    area = window.screen.areas[0]
    area.type = "IMAGE_EDITOR"
    area.spaces.active.image = still
    settings = scene.stillflow
    settings.image, settings.mask = still, _mask()
    settings.frames, settings.levels, settings.fps, settings.device = FRAMES, 2, 12.0, "cpu"
    settings.use_scene_fps = True
    assert bpy.ops.stillflow.generate() == {"FINISHED"}
    yield {"scene": scene, "still": still, "area": area, "folder": folder, "backend_python": backend_python}
    sf.runner.CONNECTION.close()


class TestGenerate:
    def test_result_image(self, generated: dict, sf: ModuleType) -> None:
        settings = generated["scene"].stillflow
        loop = settings.result
        assert loop is not None and loop.source == "SEQUENCE"
        assert settings.result_frames == FRAMES and not settings.is_running
        assert settings.status.startswith(f"Done: {FRAMES} frames")
        files = sorted(Path(settings.result_dir).glob("frame_*.png"))
        assert [f.name for f in files] == [f"frame_{i:04d}.png" for i in range(FRAMES)]

    def test_image_editor_plays_loop(self, generated: dict) -> None:
        space = generated["area"].spaces.active
        loop = generated["scene"].stillflow.result
        assert space.image == loop
        user = space.image_user
        assert (user.frame_duration, user.frame_start, user.frame_offset) == (FRAMES, 1, -1)
        assert user.use_cyclic and user.use_auto_refresh

    def test_pixels_match_backend_files(self, generated: dict) -> None:
        settings = generated["scene"].stillflow
        loop = settings.result
        paths = [str(p) for p in sorted(Path(settings.result_dir).glob("frame_*.png"))]
        expected = _read_png_frames(generated["backend_python"], paths)
        assert expected.shape == (FRAMES, SIZE[1], SIZE[0], 3)
        texture = bpy.data.textures.new("probe", "IMAGE")
        texture.image = loop
        width, height = SIZE
        for index in range(FRAMES):  # the sequence Image's own frames, through an ImageUser
            texture.image_user.frame_current = index
            assert Path(loop.filepath_from_user(image_user=texture.image_user)).name == f"frame_{index:04d}.png"
            texture.evaluate((0.0, 0.0, 0.0))
            buffer = np.empty(width * height * loop.channels, np.float32)
            loop.pixels.foreach_get(buffer)
            got = np.round(buffer.reshape(height, width, -1)[::-1, :, :3] * 255).astype(np.uint8)
            np.testing.assert_array_equal(got, expected[index])
        bpy.data.textures.remove(texture)
        # the loop really moves inside the mask and the still stays outside it
        assert np.abs(expected[1].astype(int) - expected[0]).max() > 0

    def test_scene_fps(self, generated: dict) -> None:
        render = generated["scene"].render
        assert render.fps / render.fps_base == pytest.approx(12.0)


class TestUseResult:
    def _render(self, scene: object, folder: Path, name: str, frames: int) -> list[np.ndarray]:
        scene.render.resolution_x, scene.render.resolution_y = SIZE
        scene.render.resolution_percentage = 100
        scene.render.image_settings.file_format = "PNG"
        scene.render.image_settings.color_mode = "RGB"
        scene.render.filepath = str(folder / name / "f_####")
        scene.frame_start, scene.frame_end = 1, frames
        bpy.ops.render.render(animation=True, scene=scene.name)
        return [file_pixels(str(folder / name / f"f_{f:04d}.png")) for f in range(1, frames + 1)]

    def _expected(self, generated: dict) -> list[np.ndarray]:
        settings = generated["scene"].stillflow
        return [file_pixels(str(p)) for p in sorted(Path(settings.result_dir).glob("frame_*.png"))]

    def test_compositor(self, generated: dict) -> None:
        scene = generated["scene"]
        assert bpy.ops.stillflow.add_to_compositor() == {"FINISHED"}
        tree = scene.compositing_node_group
        node = next(n for n in tree.nodes if n.type == "IMAGE")
        assert node.image == scene.stillflow.result and node.frame_duration == FRAMES and node.use_cyclic
        scene.render.use_compositing, scene.render.use_sequencer = True, False
        rendered = self._render(scene, generated["folder"], "comp", FRAMES + 2)
        expected = self._expected(generated)
        for frame, pixels in enumerate(rendered, start=1):
            loop_frame = (frame - 1) % FRAMES
            assert np.abs(pixels.astype(int) - expected[loop_frame]).max() <= 1, f"scene frame {frame}"
        scene.compositing_node_group = None

    def test_sequencer(self, generated: dict) -> None:
        scene = generated["scene"]
        scene.stillflow.sequencer_loops = 3
        assert bpy.ops.stillflow.add_to_sequencer() == {"FINISHED"}
        strip = scene.sequence_editor.strips[-1]
        assert strip.frame_final_duration == FRAMES * 3 and strip.frame_final_start == scene.frame_start
        scene.render.use_compositing, scene.render.use_sequencer = False, True
        rendered = self._render(scene, generated["folder"], "vse", FRAMES + 2)
        expected = self._expected(generated)
        for frame, pixels in enumerate(rendered, start=1):
            assert np.abs(pixels.astype(int) - expected[(frame - 1) % FRAMES]).max() <= 1, f"scene frame {frame}"
        scene.sequence_editor.strips.remove(strip)

    def test_material(self, generated: dict) -> None:
        scene = generated["scene"]
        mesh = bpy.data.meshes.new("plane")
        obj = bpy.data.objects.new("plane", mesh)
        scene.collection.objects.link(obj)
        bpy.context.view_layer.objects.active = obj
        assert bpy.ops.stillflow.add_to_material() == {"FINISHED"}
        material = obj.active_material
        node = next(n for n in material.node_tree.nodes if n.type == "TEX_IMAGE")
        user = node.image_user
        assert node.image == scene.stillflow.result
        assert (user.frame_duration, user.frame_offset, user.use_cyclic) == (FRAMES, -1, True)
        principled = next(n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
        assert principled.inputs["Base Color"].links[0].from_node == node
        for frame in range(1, 2 * FRAMES + 1):  # the evaluated copy follows the loop (blender5.md §1.1)
            scene.frame_set(frame)
            evaluated = material.evaluated_get(bpy.context.evaluated_depsgraph_get())
            assert evaluated.node_tree.nodes[node.name].image_user.frame_current == (frame - 1) % FRAMES


class TestRegenerate:
    def test_same_image_every_user_follows(self, generated: dict, sf: ModuleType) -> None:
        """A second Generate for the still updates the one loop Image; compositor, strip, material, editor follow."""
        scene, settings = generated["scene"], generated["scene"].stillflow
        loop = settings.result
        first_take = Path(bpy.path.abspath(settings.result_dir))
        assert first_take.name == "take_0001" and first_take.parent.name == "lake.png"
        assert bpy.ops.stillflow.add_to_compositor() == {"FINISHED"}
        scene.stillflow.sequencer_loops = 2
        assert bpy.ops.stillflow.add_to_sequencer() == {"FINISHED"}
        strip = scene.sequence_editor.strips[-1]
        node = next(n for n in scene.compositing_node_group.nodes if n.type == "IMAGE")
        texture = next(n for n in bpy.data.objects["plane"].active_material.node_tree.nodes if n.type == "TEX_IMAGE")
        settings.frames = FRAMES - 1
        try:
            assert bpy.ops.stillflow.generate() == {"FINISHED"}
        finally:
            settings.frames = FRAMES
        assert settings.result.as_pointer() == loop.as_pointer() and settings.result_frames == FRAMES - 1
        assert [i.name for i in bpy.data.images if i.get("stillflow_source") == "lake.png"] == [loop.name]
        take = Path(bpy.path.abspath(settings.result_dir))
        assert take == first_take.parent / "take_0002" and first_take.is_dir()  # the first kept as history
        assert Path(bpy.path.abspath(loop.filepath)).parent == take
        user = generated["area"].spaces.active.image_user
        assert node.frame_duration == texture.image_user.frame_duration == user.frame_duration == FRAMES - 1
        assert Path(bpy.path.abspath(strip.directory)) == take and len(strip.elements) == 2 * (FRAMES - 1)
        expected = [file_pixels(str(p)) for p in sorted(take.glob("frame_*.png"))]
        scene.render.resolution_x, scene.render.resolution_y = SIZE
        rendered = render_frames(scene, generated["folder"] / "regenerated", SIZE, FRAMES, compositor=True)
        for frame, pixels in enumerate(rendered, start=1):
            assert np.abs(pixels - expected[(frame - 1) % (FRAMES - 1)]).max() <= 1, f"scene frame {frame}"
        scene.compositing_node_group = None
        scene.sequence_editor.strips.remove(strip)

    def test_backend_exr_frames_reproduce_the_png_loop(self, generated: dict, sf: ModuleType) -> None:
        """EXR frames from the backend hold sRGB-encoded floats; the tagged loop renders like the PNG loop."""
        scene, settings = generated["scene"], generated["scene"].stillflow
        png_take = Path(bpy.path.abspath(settings.result_dir)).parent / "take_0001"
        expected = [file_pixels(str(p)) for p in sorted(png_take.glob("frame_*.png"))]
        assert len(expected) == FRAMES
        settings.format = "exr"
        try:
            assert bpy.ops.stillflow.generate() == {"FINISHED"}
        finally:
            settings.format = "png"
        loop = settings.result
        assert loop.filepath.endswith("frame_0000.exr") and loop.colorspace_settings.name == "sRGB"
        assert bpy.ops.stillflow.add_to_compositor() == {"FINISHED"}
        rendered = render_frames(scene, generated["folder"] / "exr", SIZE, FRAMES, compositor=True)
        for frame, pixels in enumerate(rendered, start=1):
            assert np.abs(pixels - expected[frame - 1]).max() <= 1, f"scene frame {frame}"
        scene.compositing_node_group = None


def _mask_png(path: Path) -> None:
    """A mask image file whose left half is white (moves)."""
    width, height = SIZE
    pixels = np.zeros((height, width, 4), np.float32)
    pixels[..., 3] = 1.0
    pixels[:, : width // 2, :3] = 1.0
    image = bpy.data.images.new("batch mask", width, height)
    image.pixels.foreach_set(pixels.ravel())
    image.filepath_raw, image.file_format = str(path), "PNG"
    image.save()
    bpy.data.images.remove(image)


class TestBatch:
    def test_own_inputs_failures_resume(self, generated: dict, sf: ModuleType) -> None:
        scene = generated["scene"]
        folder = generated["folder"] / "stills"
        folder.mkdir()
        for seed, name in enumerate(("a", "b", "d")):
            _still(folder, name, seed)
        _mask_png(folder / "a_mask.png")
        (folder / "b.hints.txt").write_text("# wind to the left\n40,16,10,16\n5,5\n")
        np.save(folder / "d_motion.npy", np.full((2, SIZE[1], SIZE[0]), 0.5, np.float32))
        (folder / "c.png").write_bytes(b"not a picture")
        batch = importlib.import_module(f"{sf.__name__}.batch")  # as a script would: from bl_ext... import batch
        stills = batch.find_stills(folder)
        assert [p.name for p in stills] == ["a.png", "b.png", "c.png", "d.png"]
        editor = scene.sequence_editor_create()
        editor.strips.new_image(name="other", filepath=str(folder / "a.png"), channel=1, frame_start=1)
        report = batch.generate_loops(stills, timeout=300, loops=2)
        assert report.made == ["a.png", "b.png", "d.png"] and report.reused == []
        assert [name for name, _ in report.failed] == ["c.png"] and "c.png" in report.failed[0][1]
        assert report.summary().startswith("batch: 3 made, 0 reused (already there), 1 failed")

        strips = sorted((s for s in editor.strips if s.name != "other"), key=lambda s: s.frame_final_start)
        assert [s.frame_final_duration for s in strips] == [2 * FRAMES] * 3
        assert {s.channel for s in strips} == {2}, "every loop on one channel"
        assert [s.frame_final_start for s in strips] == [1, 1 + 2 * FRAMES, 1 + 4 * FRAMES]
        assert scene.frame_end == strips[-1].frame_final_end - 1

        def manifest(name: str) -> dict:
            return json.loads((Path(bpy.path.abspath(bpy.data.images[name].filepath)).parent / "manifest.json")
                              .read_text())

        a, b, d = (manifest(name) for name in report.images)
        assert a["mask_fraction"] == pytest.approx(0.5, abs=0.08)  # a_mask.png, not the scene's Mask
        assert abs(b["mask_fraction"] - a["mask_fraction"]) > 0.05  # the scene's Mask
        assert b["motion"]["kind"] == "hints" and len(b["motion"]["hints"]) == 1
        np.testing.assert_allclose(b["motion"]["hints"][0], [40, 16, 10, 16], atol=1e-4)
        # d_motion.npy, not the scene's arrows (the backend reads no paths: the file travels as bytes)
        assert d["motion"]["kind"] == "file" and d["motion"]["path"].endswith(".npy")
        settings = scene.stillflow
        assert settings.mask_source == "MASK" and settings.motion_source == "HINTS" and settings.arrows is None
        assert not [m for m in bpy.data.masks if m.name.startswith("stillflow hints")]

        for strip in strips:
            editor.strips.remove(strip)
        takes = sorted(p.relative_to(generated["folder"]) for p in (generated["folder"] / "out").rglob("take_*"))
        again = batch.generate_loops(stills, timeout=300, loops=2)  # resume: nothing to generate again
        assert again.reused == ["a.png", "b.png", "d.png"] and again.made == []
        assert again.images == report.images
        assert sorted(p.relative_to(generated["folder"]) for p in (generated["folder"] / "out").rglob("take_*")) == takes
        editor.strips.remove(editor.strips["other"])

    def test_timeout(self, generated: dict, sf: ModuleType) -> None:
        error = sf.core.lib.load("errors").BackendUnavailable
        settings = generated["scene"].stillflow
        settings.frames = sf.core.lib.load("options").MAX_FRAMES  # long enough to still be running
        try:
            with pytest.raises(error, match="did not finish 'lake.png' within 0.001 s"):
                sf.runner.generate_sync(bpy.context, generated["still"], timeout=0.001)
        finally:
            settings.frames = FRAMES
        assert settings.status.startswith("Error: the backend did not finish") and not settings.is_running
