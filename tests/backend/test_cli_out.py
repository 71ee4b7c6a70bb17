"""`--out` never destroys what is not a Stillflow result; frames and video move as one unit; signals leave nothing.

Real `stillflow render` processes on real folders (and atomic_outputs on a real file system).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from stillflow import render
from stillflow.errors import Cancelled, InputError
from stillflow.io import frames as frames_io
from stillflow.io.frames import atomic_outputs, clean_stale
from stillflow.options import MotionSpec, RenderOptions

QUICK = ["--drift", "0,1", "--frames", "3", "--levels", "2"]


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` (hidden ones too) with a file's bytes (None for a folder)."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def _cli(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run ``stillflow ARGS`` in ``cwd``."""
    return subprocess.run([sys.executable, "-m", "stillflow", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def still(tmp_path: Path) -> Path:
    """A small real PNG in an otherwise empty folder."""
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8))
    return path


@pytest.mark.slow
class TestRefusals:
    @pytest.mark.parametrize("out, message", [
        (".", "the output folder {dir} holds the image {dir}/x.png"),
        ("x.png", "the output folder {dir}/x.png is the image {dir}/x.png"),
        ("notes", "output folder {dir}/notes holds files and is not a Stillflow result"),
        ("a_file", "output folder {dir}/a_file exists and is a file"),
    ], ids=["dot", "the-input", "non-result", "a-file"])
    def test_out_refused_and_nothing_touched(self, still: Path, out: str, message: str) -> None:
        folder = still.parent
        (folder / "notes").mkdir()
        (folder / "notes" / "todo.txt").write_text("mine")
        (folder / "a_file").write_text("mine too")
        before = _tree(folder)
        run = _cli("render", "x.png", "--out", out, *QUICK, cwd=folder)
        assert run.returncode == InputError.exit_code
        errors = [line for line in run.stderr.splitlines() if line.startswith("stillflow: error:")]
        assert len(errors) == 1 and message.format(dir=folder) in errors[0], run.stderr
        assert _tree(folder) == before

    def test_video_may_not_be_an_input(self, still: Path) -> None:
        folder = still.parent
        first = _cli("render", "x.png", "--out", "loop", "--video", "clip.gif", *QUICK, cwd=folder)
        assert first.returncode == 0, first.stderr
        before = _tree(folder)
        run = _cli("render", "x.png", "--out", "again", "--motion-from-clip", "clip.gif", "--video", "clip.gif",
                   "--frames", "3", cwd=folder)
        assert run.returncode == InputError.exit_code
        assert "the video" in run.stderr and "is the motion file" in run.stderr
        assert _tree(folder) == before


@pytest.mark.slow
def test_replacing_an_earlier_result_and_empty_folders(still: Path) -> None:
    folder = still.parent
    (folder / "empty").mkdir()
    for out, frames in (("empty", "3"), ("empty", "2"), ("fresh/sub", "2")):
        run = _cli("render", "x.png", "--out", out, "--drift", "0,1", "--frames", frames, "--levels", "2", cwd=folder)
        assert run.returncode == 0, run.stderr
        names = sorted(p.name for p in (folder / out).iterdir())
        assert names == [f"frame_{i:04d}.png" for i in range(int(frames))] + ["manifest.json"]
        assert "stillflow_version" in json.loads((folder / out / "manifest.json").read_text())
    assert not [p.name for p in folder.rglob(".*")], "staging left behind"


