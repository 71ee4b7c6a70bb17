"""The motion overlay's sway layer (shaders/motion_overlay.frag.glsl) against the engine's sway plan, headless."""
from __future__ import annotations

import colorsys

import numpy as np
import pytest

from glharness import OverlayStyle, PreviewRenderer, preview_math, preview_sway
from stillflow import MotionSpec, Region, RenderOptions, SwaySpec
from stillflow.pipeline import prepare
from stillflow.stages.sway import SwayPlan, sway_displacement

FRAMES = 12
HEIGHT, WIDTH = 48, 80
SWAY_ONLY = OverlayStyle(layers=preview_math.OVERLAY_LAYERS["sway"])


def _mask() -> np.ndarray:
    """(H, W) a rectangle with static land around it."""
    mask = np.zeros((HEIGHT, WIDTH), np.float32)
    mask[6:42, 8:72] = 1.0
    return mask


def _plan(sway: SwaySpec) -> SwayPlan:
    """The engine's plan of one region with ``sway`` over a grey still."""
    region = Region(mask=_mask(), motion=MotionSpec(kind="sway", sway=sway))
    options = RenderOptions(frames=FRAMES, refine_mask=False)
    plan = prepare(_grey(), mask=None, motion=MotionSpec(), options=options, regions=[region]).sway
    assert plan is not None
    return plan


def _grey() -> np.ndarray:
    return np.full((HEIGHT, WIDTH, 3), 0.5, np.float32)


def _oscillation(plan: SwayPlan, t: int) -> np.ndarray:
    """The engine's P(t) = D(t) + P(0) over the whole image: (2, H, W) px, y down (a shimmer's layers too)."""
    now = np.zeros((2, HEIGHT, WIDTH), np.float32)
    now[:, plan.window[0], plan.window[1]] = sway_displacement(plan, t) + sum(layer.wave_sin for layer in plan.layers)
    return now


