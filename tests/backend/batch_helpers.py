"""Small stills and folders for the batch tests (real PNG files, real sidecars)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
FAST = ("--frames", "3", "--levels", "2")


def write_still(path: Path, seed: int, height: int = 48, width: int = 64) -> Path:
    """A seeded random RGB PNG."""
    import cv2

    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), pixels)
    return path


def make_folder(folder: Path, count: int = 3, *, bad: str | None = None) -> Path:
    """``count`` stills with one of each sidecar kind, plus an unreadable still called ``bad``."""
    import cv2

    for index in range(count):
        write_still(folder / f"still{index}.png", index)
    mask = np.zeros((48, 64), np.uint8)
    mask[8:40] = 255
    cv2.imwrite(str(folder / "still0_mask.png"), mask)
    (folder / "still1.hints.txt").write_text("# arrows in image pixels\nhint 10,20,60,20\nanchor 5 5\n")
    np.save(folder / "still2_motion.npy", np.full((2, 12, 16), 0.5, np.float32))
    if bad is not None:
        (folder / f"{bad}.png").write_bytes(b"not a png at all")
    return folder


def stillflow(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m stillflow ARGS`` and capture its output."""
    return subprocess.run([sys.executable, "-m", "stillflow", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def summary(out: Path) -> dict[str, dict]:
    """batch.json's items by name."""
    return {item["name"]: item for item in json.loads((out / "batch.json").read_text())["items"]}


def frames_of(folder: Path) -> dict[str, bytes]:
    """Every frame file's bytes in a result folder."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("frame_*"))}


def no_leftovers(out: Path) -> list[str]:
    """Hidden staging or backup entries left in ``out``."""
    return [p.name for p in out.iterdir() if p.name.startswith(".")]
