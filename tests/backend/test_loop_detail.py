"""The loop's detail bands: one copy restores its contrast as the blend of two does; limits are not gained."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import stillflow.loop
from stillflow import RenderOptions
from stillflow.loop import LoopPlan, LoopRenderer
from stillflow.stages.pyramid import laplacian_bands


def _texture(rng: np.random.Generator, height: int = 96, width: int = 128) -> np.ndarray:
    """Fine, even texture with no isolated pixels, (H, W, 3) float32."""
    import cv2

    fine = cv2.GaussianBlur(rng.normal(0, 1, (height, width, 3)).astype(np.float32), (0, 0), 0.9)
    return np.clip(0.5 + 0.2 * fine / fine.std(), 0, 1).astype(np.float32)


def _finest_energy(frame: np.ndarray) -> float:
    """Mean energy of the finest band of a frame, away from its edges."""
    band = laplacian_bands(torch.from_numpy(frame).permute(2, 0, 1).contiguous(), 4)[0]
    return float((band ** 2).sum(0)[12:-12, 12:-12].mean())


def test_a_copy_alone_keeps_the_contrast_of_its_cracks_as_the_blend_does(rng: np.random.Generator,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The outer quarters (one copy splatted) are as sharp as a blend in which the other copy has no share."""
    image = _texture(rng)
    xs = np.arange(128, dtype=np.float32)
    motion = np.zeros((2, 96, 128), np.float32)
    motion[0] = 0.05 * (xs - 64)  # a stretch: whole-pixel landing leaves cracks, filled from neighbours
    plan = LoopPlan.from_options(RenderOptions(frames=24, levels=4))
    renderer = LoopRenderer(image, np.ones((96, 128), np.float32), motion, plan, device=torch.device("cpu"))
    t = 5
    assert stillflow.loop.blend_schedule(t / 24) == 0.0
    alone = renderer.frame(t)
    monkeypatch.setattr(stillflow.loop, "blend_schedule", lambda phase: 1e-7)
    blended = renderer.frame(t)
    ratio = _finest_energy(alone) / _finest_energy(blended)
    assert 0.98 <= ratio <= 1.02, f"one copy alone keeps {ratio:.3f} of the blend's fine detail"


def test_the_allowed_deviation_of_a_pixel_is_never_more_than_a_particle_brought(
        rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the blend of two copies the outlier limit lets no pixel stand out more than any particle did."""
    image = _texture(rng)
    ys, xs = np.mgrid[0:96, 0:128].astype(np.float32)
    motion = np.stack([1.5 * np.sin(ys / 13), 1.5 * np.cos(xs / 11)]).astype(np.float32)
    mask = np.zeros((96, 128), np.float32)
    mask[16:80, 16:112] = 1.0
    motion *= mask[None]
    plan = LoopPlan.from_options(RenderOptions(frames=16, levels=4))
    renderer = LoopRenderer(image, mask, motion, plan, device=torch.device("cpu"))
    seen: list[torch.Tensor] = []
    real_limit = stillflow.loop.limit_outliers_

    def watching(band: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        seen.append(allowed[0].clone())
        return real_limit(band, allowed)

    monkeypatch.setattr(stillflow.loop, "limit_outliers_", watching)
    renderer.frame(8)  # the middle: both copies, mixed half and half
    pad, channels = renderer.padding, image.shape[2]
    brought = renderer._values[0][channels, pad:-pad, pad:-pad]  # the particles' squared deviations
    inside = torch.from_numpy(mask[renderer.window][8:-8, 8:-8] > 0)  # the swirl keeps its particles inside
    ratio = float(seen[0][8:-8, 8:-8][inside].square().mean() / brought[8:-8, 8:-8][inside].mean())
    # An RMS mix keeps the mean squared deviation; a contrast gain on it (up to 2x) let dots through.
    assert 0.85 <= ratio <= 1.1, f"the allowed deviations hold {ratio:.3f}x the particles' energy"
