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


def _shimmer(cycles: int = 2, rows: slice = slice(20, 60)) -> Region:
    """A shimmering rectangle (water: its detail stays in place while its base ripples)."""
    mask = np.zeros((HEIGHT, WIDTH), np.float32)
    mask[rows, 6:90] = 1.0
    return Region(mask=mask, motion=MotionSpec(kind="sway", sway=SwaySpec(amplitude=1.5, cycles=cycles, shimmer=True,
                                                                           wavelength=10.0)))


TWO_CYCLES = [_region(cycles=2, rows=slice(4, 34)), _region(amplitude=1.5, cycles=3, rows=slice(30, 60), angle=-70.0)]
"""Two regions with their own cycle counts (two layers), overlapping in rows 30-33."""

SWAY_AND_SHIMMER = [_region(cycles=2, rows=slice(4, 40)), _shimmer(cycles=2)]
"""A sway and a shimmer of the same k, overlapping in rows 20-39: two layers, k = 2 and -2."""


class TestSwayPreview:
    @pytest.mark.parametrize("regions", [[_region()], TWO_CYCLES, [_shimmer()], SWAY_AND_SHIMMER],
                             ids=["one-layer", "two-layers", "shimmer", "sway-and-shimmer"])
    def test_matches_the_engine(self, renderer: PreviewRenderer, regions: list[Region]) -> None:
        image = _image()
        options = RenderOptions(frames=FRAMES, refine_mask=False)
        engine = list(render_frames(image, regions=regions, options=options))
        sway = _waves(image, regions, options)
        kinds = {(region.motion.sway.cycles, region.motion.sway.shimmer) for region in regions}
        assert sorted(k for k in sway.cycles if k) == sorted(-k if shimmer else k for k, shimmer in kinds)
        renderer.set_inputs(image, np.zeros((2, HEIGHT, WIDTH), np.float32), np.zeros((HEIGHT, WIDTH), np.float32),
                            sway=sway)
        for phase in range(FRAMES):
            preview = renderer.loop_frame(phase, FRAMES)[..., :3]
            off = np.abs(preview - engine[phase]).max(axis=-1)
            assert (off > SAME_TOL).mean() <= TIE_FRACTION, (phase, float(off.max()), float((off > SAME_TOL).mean()))
        assert torch.equal(torch.from_numpy(renderer.loop_frame(0, FRAMES)[..., :3]), torch.from_numpy(image))
        assert torch.equal(torch.from_numpy(renderer.loop_frame(FRAMES, FRAMES)[..., :3]), torch.from_numpy(image))

    @pytest.mark.parametrize("variant", ["reversed", "lockstep cycles", "no sway", "first layer only",
                                         "shimmer moves its detail"])
    def test_wrong_variants_differ(self, renderer: PreviewRenderer, variant: str) -> None:
        """The comparison above can fail: a reversed sway, another cycle count, none, a dropped layer or a
        shimmer drawn as a sway (its detail stepping) differ."""
        image = _image()
        regions = SWAY_AND_SHIMMER if variant == "shimmer moves its detail" else TWO_CYCLES
        options = RenderOptions(frames=FRAMES, refine_mask=False)
        engine = list(render_frames(image, regions=regions, options=options))
        right = _waves(image, regions, options)
        sway = {"reversed": dataclasses.replace(right, waves=-right.waves),
                "lockstep cycles": dataclasses.replace(right, cycles=tuple(k + 1 if k else 0 for k in right.cycles)),
                "no sway": None,
                "first layer only": dataclasses.replace(right, cycles=(right.cycles[0], 0, 0, 0)),
                "shimmer moves its detail": dataclasses.replace(right, cycles=tuple(abs(k) for k in right.cycles))}[variant]
        renderer.set_inputs(image, np.zeros((2, HEIGHT, WIDTH), np.float32), np.zeros((HEIGHT, WIDTH), np.float32),
                            sway=sway)
        preview = renderer.loop_frame(2, FRAMES)[..., :3]
        assert (np.abs(preview - engine[2]).max(axis=-1) > SAME_TOL).mean() > 0.1
