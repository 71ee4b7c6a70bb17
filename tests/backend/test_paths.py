"""The service owns its file system: real `stillflow serve` processes, real sockets, hostile paths.

Outputs go only under ``--results``; input paths are read only inside ``--allow-read``; a refusal
of a path outside those folders reads the same whether the path exists or not.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import pytest
import zmq

from stillflow.errors import InputError
from stillflow.link.client import Client
from stillflow.link.client_inputs import add_input
from stillflow.link.launcher import LocalBackend, start_local_backend
from stillflow.link.protocol import SERVER_OPS, Limits, Message, decode, encode
from stillflow.options import RenderOptions

pytestmark = pytest.mark.slow

OPTIONS = {"frames": 3, "levels": 2}
DRIFT = {"kind": "drift", "drift": [0.0, 1.0]}


def _image(seed: int = 0) -> np.ndarray:
    """A seeded random 48x64 RGB still."""
    return np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` (hidden ones too) with a file's bytes (None for a folder or link)."""
    found: dict[str, bytes | None] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            plain_file = path.is_file() and not path.is_symlink()
            found[str(path.relative_to(folder))] = path.read_bytes() if plain_file else None
    return found


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A results folder, a readable folder, and an outside folder with a real file and a real folder."""
    base = tmp_path_factory.mktemp("places")
    places = {name: base / name for name in ("results", "plain_results", "readable", "outside")}
    for folder in places.values():
        folder.mkdir()
    cv2.imwrite(str(places["readable"] / "still.png"), _image(1))
    cv2.imwrite(str(places["outside"] / "secret.png"), _image(2))
    (places["outside"] / "kept").mkdir()
    (places["outside"] / "kept" / "notes.txt").write_text("not a result")
    np.save(places["outside"] / "motion.npy", np.zeros((2, 8, 8), np.float32))
    (places["results"] / "link").symlink_to(places["outside"], target_is_directory=True)
    (places["results"] / "a_file").write_text("a file, not a folder")
    (places["results"] / "notes").mkdir()
    (places["results"] / "notes" / "todo.txt").write_text("not a result")
    (places["readable"] / "leak.png").symlink_to(places["outside"] / "secret.png")
    return places


@pytest.fixture(scope="module")
def reading(places: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBackend]:
    """A backend with --results and --allow-read."""
    log = tmp_path_factory.mktemp("serve-reading") / "serve.log"
    backend = start_local_backend(sys.executable, log_path=str(log), timeout=120.0, results_dir=places["results"],
                                  allow_read=(places["readable"],))
    yield backend
    assert backend.stop() == 0


@pytest.fixture(scope="module")
def plain(places: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBackend]:
    """A backend with --results and no --allow-read: it reads no input paths at all."""
    log = tmp_path_factory.mktemp("serve-plain") / "serve.log"
    backend = start_local_backend(sys.executable, log_path=str(log), timeout=120.0,
                                  results_dir=places["plain_results"])
    yield backend
    assert backend.stop() == 0


def _submit(endpoint: str, body: dict[str, Any], parts: dict[str, np.ndarray] | None = None,
            timeout: float = 10.0) -> Message:
    """Send one raw submit (paths exactly as given) and return the reply."""
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(endpoint)
    try:
        req = uuid.uuid4().hex
        body = {"options": OPTIONS, "motion": DRIFT, **body}
        parts = {"image": _image()} if parts is None and "image_path" not in body else (parts or {})
        socket.send_multipart(encode(Message("submit", body=body, parts=parts, req=req)))
        while True:
            assert socket.poll(int(timeout * 1000)), "no reply"
            reply = decode(socket.recv_multipart(), ops=SERVER_OPS)
            if reply.req == req:
                return reply
    finally:
        socket.close()


def _refused(endpoint: str, body: dict[str, Any], parts: dict[str, np.ndarray] | None = None) -> str:
    """The message of a submit that must be rejected as bad input."""
    reply = _submit(endpoint, body, parts)
    assert reply.op == "rejected" and reply.body["code"] == InputError.wire_code, reply
    return str(reply.body["msg"])


class TestOutputs:
    @pytest.mark.parametrize("name, expected", [
        ("{outside}/kept", "outside the backend's results folder"),
        ("{outside}/new_folder", "outside the backend's results folder"),
        ("../escape", "is not a valid name"),
        ("shots/../../escape", "is not a valid name"),
        (".hidden", "is not a valid name"),
        ("x" * 101, "is not a valid name"),
        ("link", "outside the backend's results folder"),
        ("link/kept", "outside the backend's results folder"),
        ("{results}/link/kept", "outside the backend's results folder"),
        ("{results}/../outside/kept", "outside the backend's results folder"),
        ("{results}", "the results folder itself"),
        ("a_file", "is not one of this client's results"),
        ("notes", "is not one of this client's results"),
    ], ids=["absolute-existing", "absolute-missing", "dotdot", "dotdot-inside", "hidden", "long", "symlink",
            "through-symlink", "absolute-symlink", "absolute-dotdot", "root-itself", "file", "non-result"])
    def test_out_dir_escapes_are_refused(self, reading: LocalBackend, places: dict[str, Path], name: str,
                                         expected: str) -> None:
        before = _tree(places["outside"]), _tree(places["results"])
        message = _refused(reading.endpoint, {"out_dir": name.format(**places)})
        assert expected in message
        assert (_tree(places["outside"]), _tree(places["results"])) == before

    @pytest.mark.parametrize("video, expected", [
        ("{outside}/clip.mp4", "outside the backend's results folder"),
        ("{outside}/kept/clip.mp4", "outside the backend's results folder"),
        ("../clip.mp4", "is not a valid name"),
        ("link/clip.mp4", "outside the backend's results folder"),
        ("notes", "unsupported type"),
    ], ids=["absolute", "absolute-existing-folder", "dotdot", "symlink", "no-suffix"])
    def test_video_escapes_are_refused(self, reading: LocalBackend, places: dict[str, Path], video: str,
                                       expected: str) -> None:
        before = _tree(places["outside"])
        assert expected in _refused(reading.endpoint, {"out_dir": "with_video", "video": video.format(**places)})
        assert _tree(places["outside"]) == before
        assert not (places["results"] / "with_video").exists()

    @pytest.mark.parametrize("video", ["../clip.mp4", "/tmp/clip.mp4", "sub/clip.mp4", ".clip.mp4"])
    def test_remote_video_must_be_a_plain_name(self, reading: LocalBackend, video: str) -> None:
        assert "plain file name" in _refused(reading.endpoint, {"deliver": "files", "video": video})

    def test_relative_name_lands_under_the_results_folder(self, reading: LocalBackend,
                                                          places: dict[str, Path]) -> None:
        with Client(reading.endpoint, timeout=5.0) as client:
            job = client.submit(_image(3), options=RenderOptions(frames=3, levels=2), out_dir="shots/one",
                                video="shots/one/one.gif", motion=_drift())
            expected = places["results"] / "shots" / "one"
            assert job.out_dir == str(expected) and job.video == str(expected / "one.gif")
            result = client.wait(job, timeout=120)
            assert result["out_dir"] == str(expected) and result["video"] == job.video
            assert sorted(p.name for p in expected.iterdir()) == ["frame_0000.png", "frame_0001.png",
                                                                   "frame_0002.png", "manifest.json", "one.gif"]
            # an absolute path inside the root is accepted too, and the client's earlier result is replaced
            again = client.wait(client.submit(_image(4), options=RenderOptions(frames=2, levels=2),
                                              out_dir=expected, motion=_drift()), timeout=120)
        assert again["out_dir"] == str(expected)
        assert sorted(p.name for p in expected.iterdir()) == ["frame_0000.png", "frame_0001.png", "manifest.json"]
        assert not [p for p in expected.parent.iterdir() if p.name.startswith(".")], "staging left behind"

    def test_status_reports_the_real_out_dir(self, reading: LocalBackend, places: dict[str, Path]) -> None:
        # one connection: a job's status is visible to its own client only
        with Client(reading.endpoint, timeout=5.0) as client:
            job = client.submit(_image(), options=RenderOptions(frames=40, levels=2), out_dir="status_check",
                                motion=_drift())
            assert job.out_dir == str(places["results"] / "status_check")
            status = client.status(job)
            assert status["out_dir"] == str(places["results"] / "status_check")
            client.cancel(job)


def _drift() -> Any:
    from stillflow.options import MotionSpec

    return MotionSpec(kind="drift", drift=(0.0, 1.0))


_READ_FIELDS = [
    ({"image_path": "{path}"}, None, "image_path"),
    ({"mask_path": "{path}"}, {"image": _image()}, "mask_path"),
    ({"importance_path": "{path}"}, {"image": _image()}, "importance_path"),
    ({"motion": {"kind": "file", "path": "{path}"}}, {"image": _image()}, "motion.path"),
    ({"motion": {"kind": "clip", "path": "{path}"}}, {"image": _image()}, "motion.path"),
    ({"options": {**OPTIONS, "models": "{path}"}}, {"image": _image()}, "options.models"),
]


def _fill(body: dict[str, Any], path: str) -> dict[str, Any]:
    """``body`` with every "{path}" replaced by ``path``."""
    return {key: _fill(value, path) if isinstance(value, dict) else (path if value == "{path}" else value)
            for key, value in body.items()}


class TestInputs:
    @pytest.mark.parametrize("body, parts, what", _READ_FIELDS,
                             ids=["image", "mask", "importance", "motion-file", "motion-clip", "models"])
    @pytest.mark.parametrize("server", ["plain", "reading"])
    def test_outside_paths_are_refused_alike_whether_they_exist_or_not(
            self, request: pytest.FixtureRequest, places: dict[str, Path], server: str, body: dict[str, Any],
            parts: dict[str, np.ndarray] | None, what: str) -> None:
        backend: LocalBackend = request.getfixturevalue(server)
        paths = {"existing": places["outside"] / ("kept" if what == "options.models" else "secret.png"),
                 "missing": places["outside"] / "missing" / "nothing.png",
                 "link": places["readable"] / "leak.png"}
        messages = {}
        for kind, path in paths.items():
            message = _refused(backend.endpoint, _fill(body, str(path)), parts)
            messages[kind] = message.replace(str(path), "PATH")
        assert len(set(messages.values())) == 1, messages
        assert f"may not read {what} PATH" in messages["existing"] and "--allow-read" in messages["existing"]
        assert "not exist" not in messages["existing"]

    def test_readable_folder_paths_are_read(self, reading: LocalBackend, places: dict[str, Path]) -> None:
        reply = _submit(reading.endpoint, {"image_path": str(places["readable"] / "still.png"), "out_dir": "read_ok"})
        assert reply.op == "accepted", reply
        missing = _refused(reading.endpoint, {"image_path": str(places["readable"] / "gone.png")})
        assert "is not a file on the backend machine" in missing

    def test_hello_says_what_is_read(self, reading: LocalBackend, plain: LocalBackend,
                                     places: dict[str, Path]) -> None:
        with Client(reading.endpoint) as client:
            hello = client.hello()
        assert hello["read_paths"] is True and hello["allow_read"] == [str(places["readable"].resolve())]
        assert hello["results_dir"] == str(places["results"].resolve())
        with Client(plain.endpoint) as client:
            hello = client.hello()
        assert hello["read_paths"] is False and hello["allow_read"] == []

    def test_client_sends_bytes_when_the_backend_may_not_read(self, plain: LocalBackend,
                                                               places: dict[str, Path]) -> None:
        with Client(plain.endpoint, timeout=5.0) as client:
            result = client.wait(client.submit(places["outside"] / "secret.png", mask=places["readable"] / "still.png",
                                               options=RenderOptions(frames=2, levels=2), motion=_drift(),
                                               out_dir="from_bytes"), timeout=120)
        assert result["out_dir"] == str(places["plain_results"] / "from_bytes")
        assert len(result["frame_paths"]) == 2

    def test_client_sends_paths_inside_the_readable_folders(self, places: dict[str, Path]) -> None:
        body: dict[str, Any] = {}
        parts: dict[str, np.ndarray] = {}
        readable = [str(places["readable"])]
        add_input("image", places["readable"] / "still.png", body, parts, Limits(), readable)
        add_input("mask", places["readable"] / "leak.png", body, parts, Limits(), readable)  # a link out: bytes
        assert body == {"image_path": str(places["readable"] / "still.png"), "mask_name": "leak.png"}
        assert list(parts) == ["mask_file"]


def test_cli_submit_writes_locally_outside_the_results_folder(plain: LocalBackend, places: dict[str, Path],
                                                              tmp_path: Path) -> None:
    """`stillflow submit --out` outside the backend's results folder gets the files and writes them itself."""
    still = places["outside"] / "secret.png"
    args = ["--drift", "0,1", "--frames", "2", "--levels", "2"]
    for out in (tmp_path / "mine", places["plain_results"] / "theirs"):
        run = subprocess.run([sys.executable, "-m", "stillflow", "submit", str(still), "--endpoint", plain.endpoint,
                              "--out", str(out), "--video", str(out) + ".gif", *args],
                             capture_output=True, text=True, timeout=180)
        assert run.returncode == 0, run.stderr
        assert sorted(p.name for p in out.iterdir()) == ["frame_0000.png", "frame_0001.png", "manifest.json"]
        assert Path(str(out) + ".gif").stat().st_size > 0
    refused = subprocess.run([sys.executable, "-m", "stillflow", "submit", str(still), "--endpoint", plain.endpoint,
                              "--out", str(places["outside"] / "kept"), *args],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "is not a Stillflow result" in refused.stderr
    assert (places["outside"] / "kept" / "notes.txt").read_text() == "not a result"


def test_serve_refuses_a_missing_allow_read_folder(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "stillflow", "serve", "--bind", "tcp://127.0.0.1:*",
                          "--results", str(tmp_path / "results"), "--allow-read", str(tmp_path / "missing"),
                          "--log", str(tmp_path / "serve.log")], capture_output=True, text=True, timeout=120)
    assert run.returncode == InputError.exit_code
    assert f"--allow-read {tmp_path / 'missing'} is not a folder" in run.stderr
