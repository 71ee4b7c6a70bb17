"""Loop placement in real bpy 5.0.1 (issue 12, points 3 and 5): regenerate in place, history, undo, results
beside the .blend (moved on first save), frame colour spaces, the Standard-view fix, online access.

Frames are written by the add-on's own ``results.write_frames`` (the Connect-mode writer) into a job
folder and placed with ``runner.place_result`` exactly as a finished job is; the backend itself is
exercised in test_blender_generate.py.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import numpy as np
import pytest

from tests.addon.blender_probe import render_frames

bpy = pytest.importorskip("bpy")

pytestmark = [pytest.mark.blender]

SIZE = (10, 8)
PHOTO = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "stills" / "debian-life_by_Aitzol_Berasategi.jpg"


def _frames(count: int, seed: int) -> np.ndarray:
    """(count, H, W, 3) uint8 frames of random colours (every frame different)."""
    return np.random.default_rng(seed).integers(0, 256, (count, SIZE[1], SIZE[0], 3), dtype=np.uint8)


@pytest.fixture()
def out(sf: ModuleType, tmp_path: Path) -> Iterator[Any]:
    """Preferences with an Output Folder in tmp_path and a history of 2; restored afterwards."""
    prefs = bpy.context.preferences.addons[sf.__name__].preferences
    saved = prefs.output_dir, prefs.keep_results
    prefs.output_dir, prefs.keep_results = str(tmp_path / "out"), 2
    yield prefs
    prefs.output_dir, prefs.keep_results = saved


def _place(sf: ModuleType, scene: Any, folder: Path, frames: np.ndarray, fmt: str = "png",
           name: str = "still.png") -> Any:
    """Write frames as a job folder and place them like a finished job."""
    job = folder / "jobs" / f"job{time.monotonic_ns()}"
    paths = sf.results.write_frames(frames, str(job), {"options": {"format": fmt}}, fmt)
    scene.render.resolution_x, scene.render.resolution_y = frames.shape[2], frames.shape[1]  # strips FIT to it
    scene.render.resolution_percentage = 100
    return sf.runner.place_result(scene, name, {"frame_paths": paths}, str(job), len(paths), 24.0)


def test_connect_frames_carry_a_manifest(sf: ModuleType, tmp_path: Path) -> None:
    paths = sf.results.write_frames(_frames(2, 0), str(tmp_path / "job"), {"options": {"fps": 12.0}})
    manifest = json.loads((tmp_path / "job" / "manifest.json").read_text())
    assert manifest["stillflow_version"] == sf.core.lib.stillflow().__version__
    assert manifest["files"] == [Path(p).name for p in paths] and manifest["frames"] == 2
    assert manifest["options"] == {"fps": 12.0} and manifest["format"] == "png"


class TestRegenerateInPlace:
    def test_every_user_follows(self, sf: ModuleType, scene: Any, out: Any, tmp_path: Path) -> None:
        scene.view_settings.view_transform = "Standard"
        first, second = _frames(4, 1), _frames(3, 2)
        loop = _place(sf, scene, tmp_path, first)
        node = sf.results.add_to_compositor(scene, loop, 4)
        strip = sf.results.add_to_sequencer(scene, loop, 4, 2)
        material = bpy.data.materials.new("regenerate test")
        mesh = bpy.data.meshes.new("regenerate plane")
        mesh.materials.append(material)
        scene.collection.objects.link(bpy.data.objects.new("regenerate plane", mesh))  # evaluated with the scene
        texture = sf.results.add_to_material(material, loop, 4, scene)

        again = _place(sf, scene, tmp_path, second)
        assert again.as_pointer() == loop.as_pointer() and scene.stillflow.result == loop
        assert [i.name for i in bpy.data.images if i.get("stillflow_source") == "still.png"] == [loop.name]
        # resolve(): paths are relative to whatever .blend an earlier test left loaded ("//../…")
        take = Path(bpy.path.abspath(loop.filepath)).parent.resolve()
        assert take == (Path(out.output_dir) / "still.png" / "take_0002").resolve() and loop.filepath.endswith("frame_0000.png")
        assert node.frame_duration == 3 and texture.image_user.frame_duration == 3
        assert Path(bpy.path.abspath(strip.directory)).resolve() == take and len(strip.elements) == 2 * 3
        assert [e.filename for e in strip.elements] == [f"frame_{i % 3:04d}.png" for i in range(6)]

        compositor = render_frames(scene, tmp_path / "comp", SIZE, 4, compositor=True)
        sequencer = render_frames(scene, tmp_path / "vse", SIZE, 6, compositor=False)
        for frame, pixels in enumerate(compositor, start=1):
            assert np.abs(pixels - second[(frame - 1) % 3]).max() <= 1, f"compositor, scene frame {frame}"
        for frame, pixels in enumerate(sequencer, start=1):
            assert np.abs(pixels - second[(frame - 1) % 3]).max() <= 1, f"sequencer, scene frame {frame}"
        for frame in range(1, 7):
            scene.frame_set(frame)
            evaluated = material.evaluated_get(bpy.context.evaluated_depsgraph_get())
            assert evaluated.node_tree.nodes[texture.name].image_user.frame_current == (frame - 1) % 3
        bpy.data.objects.remove(bpy.data.objects["regenerate plane"])
        bpy.data.meshes.remove(mesh)
        bpy.data.materials.remove(material)

    @pytest.mark.parametrize(("keep", "left"), [(2, ["take_0002", "take_0003", "take_0004"]), (0, ["take_0004"])])
    def test_history(self, sf: ModuleType, scene: Any, out: Any, tmp_path: Path, keep: int, left: list[str]) -> None:
        out.keep_results = keep
        for seed in range(4):
            _place(sf, scene, tmp_path, _frames(2, seed), name="history.png")
        folder = Path(out.output_dir) / "history.png"
        assert sorted(p.name for p in folder.iterdir()) == left
        assert not list((Path(out.output_dir) / ".jobs").glob("*")), "job folders are moved, not copied"


_SESSION = r"""
import json, os, shutil, sys
from pathlib import Path
import bpy, numpy as np

