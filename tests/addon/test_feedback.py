"""addon/core/progress_model.py and frame_writer.py (plain Python, real files)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from addon.core.frame_writer import FrameWriter, encode_png
from addon.core.progress_model import ProgressModel, StagePlan, format_seconds


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TestProgressModel:
    def test_feature_one_bar_across_stages(self) -> None:
        clock = Clock()
        model = ProgressModel(StagePlan.for_job(writes_frames_here=True, video=False), clock=clock)
        seen = []
        for stage, done, total in [("motion", 0, 1), ("motion", 1, 1), ("render", 1, 4), ("strips", 1, 3),
                                   ("render", 4, 4), ("write", 1, 4), ("write", 4, 4)]:
            clock.now += 1.0
            model.update(stage, done, total)
            seen.append(model.fraction)
        assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
        motion_end, render_end = seen[1], seen[4]
        assert 0.0 < motion_end < 0.15 and 0.7 < render_end < 0.9  # render no longer reaches 100 %

    def test_feature_text_with_count_and_eta(self) -> None:
        clock = Clock()
        model = ProgressModel(StagePlan(("motion", "render")), clock=clock)
        assert model.text() == "Queued"
        model.update("motion", 1, 1)
        for done in range(0, 13):
            clock.now += 30.0 if done == 1 else 2.0  # the first frame carries the warm-up
            model.update("render", done, 24)
        text = model.text()
        assert text.startswith("Rendering frame 12/24 · ") and text.endswith(" · about 24 s left")

    def test_feature_eta_from_frame_times_without_the_first(self) -> None:
        """Issue 24, 5: 12 frames left at 2 s each is 24 s, however long the warm-up took."""
        clock = Clock()
        model = ProgressModel(StagePlan(("motion", "render")), clock=clock)
        model.update("motion", 1, 1)
        model.update("render", 0, 14)
        clock.now += 40.0
        model.update("render", 1, 14)
        clock.now += 2.0
        model.update("render", 2, 14)
        assert model.eta() is None  # one frame time is no pace yet
        clock.now += 2.0
        model.update("render", 3, 14)
        assert model.eta() == pytest.approx(2.0 * 11)

    def test_feature_eta_never_rises(self) -> None:
        """Between frames it counts down; a slower frame does not push it back up; overdue shows none."""
        clock = Clock()
        model = ProgressModel(StagePlan(("motion", "render")), clock=clock)
        model.update("render", 0, 10)
        shown: list[float] = []
        for done, took in [(1, 9.0), (2, 1.0), (3, 1.0), (4, 1.0), (5, 1.5), (6, 1.0), (7, 1.0)]:
            for _ in range(4):  # ticks while the frame renders
                clock.now += took / 4
                if (eta := model.eta()) is not None:
                    shown.append(eta)
            model.update("render", done, 10)
        assert shown and shown == sorted(shown, reverse=True)
        clock.now += 60.0  # far past the estimate: no ETA rather than a wrong one
        assert model.eta() is None

    def test_feature_no_eta_once_the_frames_fell_behind_or_at_the_end(self) -> None:
        """A frame far slower than the pace hides the ETA instead of showing a larger one; so do the last seconds."""
        clock = Clock()
        model = ProgressModel(StagePlan(("motion", "render")), clock=clock)
        for done, took in [(0, 0.0), (1, 9.0), (2, 2.0), (3, 2.0)]:
            clock.now += took
            model.update("render", done, 20)
        assert model.eta() == pytest.approx(34.0)
        clock.now += 40.0  # one frame takes 20 times the pace
        model.update("render", 4, 20)
        assert model.eta() is None
        for done in range(5, 18):
            clock.now += 2.0
            model.update("render", done, 20)
            assert model.eta() is None or model.eta() <= 34.0
        clock.now += 2.0
        model.update("render", 19, 20)
        assert model.eta() is None  # one frame left: a few seconds' ETA is mostly noise

    def test_feature_a_short_render_shows_a_few_seconds_countdown(self) -> None:
        """Twelve frames of a quarter second: the artist sees 'about 2 s left', not no ETA at all."""
        clock = Clock()
        model = ProgressModel(StagePlan(("motion", "render")), clock=clock)
        for done in range(4):
            clock.now += 0.25
            model.update("render", done, 12)
        assert model.eta() == pytest.approx(0.25 * 9) and "about 2 s left" in model.text()

    def test_feature_no_eta_while_a_later_stage_is_to_come(self) -> None:
        clock = Clock()
        model = ProgressModel(StagePlan.for_job(writes_frames_here=True, video=False), clock=clock)
        for done in range(6):
            clock.now += 1.0
            model.update("render", done, 8)
        assert model.eta() is None and "left" not in model.text()

    def test_feature_format_seconds(self) -> None:
        assert [format_seconds(s) for s in (8.4, 125, 3780)] == ["8 s", "2 min 5 s", "1 h 3 min"]


class TestFrameWriter:
    def test_feature_png_decodes_exactly(self, tmp_path: Path) -> None:
        cv2 = pytest.importorskip("cv2")
        rng = np.random.default_rng(3)
        for channels in (3, 4):
            image = rng.integers(0, 256, (17, 23, channels), dtype=np.uint8)
            path = tmp_path / f"c{channels}.png"
            path.write_bytes(encode_png(image))
            decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            order = [2, 1, 0] if channels == 3 else [2, 1, 0, 3]
            np.testing.assert_array_equal(decoded[..., order], image)

    def test_feature_writes_whole_folder(self, tmp_path: Path) -> None:
        frames = np.full((3, 8, 6, 3), 0.5, np.float32)
        writer = FrameWriter(frames, str(tmp_path / "job"))
        deadline = time.monotonic() + 30
        while not writer.finished and time.monotonic() < deadline:
            time.sleep(0.01)
        assert writer.error is None and writer.done == 3
        assert writer.paths == [str(tmp_path / "job" / f"frame_{i:04d}.png") for i in range(3)]
        assert [p.name for p in tmp_path.iterdir()] == ["job"]
        assert (tmp_path / "job" / "manifest.json").is_file()

    def test_exception_cancel_leaves_nothing(self, tmp_path: Path) -> None:
        frames = np.zeros((400, 64, 64, 3), np.uint8)
        writer = FrameWriter(frames, str(tmp_path / "job"))
        writer.cancel()
        assert writer.finished and isinstance(writer.error, InterruptedError)
        assert list(tmp_path.iterdir()) == []

    def test_exception_unwritable(self, tmp_path: Path) -> None:
        (tmp_path / "file").write_text("not a folder")
        with pytest.raises(OSError):
            FrameWriter(np.zeros((1, 2, 2, 3), np.uint8), str(tmp_path / "file" / "job"))
