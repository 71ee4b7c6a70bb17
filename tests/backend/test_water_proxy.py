"""bench/water_proxy.py: the synthetic water clips it builds move as their still's motion file says."""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from stillflow.stages.clip_flow import dis_flow

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from water_proxy import STILLS, make_clip  # noqa: E402

LAKE = STILLS / "scg-0000008.png"
ROWS = (540, 740)  # the lake's shore: forest above, water below
pytestmark = pytest.mark.skipif(not LAKE.is_file(), reason="shared test data not available")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[np.ndarray], np.ndarray]:
    """Nine frames of a lake proxy (1 px/frame) and its mask."""
    out = tmp_path_factory.mktemp("proxy") / "lake"
    make_clip(LAKE, out, ROWS, speed=1.0, turbulence=0.5, ripple=0.06, frames=9, seed=0)
    frames = [cv2.cvtColor(cv2.imread(str(out / f"frame_{t:03d}.jpg")), cv2.COLOR_BGR2RGB) for t in range(9)]
    return frames, cv2.imread(str(out / "mask.png"), cv2.IMREAD_GRAYSCALE) > 127


def test_only_the_water_changes(clip: tuple[list[np.ndarray], np.ndarray]) -> None:
    """Away from the water (farther than a JPEG block) every frame is frame 0; the water changes."""
    frames, mask = clip
    assert 0.2 < mask.mean() < 0.8
    far = cv2.erode((~mask).astype(np.uint8), np.ones((33, 33), np.uint8)) > 0
    inner = cv2.erode(mask.astype(np.uint8), np.ones((17, 17), np.uint8)) > 0
    for frame in frames[1:]:
        assert np.array_equal(frame[far], frames[0][far])
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int))[inner].mean() > 5


def test_the_water_drifts_with_the_motion_file(clip: tuple[list[np.ndarray], np.ndarray]) -> None:
    """The clip's mean optical flow points along the still's motion file at about the asked speed."""
    frames, mask = clip
    motion = np.load(LAKE.with_name(LAKE.stem + "_motion.npy"))[0]
    width = frames[0].shape[1]
    mean = np.stack([cv2.resize(m, (width, width)) for m in motion])[:, ROWS[0]:ROWS[1]]
    flow = np.mean([dis_flow(a, b) for a, b in zip(frames[:-1], frames[1:])], axis=0)
    inner = cv2.erode(mask.astype(np.uint8), np.ones((17, 17), np.uint8)) > 0
    expected, seen = mean[:, inner], flow[:, inner]
    cosine = (expected * seen).sum() / np.linalg.norm(expected) / np.linalg.norm(seen)
    direction = expected.mean(axis=1) / np.linalg.norm(expected.mean(axis=1))
    along = float((seen * direction[:, None]).sum(axis=0).mean())
    assert cosine > 0.7
    assert 0.5 < along < 1.5  # px/frame; the ripples and eddies are not the current
