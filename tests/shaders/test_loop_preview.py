"""The loop preview shader (shaders/loop_preview.frag.glsl) against the engine's frames, headless."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import stillflow.loop as loop_module
from glharness import PreviewRenderer
from stillflow import MotionSpec, RenderOptions, render_frames
from stillflow.stages.blend import blend_schedule
from stillflow.stages.hints import densify_hints

FRAMES = 16
HEIGHT, WIDTH = 64, 96

# Mean |preview - engine| inside the mask, image values in [0, 1]. The preview gathers with a
# backward walk where the engine splats forward and mixes its two copies by coverage, so a
# non-uniform field differs by about 0.001-0.023 (measured at these phases, with the same blend
# schedule in both); a uniform field agrees to float rounding.
APPROXIMATION_TOL = 0.03
# The preview must beat every wrong variant (reversed direction, half or double speed, double
# loop length, still) by this factor. Measured ratios: at most 0.45 single-scale (phases 2-14);
# with the pyramid at most 0.68 (phase 12), 0.41-0.54 elsewhere.
VARIANT_RATIO = 0.8


def _image() -> np.ndarray:
    """(H, W, 3) float32 smooth colour pattern in [0.05, 0.95]."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    return np.stack([0.5 + 0.25 * np.sin(xs / 5 + c) + 0.2 * np.cos(ys / 7 - 2 * c) for c in range(3)], -1)


def _mask() -> np.ndarray:
    """(H, W) float32 hard rectangle: 1 = animate."""
    mask = np.zeros((HEIGHT, WIDTH), np.float32)
    mask[10:54, 12:84] = 1.0
    return mask


def _hint_field() -> np.ndarray:
    """(2, H, W) px/frame: one arrow right (1 px/frame), one down (0.6 px/frame), blended by the RBF."""
    return densify_hints(HEIGHT, WIDTH, [(20, 30, 70, 30), (70, 40, 70, 70)])


def _engine(image: np.ndarray, mask: np.ndarray | None, motion: np.ndarray, levels: int) -> list[np.ndarray]:
    """The engine's N frames; Telea inpainting off because the gather preview never has holes."""
    options = RenderOptions(frames=FRAMES, levels=levels, refine_mask=False, feather=0.0, inpaint=False)
    return list(render_frames(image, mask=mask, motion=MotionSpec(kind="field", field=motion), options=options))