class TestOneUnit:
    def _result(self, folder: Path) -> None:
        folder.mkdir()
        (folder / "frame_0000.png").write_text("old frame")
        (folder / "manifest.json").write_text('{"stillflow_version": "0.1.0"}')

    def test_a_failed_video_swap_puts_the_frames_back(self, tmp_path: Path) -> None:
        self._result(tmp_path / "loop")
        (tmp_path / "videos").mkdir()
        (tmp_path / "videos" / "loop.mp4").write_text("old video")
        before = _tree(tmp_path / "loop")
        with pytest.raises(FileNotFoundError):
            with atomic_outputs(tmp_path / "loop", tmp_path / "videos" / "loop.mp4") as (staging, staged_video):
                (staging / "frame_0000.png").write_text("new frame")
                (staging / "manifest.json").write_text('{"stillflow_version": "0.1.0"}')
                staged_video.write_text("new video")
                shutil.rmtree(tmp_path / "videos")  # the video's folder vanishes: its move must fail
        assert _tree(tmp_path / "loop") == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["loop"]

    def test_frames_and_video_move_together(self, tmp_path: Path) -> None:
        self._result(tmp_path / "loop")
        (tmp_path / "loop.mp4").write_text("old video")
        with atomic_outputs(tmp_path / "loop", tmp_path / "loop.mp4") as (staging, staged_video):
            (staging / "frame_0000.png").write_text("new frame")
            staged_video.write_text("new video")
            assert (tmp_path / "loop.mp4").read_text() == "old video"  # nothing moves before the end
        assert (tmp_path / "loop" / "frame_0000.png").read_text() == "new frame"
        assert (tmp_path / "loop.mp4").read_text() == "new video"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["loop", "loop.mp4"]

    def test_cancel_leaves_frames_and_video_untouched(self, tmp_path: Path, smooth_image: np.ndarray) -> None:
        options = RenderOptions(frames=3, levels=2)
        render(smooth_image, tmp_path / "loop", motion=MotionSpec(kind="drift", drift=(0.0, 1.0)), options=options,
               video=tmp_path / "loop.gif")
        before = _tree(tmp_path)
        calls: list[int] = []

        def third_call() -> bool:
            calls.append(1)
            return len(calls) > 2

        with pytest.raises(Cancelled):
            render(smooth_image[::-1].copy(), tmp_path / "loop", motion=MotionSpec(kind="drift", drift=(0.0, 2.0)),
                   options=options, video=tmp_path / "loop.gif", should_cancel=third_call)
        assert _tree(tmp_path) == before


class TestStaleStaging:
    def _dead_pid(self) -> int:
        """The PID of a real process that has exited."""
        process = subprocess.Popen([sys.executable, "-c", "pass"])
        process.wait()
        return process.pid

    def test_leftovers_of_dead_runs_are_removed_and_a_half_swap_is_undone(self, tmp_path: Path) -> None:
        pid, host = self._dead_pid(), frames_io._HOST
        dead_tmp = tmp_path / f".loop.tmp-{host}-{pid}-0123abcd"
        dead_video = tmp_path / f".loop.tmp-{host}-{pid}-89abcdef.mp4"
        dead_backup = tmp_path / f".shot.old-{host}-{pid}-00ff00ff"
        live_tmp = tmp_path / f".loop.tmp-{host}-{os.getpid()}-fedcba98"
        other_host = tmp_path / f".loop.tmp-abcdef-{pid}-11111111"
        for folder in (dead_tmp, dead_backup, live_tmp, other_host):
            folder.mkdir()
            (folder / "frame_0000.png").write_text("x")
        (dead_backup / "manifest.json").write_text('{"stillflow_version": "0.1.0"}')
        dead_video.write_text("half a video")
        old = tmp_path / ".loop.tmp-1a2b3c4d"  # an older naming, only judged by age
        old.mkdir()
        os.utime(old, (time.time() - 2 * frames_io.STALE_AFTER_S,) * 2)
        removed = clean_stale(tmp_path)
        assert sorted(removed) == sorted([dead_tmp, dead_video, old])
        assert (tmp_path / "shot" / "manifest.json").is_file(), "the interrupted swap's earlier result is back"
        assert live_tmp.is_dir() and other_host.is_dir()

    @pytest.mark.slow
    def test_sigkill_leftovers_are_cleaned_by_the_next_run(self, still: Path) -> None:
        folder = still.parent
        process = subprocess.Popen([sys.executable, "-m", "stillflow", "render", "x.png", "--out", "loop",
                                    "--drift", "0,1", "--frames", "400", "--levels", "2"], cwd=folder,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        staged = _wait_for_staging(folder, process)
        process.kill()
        process.wait()
        assert staged.is_dir()
        run = _cli("render", "x.png", "--out", "other", *QUICK, cwd=folder)
        assert run.returncode == 0, run.stderr
        assert sorted(p.name for p in folder.iterdir()) == ["other", "x.png"]


def _wait_for_staging(folder: Path, process: subprocess.Popen[bytes], timeout: float = 120.0) -> Path:
    """The staging folder of a running render once it holds a frame."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the render ended early"
        for path in folder.glob(".loop.tmp-*"):
            if any(path.glob("frame_*.png")):
                return path
        time.sleep(0.05)
    raise AssertionError("no staging folder appeared")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_to_a_render_leaves_nothing(still: Path) -> None:
    folder = still.parent
    first = _cli("render", "x.png", "--out", "loop", *QUICK, cwd=folder)
    assert first.returncode == 0, first.stderr
    before = _tree(folder)
    process = subprocess.Popen([sys.executable, "-m", "stillflow", "render", "x.png", "--out", "loop",
                                "--drift", "0,2", "--frames", "400", "--levels", "2"], cwd=folder,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_staging(folder, process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == Cancelled.exit_code, err
    assert "interrupted; nothing was written" in err
    assert _tree(folder) == before
