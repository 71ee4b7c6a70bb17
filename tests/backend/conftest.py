"""Fixtures for the engine tests: shared data, seeded inputs, small real images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The shared test data folder; skips the test when it is absent."""
    if not DATA.is_dir():
        pytest.skip("shared test data not available (../shared/data)")
    return DATA


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator."""
    return np.random.default_rng(1234)


@pytest.fixture
def photo(shared_data: Path) -> np.ndarray:
    """A real photo (river scene), downscaled to 96x128, float32 RGB in [0, 1]."""
    import cv2

    pixels = cv2.imread(str(shared_data / "stills" / "scg-IMG_6036.png"), cv2.IMREAD_COLOR)
    pixels = cv2.resize(pixels, (128, 96), interpolation=cv2.INTER_AREA)
    return (cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0)


@pytest.fixture
def photo_mask(shared_data: Path) -> np.ndarray:
    """The photo's real mask stretched to the photo's 96x128 (masks of another shape are refused)."""
    from stillflow.io.images import load_mask
    from stillflow.stages.mask import resize_mask

    return resize_mask(load_mask(shared_data / "stills" / "scg-IMG_6036_mask.png"), 96, 128)


@pytest.fixture
def smooth_image(rng: np.random.Generator) -> np.ndarray:
    """A synthetic textured 64x80 RGB image (sums of sinusoids), float32 in [0, 1]."""
    ys, xs = np.mgrid[0:64, 0:80].astype(np.float32)
    channels = [0.5 + 0.25 * np.sin(xs / (3 + c) + c) * np.cos(ys / (4 + c)) + 0.1 * np.sin((xs + ys) / 2.0)
                for c in range(3)]
    return np.clip(np.stack(channels, axis=-1), 0, 1).astype(np.float32)