def _hsv(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 3) hue, saturation, value of straight RGBA."""
    return np.array([colorsys.rgb_to_hsv(*px) for px in rgba[..., :3].reshape(-1, 3)]).reshape(HEIGHT, WIDTH, 3)


@pytest.fixture
def swaying(renderer: PreviewRenderer) -> SwayPlan:
    """A region swaying at 30 deg, 2 cycles, its gust travelling across it; uploaded to ``renderer``."""
    plan = _plan(SwaySpec(amplitude=3.0, cycles=2, angle=30.0, noise=0.0))
    renderer.set_inputs(_grey(), np.zeros((2, HEIGHT, WIDTH), np.float32), None,
                        sway=preview_sway.sway_textures(plan, HEIGHT, WIDTH))
    return plan


class TestOverlaySway:
    @pytest.mark.parametrize("t", [1, 4, 7])
    def test_colour_is_the_engines_oscillation(self, renderer: PreviewRenderer, swaying: SwayPlan, t: int) -> None:
        rgba = renderer.overlay(float(t), style=SWAY_ONLY, frames=FRAMES)
        now = _oscillation(swaying, t)
        largest = renderer.sway.largest
        hsv = _hsv(rgba)
        strength = np.hypot(now[0], now[1]) / largest
        np.testing.assert_allclose(hsv[..., 1], strength, atol=0.01)
        np.testing.assert_allclose(rgba[..., 3][strength > 0], 0.3 + 0.4 * strength[strength > 0], atol=0.01)
        shown = strength > 0.3  # hue is undefined for nearly white pixels
        assert shown.mean() > 0.2
        screen_angle = np.degrees(np.arctan2(-now[1], now[0])) % 360
        wrapped = (hsv[..., 0] * 360 - screen_angle + 180) % 360 - 180
        assert np.abs(wrapped[shown]).max() < 2.0
        # the sway is along 30 deg: the hue is 30 deg one way or 210 deg the other
        assert set(np.unique(np.round(screen_angle[shown]))) <= {30.0, 210.0}

    def test_animates_with_the_loop(self, renderer: PreviewRenderer, swaying: SwayPlan) -> None:
        first = renderer.overlay(0.0, style=SWAY_ONLY, frames=FRAMES)
        later = renderer.overlay(3.0, style=SWAY_ONLY, frames=FRAMES)
        between = renderer.overlay(3.5, style=SWAY_ONLY, frames=FRAMES)
        assert np.abs(later - first).max(axis=-1).mean() > 0.1
        assert np.abs(between - later).max() > 0.01
        # one whole loop later, the same picture: the oscillation has whole cycles per loop
        np.testing.assert_array_equal(renderer.overlay(float(FRAMES), style=SWAY_ONLY, frames=FRAMES), first)
        # the gust travels: at frame 0 the left and right of the region swing different ways
        assert len(set(np.unique(np.round(_hsv(first)[20, 12:68, 0] * 360)))) > 1

    def test_absent_outside_the_region(self, renderer: PreviewRenderer, swaying: SwayPlan) -> None:
        waves = renderer.sway.waves.reshape(-1, HEIGHT, WIDTH, 4)[0][::-1]
        moving = np.any(waves != 0, axis=-1)
        assert moving[_mask() == 0].sum() == 0 and moving.mean() > 0.4
        for t in (0.0, 2.0, 5.25):
            alpha = renderer.overlay(t, style=SWAY_ONLY, frames=FRAMES)[..., 3]
            assert (alpha[~moving] == 0).all()
            assert (alpha[moving] >= 0.3 - 1e-6).all()

    def test_off_without_its_bit_or_without_sway(self, renderer: PreviewRenderer, swaying: SwayPlan) -> None:
        layers = preview_math.OVERLAY_LAYERS
        others = OverlayStyle(layers=sum(layers.values()) - layers["sway"] - layers["swings"])
        assert (renderer.overlay(3.0, style=others, frames=FRAMES)[..., 3] == 0).all()
        renderer.set_inputs(_grey(), np.zeros((2, HEIGHT, WIDTH), np.float32), None)
        both = OverlayStyle(layers=layers["sway"] + layers["swings"])
        assert (renderer.overlay(3.0, style=both, frames=FRAMES)[..., 3] == 0).all()

    @pytest.mark.parametrize("t", [1.0, 4.0, 8.5])
    def test_swing_dots_follow_the_engines_oscillation(self, renderer: PreviewRenderer, swaying: SwayPlan,
                                                       t: float) -> None:
        spacing = 16.0
        style = OverlayStyle(streak_spacing=spacing, outline_px=1.0, layers=preview_math.OVERLAY_LAYERS["swings"])
        alpha = renderer.overlay(t, style=style, frames=FRAMES)[..., 3]
        largest = renderer.sway.largest
        wave_cos, wave_sin = (np.zeros((2, HEIGHT, WIDTH), np.float32) for _ in range(2))
        wave_cos[:, swaying.window[0], swaying.window[1]] = swaying.layers[0].wave_cos
        wave_sin[:, swaying.window[0], swaying.window[1]] = swaying.layers[0].wave_sin
        angle = 2 * np.pi * swaying.layers[0].cycles * t / FRAMES  # between the engine's frames for a fraction
        checked = 0
        for row in range(int(HEIGHT / spacing)):
            for col in range(int(WIDTH / spacing)):
                # the cell's centre in texture rows (bottom-up), then in the image's rows (top-down)
                x, y_up = (col + 0.5) * spacing - 0.5, (row + 0.5) * spacing - 0.5
                top_row = HEIGHT - 1 - y_up
                sample = (HEIGHT - 1 - int(np.floor(y_up + 0.5)), int(np.floor(x + 0.5)))
                top, left = int(top_row - spacing / 2 + 0.5), int(x - spacing / 2 + 0.5)
                cell = alpha[top:top + int(spacing), left:left + int(spacing)]
                c_wave, s_wave = wave_cos[:, sample[0], sample[1]], wave_sin[:, sample[0], sample[1]]
                if not (c_wave.any() or s_wave.any()):
                    assert (cell == 0).all(), (row, col)  # a cell whose centre stays still gets no mark
                    continue
                now = np.sin(angle) * c_wave + np.cos(angle) * s_wave  # the engine's P at the sampled centre
                expected = np.array([x, top_row]) + 0.4 * spacing * now / largest
                dot = cell > 0.95
                assert dot.any(), (row, col)
                ys, xs = np.nonzero(dot)
                found = np.array([xs.mean() + left, ys.mean() + top])
                np.testing.assert_allclose(found, expected, atol=0.75, err_msg=f"cell {row}, {col} at t = {t}")
                checked += 1
        assert checked >= 6

    @pytest.mark.parametrize("t", [2, 5])
    def test_a_shimmers_layer_oscillates_as_the_engines(self, renderer: PreviewRenderer, t: int) -> None:
        """A shimmer's layer (its k negated in sway_cycles) is coloured by the engine's P(t) all the same."""
        plan = _plan(SwaySpec(amplitude=1.0, cycles=2, shimmer=True))
        sway = preview_sway.sway_textures(plan, HEIGHT, WIDTH)  # no shimmer share: coloured everywhere
        assert sway.cycles == (-2, 0, 0, 0)
        renderer.set_inputs(_grey(), np.zeros((2, HEIGHT, WIDTH), np.float32), None, sway=sway)
        now = _oscillation(plan, t)
        strength = np.hypot(now[0], now[1]) / renderer.sway.largest
        assert (strength > 0.3).mean() > 0.2
        hsv = _hsv(renderer.overlay(float(t), style=SWAY_ONLY, frames=FRAMES))
        np.testing.assert_allclose(hsv[..., 1], strength, atol=0.01)

    def test_shimmer_in_dots(self, renderer: PreviewRenderer) -> None:
        plan = _plan(SwaySpec(amplitude=1.0, cycles=2, shimmer=True))
        sway = preview_sway.sway_textures(plan, HEIGHT, WIDTH, shimmer=_mask())
        renderer.set_inputs(_grey(), np.zeros((2, HEIGHT, WIDTH), np.float32), None, sway=sway)
        moving = np.any(sway.waves[::-1] != 0, axis=-1)
        drawn = renderer.overlay(2.0, style=SWAY_ONLY, frames=FRAMES)[..., 3] > 0
        assert not drawn[~moving].any()
        # 2x2 dots every 4 px (outline_px 1): a quarter of the shimmering pixels, on a fixed grid
        assert 0.2 < drawn[moving].mean() < 0.3
        ys, xs = np.nonzero(drawn)
        assert len(np.unique(ys % 4)) == 2 and len(np.unique(xs % 4)) == 2
        # the same plan drawn as a sway (no shimmer share) covers the region
        renderer.set_inputs(_grey(), np.zeros((2, HEIGHT, WIDTH), np.float32), None,
                            sway=preview_sway.sway_textures(plan, HEIGHT, WIDTH))
        assert (renderer.overlay(2.0, style=SWAY_ONLY, frames=FRAMES)[..., 3][moving] > 0).all()
