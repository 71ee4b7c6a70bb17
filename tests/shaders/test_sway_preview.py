"""The loop preview's sway (shaders/loop_preview.frag.glsl) against the engine's swaying frames, headless."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from glharness import PreviewRenderer, preview_sway
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


def _region(amplitude: float = 2.5, cycles: int = 2, rows: slice = slice(8, 56), angle: float = 30.0) -> Region:
    """A swaying rectangle with a static frame around it."""
    mask = np.zeros((HEIGHT, WIDTH), np.float32)
    mask[rows, 10:86] = 1.0
    return Region(mask=mask, motion=MotionSpec(kind="sway", sway=SwaySpec(amplitude=amplitude, cycles=cycles,
                                                                           angle=angle)))


def _waves(image: np.ndarray, regions: list[Region], options: RenderOptions) -> preview_sway.SwayTextures:
    """The engine's sway plan as the preview's textures."""
    plan = prepare(image, mask=None, motion=MotionSpec(), options=options, regions=regions).sway
    return preview_sway.sway_textures(plan, HEIGHT, WIDTH)


TWO_CYCLES = [_region(cycles=2, rows=slice(4, 34)), _region(amplitude=1.5, cycles=3, rows=slice(30, 60), angle=-70.0)]
"""Two regions with their own cycle counts (two layers), overlapping in rows 30-33."""


class TestSwayPreview:
    @pytest.mark.parametrize("regions", [[_region()], TWO_CYCLES], ids=["one-layer", "two-layers"])
    def test_matches_the_engine(self, renderer: PreviewRenderer, regions: list[Region]) -> None:
        image = _image()
        options = RenderOptions(frames=FRAMES, refine_mask=False)
        engine = list(render_frames(image, regions=regions, options=options))
        sway = _waves(image, regions, options)
        assert sum(k > 0 for k in sway.cycles) == len({region.motion.sway.cycles for region in regions})
        renderer.set_inputs(image, np.zeros((2, HEIGHT, WIDTH), np.float32), np.zeros((HEIGHT, WIDTH), np.float32),
                            sway=sway)
        for phase in range(FRAMES):
            preview = renderer.loop_frame(phase, FRAMES)[..., :3]
            off = np.abs(preview - engine[phase]).max(axis=-1)
            assert (off > SAME_TOL).mean() <= TIE_FRACTION, (phase, float(off.max()), float((off > SAME_TOL).mean()))
        assert torch.equal(torch.from_numpy(renderer.loop_frame(0, FRAMES)[..., :3]), torch.from_numpy(image))
        assert torch.equal(torch.from_numpy(renderer.loop_frame(FRAMES, FRAMES)[..., :3]), torch.from_numpy(image))

    @pytest.mark.parametrize("variant", ["reversed", "lockstep cycles", "no sway", "first layer only"])
    def test_wrong_variants_differ(self, renderer: PreviewRenderer, variant: str) -> None:
        """The comparison above can fail: a reversed sway, another cycle count, none or a dropped layer differ."""
        image, regions = _image(), TWO_CYCLES
        options = RenderOptions(frames=FRAMES, refine_mask=False)
        engine = list(render_frames(image, regions=regions, options=options))
        right = _waves(image, regions, options)
        sway = {"reversed": dataclasses.replace(right, waves=-right.waves),
                "lockstep cycles": dataclasses.replace(right, cycles=tuple(k + 1 if k else 0 for k in right.cycles)),
                "no sway": None,
                "first layer only": dataclasses.replace(right, cycles=(right.cycles[0], 0, 0, 0))}[variant]
        renderer.set_inputs(image, np.zeros((2, HEIGHT, WIDTH), np.float32), np.zeros((HEIGHT, WIDTH), np.float32),
                            sway=sway)
        preview = renderer.loop_frame(2, FRAMES)[..., :3]
        assert (np.abs(preview - engine[2]).max(axis=-1) > SAME_TOL).mean() > 0.1
