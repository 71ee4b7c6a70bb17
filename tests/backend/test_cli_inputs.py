"""Inputs a newcomer gave that were accepted without a word or answered with the wrong message (issue 30)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from stillflow import MotionSpec, RenderOptions
from stillflow.batch.items import BatchItem
from stillflow.batch.work import plan_task
from stillflow.cli import build_parser, main
from stillflow.errors import InputError
from stillflow.io.images import load_image, save_frame, to_uint8
from stillflow.io.video import video_warning
from stillflow.pipeline import prepare, render

DRIFT = MotionSpec(kind="drift", drift=(0.0, 1.0))


def _still(height: int, width: int) -> np.ndarray:
    """A seeded random RGB still, float32."""
    return np.random.default_rng(7).random((height, width, 3), dtype=np.float32)


class TestMaskShape:
    def test_a_mask_of_another_aspect_ratio_is_refused(self) -> None:
        mask = np.ones((120, 300), np.float32)
        with pytest.raises(InputError, match="mask is 300x120 px but the image is 256x256 px.*stretched"):
            prepare(_still(256, 256), mask=mask, motion=DRIFT, options=RenderOptions(frames=2))

    def test_an_importance_map_of_another_aspect_ratio_is_refused(self) -> None:
        with pytest.raises(InputError, match="importance map is 300x120 px"):
            prepare(_still(256, 256), mask=None, motion=DRIFT, options=RenderOptions(frames=2),
                    importance=np.ones((120, 300), np.float32))

    def test_a_scaled_mask_is_resized_and_said_so(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.INFO, logger="stillflow"):
            prepared = prepare(_still(200, 300), mask=np.ones((67, 100), np.float32), motion=DRIFT,
                               options=RenderOptions(frames=2))
        assert prepared.flow_mask.shape == (200, 300)
        assert "the mask (100x67 px) is resized to the image's 300x200 px" in caplog.text


class TestHintsInside:
    def test_an_arrow_starting_outside_the_image_is_refused(self) -> None:
        far = MotionSpec(kind="hints", hints=((5000.0, 5000.0, 5040.0, 5000.0),))
        with pytest.raises(InputError, match=r"starts at \(5000, 5000\), outside the 256x256 image"):
            prepare(_still(256, 256), mask=None, motion=far, options=RenderOptions(frames=2))

    def test_arrows_starting_on_the_edge_pixels_are_taken(self) -> None:
        edges = MotionSpec(kind="hints", hints=((0.0, 0.0, 40.0, 0.0), (255.0, 255.0, 215.0, 255.0)))
        prepared = prepare(_still(256, 256), mask=None, motion=edges, options=RenderOptions(frames=2))
        assert np.abs(prepared.motion_px).max() > 0


class TestImageMessages:
    def test_a_tiny_image_is_told_it_is_too_small(self, tmp_path: Path) -> None:
        path = tmp_path / "thin.png"
        save_frame(path, _still(7, 64), "png")
        with pytest.raises(InputError) as caught:
            load_image(path)
        assert "64x7 px, too small" in str(caught.value) and "downscale" not in str(caught.value)

    def test_a_huge_image_is_told_to_downscale(self) -> None:
        with pytest.raises(InputError, match="too large.*downscale"):
            load_image(np.zeros((8, 20000, 3), np.uint8))

    def test_a_truncated_png_gets_one_line_and_no_libpng_output(self, tmp_path: Path,
                                                                 capfd: pytest.CaptureFixture) -> None:
        whole = tmp_path / "whole.png"
        save_frame(whole, _still(64, 64), "png")
        cut = tmp_path / "cut.png"
        cut.write_bytes(whole.read_bytes()[:-200])
        capfd.readouterr()
        with pytest.raises(InputError, match="cut.png is truncated or damaged"):
            load_image(cut)
        captured = capfd.readouterr()  # file descriptors: libpng writes to fd 2 directly
        assert captured.err == "" and captured.out == ""


def test_the_wrote_line_names_the_final_video(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    video = tmp_path / "loop.mp4"
    with caplog.at_level(logging.DEBUG, logger="stillflow"):
        render(_still(32, 32), tmp_path / "out", motion=DRIFT, options=RenderOptions(frames=2), video=video)
    wrote = [r.getMessage() for r in caplog.records if r.getMessage().startswith("wrote")]
    assert wrote == [f"{wrote[0].split(' into ')[0]} into {tmp_path / 'out'} and {video}"
                     f" in {wrote[0].rsplit(' in ', 1)[1]}"], wrote


@pytest.mark.parametrize("argv", [["render", "x.png", "--quiet"], ["render", "-q", "x.png"],
                                  ["models", "check", "-v", "d"], ["keys", "-q", "d"], ["serve", "-v", "-v"], ["batch", "d", "--out", "o", "-q"]])
def test_quiet_and_verbose_are_taken_after_every_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.quiet or args.verbose >= 1


def test_top_level_verbosity_still_counts() -> None:
    args = build_parser().parse_args(["-vv", "render", "x.png"])
    assert (args.verbose, args.quiet) == (2, False)


def test_a_batch_still_that_is_not_an_image_is_named_as_such(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_text("not an image\n")
    with pytest.raises(InputError, match="image broken.png is not an image file"):
        plan_task(BatchItem(name="broken", image=broken), tmp_path / "out", common={}, given={}, default_motion=None,
                  default_mask=None, video=None)


class TestVideoSize:
    def test_an_mp4_beyond_h264_level_5_2_is_warned_about(self) -> None:
        text = video_warning("loop.mp4", 12000, 8000, None)
        assert text is not None and "12000x8000, beyond H.264 level 5.2" in text, text
        assert "--video-max-side 3744 " in text  # 234 x 156 macroblocks; 3760x2506 would need 235 x 157 > 36864
        assert video_warning("loop.mp4", 12000, 8000, 3744) is None
        assert video_warning("loop.mp4", 12000, 8000, 3760) is not None
        assert video_warning("loop.mp4", 4096, 2304, None) is None
        assert video_warning("loop.webm", 12000, 8000, None) is None

    def test_video_max_side_downscales_the_video_only(self, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
        import imageio_ffmpeg

        still = tmp_path / "still.png"
        save_frame(still, _still(48, 80), "png")
        video = tmp_path / "loop.mp4"
        code = main(["render", str(still), "--out", str(tmp_path / "out"), "--drift", "0,1", "--frames", "2",
                     "--video", str(video), "--video-max-side", "40"])
        assert code == 0, capsys.readouterr().err
        reader = imageio_ffmpeg.read_frames(str(video))
        meta = next(reader)
        reader.close()
        assert tuple(meta["size"]) == (40, 24)
        assert load_image(tmp_path / "out" / "frame_0000.png").shape == (48, 80, 3)


def test_frames_become_uint8_in_row_blocks_exactly_as_in_one_piece() -> None:
    frame = np.random.default_rng(5).uniform(-0.1, 1.1, (700, 1600, 3)).astype(np.float32)
    assert np.array_equal(to_uint8(frame), np.clip(np.rint(frame * 255.0), 0, 255).astype(np.uint8))