zip_path, root = sys.argv[1], Path(sys.argv[2])
assert bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                enable_on_install=True) == {"FINISHED"}
sf = sys.modules["bl_ext.user_default.stillflow"]
out = {}

def place(count, value):
    frames = np.full((count, 6, 8, 3), value, np.uint8)
    paths = sf.results.write_frames(frames, str(root / "jobs" / f"job{value}"))
    return sf.runner.place_result(bpy.context.scene, "still.png", {"frame_paths": paths}, "", count, 24.0)

def state():
    scene, image = bpy.context.scene, bpy.data.images["still loop"]
    node = next(n for n in scene.compositing_node_group.nodes if n.type == "IMAGE")
    return {"path": image.filepath, "abs": bpy.path.abspath(image.filepath), "node_frames": node.frame_duration,
            "strip_dir": scene.sequence_editor.strips[0].directory, "result_dir": scene.stillflow.result_dir,
            "exists": os.path.isfile(bpy.path.abspath(image.filepath))}

bpy.context.scene.view_settings.view_transform = "Standard"
loop = place(3, 40)
sf.results.add_to_compositor(bpy.context.scene, loop, 3)
sf.results.add_to_sequencer(bpy.context.scene, loop, 3, 1)
sf.placement.undo_step("test: users added")
place(2, 90)
out["placed"] = state()
out["undo"] = sorted(bpy.ops.ed.undo())
out["after_undo"] = state()
out["redo"] = sorted(bpy.ops.ed.redo())
out["after_redo"] = state()
bpy.ops.wm.save_as_mainfile(filepath=str(root / "proj" / "shot.blend"))
out["saved"] = state()
out["saved_status"] = bpy.context.scene.stillflow.status
out["session_left"] = [str(p) for p in sf.properties.session_results_root().rglob("*") if p.name != ".jobs"]
out["beside_blend"] = sorted(os.listdir(root / "proj" / "stillflow" / "still.png"))
shutil.move(str(root / "proj"), str(root / "farm"))
bpy.ops.wm.open_mainfile(filepath=str(root / "farm" / "shot.blend"))
out["farm"] = state()
scene = bpy.context.scene
scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 8, 6, 100
scene.render.use_compositing, scene.render.use_sequencer = True, False
scene.render.image_settings.file_format, scene.render.image_settings.color_mode = "PNG", "RGB"
scene.render.filepath = str(root / "farm-render" / "f_####")
scene.frame_start = scene.frame_end = 1
bpy.ops.render.render(animation=True)
rendered = bpy.data.images.load(str(root / "farm-render" / "f_0001.png"))
pixels = np.empty(8 * 6 * rendered.channels, np.float32)
rendered.pixels.foreach_get(pixels)
out["farm_level"] = float(np.round(pixels.reshape(6, 8, -1)[..., :3] * 255).mean())
print("RESULT " + json.dumps(out))
"""


def test_unsaved_file_results_move_beside_blend_on_first_save(extension_zips: dict[str, Path],
                                                                tmp_path: Path) -> None:
    """A fresh Blender: place, undo/redo, first save moves the takes, the project folder opens elsewhere."""
    env = {"BLENDER_USER_RESOURCES": str(tmp_path / "user"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", _SESSION, str(extension_zips["linux_x64"]), str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    session = str(tmp_path / "user")
    placed = result["placed"]
    assert placed["abs"].startswith(session) and placed["abs"].endswith("still.png/take_0002/frame_0000.png")
    assert placed["node_frames"] == 2 and placed["strip_dir"].endswith("take_0002/")
    # undo goes back to the first take (kept as history), redo to the second
    assert result["undo"] == ["FINISHED"] and result["after_undo"]["abs"].endswith("take_0001/frame_0000.png")
    assert result["after_undo"]["exists"] and result["after_undo"]["node_frames"] == 3
    assert result["redo"] == ["FINISHED"] and result["after_redo"] == placed
    # first save: every take moves beside the .blend; the paths are relative
    assert result["saved"]["path"] == "//stillflow/still.png/take_0002/frame_0000.png"
    assert result["saved"]["strip_dir"] == "//stillflow/still.png/take_0002/"
    assert result["saved"]["result_dir"] == "//stillflow/still.png/take_0002"
    assert result["beside_blend"] == ["take_0001", "take_0002"] and result["session_left"] == []
    # the panel's status names where the take is now, not the session folder (issue 24, 9)
    status = result["saved_status"]
    assert status.startswith("Done: 2 frames in ") and str(tmp_path / "proj" / "stillflow") in status
    assert session not in status
    # the project folder moved to another place (a farm) still finds and renders its loop
    assert result["farm"]["path"] == "//stillflow/still.png/take_0002/frame_0000.png" and result["farm"]["exists"]
    assert result["farm"]["abs"].startswith(str(tmp_path / "farm"))
    assert result["farm_level"] == pytest.approx(90.0, abs=0.5)


def _values(count: int, seed: int) -> np.ndarray:
    """(count, H, W, 3) float32 frame values in [0, 1] (what a float job sends)."""
    return np.random.default_rng(seed).uniform(0.0, 1.0, (count, SIZE[1], SIZE[0], 3)).astype(np.float32)


class TestColour:
    @pytest.mark.parametrize("fmt", ["png", "png16", "exr"])
    def test_compositor_and_sequencer_reproduce_the_frames(self, sf: ModuleType, scene: Any, out: Any,
                                                           tmp_path: Path, fmt: str) -> None:
        values = _values(2, 3)
        expected = np.rint(values * 255).astype(int)
        scene.view_settings.view_transform = "Standard"
        loop = _place(sf, scene, tmp_path, values, fmt, name=f"colour_{fmt}.png")
        assert loop.filepath.endswith(".exr" if fmt == "exr" else ".png") and loop.colorspace_settings.name == "sRGB"
        sf.results.add_to_compositor(scene, loop, 2)
        strip = sf.results.add_to_sequencer(scene, loop, 2, 1)
        assert strip.colorspace_settings.name == "sRGB"
        for compositor in (True, False):
            rendered = render_frames(scene, tmp_path / f"{fmt}-{compositor}", SIZE, 2, compositor=compositor)
            for index, pixels in enumerate(rendered):
                assert np.abs(pixels - expected[index]).max() <= 1, (fmt, compositor, index)
        if fmt == "exr":  # read as Blender reads EXR by default (linear), the same frames come out wrong
            loop.colorspace_settings.name = "Linear Rec.709"
            wrong = render_frames(scene, tmp_path / "exr-linear", SIZE, 1, compositor=True)[0]
            assert np.abs(wrong - expected[0]).mean() > 20

    def test_photo_through_agx_and_the_standard_view_fix(self, sf: ModuleType, scene: Any, out: Any,
                                                         tmp_path: Path) -> None:
        """Measure the compositor output against the photo with AgX, then after Use Standard View."""
        if PHOTO.is_file():
            photo_image = bpy.data.images.load(str(PHOTO), check_existing=False)
            photo_image.scale(120, 80)
            buffer = np.empty(120 * 80 * photo_image.channels, np.float32)
            photo_image.pixels.foreach_get(buffer)
            photo = np.round(buffer.reshape(80, 120, -1)[::-1, :, :3] * 255).astype(np.uint8)
            bpy.data.images.remove(photo_image)
        else:
            photo = _frames(1, 7)[0]
        height, width = photo.shape[:2]
        loop = _place(sf, scene, tmp_path, np.stack([photo, photo]), name="photo.png")
        sf.results.add_to_compositor(scene, loop, 2)
        scene.view_settings.view_transform = "AgX"
        advice = sf.core.colour.view_advice("AgX", scene.view_settings.look, scene.view_settings.exposure,
                                            scene.view_settings.gamma)
        assert advice is not None and "AgX" in advice
        agx = np.abs(render_frames(scene, tmp_path / "agx", (width, height), 1, compositor=True)[0] - photo)
        with bpy.context.temp_override(scene=scene):
            assert bpy.ops.stillflow.use_standard_view() == {"FINISHED"}
        assert scene.view_settings.view_transform == "Standard"
        view = scene.view_settings
        assert sf.core.colour.view_advice(view.view_transform, view.look, view.exposure, view.gamma) is None
        standard = np.abs(render_frames(scene, tmp_path / "std", (width, height), 1, compositor=True)[0] - photo)
        print(f"\ncompositor vs photo: AgX mean {agx.mean():.2f} max {agx.max()} levels; "
              f"Standard mean {standard.mean():.2f} max {standard.max()}")
        assert standard.max() <= 1 and agx.mean() > 2


def test_connect_respects_online_access(sf: ModuleType, scene: Any) -> None:
    prefs = bpy.context.preferences.addons[sf.__name__].preferences
    saved = prefs.backend_mode, prefs.endpoint
    prefs.backend_mode, prefs.endpoint = "REMOTE", "tcp://192.0.2.7:5555"  # TEST-NET: another computer
    scene.stillflow.image = bpy.data.images.new("online test", 4, 4)
    message = "online access is off in Blender, so the add-on may not connect to tcp://192.0.2.7:5555"
    try:
        assert not bpy.app.online_access
        started = time.perf_counter()
        with pytest.raises(RuntimeError, match=message):
            bpy.ops.stillflow.check_backend()
        with pytest.raises(RuntimeError, match=message):
            bpy.ops.stillflow.generate()
        assert time.perf_counter() - started < 1.0, "refused before any network attempt"
        assert prefs.backend_status.startswith(f"Cannot connect: {message}; turn on Preferences > System")
        assert scene.stillflow.status.startswith(f"Error: {message}")
    finally:
        prefs.backend_mode, prefs.endpoint = saved


def test_manifest_needs_blender_5(extension_zips: dict[str, Path]) -> None:
    manifest = (extension_zips["stage"] / "blender_manifest.toml").read_text()
    assert 'blender_version_min = "5.0.0"' in manifest
