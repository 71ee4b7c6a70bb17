"""The loop preview of a still with two motion regions, fed by the add-on's own preview data, against the engine.

A drifting band and a swaying band with static land between them: the add-on's bpy-free code
(``addon/core/preview_flow.py``, ``addon/core/preview_sway.py``) turns the regions into the
shader's inputs exactly as the live preview in Blender does, and the frames drawn from them are
compared with ``render_frames`` of the same regions.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from addon.core import preview_flow
from glharness import PreviewRenderer, preview_sway
from stillflow import MotionSpec, Region, RenderOptions, SwaySpec, render_frames

FRAMES = 12
HEIGHT, WIDTH = 64, 96
SAME_TOL = 1e-5
"""|preview - engine| of a swaying pixel: the same float32 arithmetic (tests/shaders/test_sway_preview.py)."""
TIE_FRACTION = 0.002
"""Swaying pixels whose whole-pixel step may round the other way."""
APPROXIMATION_TOL = 0.03
"""Mean |preview - engine| of the drifting band (the gather approximates the splat, test_loop_preview.py)."""
VARIANT_RATIO = 0.8
"""The drift must beat a reversed one by this factor (as in test_loop_preview.py)."""

BANDS = {"drift": slice(4, 24), "land": slice(24, 36), "sway": slice(36, 60)}


def _image() -> np.ndarray:
    """(H, W, 3) float32: a smooth pattern with fine detail."""
    rng = np.random.default_rng(11)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    smooth = np.stack([0.5 + 0.25 * np.sin(xs / 5 + c) + 0.15 * np.cos(ys / 7 - 2 * c) for c in range(3)], -1)
    return np.clip(smooth + 0.05 * rng.standard_normal((HEIGHT, WIDTH, 3)), 0, 1).astype(np.float32)


def _regions() -> list[Region]:
    """A band drifting right at 0.6 px/frame above a band swaying at 30 deg, static land between."""
    drift, sway = (np.zeros((HEIGHT, WIDTH), np.float32) for _ in range(2))
    drift[BANDS["drift"], 10:86] = 1.0
    sway[BANDS["sway"], 10:86] = 1.0
    return [Region(mask=drift, motion=MotionSpec(kind="drift", drift=(0.0, 0.6))),
            Region(mask=sway, motion=MotionSpec(kind="sway", sway=SwaySpec(amplitude=2.0, cycles=1, angle=30.0)))]


@pytest.fixture(scope="module")
def engine() -> list[np.ndarray]:
    """The engine's frames of the two regions (one scale, no feather or inpainting: the preview has neither)."""
    options = RenderOptions(frames=FRAMES, levels=1, refine_mask=False, feather=0.0, inpaint=False)
    return list(render_frames(_image(), regions=_regions(), options=options))


def _upload(renderer: PreviewRenderer) -> None:
    """The add-on's preview data for the two regions, uploaded as Blender's preview uploads it."""
    options = RenderOptions(frames=FRAMES, refine_mask=False)
    motion, weight = preview_flow.region_flow(_regions(), HEIGHT, WIDTH)
    renderer.set_inputs(_image(), motion, weight, sway=preview_sway.preview_sway(_regions(), options, HEIGHT, WIDTH))


class TestRegionsPreview:
    @pytest.mark.parametrize("phase", [2, 5, 9])
    def test_each_region_as_the_engine(self, renderer: PreviewRenderer, engine: list[np.ndarray], phase: int) -> None:
        _upload(renderer)
        image, preview = _image(), renderer.loop_frame(phase, FRAMES)[..., :3]
        off = np.abs(preview - engine[phase]).max(axis=-1)
        swaying = off[BANDS["sway"]]
        assert (swaying > SAME_TOL).mean() <= TIE_FRACTION, float(swaying.max())
        assert np.abs(engine[phase][BANDS["sway"]] - image[BANDS["sway"]]).max() > 0.05  # it does sway
        drifting = np.abs(preview - engine[phase])[BANDS["drift"], 10:86].mean()
        assert drifting < APPROXIMATION_TOL
        reversed_drift = np.abs(renderer.loop_frame(phase, FRAMES, speed=-1.0)[..., :3] - engine[phase])
        assert drifting < VARIANT_RATIO * reversed_drift[BANDS["drift"], 10:86].mean()
        # the land between the regions stays the still, bit for bit, in both
        assert torch.equal(torch.from_numpy(preview[BANDS["land"]]), torch.from_numpy(image[BANDS["land"]]))
        assert torch.equal(torch.from_numpy(engine[phase][BANDS["land"]]), torch.from_numpy(image[BANDS["land"]]))

    def test_frame_zero_is_the_still(self, renderer: PreviewRenderer) -> None:
        _upload(renderer)
        for phase in (0, FRAMES):
            assert torch.equal(torch.from_numpy(renderer.loop_frame(phase, FRAMES)[..., :3]), torch.from_numpy(_image()))
