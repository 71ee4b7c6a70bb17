"""Stills too large for one renderer: horizontal strips, a few frames at a time.

A strip of rows only depends on the rows its content can come from: the loop's travel plus the
pyramid's reach above and below it. Each strip is rendered by its own LoopRenderer on that
taller crop and only its own rows are kept, so at most one strip's state and a chunk of whole
frames are in memory at once. The strips' renderers integrate the motion again for every chunk
of frames; that is the price of the bounded memory.
"""
from __future__ import annotations

import ctypes
import logging
import os
from typing import Callable

import numpy as np
import torch

from .errors import Cancelled, InputError
from .progress import CancelFn, Progress, ProgressFn
from .stages.blend import COVERAGE_WINDOW
from .stages.coarse_place import COARSE_REACH
from .stages.inflow import inflow_reach
from .stages.layer import FILL_REACH, RIM
from .stages.padding import loop_padding
from .stages.place import PLACE_REACH

__all__ = ["BYTES_PER_PIXEL", "ENGINE_FLOOR_BYTES", "WRITER_BYTES_PER_PIXEL", "MEMORY_ENV", "memory_budget",
           "render_budget", "held_bytes", "peak_speed", "renderer_bytes", "strip_margin", "StripRenderer"]

log = logging.getLogger(__name__)

BYTES_PER_PIXEL = 320
"""Peak bytes per rendered pixel of one LoopRenderer and its frame (12.7 GiB at 8192x6144 on the CPU,
280 B/px; the finest band's outlier limit, stages/outliers.py, added 11-29 B/px at 2048x1536)."""

ENGINE_FLOOR_BYTES = 512 << 20
"""Resident bytes of a rendering process before its inputs and renderer: the interpreter, torch, OpenCV and
the compiled kernels (0.31 GiB after the imports alone; bench/bench_memory.py checks the whole)."""

WRITER_BYTES_PER_PIXEL = 8
"""Bytes per pixel of a frame that the writer and the video's reader hold beside the renderer: the frame as
uint8 and its BGR copy for the PNG encoder (io/images.py converts in row blocks, without a float copy)."""

_MIN_STRIP_ROWS = 64

MakeRenderer = Callable[[np.ndarray, np.ndarray, np.ndarray, "np.ndarray | None", int], object]
"""(image, composite_mask, motion_px, importance, first row in the still) crop -> an object with
``frame(t) -> (h, W, C)``."""


MEMORY_ENV = "STILLFLOW_MEMORY_GB"
"""Environment variable that caps the engine's memory, GiB (default: half of the device's)."""


def memory_budget(device: torch.device) -> int:
    """Bytes the engine may hold: $STILLFLOW_MEMORY_GB, else half the GPU's or the machine's memory.

    Raises:
        InputError: $STILLFLOW_MEMORY_GB is set but not a positive number.
    """
    if os.environ.get(MEMORY_ENV):
        try:
            gib = float(os.environ[MEMORY_ENV])
        except ValueError:
            gib = float("nan")
        if not gib > 0 or gib == float("inf"):
            raise InputError(f"{MEMORY_ENV} must be a positive number of GiB, got {os.environ[MEMORY_ENV]!r}",
                             hint=f"unset it or set e.g. {MEMORY_ENV}=8")
        return int(gib * 2**30)
    if device.type == "cuda":
        return int(0.5 * torch.cuda.get_device_properties(device).total_memory)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX: assume a 16 GiB machine
        total = 16 << 30
    # The other half holds the prepared still, its mask and motion, and the encoder's buffers.
    return int(0.5 * total)


def held_bytes(*arrays: np.ndarray | None) -> int:
    """Bytes of the given arrays (each counted once): the prepared inputs a render keeps beside the renderer."""
    unique = {id(array): array for array in arrays if array is not None}
    return sum(array.nbytes for array in unique.values())


