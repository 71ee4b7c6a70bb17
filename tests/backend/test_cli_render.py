"""The ``stillflow render`` command: outputs, formats, video, help, and every bad input's message."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stillflow.cli import main
from stillflow.io.frames import atomic_dir, atomic_file
from stillflow.io.images import load_image, save_frame


@pytest.fixture
def still(tmp_path: Path, smooth_image: np.ndarray) -> Path:
    """The smooth test image saved as an 8-bit PNG."""
    path = tmp_path / "still.png"
    save_frame(path, smooth_image, "png")
    return path


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Run the CLI in-process; returns (exit status, stderr)."""
    code = main(argv)
    return code, capsys.readouterr().err


class TestRenderCommand:
    def test_render_writes_frames_manifest_and_video(self, still: Path, tmp_path: Path) -> None:
        out = tmp_path / "loop"
        result = subprocess.run([sys.executable, "-m", "stillflow", "render", str(still), "--out", str(out),
                                 "--hint", "10,30,60,30", "--frames", "6", "--video", str(tmp_path / "loop.mp4")],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["frames"] == 6 and manifest["loop_length"] == 6 and (manifest["width"], manifest["height"]) == (80, 64)
        assert manifest["motion"]["kind"] == "hints" and "ms_per_frame" in manifest["timings"]
        assert sorted(p.name for p in out.glob("frame_*.png")) == [f"frame_{i:04d}.png" for i in range(6)]
        assert np.array_equal(load_image(out / "frame_0000.png"), load_image(still)), "frame 0 is the input"
        assert (tmp_path / "loop.mp4").stat().st_size > 0
        assert not list(tmp_path.glob(".loop.tmp-*")), "no staging folder left behind"

    @pytest.mark.parametrize("fmt, suffix", [("png16", ".png"), ("exr", ".exr")])
    def test_formats_round_trip(self, still: Path, tmp_path: Path, fmt: str, suffix: str,
                                capsys: pytest.CaptureFixture) -> None:
        out = tmp_path / fmt
        code, err = _run(["render", str(still), "--out", str(out), "--drift", "0,1", "--frames", "3",
                          "--format", fmt], capsys)
        assert code == 0, err
        frame0 = load_image(out / f"frame_0000{suffix}")
        np.testing.assert_allclose(frame0, load_image(still), atol=1e-4)

    @pytest.mark.parametrize("suffix", [".webm", ".gif"])
    def test_other_videos(self, still: Path, tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture) -> None:
        video = tmp_path / f"v{suffix}"
        code, err = _run(["render", str(still), "--out", str(tmp_path / "o"), "--drift", "45,1", "--frames", "4",
                          "--loops", "2", "--video", str(video)], capsys)
        assert code == 0, err
        assert video.stat().st_size > 0

    def test_top_level_help_lists_every_render_option(self, capsys: pytest.CaptureFixture) -> None:
        import dataclasses

        from stillflow import RenderOptions

        with pytest.raises(SystemExit):
            main(["--help"])
        text = capsys.readouterr().out
        for spec in dataclasses.fields(RenderOptions):
            assert "--" + spec.name.replace("_", "-") in text, spec.name
        assert "[frames/s]" in text and "px/frame" in text

    def test_help_documents_units(self, capsys: pytest.CaptureFixture) -> None:
        with pytest.raises(SystemExit):
            main(["render", "--help"])
        text = capsys.readouterr().out
        for needle in ("--frames", "[frames]", "--speed", "--fps", "[frames/s]", "--hint", "px/frame", "--once",
                       "--format", "--video", "--loops", "--device", "--motion-from-clip", "--drift", "--levels"):
            assert needle in text, needle


class TestBadInput:
    @pytest.fixture
    def bad_motion(self, tmp_path: Path) -> dict[str, Path]:
        nan = np.zeros((2, 8, 8), np.float32)
        nan[0, 1, 1] = np.nan
        np.save(tmp_path / "nan.npy", nan)
        np.save(tmp_path / "shape.npy", np.zeros((2, 0, 8), np.float32))
        (tmp_path / "text.png").write_text("not an image")
        (tmp_path / "afile").write_text("x")
        return {"nan": tmp_path / "nan.npy", "shape": tmp_path / "shape.npy", "text": tmp_path / "text.png",
                "afile": tmp_path / "afile"}

    @pytest.mark.parametrize("args, message", [
        (["{missing}", "--drift", "0,1"], "does not exist"),
        (["{text}", "--drift", "0,1"], "cannot be read as an image"),
        (["{still}", "--motion", "{nan}"], "non-finite"),
        (["{still}", "--motion", "{shape}"], "sides must be 1 to"),
        (["{still}", "--drift", "0,1", "--frames", "0"], "frames must be"),
        (["{still}", "--drift", "0,1", "--speed", "-1"], "speed must be"),
        (["{still}", "--drift", "0,1", "--speed", "1e30"], "speed must be 0 to 100, got 1e+30"),
        (["{still}", "--drift", "0,1e39"], "drift speed"),
        (["{still}", "--region", "{still}:drift=0,1", "--speed", "3.4e38"], "speed must be 0 to 100"),
        (["{still}", "--drift", "0,1", "--out", "{afile}/sub/out"], "cannot be created"),
        (["{still}"], "no motion source"),
        (["{still}", "--drift", "0,1", "--hint", "1,2,3,4"], "choose one motion source"),
        (["{still}", "--anchor", "3,4", "--drift", "0,1"], "--anchor pins"),
        (["{still}", "--drift", "0,1", "--mask", "{missing}"], "mask"),
        (["{still}", "--drift", "0,1", "--video", "{afile}.avi"], "unsupported type"),
    ], ids=["missing", "unreadable", "nan-motion", "motion-shape", "frames", "speed", "huge-speed", "huge-drift",
            "huge-region-speed", "out", "no-motion",
            "two-sources", "anchor-alone", "mask-missing", "video-type"])
    def test_exit_2_with_one_line(self, still: Path, tmp_path: Path, bad_motion: dict[str, Path], args: list[str],
                                  message: str, capsys: pytest.CaptureFixture) -> None:
        names = {"still": still, "missing": tmp_path / "missing.png", **bad_motion}
        argv = ["render"] + [a.format(**names) for a in args]
        if "--out" not in argv:
            argv += ["--out", str(tmp_path / "out")]
        code, err = _run(argv, capsys)
        assert code == 2
        lines = [line for line in err.splitlines() if line.startswith("stillflow: error:")]
        assert len(lines) == 1 and message in lines[0], err


_MANIFEST = '{"stillflow_version": "0.1.0"}'


class TestAtomicOutput:
    def test_failure_keeps_previous_result(self, tmp_path: Path) -> None:
        target = tmp_path / "result"
        target.mkdir()
        (target / "frame_0000.png").write_text("old")
        (target / "manifest.json").write_text(_MANIFEST)
        with pytest.raises(RuntimeError):
            with atomic_dir(target) as staging:
                (staging / "frame_0000.png").write_text("new")
                raise RuntimeError("boom")
        assert (target / "frame_0000.png").read_text() == "old"
        assert [p.name for p in tmp_path.iterdir()] == ["result"]

    def test_success_replaces_whole(self, tmp_path: Path) -> None:
        target = tmp_path / "result"
        target.mkdir()
        (target / "stale.png").write_text("old")
        (target / "manifest.json").write_text(_MANIFEST)
        with atomic_dir(target) as staging:
            (staging / "frame_0000.png").write_text("new")
        assert sorted(p.name for p in target.iterdir()) == ["frame_0000.png"]

    @pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
    def test_results_get_ordinary_permissions(self, tmp_path: Path) -> None:
        """A new result follows the umask (not tempfile's 0700/0600); a replaced one keeps its mode."""
        previous = os.umask(0o022)
        try:
            with atomic_dir(tmp_path / "loop") as staging:
                (staging / "frame_0000.png").write_text("new")
                (staging / "manifest.json").write_text(_MANIFEST)
            with atomic_file(tmp_path / "loop.mp4") as staging_file:
                staging_file.write_text("video")
            assert stat.S_IMODE((tmp_path / "loop").stat().st_mode) == 0o755
            assert stat.S_IMODE((tmp_path / "loop.mp4").stat().st_mode) == 0o644
            (tmp_path / "loop").chmod(0o750)
            (tmp_path / "loop.mp4").chmod(0o640)
            with atomic_dir(tmp_path / "loop") as staging:
                (staging / "frame_0000.png").write_text("newer")
            with atomic_file(tmp_path / "loop.mp4") as staging_file:
                staging_file.write_text("newer video")
        finally:
            os.umask(previous)
        assert stat.S_IMODE((tmp_path / "loop").stat().st_mode) == 0o750
        assert stat.S_IMODE((tmp_path / "loop.mp4").stat().st_mode) == 0o640
        assert sorted(p.name for p in tmp_path.iterdir()) == ["loop", "loop.mp4"]
