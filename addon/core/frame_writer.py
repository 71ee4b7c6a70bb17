"""Write the frames a remote backend sent back as PNG files, in a worker thread the timer watches.

No ``bpy`` module use. A remote result arrives as (N, H, W, C) arrays; encoding 24 large PNGs takes
seconds, so it must not happen on Blender's main thread. ``FrameWriter`` encodes them with zlib (which
releases the GIL) into a staging folder beside ``out_dir`` and renames it into place whole.

Thread and process contract:
  - The worker thread touches no bpy data and no socket: it reads the frame array it was given and
    writes files; ``done``, ``error`` and ``finished`` are the only state it shares (plain values).
  - ``cancel()`` asks it to stop between frames and waits for it; nothing half-written stays behind.
"""
from __future__ import annotations

import json
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np

from .lib import load, stillflow

__all__ = ["FrameWriter", "encode_png"]

_frames_io = load("io.frames")


def encode_png(rgb: np.ndarray, *, level: int = 6) -> bytes:
    """PNG bytes of an (H, W, C) uint8 image, C = 1, 3 or 4, rows top-down (8-bit, filter 'Up')."""
    height, width, channels = rgb.shape
    colour = {1: 0, 3: 2, 4: 6}[channels]
    rows = np.ascontiguousarray(rgb).reshape(height, width * channels)
    up = rows.copy()
    up[1:] -= rows[:-1]  # uint8 wraps, as the Up filter defines
    raw = np.empty((height, width * channels + 1), np.uint8)
    raw[:, 0] = 2
    raw[:, 1:] = up
    raw[0, 0], raw[0, 1:] = 0, rows[0]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw.tobytes(), level))
            + chunk(b"IEND", b""))


def _as_uint8(frame: np.ndarray) -> np.ndarray:
    """A frame as uint8 (float frames are in [0, 1])."""
    if frame.dtype == np.uint8:
        return frame
    return np.clip(np.rint(frame.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)


class FrameWriter:
    """Writes frame_0000.png ... and manifest.json of ``frames`` into ``out_dir`` (whole or not at all) in a thread."""

    def __init__(self, frames: np.ndarray, out_dir: str) -> None:
        self.frames = frames
        self.out_dir = out_dir
        self.total = int(frames.shape[0])
        self.done = 0
        self.error: Exception | None = None
        self.paths: list[str] = []
        self.finished = False
        self._stop = threading.Event()
        # Making the folder first reports an unusable Output Folder as the OSError it is.
        os.makedirs(Path(out_dir).parent, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="stillflow-frame-writer", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """Stop between frames and wait for the thread; the staging folder is removed."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        """Thread body: encode every frame into staging, then move the folder into place."""
        try:
            names = [f"frame_{index:04d}.png" for index in range(self.total)]
            with _frames_io.atomic_dir(self.out_dir) as staging:
                for index, name in enumerate(names):
                    if self._stop.is_set():
                        raise InterruptedError("writing the frames was cancelled")
                    (staging / name).write_bytes(encode_png(_as_uint8(self.frames[index])))
                    self.done = index + 1
                # the manifest makes the folder a Stillflow result, which a later job may replace
                manifest = {"stillflow_version": stillflow().__version__, "frames": self.total, "files": names}
                (staging / _frames_io.MANIFEST).write_text(json.dumps(manifest, indent=2))
            self.paths = [os.path.join(self.out_dir, name) for name in names]
        except Exception as error:  # handed to the main thread, which reports it
            self.error = error
        finally:
            self.finished = True