def render_budget(device: torch.device, inputs: int, height: int, width: int) -> tuple[int, int]:
    """(bytes the renderer and its chunk of frames may use, bytes the rest of the render holds) under the cap.

    On the CPU the cap bounds the whole process: the engine itself (ENGINE_FLOOR_BYTES), the prepared
    ``inputs`` and the frame writer (WRITER_BYTES_PER_PIXEL of the height x width frame) come off it
    first. A GPU's budget is its own memory.
    """
    cap = memory_budget(device)
    held = ENGINE_FLOOR_BYTES + inputs + height * width * WRITER_BYTES_PER_PIXEL if device.type == "cpu" else 0
    return cap - held, held


def peak_speed(motion_px: np.ndarray) -> float:
    """max |M| over a (2, H, W) field in px/frame, in float64 but a block of rows at a time (no full copy)."""
    peak = 0.0
    step = max(1, (1 << 20) // max(1, motion_px.shape[2]))
    for top in range(0, motion_px.shape[1], step):
        block = motion_px[:, top:top + step].astype(np.float64)
        peak = max(peak, float(np.sqrt((block ** 2).sum(axis=0)).max(initial=0.0)))
    return peak


def _return_freed_memory() -> None:
    """Give the heap memory a finished strip freed back to the system; a no-op without glibc.

    glibc keeps freed memory in its threads' arenas: a 4096x3072 render under a 2 GiB cap peaked at
    2.30 GiB without this and 2.00 GiB with it (bench/bench_memory.py)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def renderer_bytes(height: int, width: int, pad: int = 0) -> int:
    """Peak bytes of rendering an (height, width) window in one piece, padded by ``pad`` px on every side."""
    return (height + 2 * pad) * (width + 2 * pad) * BYTES_PER_PIXEL


def strip_margin(max_speed: float, frames: int, levels: int) -> int:
    """Rows above and below a strip that can reach it: the loop's travel, the pyramid's reach, the
    window a copy's coverage and holes are averaged over and the 3x3 that tells a hole (at the
    coarsest band), the rows that texture flowing in at the frame's side is taken from, those the
    moving layer's fill behind the mask reads (stages/layer.py) and those a pixel's sharpness and
    coarse contrast are kept in place over (stages/place.py, stages/coarse_place.py)."""
    coverage = (COVERAGE_WINDOW // 2 + 1) * 2 ** max(0, levels - 1)
    return (loop_padding(max_speed, frames) + 4 * 2 ** levels + coverage + inflow_reach(levels)[0]
            + FILL_REACH + RIM + max(PLACE_REACH, COARSE_REACH))


class StripRenderer:
    """Frame t of the loop assembled from horizontal strips (frames asked for in increasing t).

    Args:
        image: (H, W, C) float32 still.
        composite_mask: (H, W) float32 composite mask.
        motion_px: (2, H, W) float32 final motion, px/frame.
        importance: optional (H, W) float32 Z.
        make: builds the renderer of one crop (the same settings as a whole-image render).
        frames: loop length N.
        levels: pyramid levels (for the margin).
        budget: bytes the strips' renderer and the chunk of frames may use together (render_budget).
        held: bytes the rest of the render holds under the same cap (for the message when it is too small).
        should_cancel: checked before each strip (a chunk of a huge still takes minutes).
        progress: told Progress("strips", k, strips) after each strip of a chunk.

    Raises:
        InputError: even a strip of 64 rows with its margin does not fit ``budget``.
        Cancelled: from ``frame`` when ``should_cancel()`` returned True.
    """

    def __init__(self, image: np.ndarray, composite_mask: np.ndarray, motion_px: np.ndarray,
                 importance: np.ndarray | None, *, make: MakeRenderer, frames: int, levels: int, budget: int,
                 held: int = 0, should_cancel: CancelFn | None = None, progress: ProgressFn | None = None) -> None:
        self.image, self.composite_mask, self.motion_px, self.importance = image, composite_mask, motion_px, importance
        self.make = make
        self.frames = frames
        self.should_cancel = should_cancel
        self.progress = progress
        height, width, channels = image.shape
        max_speed = peak_speed(motion_px)
        # Strips and their crops start on multiples of 2^levels: the pyramid grid of the whole image.
        self.align = align = 2 ** levels
        self.margin = -(-strip_margin(max_speed, frames, levels) // align) * align
        # The first and last strips read, from the still's top and bottom edge, the rows that texture
        # flowing in over that edge is copied from, and those rows' own pyramid and sideways reach.
        along, inside = inflow_reach(levels)
        self.end_rows = -(-(inside + 4 * 2 ** levels + along) // align) * align
        # each strip's renderer pads its crop's width by the loop's travel as well
        row_bytes = (width + 2 * loop_padding(max_speed, frames)) * BYTES_PER_PIXEL
        frame_bytes = height * width * channels * 4
        smallest = max(_MIN_STRIP_ROWS + 2 * self.margin, min(height, self.end_rows)) * row_bytes
        # frames take up to half the budget, but never the room of the smallest strip
        self.chunk = int(max(1, min(frames, (budget // 2) // frame_bytes, (budget - smallest) // frame_bytes)))
        crop_rows = (budget - self.chunk * frame_bytes) // row_bytes
        rows = crop_rows - 2 * self.margin
        if rows < _MIN_STRIP_ROWS or crop_rows < min(height, self.end_rows):
            need = smallest + frame_bytes + held
            raise InputError(f"a {width}x{height} still needs about {need / 2**30:.1f} GiB even in strips (each "
                             f"strip reads {self.margin} rows above and below: the loop's travel, the pyramid's "
                             f"reach and the rows its inflow texture comes from); "
                             f"{(budget + held) / 2**30:.1f} GiB may be used here, {held / 2**30:.1f} GiB of it by "
                             "the engine, the inputs and the writer",
                             hint=f"lower --frames or --speed, downscale the image, or raise {MEMORY_ENV}")
        rows = min(height, rows // align * align)
        self.strips = [(top, min(height, top + rows)) for top in range(0, height, rows)]
        self._buffer: list[np.ndarray] = []
        self._first = 0
        log.info("rendering %dx%d in %d strips of %d rows (+%d margin), %d frames at a time",
                 width, height, len(self.strips), rows, self.margin, self.chunk)

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as (H, W, C) float32."""
        if not self._first <= t < self._first + len(self._buffer):
            self._render_chunk(t, min(self.frames, t + self.chunk) if t < self.frames else t + 1)
        return self._buffer[t - self._first]

    def _render_chunk(self, first: int, end: int) -> None:
        """Frames [first, end) of every strip into whole-frame buffers."""
        self._buffer = []  # release the previous chunk before allocating the next
        self._buffer = [np.empty_like(self.image) for _ in range(first, end)]
        self._first = first
        height = self.image.shape[0]
        for done, (top, bottom) in enumerate(self.strips):
            if self.should_cancel is not None and self.should_cancel():
                raise Cancelled("the job was cancelled; nothing was written")
            low, high = max(0, top - self.margin), min(height, bottom + self.margin)
            # The first and last strips also read the rows that texture flowing in over the top and
            # bottom edges comes from (the budget above allows for them); crops start on the grid.
            if low == 0:
                high = min(height, max(high, self.end_rows))
            if high == height:
                low = max(0, min(low, (height - self.end_rows) // self.align * self.align))
            crop = slice(low, high)
            renderer = self.make(self.image[crop], self.composite_mask[crop], self.motion_px[:, crop],
                                 None if self.importance is None else self.importance[crop], low)
            for index, t in enumerate(range(first, end)):
                self._buffer[index][top:bottom] = renderer.frame(t)[top - low:bottom - low]
            del renderer
            _return_freed_memory()
            if self.progress is not None:
                self.progress(Progress("strips", done + 1, len(self.strips)))
