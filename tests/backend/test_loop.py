"""End-to-end invariants of the default engine (algorithm.md §1.6) through render_frames."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import stillflow.loop
from stillflow import MotionSpec, RenderOptions, render_frames
from stillflow.errors import InputError
from stillflow.loop import LoopPlan, LoopRenderer
from stillflow.pipeline import prepare
from stillflow.stages.blend import BLEND_SPAN, blend_schedule

from ..tolerances import FLOAT32_ATOL, MULTISCALE_SHARP_MAE, MULTISCALE_TRANSLATION_MAE, SPLAT_ORDER_ATOL


def _uniform(height: int, width: int, vx: float, vy: float) -> MotionSpec:
    """A uniform motion field of (vx, vy) px/frame."""
    field = np.zeros((2, height, width), np.float32)
    field[0], field[1] = vx, vy
    return MotionSpec(kind="field", field=field)


def _shift(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Content moved by (dx, dy) pixels (wrapping; only the interior is compared)."""
    return np.roll(np.roll(image, dy, axis=0), dx, axis=1)


class TestLoopRender:
    def test_zero_motion_returns_input(self, smooth_image: np.ndarray) -> None:
        for motion in (MotionSpec(), MotionSpec(kind="drift", drift=(30.0, 0.0))):
            frames = list(render_frames(smooth_image, motion=motion, options=RenderOptions(frames=5)))
            assert len(frames) == 5
            assert all(np.array_equal(frame, smooth_image) for frame in frames)

    def test_single_frame_is_input(self, smooth_image: np.ndarray) -> None:
        frames = list(render_frames(smooth_image, motion=_uniform(64, 80, 1, 0), options=RenderOptions(frames=1)))
        assert len(frames) == 1 and np.array_equal(frames[0], smooth_image)

    @pytest.mark.parametrize("velocity", [(1, 0), (-1, 1)], ids=["right", "left-down"])
    def test_integer_translation_single_scale(self, smooth_image: np.ndarray, velocity: tuple[int, int]) -> None:
        vx, vy = velocity
        n = 8
        frames = list(render_frames(smooth_image, motion=_uniform(64, 80, vx, vy),
                                    options=RenderOptions(frames=n, levels=1)))
        inner = (slice(12, 52), slice(12, 68))
        for t in range(n):
            share = blend_schedule(t / n)
            expected = ((1 - share) * _shift(smooth_image, t * vx, t * vy)
                        + share * _shift(smooth_image, -(n - t) * vx, -(n - t) * vy))
            np.testing.assert_allclose(frames[t][inner], expected[inner], atol=FLOAT32_ATOL, rtol=0)

    @pytest.mark.parametrize("detail, tolerance", [
        ("smooth", MULTISCALE_TRANSLATION_MAE), ("sharp", MULTISCALE_SHARP_MAE), ("precise", MULTISCALE_SHARP_MAE)])
    def test_integer_translation_multi_scale(self, photo: np.ndarray, detail: str, tolerance: float) -> None:
        n = 8
        motion = _uniform(96, 128, 1, 0)
        single = list(render_frames(photo, motion=motion, options=RenderOptions(frames=n, levels=1)))
        multi = list(render_frames(photo, motion=motion, options=RenderOptions(frames=n, levels=4, detail=detail)))
        inner = (slice(16, 80), slice(16, 112))
        for t in range(n):
            error = np.abs(multi[t][inner] - single[t][inner]).mean()
            assert error <= tolerance, f"frame {t}: mean abs error {error:.4f}"

    def test_once_multi_scale_follows_the_translation(self, photo: np.ndarray) -> None:
        n = 6
        frames = list(render_frames(photo, motion=_uniform(96, 128, 1, 0),
                                    options=RenderOptions(frames=n, levels=4, once=True)))
        for t in range(1, n):
            inner = (slice(16, 80), slice(16 + t, 112))
            error = np.abs(frames[t][inner] - _shift(photo, t, 0)[inner]).mean()
            assert error <= MULTISCALE_TRANSLATION_MAE, f"frame {t}: mean abs error {error:.4f}"

    def test_once_follows_a_sub_pixel_translation_closer_than_whole_pixels(self, photo: np.ndarray) -> None:
        """--once carries the sub-pixel remainder in sharp as in precise: closer than any whole-pixel landing."""
        n, speed = 6, 0.3  # never a whole pixel for t < 10
        # The exact sub-pixel shift of the sampled photo: a Fourier phase ramp (wraps; interior only).
        spectrum = np.fft.fft2(photo, axes=(0, 1))
        ramp = np.exp(-2j * np.pi * np.fft.fftfreq(photo.shape[1]))[None, :, None]
        exact = [np.fft.ifft2(spectrum * ramp ** (t * speed), axes=(0, 1)).real for t in range(n)]
        inner = (slice(16, 80), slice(16, 112))
        renders = {detail: list(render_frames(photo, motion=_uniform(96, 128, speed, 0), options=RenderOptions(
            frames=n, levels=4, once=True, detail=detail))) for detail in ("sharp", "precise")}
        assert all(np.array_equal(a, b) for a, b in zip(renders["sharp"], renders["precise"]))
        for t in range(1, n):
            error = float(np.abs(renders["precise"][t] - exact[t])[inner].mean())
            whole = float(np.abs(_shift(photo, round(t * speed), 0) - exact[t])[inner].mean())
            assert error < whole, f"frame {t}: {error:.4f} vs whole-pixel {whole:.4f}"

    def test_detail_at_the_edge_is_not_mirrored_into_the_frame(self) -> None:
        """What flows in from outside the frame is the smooth continuation, not a mirror image of the edge."""
        image = np.full((96, 128, 3), 0.6, np.float32)
        image[:, :, 2] = np.linspace(0.9, 0.7, 96, dtype=np.float32)[:, None]  # a sky gradient
        image[0:40, 62:64] = 0.1  # a dark wire from the top edge down
        t = 10
        frames = list(render_frames(image, motion=_uniform(96, 128, 0, 2), options=RenderOptions(
            frames=12, once=True, refine_mask=False)))
        contrast = frames[t][:, 40:50].mean(axis=(1, 2)) - frames[t][:, 62:64].mean(axis=(1, 2))
        assert contrast[2 * t + 2: 2 * t + 30].min() > 0.45, "the wire itself moved down"
        # Rows 0 .. 2t - 1 flowed in from above the frame; reflected padding drew the wire there
        # at full contrast (0.5), a mirror image of the rows below the edge.
        assert float(contrast[:6].max()) < 0.15, contrast[: 2 * t]

    @pytest.mark.parametrize("once", [False, True], ids=["loop", "once"])
    def test_a_dark_mass_near_the_edge_does_not_flow_back_in_as_its_mirror(self, once: bool) -> None:
        """The low-pass band flows in as the edge's colours, not as a reflection of what lies inside."""
        image = np.full((96, 128, 3), 0.8, np.float32)
        ys, xs = np.mgrid[0:96, 0:128]
        image[(ys - 34) ** 2 + (xs - 64) ** 2 < 10 ** 2] = 0.1  # a dark cloud, 24 px below the edge
        t = 24  # of 100: in a loop, the forward copy alone
        options = RenderOptions(frames=100, once=once, refine_mask=False)
        frame = list(render_frames(image, motion=_uniform(96, 128, 0, 2), options=options))[t]
        assert frame[82, 64].mean() < 0.3, "the cloud itself moved down"
        # Rows 0-47 flowed in from above; a reflection drew the cloud's mirror image at rows 4-24
        # (darkest 0.30 here). The edge's colours take over from the reflection over INFLOW_RAMP
        # px of the low-pass band (32 px here), so a little of it is left (darkest 0.65-0.76).
        assert float(frame[0:30, 54:75].mean(axis=2).min()) > 0.55, frame[0:30, 64].mean(axis=1)

    @pytest.mark.parametrize("inflow", ["texture", "smooth"])
    def test_what_flows_into_a_loop_is_texture_or_smooth_never_a_mirror(self, rng: np.random.Generator,
                                                                       inflow: str) -> None:
        """Mid-loop much of the frame has flowed in: by default it keeps the edge's kind of texture."""
        import cv2

        noise = cv2.GaussianBlur(rng.standard_normal((96, 128, 3)).astype(np.float32), (0, 0), 1.0)
        image = np.clip(0.5 + 0.5 * noise, 0, 1).astype(np.float32)
        t = 8  # of 32: the forward copy alone, moved 16 px to the right; columns 0-15 flowed in
        options = RenderOptions(frames=32, inflow=inflow)
        frame = list(render_frames(image, motion=_uniform(96, 128, 2, 0), options=options))[t]

        def detail(values: np.ndarray) -> np.ndarray:
            return values - cv2.GaussianBlur(values, (0, 0), 2.0)

        inflow_detail, edge = detail(frame)[8:88, 1:11], detail(image)[8:88, 0:72]
        ratio = float((inflow_detail ** 2).mean() / (edge ** 2).mean())
        if inflow == "smooth":
            assert ratio < 0.05, f"the smooth inflow has {ratio:.2f} of the edge's detail energy"
            return
        assert ratio > 0.2, f"the inflow is smooth: {ratio:.2f} of the edge's detail energy"
        inflow = inflow_detail
        mirror = detail(image)[8:88, 15:5:-1]  # the reflection of the edge, as reflected padding shows it
        correlation = float((inflow * mirror).mean() / np.sqrt((inflow ** 2).mean() * (mirror ** 2).mean()))
        assert abs(correlation) < 0.3, f"the inflow mirrors the edge (correlation {correlation:.2f})"

    def test_once_is_forward_only(self, smooth_image: np.ndarray) -> None:
        frames = list(render_frames(smooth_image, motion=_uniform(64, 80, 2, 0),
                                    options=RenderOptions(frames=5, levels=1, once=True)))
        for t in range(5):
            np.testing.assert_array_equal(frames[t][:, 12:68], _shift(smooth_image, 2 * t, 0)[:, 12:68])

    def test_schedule_is_symmetric_and_pinned_at_the_ends(self) -> None:
        assert blend_schedule(0.0) == 0.0 and blend_schedule(1.0) == 1.0 and blend_schedule(0.5) == 0.5
        for u in (0.1, 0.25, 0.3, 0.4, 0.49):
            assert abs(blend_schedule(u) + blend_schedule(1 - u) - 1) < 1e-12 and blend_schedule(u) < u
        # The far-travelled copy has no share in the outer quarters, and the share rises steadily.
        assert blend_schedule(0.25) == 0.0 and blend_schedule(0.75) == 1.0
        shares = [blend_schedule(k / 100) for k in range(101)]
        assert all(b >= a for a, b in zip(shares, shares[1:]))
        assert blend_schedule(0.3, span=1.0) == 0.3  # span 1: the share is the phase
        # A steady rate: the dissolve's change per frame never surges above 1 / span (a smoothstep's: 1.5 / span).
        assert max(b - a for a, b in zip(shares, shares[1:])) <= 1.0 / BLEND_SPAN / 100 + 1e-12
        for span in (0.0, 1.5):
            with pytest.raises(ValueError, match="span"):
                blend_schedule(0.3, span=span)

    def test_outer_quarters_render_one_copy_each(self, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
        """Early frames are the forward copy alone, late ones the backward copy alone (a one-shot drift of -M)."""
        mixed: list[float] = []
        real_blend = stillflow.loop.splat_blend

        def counting_blend(*args, **kwargs):
            mixed.append(args[3])
            return real_blend(*args, **kwargs)

        monkeypatch.setattr(stillflow.loop, "splat_blend", counting_blend)
        ys, xs = np.mgrid[0:96, 0:128].astype(np.float32)
        motion = np.stack([0.8 + 0.4 * np.sin(ys / 9), 0.3 * np.cos(xs / 11)]).astype(np.float32)
        mask = np.zeros((96, 128), np.float32)
        mask[32:64, 40:88] = 1.0  # far from the frame's edges: nothing flows in from outside

        def renderer(field: np.ndarray, once: bool) -> LoopRenderer:
            plan = LoopPlan.from_options(RenderOptions(frames=8, levels=4, once=once, detail="smooth"))
            return LoopRenderer(photo, mask, field, plan, device=torch.device("cpu"))

        loop, ahead, behind = renderer(motion, False), renderer(motion, True), renderer(-motion, True)
        assert blend_schedule(1 / 8) == 0.0 and blend_schedule(7 / 8) == 1.0
        first, last = loop.frame(1), loop.frame(7)
        assert mixed == [], "a frame of the outer quarters mixed both copies"
        np.testing.assert_allclose(first, ahead.frame(1), atol=FLOAT32_ATOL, rtol=0)
        np.testing.assert_allclose(last, behind.frame(1), atol=FLOAT32_ATOL, rtol=0)
        assert not np.allclose(last, ahead.frame(7), atol=0.01)
        loop.frame(4)
        assert mixed and set(mixed) == {blend_schedule(4 / 8)}, "the middle of the loop mixes both copies"

    def test_an_outer_quarter_frame_fills_a_disocclusion_from_the_other_copy(
            self, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
        """Below a mask's upstream edge the forward copy leaves a hole: it shows the backward copy's texture."""
        import cv2

        # The hole fill alone: the sharpness kept in place (stages/place.py) would raise the blocks too.
        monkeypatch.setattr(stillflow.loop, "keep_in_place_", lambda frame, place: frame)
        mask = np.zeros((96, 128), np.float32)
        mask[30:] = 1.0  # a waterfall below a static lip: its top edge lies inside the frame
        motion = np.stack([np.zeros_like(mask), 2.0 * mask])  # down, 2 px/frame, static above
        plan = LoopPlan.from_options(RenderOptions(frames=16, levels=4))
        frame = LoopRenderer(photo, mask, motion, plan, device=torch.device("cpu")).frame(3)  # the forward copy alone
        monkeypatch.setattr(stillflow.loop, "real_hole_box", lambda *args, **kwargs: None)
        invented = LoopRenderer(photo, mask, motion, plan, device=torch.device("cpu")).frame(3)

        def detail(image: np.ndarray, rows: slice) -> float:
            return float(np.std(image[rows] - cv2.GaussianBlur(image, (0, 0), 1.5)[rows]))

        hole = slice(30, 36)  # 3 frames x 2 px/frame that nothing followed into
        assert detail(frame, hole) > 0.6 * detail(photo, hole) > 3 * detail(invented, hole)
        # Beyond the coarsest band's coverage window (9 band px of 8 px) the forward copy is alone, as before.
        np.testing.assert_allclose(frame[36 + 40:], invented[36 + 40:], atol=FLOAT32_ATOL, rtol=0)

    def test_only_the_holes_surroundings_are_splatted_again(self, photo: np.ndarray,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
        """The one-copy frame mixes the other copy around its holes as a whole-band mix would, nowhere else."""
        from stillflow.stages.blend import splat_blend

        mask = np.zeros((96, 128), np.float32)
        mask[30:, 20:100] = 1.0
        ys, xs = np.mgrid[0:96, 0:128].astype(np.float32)
        motion = np.stack([0.4 * np.sin(ys / 7), 1.5 + 0.5 * np.cos(xs / 9)]).astype(np.float32) * mask
        plan = LoopPlan.from_options(RenderOptions(frames=16, levels=4))
        boxed = LoopRenderer(photo, mask, motion, plan, device=torch.device("cpu"))
        crops: list[tuple[int, int]] = []
        real_blend = stillflow.loop.splat_blend

        def counting_blend(*args, **kwargs):
            crops.append(kwargs["crop"][2:])
            return real_blend(*args, **kwargs)

        monkeypatch.setattr(stillflow.loop, "splat_blend", counting_blend)
        frames = [boxed.frame(t) for t in (2, 14)]
        assert crops and all(h < 96 for h, _ in crops[:1]), "the finest band's holes span a few rows only"

        def whole_band(self, out, den, values, fwd, bwd, alpha, level, splat):
            if stillflow.loop.real_hole_box(den, self.plan.hole_threshold, self._ignore[level]) is not None:
                mixed, mixed_den = splat_blend(values, fwd, bwd, alpha, self.plan.hole_threshold, self._ignore[level],
                                               **splat)
                out.copy_(mixed)
                den.copy_(mixed_den)

        monkeypatch.setattr(LoopRenderer, "_fill_real_holes", whole_band)
        whole = LoopRenderer(photo, mask, motion, plan, device=torch.device("cpu"))
        for frame, t in zip(frames, (2, 14)):
            # A crack just outside the splatted box weighs its pasted neighbours by coverage, not splat weight.
            difference = np.abs(frame - whole.frame(t))
            assert float(difference.max()) < 5e-3 and float(difference.mean()) < 1e-5

    def test_whole_pixel_landing_leaves_no_more_isolated_pixels_than_the_still_has(
            self, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
        """Under a swirl the finest band's particles land among new neighbours; none may stand out more."""
        import cv2

        noise = rng.normal(0, 1, (96, 128, 3)).astype(np.float32)
        fine = cv2.GaussianBlur(noise, (0, 0), 1.2)
        image = np.clip(0.5 + 0.25 * fine / fine.std(), 0, 1)  # fine texture, no isolated pixels
        ys, xs = np.mgrid[0:96, 0:128].astype(np.float32)
        motion = np.stack([1.5 * np.sin(ys / 13), 1.5 * np.cos(xs / 11)]).astype(np.float32)

        def worst_ratio() -> float:
            """The loop's largest speckle rate (luma off its 3x3 median by > 12/255) over frame 0's."""
            plan = LoopPlan.from_options(RenderOptions(frames=16, levels=4))
            renderer = LoopRenderer(image, np.ones((96, 128), np.float32), motion, plan, device=torch.device("cpu"))
            rates = []
            for t in range(16):
                luma = renderer.frame(t).mean(axis=2)
                rates.append(float((np.abs(luma - cv2.medianBlur(luma, 3)) > 12 / 255)[8:-8, 8:-8].mean()))
            return max(rates[1:]) / rates[0]

        assert worst_ratio() <= 1.0
        monkeypatch.setattr(stillflow.loop, "limit_outliers_", lambda band, allowed: band)
        assert worst_ratio() > 1.05, "the case must bite"


class TestLoopInvariants:
    @pytest.fixture
    def case(self, photo: np.ndarray, photo_mask: np.ndarray,
             shared_data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The photo with its real mask and StyleCineGAN motion, prepared at 96x128."""
        stills = shared_data / "stills"
        options = RenderOptions(frames=12, speed=2.0)
        prepared = prepare(photo, mask=photo_mask,
                           motion=MotionSpec(kind="file", path=str(stills / "scg-IMG_6036_motion.npy")),
                           options=options)
        return prepared.image, prepared.composite_mask, prepared.motion_px

    def _renderer(self, case, frames: int = 12, importance: np.ndarray | None = None) -> LoopRenderer:
        image, mask, motion = case
        plan = LoopPlan.from_options(RenderOptions(frames=frames, levels=4))
        return LoopRenderer(image, mask, motion, plan, importance=importance, device=torch.device("cpu"))

    def test_loop_closes(self, case) -> None:
        renderer = self._renderer(case)
        assert np.array_equal(renderer.frame(12), renderer.frame(0))
        assert np.array_equal(renderer.frame(0), case[0])
        disp_f, _, disp_b, _, alpha = renderer._trajectories.at(12)
        assert alpha == 1.0 and not bool(disp_b.any()), "at t = N only the unmoved backward copy remains"

    def test_seam_no_larger_than_typical_step(self, case) -> None:
        renderer = self._renderer(case)
        frames = [renderer.frame(t) for t in range(12)]
        steps = [np.abs(frames[t + 1] - frames[t]).mean() for t in range(11)]
        seam = np.abs(frames[0] - frames[11]).mean()
        assert min(steps) > 0, "the loop must move"
        assert seam <= 1.05 * float(np.median(steps)), f"seam {seam:.5f} vs median step {np.median(steps):.5f}"

    def test_static_pixels_bit_exact_and_no_holes(self, case) -> None:
        image, mask, _ = case
        renderer = self._renderer(case)
        static = mask == 0
        assert static.any() and (~static).any()
        for t in range(12):
            frame = renderer.frame(t)
            assert np.isfinite(frame).all()
            assert np.array_equal(frame[static], image[static])
            assert frame.min() > -0.1 and frame.max() < 1.1

    def test_importance_offset_changes_nothing(self, case) -> None:
        z = np.random.default_rng(0).random(case[0].shape[:2]).astype(np.float32) * 5
        a = self._renderer(case, importance=z).frame(5)
        b = self._renderer(case, importance=z + 3.0).frame(5)
        np.testing.assert_allclose(a, b, atol=1e-5)

    def test_importance_changes_the_result(self, case) -> None:
        z = np.random.default_rng(0).random(case[0].shape[:2]).astype(np.float32) * 10
        assert not np.allclose(self._renderer(case, importance=z).frame(5), self._renderer(case).frame(5))


class TestBadInput:
    def test_empty_mask(self, smooth_image: np.ndarray) -> None:
        with pytest.raises(InputError, match="mask is empty"):
            list(render_frames(smooth_image, mask=np.zeros(smooth_image.shape[:2], np.float32),
                               motion=_uniform(64, 80, 1, 0), options=RenderOptions(frames=3)))

    def test_image_too_large_or_small(self) -> None:
        for shape in ((8, 16385, 3), (4, 64, 3)):
            with pytest.raises(InputError, match=r"px, too (large|small): sides must be at (most|least)"):
                list(render_frames(np.zeros(shape, np.float32), motion=MotionSpec(kind="drift", drift=(0.0, 1.0))))

    def test_non_finite_motion(self, smooth_image: np.ndarray) -> None:
        field = np.zeros((2, 8, 8), np.float32)
        field[0, 3, 3] = np.nan
        with pytest.raises(InputError, match="non-finite"):
            list(render_frames(smooth_image, motion=MotionSpec(kind="field", field=field)))

    @pytest.mark.parametrize("options, message", [
        (dict(frames=0), "frames must be"), (dict(speed=-1.0), "speed must be"),
        (dict(levels=0), "levels must be"), (dict(format="tiff"), "format must be"),
    ], ids=["frames", "speed", "levels", "format"])
    def test_bad_options(self, smooth_image: np.ndarray, options: dict, message: str) -> None:
        with pytest.raises(InputError, match=message):
            list(render_frames(smooth_image, options=RenderOptions(**options)))


class TestTorchPath:
    @pytest.mark.parametrize("detail", ["sharp", "precise"])
    def test_torch_only_path_matches_compiled_path(self, photo: np.ndarray, photo_mask: np.ndarray, shared_data: Path,
                                                   detail: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """The path CUDA and MPS take (torch ops only) renders the same loop as the CPU kernels."""
        from stillflow.stages import cpu_kernels

        if not cpu_kernels.available():
            pytest.skip("numba not installed")
        stills = shared_data / "stills"
        kwargs = dict(mask=photo_mask,
                      motion=MotionSpec(kind="file", path=str(stills / "scg-IMG_6036_motion.npy")),
                      options=RenderOptions(frames=8, speed=2.0, detail=detail))
        compiled = list(render_frames(photo, **kwargs))
        monkeypatch.setattr(cpu_kernels, "available", lambda: False)
        from stillflow.stages import outliers

        monkeypatch.setattr(outliers, "median3", outliers.median3_torch)  # chosen by device, not by numba
        reference = list(render_frames(photo, **kwargs))
        for t, (a, b) in enumerate(zip(compiled, reference)):
            # Same maths, different summation order (see tolerances.SPLAT_ORDER_ATOL); pixels
            # reached by tiny tails may differ a little more, so compare the mean and the bulk.
            assert np.abs(a - b).mean() < SPLAT_ORDER_ATOL, f"frame {t}"
            assert np.quantile(np.abs(a - b), 0.999) < 1e-2, f"frame {t}"

    def test_torch_only_path_fills_a_disocclusion_as_the_compiled_path(self, photo: np.ndarray,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
        """A one-copy frame's real holes take the other copy on every device (the box splat, the mix weights)."""
        from stillflow.stages import cpu_kernels, outliers

        if not cpu_kernels.available():
            pytest.skip("numba not installed")
        mask = np.zeros((96, 128), np.float32)
        mask[30:] = 1.0  # the top edge lies inside the frame: a disocclusion below it
        motion = np.stack([np.zeros_like(mask), 2.0 * mask])
        plan = LoopPlan.from_options(RenderOptions(frames=16, levels=4))
        compiled = LoopRenderer(photo, mask, motion, plan, device=torch.device("cpu"))
        ts = (2, 5, 8, 11, 14)
        expected = [compiled.frame(t) for t in ts]
        monkeypatch.setattr(cpu_kernels, "available", lambda: False)
        monkeypatch.setattr(outliers, "median3", outliers.median3_torch)
        reference = LoopRenderer(photo, mask, motion, plan, device=torch.device("cpu"))
        for t, a in zip(ts, expected):
            b = reference.frame(t)
            assert np.abs(a - b).mean() < SPLAT_ORDER_ATOL, f"frame {t}"
            assert np.quantile(np.abs(a - b), 0.999) < 1e-2, f"frame {t}"