class TestLoopPreview:
    def test_frame_zero_and_seam_equal_input(self, renderer: PreviewRenderer) -> None:
        image = _image()
        renderer.set_inputs(image, _hint_field(), _mask())
        for phase in (0, FRAMES):
            frame = renderer.loop_frame(phase, FRAMES)
            assert torch.equal(torch.from_numpy(frame[..., :3]), torch.from_numpy(image)), phase

    @pytest.mark.parametrize("phase", [1, 5, 9, 15])
    def test_static_pixels_untouched(self, renderer: PreviewRenderer, phase: int) -> None:
        image, mask = _image(), _mask()
        renderer.set_inputs(image, _hint_field(), mask)
        frame = renderer.loop_frame(phase, FRAMES)
        static = mask == 0
        assert torch.equal(torch.from_numpy(frame[..., :3][static]), torch.from_numpy(image[static]))
        assert not np.array_equal(frame[..., :3][~static], image[~static])

    @pytest.mark.parametrize("velocity", [(1.0, 0.0), (0.7, 0.3), (-0.5, 1.0)], ids=["right", "oblique", "down-left"])
    def test_uniform_motion_matches_engine(self, renderer: PreviewRenderer, velocity: tuple[float, float]) -> None:
        image = _image()
        motion = np.empty((2, HEIGHT, WIDTH), np.float32)
        motion[0], motion[1] = velocity
        renderer.set_inputs(image, motion, None)
        engine = _engine(image, None, motion, levels=1)
        for phase in (3, 5, 11):
            preview = renderer.loop_frame(phase, FRAMES)[..., :3]
            torch.testing.assert_close(torch.from_numpy(preview), torch.from_numpy(engine[phase]),
                                       atol=1e-5, rtol=1e-5)

    @pytest.mark.parametrize("levels", [1, 4], ids=["single-scale", "pyramid"])
    def test_direction_speed_and_phase_match_engine(self, renderer: PreviewRenderer, levels: int,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
        image, mask, motion = _image(), _mask(), _hint_field()
        renderer.set_inputs(image, motion, mask)
        # The preview does not model the coarse contrast the engine raises in the loop's middle
        # (stages/coarse_place.py, docs/preview.md): on this field's smooth waves, whose two copies
        # are half a wave apart there, it moves the middle frame by 0.048 against 0.026 without it, as
        # far as the still is. Motion is what is compared here: the engine without that stage.
        monkeypatch.setattr(loop_module, "middle_cap", lambda share: 1.0)
        engine = _engine(image, mask, motion, levels)
        inside = mask > 0
        for phase in (2, 4, 6, 10, 12, 14):
            def error(frame: np.ndarray) -> float:
                return float(np.abs(frame[..., :3] - engine[phase])[inside].mean())

            preview = error(renderer.loop_frame(phase, FRAMES))
            variants = {
                "reversed": error(renderer.loop_frame(phase, FRAMES, speed=-1.0)),
                "double speed": error(renderer.loop_frame(phase, FRAMES, speed=2.0)),
                "still": error(image),
            }
            # With the pyramid a frame that shows one copy alone differs from the gather by about
            # 0.007 per px travelled (measured on this field), as much as a half-pixel-per-frame
            # slip: half speed is told apart only once the copies have travelled several px.
            if levels == 1 or 6 <= phase <= 12:
                variants["half speed"] = error(renderer.loop_frame(phase, FRAMES, speed=0.5))
            # The loop length shows only through the backward copy's share: early in the loop
            # neither length gives it one, and the frames are the same.
            if blend_schedule(phase / FRAMES) != blend_schedule(phase / (2 * FRAMES)):
                variants["double length"] = error(renderer.loop_frame(phase, 2 * FRAMES))
            assert preview < APPROXIMATION_TOL, (phase, preview)
            for name, wrong in variants.items():
                assert preview < VARIANT_RATIO * wrong, (phase, name, preview, wrong)

    def test_seam_is_an_ordinary_step(self, renderer: PreviewRenderer) -> None:
        # frame N-1 -> frame 0 must look like any other step: not a jump (no loop) and not a
        # repeated frame (the alpha = t / (N - 1) variant, algorithm.md §1.4).
        renderer.set_inputs(_image(), _hint_field(), _mask())
        frames = [renderer.loop_frame(t, FRAMES)[..., :3] for t in range(FRAMES)]
        steps = [float(np.abs(frames[t + 1] - frames[t]).mean()) for t in range(FRAMES - 1)]
        seam = float(np.abs(frames[0] - frames[-1]).mean())
        assert 0.5 * min(steps) <= seam <= 1.1 * max(steps), (seam, steps)

    def test_low_resolution_field_follows_full_resolution(self, renderer: PreviewRenderer) -> None:
        image, mask = _image(), _mask()
        hints = [(20, 30, 70, 30), (70, 40, 70, 70)]
        renderer.set_inputs(image, densify_hints(HEIGHT, WIDTH, hints), mask)
        full = renderer.loop_frame(4, FRAMES)
        renderer.set_inputs(image, densify_hints(HEIGHT // 2, WIDTH // 2, hints, scale=0.5), mask)
        half = renderer.loop_frame(4, FRAMES)
        renderer.set_inputs(image, densify_hints(HEIGHT // 2, WIDTH // 2, hints, scale=0.5) * -1.0, mask)
        reversed_half = renderer.loop_frame(4, FRAMES)
        inside = mask > 0
        assert np.abs(half - full)[inside].mean() < 0.3 * np.abs(reversed_half - full)[inside].mean()

    def test_display_srgb_encodes_output(self, renderer: PreviewRenderer) -> None:
        image = _image()
        renderer.set_inputs(image, _hint_field(), _mask())
        encoded = renderer.loop_frame(0, FRAMES, display_srgb=True)[..., :3]
        expected = np.where(image <= 0.0031308, 12.92 * image, 1.055 * image ** (1 / 2.4) - 0.055)
        np.testing.assert_allclose(encoded, expected, atol=1e-5)
