"""Motion from a reference clip: averaged DIS optical flow over a static-camera clip (algorithm.md §11.4)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .._cv import cv2
from ..errors import InputError

__all__ = ["dis_flow", "read_clip_frames", "robust_mean_flow", "clamp_speed_outliers", "estimate_clip_motion"]

log = logging.getLogger(__name__)

_FRAME_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
MAX_PAIRS = 120


def dis_flow(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Dense flow from ``first`` to ``second`` with OpenCV DIS (MEDIUM preset).

    Args:
        first, second: (H, W, 3) uint8 RGB or (H, W) uint8 gray frames of one size.

    Returns:
        (2, H, W) float32, px/frame; channel 0 = x (right), 1 = y (down).
    """
    gray = [f if f.ndim == 2 else cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in (first, second)]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = dis.calc(gray[0], gray[1], None)
    return np.ascontiguousarray(flow.transpose(2, 0, 1), dtype=np.float32)


def read_clip_frames(path: str | Path, max_frames: int = MAX_PAIRS + 1) -> list[np.ndarray]:
    """Frames of a video file or a folder of images as (H, W, 3) uint8 RGB, in order."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _FRAME_SUFFIXES and p.stem != "mask")
        frames = []
        for file in files[:max_frames]:
            frame = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if frame is None:
                raise InputError(f"clip frame {file} cannot be read as an image")
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    elif path.is_file():
        import imageio_ffmpeg

        try:
            reader = imageio_ffmpeg.read_frames(str(path))
            meta = next(reader)
            width, height = meta["size"]
            frames = []
            for raw in reader:
                frames.append(np.frombuffer(raw, np.uint8).reshape(height, width, 3).copy())
                if len(frames) >= max_frames:
                    break
            reader.close()
        except (RuntimeError, OSError, StopIteration) as exc:
            raise InputError(f"clip {path} cannot be decoded as video: {exc}") from None
    else:
        raise InputError(f"reference clip {path} does not exist", hint="give a video file or a folder of frames")
    if len(frames) < 2:
        raise InputError(f"reference clip {path} has {len(frames)} frame(s); at least 2 are needed")
    if any(f.shape != frames[0].shape for f in frames):
        raise InputError(f"frames of clip {path} differ in size; a clip needs one frame size")
    return frames


def robust_mean_flow(flows: np.ndarray) -> np.ndarray:
    """Per-pixel mean over pairs after dropping outliers (> 3 MAD from the per-pixel median).

    Args:
        flows: (P, 2, H, W) float32 flows of P consecutive pairs.

    Returns:
        (2, H, W) float32 average flow, px/frame.
    """
    median = np.median(flows, axis=0)
    deviation = np.linalg.norm(flows - median[None], axis=1)
    mad = np.median(deviation, axis=0)
    inlier = deviation <= 3.0 * np.maximum(mad, 0.05)
    count = inlier.sum(axis=0)
    total = (flows * inlier[:, None]).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), median).astype(np.float32)


def clamp_speed_outliers(field: np.ndarray, z_max: float = 3.0) -> np.ndarray:
    """Shorten vectors whose speed lies more than ``z_max`` standard deviations above the mean.

    A z-score clean-up (algorithm.md §1.2) that keeps the direction: flow errors at occlusion
    edges would otherwise set the loop's padding and open holes far from where they occur.

    Args:
        field: (2, H, W) float32 motion, px/frame.

    Returns:
        (2, H, W) float32 with every speed <= mean + z_max * std of the nonzero speeds.
    """
    speed = np.sqrt((field.astype(np.float64) ** 2).sum(axis=0))
    moving = speed[speed > 0]
    if moving.size == 0:
        return field
    limit = moving.mean() + z_max * moving.std()
    scale = np.where(speed > limit, limit / np.maximum(speed, 1e-12), 1.0)
    return (field * scale[None]).astype(np.float32)


def estimate_clip_motion(path: str | Path) -> np.ndarray:
    """Average motion of a static-camera clip, px/frame at the clip's resolution.

    Returns:
        (2, h, w) float32; channel 0 = x (right), 1 = y (down).
    """
    frames = read_clip_frames(path)
    flows = np.stack([dis_flow(a, b) for a, b in zip(frames[:-1], frames[1:])])
    log.info("clip %s: %d flow pairs at %dx%d", path, len(flows), frames[0].shape[1], frames[0].shape[0])
    return clamp_speed_outliers(robust_mean_flow(flows))
