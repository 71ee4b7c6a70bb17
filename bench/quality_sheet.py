"""Contact sheets for bench_quality.py: real / baselines / loop / once at t = 1, 8, mid-loop, N - 1."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

ROWS = ("real", "backward warp", "cross-fade", "loop", "once")
CROP = 192
"""Side of the 1:1 crop (shown at 2x) taken where the first frame has the most detail inside the mask."""


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    """The tile with ``text`` written at its top-left corner on a dark band."""
    tile = tile.copy()
    cv2.rectangle(tile, (0, 0), (min(tile.shape[1], 9 * len(text) + 8), 20), (0, 0, 0), -1)
    cv2.putText(tile, text, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def _detail_window(frame: np.ndarray, mask: np.ndarray) -> tuple[slice, slice]:
    """The CROP x CROP window, fully inside the mask where possible, with the most Laplacian energy."""
    luma = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    energy = cv2.Laplacian(luma, cv2.CV_32F) ** 2 * mask
    score = cv2.boxFilter(energy, -1, (CROP, CROP), normalize=True, borderType=cv2.BORDER_CONSTANT)
    inside = cv2.boxFilter(mask.astype(np.float32), -1, (CROP, CROP), normalize=True, borderType=cv2.BORDER_CONSTANT)
    half = CROP // 2
    score[inside < 0.9] = 0
    score[:half], score[-half:], score[:, :half], score[:, -half:] = 0, 0, 0, 0
    y, x = np.unravel_index(int(np.argmax(score)), score.shape)
    y = int(np.clip(y, half, frame.shape[0] - half))
    x = int(np.clip(x, half, frame.shape[1] - half))
    return slice(y - half, y - half + CROP), slice(x - half, x - half + CROP)


def _to_bgr8(frame: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] -> 8-bit BGR."""
    return cv2.cvtColor(np.clip(np.rint(frame * 255), 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)


def write_sheet(path: Path, real: list[np.ndarray], frames: dict[str, list[np.ndarray]], mask: np.ndarray,
                loop: int) -> None:
    """``path`` (whole frames at half size) and ``path``_crop (a detailed window, 1:1 shown at 2x).

    The real clip has T < N frames: its cell at t = N - 1 shows frame 0, which the loop returns to.
    """
    times = sorted({1, min(8, loop - 1), loop // 2, loop - 1})
    window = _detail_window(real[0], mask)
    full_rows, crop_rows = [], []
    for row in ROWS:
        full_cells, crop_cells = [], []
        for t in times:
            if row == "real":
                shown = t if t < len(real) else 0
                frame, text = real[shown], f"real t={shown}" + (" (loop end)" if shown != t else "")
            else:
                frame, text = frames[row][t], f"{row} t={t}"
            bgr = _to_bgr8(frame)
            small = cv2.resize(bgr, (bgr.shape[1] // 2, bgr.shape[0] // 2), interpolation=cv2.INTER_AREA)
            full_cells.append(_label(small, text))
            crop = cv2.resize(bgr[window], (2 * CROP, 2 * CROP), interpolation=cv2.INTER_NEAREST)
            crop_cells.append(_label(crop, text))
        full_rows.append(np.hstack(full_cells))
        crop_rows.append(np.hstack(crop_cells))
    cv2.imwrite(str(path), np.vstack(full_rows))
    cv2.imwrite(str(path.with_name(path.stem + "_crop.png")), np.vstack(crop_rows))
