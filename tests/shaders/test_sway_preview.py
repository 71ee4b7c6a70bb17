"""The loop preview's sway (shaders/loop_preview.frag.glsl) against the engine's swaying frames, headless."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from glharness import PreviewRenderer
from stillflow import MotionSpec, Region, RenderOptions, SwaySpec, render_frames
from stillflow.pipeline import prepare

FRAMES = 12
HEIGHT, WIDTH = 64, 96

SAME_TOL = 1e-5
"""|preview - engine|: the same float32 arithmetic in the same order, up to sin/cos rounding."""

TIE_FRACTION = 0.002
"""Pixels whose whole-pixel step may round the other way (D + S within float rounding of a half)."""


def _image() -> np.ndarray:
    """(H, W, 3) float32 with fine detail (a whole-pixel step of the detail shows)."""
    rng = np.random.default_rng(7)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    smooth = np.stack([0.5 + 0.2 * np.sin(xs / 6 + c) * np.cos(ys / 9 - c) for c in range(3)], -1)
    return np.clip(smooth + 0.1 * rng.standard_normal((HEIGHT, WIDTH, 3)), 0, 1).astype(np.float32)


def _region(amplitude: float = 2.5, cycles: int = 2) -> Region:
    """A swaying rectangle with a static frame around it."""
    mask = np.zeros((HEIGHT, WIDTH), np.float32)
    mask[8:56, 10:86] = 1.0
    return Region(mask=mask, motion=MotionSpec(kind="sway", sway=SwaySpec(amplitude=amplitude, cycles=cycles,
                                                                           angle=30.0)))


def _waves(image: np.ndarray, region: Region, options: RenderOptions) -> tuple[np.ndarray, np.ndarray, int]:
    """The engine's sway layer (C, S, k) over the whole image."""
    plan = prepare(image, mask=None, motion=MotionSpec(), options=options, regions=[region]).sway
    (layer,) = plan.layers
    wave_cos, wave_sin = (np.zeros((2, HEIGHT, WIDTH), np.float32) for _ in range(2))
    wave_cos[:, plan.window[0], plan.window[1]] = layer.wave_cos
    wave_sin[:, plan.window[0], plan.window[1]] = layer.wave_sin
    return wave_cos, wave_sin, layer.cycles


class TestSwayPreview:
    def test_matches_the_engine(self, renderer: PreviewRenderer) -> None:
        image, region = _image(), _region()
        options = RenderOptions(frames=FRAMES, refine_mask=False)
        engine = list(render_frames(image, regions=[region], options=options))
        wave_cos, wave_sin, cycles = _waves(image, region, options)
        renderer.set_inputs(image, np.zeros((2, HEIGHT, WIDTH), np.float32), np.zeros((HEIGHT, WIDTH), np.float32),
                            sway=(wave_cos, wave_sin, cycles))
        for phase in range(FRAMES):
            preview = renderer.loop_frame(phase, FRAMES)[..., :3]
            off = np.abs(preview - engine[phase]).max(axis=-1)
            assert (off > SAME_TOL).mean() <= TIE_FRACTION, (phase, float(off.max()), float((off > SAME_TOL).mean()))
        assert torch.equal(torch.from_numpy(renderer.loop_frame(0, FRAMES)[..., :3]), torch.from_numpy(image))
        assert torch.equal(torch.from_numpy(renderer.loop_frame(FRAMES, FRAMES)[..., :3]), torch.from_numpy(image))

    @pytest.mark.parametrize("variant", ["reversed", "lockstep cycles", "no sway"])
    def test_wrong_variants_differ(self, renderer: PreviewRenderer, variant: str) -> None:
        """The comparison above can fail: a reversed sway, another cycle count or none differ from the engine."""
        image, region = _image(), _region()
        options = RenderOptions(frames=FRAMES, refine_mask=False)
        engine = list(render_frames(image, regions=[region], options=options))
        wave_cos, wave_sin, cycles = _waves(image, region, options)
        sway = {"reversed": (-wave_cos, -wave_sin, cycles), "lockstep cycles": (wave_cos, wave_sin, cycles + 1),
                "no sway": None}[variant]
        renderer.set_inputs(image, np.zeros((2, HEIGHT, WIDTH), np.float32), np.zeros((HEIGHT, WIDTH), np.float32),
                            sway=sway)
        preview = renderer.loop_frame(2, FRAMES)[..., :3]
        assert (np.abs(preview - engine[2]).max(axis=-1) > SAME_TOL).mean() > 0.1
