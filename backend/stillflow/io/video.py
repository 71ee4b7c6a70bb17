"""Encoding a loop to MP4 (H.264 yuv420p), WebM (VP9) or GIF (palette pass) with the bundled ffmpeg."""
from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import Cancelled, EncoderFailed, InputError
from .frames import atomic_file

__all__ = ["VIDEO_SUFFIXES", "H264_MAX_MACROBLOCKS", "check_video_path", "video_size", "video_warning", "encode_video"]

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".webm", ".gif")
_EVEN = "crop=trunc(iw/2)*2:trunc(ih/2)*2"
_CODEC_ARGS = {
    ".mp4": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18", "-preset", "medium", "-movflags", "+faststart"],
    ".webm": ["-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-b:v", "0", "-crf", "32", "-row-mt", "1"],
    ".gif": ["-loop", "0"],
}
_GIF_PALETTE = "split[a][b];[a]palettegen=stats_mode=full[p];[b][p]paletteuse=dither=sierra2_4a"
H264_MAX_MACROBLOCKS = 36864
"""Largest H.264 frame (16x16 macroblocks) of level 5.2, the highest most players and hardware decoders
take: 4096x2304 (a side of at most sqrt(8 * 36864) = 543 macroblocks); larger frames need level 6."""


def video_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """The encoded frame size: longer side at most ``max_side`` (aspect kept), sides even."""
    if max_side is not None and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = max(2, round(width * scale)), max(2, round(height * scale))
    return width // 2 * 2, height // 2 * 2


def _plays(width: int, height: int) -> bool:
    """Whether an H.264 frame of this size is within level 5.2."""
    across, down = -(-width // 16), -(-height // 16)
    return across * down <= H264_MAX_MACROBLOCKS and max(across, down) ** 2 <= 8 * H264_MAX_MACROBLOCKS


def video_warning(path: str | Path, width: int, height: int, max_side: int | None) -> str | None:
    """Why an .mp4 of these frames will not play in most players (beyond H.264 level 5.2), else None."""
    if Path(path).suffix.lower() != ".mp4" or _plays(*video_size(width, height, max_side)):
        return None
    fits = next(side for side in range(max(width, height) // 16 * 16, 0, -16)
                if _plays(*video_size(width, height, side)))
    shown_width, shown_height = video_size(width, height, max_side)
    return (f"the video {Path(path).name} would be {shown_width}x{shown_height}, beyond H.264 level 5.2 (frames of "
            f"4096x2304 at most): most players refuse it; add --video-max-side {fits} for a downscaled video "
            "(the frames keep their full size)")


def _filters(suffix: str, width: int, height: int, max_side: int | None) -> list[str]:
    """ffmpeg's filter arguments: downscale to ``max_side``, even sides (H.264/VP9), GIF palette."""
    chain = []
    if max_side is not None and max(width, height) > max_side:
        chain.append("scale={}:{}:flags=area".format(*video_size(width, height, max_side)))
    if suffix == ".gif":
        return ["-filter_complex", ",".join(chain + [_GIF_PALETTE])]
    return ["-vf", ",".join(chain + [_EVEN])]


def check_video_path(path: str | Path) -> Path:
    """Raise InputError unless the video path has a supported suffix."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(f"video file {path.name} has an unsupported type",
                         hint=f"use one of {', '.join(VIDEO_SUFFIXES)}")
    return path


def encode_video(path: str | Path, frame_count: int, read_frame: Callable[[int], np.ndarray], *, fps: float,
                 loops: int = 1, progress: Callable[[int, int], None] | None = None,
                 should_cancel: Callable[[], bool] | None = None, max_side: int | None = None) -> Path:
    """Encode ``frame_count`` frames, repeated ``loops`` times, into ``path`` (written atomically).

    Args:
        path: .mp4, .webm or .gif target.
        frame_count: frames in one loop.
        read_frame: returns frame i as (H, W, 3 or 4) uint8 RGB(A); alpha is dropped.
        fps: frames per second.
        loops: how many times the loop repeats.
        progress: called with (frames encoded, total).
        should_cancel: checked before every frame; when true ffmpeg is stopped, nothing is written
            and Cancelled is raised.
        max_side: downscale the video (not the frames) so that its longer side has at most this many px.
    """
    import imageio_ffmpeg

    path = check_video_path(path)
    first = read_frame(0)
    height, width = first.shape[:2]
    if path.suffix.lower() != ".gif" and min(height, width) < 2:
        raise InputError(f"frames of {width}x{height} px are too small for {path.suffix} video")
    total = frame_count * loops
    with atomic_file(path) as staging:
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                   "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", f"{fps}",
                   "-i", "-", *_filters(path.suffix.lower(), width, height, max_side),
                   *_CODEC_ARGS[path.suffix.lower()], str(staging)]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for index in range(total):
                if should_cancel is not None and should_cancel():
                    raise Cancelled("the job was cancelled while encoding the video; nothing was written")
                frame = first if index == 0 else read_frame(index % frame_count)
                process.stdin.write(np.ascontiguousarray(frame[:, :, :3]).tobytes())
                if progress is not None:
                    progress(index + 1, total)
            process.stdin.close()
            errors = process.stderr.read().decode(errors="replace")
            code = process.wait()
        except BrokenPipeError:
            code = process.wait()
            errors = process.stderr.read().decode(errors="replace")
        except BaseException:
            process.kill()
            process.wait()
            raise
        if code != 0:
            reason = (errors.strip().splitlines() or [f"exit status {code}"])[-1][:200]
            raise EncoderFailed(f"ffmpeg could not encode {path.name}: {reason}",
                                hint="the frames were rendered; try another video format or fps")
    log.debug("encoded %s (%d frames, %d loop(s))", path, total, loops)  # the caller names the final file
    return path
