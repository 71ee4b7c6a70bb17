"""Connect mode in real bpy against a real backend process with CURVE keys on loopback.

The backend is ``<repo>/.venv/bin/python -m stillflow serve --keys DIR`` (keys made by
``stillflow keys``); the add-on connects like a remote one: frames come back over the socket,
Blender writes them into its output folder and loads them as an image sequence. Key mistakes
each give one line in Check Backend and Generate.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

pytestmark = [pytest.mark.blender, pytest.mark.slow]

FRAMES = 3
SIZE = (40, 28)

_REFERENCE = """
import json, sys
import numpy as np
from stillflow import pipeline
from stillflow.options import MotionSpec, RenderOptions
inputs, spec = np.load(sys.argv[1]), json.loads(open(sys.argv[2]).read())
motion = MotionSpec(kind="hints", hints=tuple(map(tuple, spec["hints"])), anchors=tuple(map(tuple, spec["anchors"])))
image = str(inputs["image"]) if inputs["image"].ndim == 0 else inputs["image"]  # a still sent as its file
pipeline.render(image, sys.argv[3], mask=inputs["mask"], motion=motion,
                options=RenderOptions.from_dict(spec["options"]))
"""
_DECODE = ("import sys, cv2, numpy as np; "
           "np.save(sys.argv[1], np.stack([cv2.imread(p, cv2.IMREAD_UNCHANGED)[..., 2::-1] for p in sys.argv[2:]]))")


def _run(command: list[str]) -> None:
    """Run a backend-environment command; fail the test with its stderr."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture(scope="module")
