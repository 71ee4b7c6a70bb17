"""The motion overlay shader (shaders/motion_overlay.frag.glsl): colours, streaks and mask outline, headless."""
from __future__ import annotations

import colorsys

import numpy as np
import pytest

from glharness import OverlayStyle, PreviewRenderer, preview_math

HEIGHT, WIDTH = 64, 64
LAYERS = preview_math.OVERLAY_LAYERS


def _vortex() -> np.ndarray:
    """(2, H, W) px/frame turning counter-clockwise on screen around the centre, speed grows with radius."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    dx, dy = xs - WIDTH / 2 + 0.25, ys - HEIGHT / 2 + 0.25
    # Screen up is -y: counter-clockwise on screen is (dy, -dx) in (x right, y down).
    return np.stack([dy, -dx]) / 32.0


def _uniform(vx: float, vy: float) -> np.ndarray:
    """(2, H, W) constant field in px/frame (y down)."""
    motion = np.empty((2, HEIGHT, WIDTH), np.float32)
    motion[0], motion[1] = vx, vy
    return motion


def _grey() -> np.ndarray:
    return np.full((HEIGHT, WIDTH, 3), 0.5, np.float32)


def _shift(a: np.ndarray, b: np.ndarray, reach: int = 6) -> tuple[int, int]:
    """(dx, dy) in pixels that best moves image a onto image b (circular cross-correlation)."""
    best, best_score = (0, 0), -np.inf
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            score = float((np.roll(a, (dy, dx), axis=(0, 1)) * b).sum())
            if score > best_score:
                best, best_score = (dx, dy), score
    return best


class TestMotionOverlay:
    def test_colours_show_screen_direction(self, renderer: PreviewRenderer) -> None:
        motion = _vortex()
        renderer.set_inputs(_grey(), motion, None)
        speed = np.hypot(motion[0], motion[1])
        style = OverlayStyle(max_speed=float(speed.max()), layers=LAYERS["colours"])
        rgba = renderer.overlay(0.0, style=style)
        hsv = np.array([colorsys.rgb_to_hsv(*px) for px in rgba[..., :3].reshape(-1, 3)]).reshape(HEIGHT, WIDTH, 3)
        screen_angle = np.degrees(np.arctan2(-motion[1], motion[0])) % 360
        shown_angle = hsv[..., 0] * 360
        usable = hsv[..., 1] > 0.2  # hue is undefined for nearly white pixels
        wrapped = (shown_angle - screen_angle + 180) % 360 - 180
        assert usable.mean() > 0.8
        assert np.abs(wrapped[usable]).max() < 2.0
        np.testing.assert_allclose(hsv[..., 1], np.clip(speed / speed.max(), 0, 1), atol=0.02)

    @pytest.mark.parametrize("velocity", [(1.0, 0.0), (0.0, -1.0), (-0.75, 0.75)], ids=["right", "up", "down-left"])
    def test_streaks_move_with_the_motion(self, renderer: PreviewRenderer, velocity: tuple[float, float]) -> None:
        renderer.set_inputs(_grey(), _uniform(*velocity), None)
        style = OverlayStyle(streak_spacing=16.0, streak_period=64.0, streak_trail=3.0, layers=LAYERS["streaks"])
        before = renderer.overlay(30.0, style=style)[..., 3]
        after = renderer.overlay(34.0, style=style)[..., 3]
        assert before.max() > 0.5
        expected = (round(4 * velocity[0]), round(4 * velocity[1]))
        assert _shift(before, after) == expected

    def test_streaks_scale_with_speed_uniform(self, renderer: PreviewRenderer) -> None:
        renderer.set_inputs(_grey(), _uniform(0.5, 0.0), None)
        style = OverlayStyle(streak_spacing=16.0, streak_period=64.0, streak_trail=3.0, layers=LAYERS["streaks"])
        before = renderer.overlay(30.0, speed=2.0, style=style)[..., 3]
        after = renderer.overlay(33.0, speed=2.0, style=style)[..., 3]
        assert _shift(before, after) == (3, 0)

    def test_outline_follows_mask_edge(self, renderer: PreviewRenderer) -> None:
        mask = np.zeros((HEIGHT, WIDTH), np.float32)
        mask[16:48, 8:40] = 1.0
        renderer.set_inputs(_grey(), _uniform(1.0, 0.0), mask)
        alpha = renderer.overlay(0.0, style=OverlayStyle(layers=LAYERS["outline"]))[..., 3]
        inside = np.zeros_like(mask, bool)
        inside[16:48, 8:40] = True
        edge = inside & ~(np.roll(inside, 1, 0) & np.roll(inside, -1, 0) & np.roll(inside, 1, 1) & np.roll(inside, -1, 1))
        near_edge = np.zeros_like(edge)
        for dy in (-2, -1, 0, 1, 2):
            for dx in (-2, -1, 0, 1, 2):
                near_edge |= np.roll(edge, (dy, dx), axis=(0, 1))
        drawn = alpha > 0.5
        assert drawn[edge].mean() > 0.9
        assert not drawn[~near_edge].any()

    def test_static_region_has_no_colour(self, renderer: PreviewRenderer) -> None:
        mask = np.zeros((HEIGHT, WIDTH), np.float32)
        mask[:, 32:] = 1.0
        renderer.set_inputs(_grey(), _uniform(1.0, 0.0), mask)
        alpha = renderer.overlay(0.0, style=OverlayStyle(layers=LAYERS["colours"]))[..., 3]
        assert (alpha[:, :30] == 0).all()
        assert (alpha[:, 34:] > 0).all()