def keys(backend_python: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two key folders made by `stillflow keys`: the backend's (client 'artist') and a stranger's."""
    root = tmp_path_factory.mktemp("keys")
    _run([backend_python, "-m", "stillflow", "keys", str(root / "backend"), "--client", "artist"])
    _run([backend_python, "-m", "stillflow", "keys", str(root / "other"), "--client", "stranger"])
    return {"dir": root / "backend", "server": root / "backend" / "server.key",
            "client": root / "backend" / "artist.key_secret", "public": root / "backend" / "allowed" / "artist.key",
            "other_server": root / "other" / "server.key", "stranger": root / "other" / "stranger.key_secret"}


@pytest.fixture(scope="module")
def backend(sf: ModuleType, backend_python: str, keys: dict[str, Path],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """`stillflow serve --keys DIR` on a free loopback port (started with the add-on's bundled launcher)."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    started = sf.core.lib.load("link.launcher").start_local_backend(
        backend_python, log_path=str(log), timeout=120, extra_args=("--keys", str(keys["dir"])),
        server_key=str(keys["server"]), client_keys=str(keys["client"]), results_dir=log.parent / "results")
    yield started
    started.stop()


@pytest.fixture()
def prefs(sf: ModuleType, backend: Any, keys: dict[str, Path], tmp_path: Path) -> Iterator[Any]:
    """The preferences set to Connect to the keyed backend with the right keys; restored afterwards."""
    prefs = bpy.context.preferences.addons[sf.__name__].preferences
    names = ("backend_mode", "endpoint", "server_key", "client_key_file", "timeout", "output_dir")
    saved = {name: getattr(prefs, name) for name in names}
    prefs.backend_mode, prefs.endpoint, prefs.timeout = "REMOTE", backend.endpoint, 0.5
    prefs.server_key, prefs.client_key_file = str(keys["server"]), str(keys["client"])
    prefs.output_dir = str(tmp_path / "out")
    yield prefs
    sf.runner.CONNECTION.close()
    for name, value in saved.items():
        setattr(prefs, name, value)


def _still(folder: Path) -> Any:
    """A saved 40 x 28 PNG still with smooth structure, loaded from disk."""
    width, height = SIZE
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = np.ones((height, width, 4), np.float32)
    for c in range(3):
        pixels[..., c] = 0.5 + 0.4 * np.sin(xx / (2.5 + c)) * np.cos(yy / (4.0 + c))
    image = bpy.data.images.new("remote still", width, height)
    image.pixels.foreach_set(pixels.ravel())
    image.filepath_raw, image.file_format = str(folder / "remote_still.png"), "PNG"
    image.save()
    bpy.data.images.remove(image)
    return bpy.data.images.load(str(folder / "remote_still.png"), check_existing=False)


def _mask() -> Any:
    """Closed square region (the middle) plus one open spline: an arrow to the right."""
    mask = bpy.data.masks.new("remote region")
    spline = mask.layers.new(name="region").splines.new()
    spline.points.add(3)
    for point, co in zip(spline.points, [(0.2, 0.25), (0.8, 0.25), (0.8, 0.75), (0.2, 0.75)]):
        point.co, point.handle_left_type, point.handle_right_type = co, "VECTOR", "VECTOR"
    spline.use_cyclic = spline.use_fill = True
    arrow = mask.layers.new(name="arrows").splines.new()
    arrow.points.add(1)
    arrow.points[0].co, arrow.points[1].co = (0.3, 0.5), (0.95, 0.5)
    return mask


def _decode(backend_python: str, paths: list[Path], out: Path) -> np.ndarray:
    """PNG frames decoded outside Blender (OpenCV in the backend env): (N, H, W, 3) uint8 RGB."""
    _run([backend_python, "-c", _DECODE, str(out), *map(str, paths)])
    return np.load(out)


def _reference(backend_python: str, request: Any, folder: Path) -> list[Path]:
    """The same job rendered directly by the backend (pipeline.render writes the PNGs itself)."""
    np.savez(folder / "inputs.npz", image=request.image, mask=request.mask)
    spec = {"hints": request.motion.hints, "anchors": request.motion.anchors, "options": request.options.to_dict()}
    (folder / "spec.json").write_text(json.dumps(spec))
    _run([backend_python, "-c", _REFERENCE, str(folder / "inputs.npz"), str(folder / "spec.json"),
          str(folder / "direct")])
    return sorted((folder / "direct").glob("frame_*.png"))


@pytest.fixture()
def scene_with_still(scene: Any, tmp_path: Path) -> Any:
    """The test scene with a saved still, a region Mask with one arrow and a tiny job."""
    settings = scene.stillflow
    settings.image, settings.mask = _still(tmp_path), _mask()
    settings.frames, settings.levels, settings.device = FRAMES, 2, "cpu"
    settings.detail = "precise"  # a non-default option travels from the panel to the backend
    return scene


class TestRemoteFrames:
    def test_frames_over_socket_written_by_blender(self, sf: ModuleType, prefs: Any, scene_with_still: Any,
                                                   backend_python: str, tmp_path: Path) -> None:
        assert bpy.ops.stillflow.generate() == {"FINISHED"}
        settings = scene_with_still.stillflow
        tracker = sf.runner._active
        assert tracker.state == "done" and not tracker.request.share_files
        assert tracker.request.options.detail == "precise"
        assert "frame_paths" not in tracker.result and tracker.result["count"] == FRAMES  # arrays came over ZeroMQ
        assert "frames" not in tracker.result and "frames" not in tracker.job.result  # released once written
        written = sorted(Path(settings.result_dir).glob("frame_*.png"))
        assert [p.name for p in written] == [f"frame_{i:04d}.png" for i in range(FRAMES)]
        assert Path(settings.result_dir) == Path(prefs.output_dir) / "remote_still.png" / "take_0001"
        assert json.loads((Path(settings.result_dir) / "manifest.json").read_text())["frames"] == FRAMES
        assert not list(Path(prefs.output_dir).rglob(".*tmp-*")), "no staging folder left behind"
        assert settings.status == f"Done: {FRAMES} frames in {settings.result_dir}"

        direct = _reference(backend_python, tracker.request, tmp_path)
        assert len(direct) == FRAMES
        expected = _decode(backend_python, direct, tmp_path / "direct.npy")
        got = _decode(backend_python, written, tmp_path / "written.npy")
        assert got.shape == (FRAMES, SIZE[1], SIZE[0], 3)
        np.testing.assert_array_equal(got, expected)
        assert np.abs(expected[1].astype(int) - expected[0]).max() > 0  # the loop moves

        loop = settings.result  # the sequence Image plays those files, frame by frame
        assert loop.source == "SEQUENCE" and settings.result_frames == FRAMES
        texture = bpy.data.textures.new("remote probe", "IMAGE")
        texture.image = loop
        width, height = SIZE
        for index in range(FRAMES):
            texture.image_user.frame_current = index
            texture.evaluate((0.0, 0.0, 0.0))
            buffer = np.empty(width * height * loop.channels, np.float32)
            loop.pixels.foreach_get(buffer)
            pixels = np.round(buffer.reshape(height, width, -1)[::-1, :, :3] * 255).astype(np.uint8)
            np.testing.assert_array_equal(pixels, expected[index])
        bpy.data.textures.remove(texture)


class TestKeys:
    def test_key_files_accepted(self, sf: ModuleType, prefs: Any) -> None:
        assert bpy.ops.stillflow.check_backend() == {"FINISHED"}
        assert prefs.backend_status.startswith("Stillflow backend ")
        assert sf.runner.CONNECTION.client.hello()["curve"] is True

    def test_server_key_as_text(self, sf: ModuleType, prefs: Any, keys: dict[str, Path]) -> None:
        prefs.server_key = re.search(r'public-key = "(.{40})"', keys["server"].read_text()).group(1)
        assert bpy.ops.stillflow.check_backend() == {"FINISHED"}

    @pytest.mark.parametrize(("server", "client", "message"), [
        ("server", "stranger", "the backend at {endpoint} does not accept this computer's key \\({stranger} is not "
                               "in its allowed keys\\); run `stillflow keys DIR --client NAME`"),
        ("other_server", "client", "the backend at {endpoint} rejected the encrypted handshake: the Server Key is "
                                   "not that backend's server.key$"),
        ("", "", "the backend at {endpoint} requires CURVE keys; set the Server Key"),
        ("server", "", "the Client Key File is empty; CURVE needs both the Server Key and the Client Key File"),
        ("server", "missing", "the Client Key File {missing} does not exist"),
        ("server", "public", "the Client Key File {public} holds no secret key; pick NAME.key_secret"),
        ("junk", "client", "the Server Key file {junk} is not a CURVE key file"),
        ("x" * 39 + "~", "client", "the Server Key is not a valid Z85 key"),
    ], ids=["client-not-allowed", "wrong-server-key", "no-keys", "one-key", "missing-file", "public-key-file",
            "server-key-file", "bad-z85"])
    def test_wrong_key_one_message(self, sf: ModuleType, prefs: Any, keys: dict[str, Path], tmp_path: Path,
                                   server: str, client: str, message: str) -> None:
        (tmp_path / "junk.txt").write_text("not a key\n")
        paths = {**{name: str(path) for name, path in keys.items()}, "missing": str(tmp_path / "gone.key_secret"),
                 "junk": str(tmp_path / "junk.txt")}
        prefs.server_key = paths.get(server, server)
        prefs.client_key_file = paths.get(client, client)
        pattern = message.format(endpoint=re.escape(prefs.endpoint), **{k: re.escape(v) for k, v in paths.items()})
        with pytest.raises(RuntimeError, match=pattern):
            bpy.ops.stillflow.check_backend()
        assert re.fullmatch(f"Cannot connect: {pattern}.*", prefs.backend_status)
        assert "\n" not in prefs.backend_status and "Traceback" not in prefs.backend_status
        assert sf.runner.CONNECTION.client is None

    def test_generate_with_refused_key(self, sf: ModuleType, prefs: Any, keys: dict[str, Path],
                                       scene_with_still: Any) -> None:
        prefs.client_key_file = str(keys["stranger"])
        with pytest.raises(RuntimeError, match="does not accept this computer's key"):
            bpy.ops.stillflow.generate()
        status = scene_with_still.stillflow.status
        assert status.startswith(f"Error: the backend at {prefs.endpoint} does not accept this computer's key")
        assert "\n" not in status and not scene_with_still.stillflow.is_running


class TestOutputFolder:
    def test_output_folder_is_a_file(self, sf: ModuleType, scene_with_still: Any, tmp_path: Path) -> None:
        prefs = bpy.context.preferences.addons[sf.__name__].preferences
        blocker = tmp_path / "taken"
        blocker.write_text("a file where the Output Folder should be")
        saved, prefs.output_dir = prefs.output_dir, str(blocker)
        try:
            with pytest.raises(RuntimeError, match=f"the Output Folder {re.escape(str(blocker))} cannot be created"):
                bpy.ops.stillflow.generate()
        finally:
            prefs.output_dir = saved
        assert scene_with_still.stillflow.status.startswith("Error: the Output Folder ")

    def test_remote_frames_cannot_be_written(self, sf: ModuleType, scene: Any, tmp_path: Path) -> None:
        (tmp_path / "file").write_text("not a folder")
        frames = np.zeros((2, 4, 5, 3), np.float32)
        error = sf.core.lib.load("errors").StillflowError
        out_dir = str(tmp_path / "file" / "job")
        with pytest.raises(error, match=f"the loop's frames cannot be written to or loaded from {re.escape(out_dir)}: "
                                        "Not a directory; check the Output Folder"):
            sf.runner.place_result(scene, "still.png", {"frames": frames, "count": 2}, out_dir, 2, 24.0)
        assert scene.stillflow.result is None

    def test_remote_frames_replace_a_folder_whole(self, sf: ModuleType, tmp_path: Path) -> None:
        out_dir = tmp_path / "job"
        sf.results.write_frames(np.zeros((3, 4, 5, 3), np.uint8), str(out_dir))
        paths = sf.results.write_frames(np.full((2, 4, 5, 3), 0.5, np.float32), str(out_dir))
        assert paths == [str(out_dir / "frame_0000.png"), str(out_dir / "frame_0001.png")]
        # no stale third frame; the manifest marks the folder as a result a later call may replace
        assert sorted(p.name for p in out_dir.iterdir()) == ["frame_0000.png", "frame_0001.png", "manifest.json"]
        assert [p.name for p in tmp_path.iterdir()] == ["job"]
