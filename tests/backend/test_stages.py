"""Padding, Euler integration, splatting, pyramid and hole filling, stage by stage."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stillflow.stages import cpu_kernels
from stillflow.stages.holes import fill_holes
from stillflow.stages.integrate import EulerState, LoopTrajectories, euler_step, euler_step_torch, resample_displacement
from stillflow.stages.padding import loop_padding, pad_reflect, reflect_indices
from stillflow.stages.pyramid import laplacian_bands, pyr_up, pyramid_levels, reconstruct
from stillflow.stages.splat import softmax_weights, splat_joint, splat_sum_torch

from ..tolerances import CARRIED_SUBPIXEL_MAX_ERROR, FLOAT32_ATOL, SPLAT_ORDER_ATOL

CPU = torch.device("cpu")


class TestPadding:
    def test_feature(self) -> None:
        assert reflect_indices(4, 3).tolist() == [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]
        assert loop_padding(1.5, 10) == 17
        assert loop_padding(1.5, 10, multiple=8) == 24
        assert loop_padding(0.0, 60) == 2

    def test_pad_larger_than_image(self) -> None:
        values = torch.arange(3.0).reshape(1, 1, 3)
        padded = pad_reflect(values, 5)
        assert padded.shape == (1, 11, 13)
        assert padded[0, 5].tolist() == [1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1]


class TestEuler:
    def test_compiled_matches_torch(self) -> None:
        if not cpu_kernels.available():
            pytest.skip("numba not installed")
        gen = torch.Generator().manual_seed(0)
        motion = torch.randn(2, 40, 30, generator=gen) * 3
        fast = EulerState.start(40, 30, CPU)
        ref = fast.copy()
        for _ in range(15):
            euler_step(fast, motion, -1.0)
            euler_step_torch(ref, motion, -1.0)
        assert torch.equal(fast.displacement, ref.displacement)
        assert torch.equal(fast.valid, ref.valid)
        assert not bool(ref.valid.all()), "some particles should have left the canvas"

    def test_trajectories_match_direct_integration(self) -> None:
        gen = torch.Generator().manual_seed(1)
        motion = torch.randn(2, 24, 20, generator=gen)
        frames = 11
        loop = LoopTrajectories(motion, frames)
        for t in range(frames + 1):
            disp_f, valid_f, disp_b, valid_b, alpha = loop.at(t)
            fwd = EulerState.start(24, 20, CPU)
            bwd = EulerState.start(24, 20, CPU)
            for _ in range(t):
                euler_step_torch(fwd, motion, 1.0)
            for _ in range(frames - t):
                euler_step_torch(bwd, motion, -1.0)
            assert torch.equal(disp_f, fwd.displacement)
            assert torch.equal(disp_b, bwd.displacement)
            assert torch.equal(valid_f, fwd.valid) and torch.equal(valid_b, bwd.valid)
            assert alpha == t / frames

    def test_once_has_no_backward(self) -> None:
        motion = torch.ones(2, 8, 8)
        _, _, disp_b, _, alpha = LoopTrajectories(motion, 5, once=True).at(3)
        assert alpha == 0.0 and not bool(disp_b.any())

    def test_resample(self) -> None:
        disp = torch.arange(2 * 8 * 8, dtype=torch.float32).reshape(2, 8, 8)
        valid = torch.ones(8, 8, dtype=torch.bool)
        coarse, coarse_valid = resample_displacement(disp, valid, 4)
        assert coarse.shape == (2, 2, 2) and coarse_valid.shape == (2, 2)
        assert coarse[0, 1, 1] == disp[0, 4, 4] / 4


class TestSplat:
    def test_forward_integer_shift_is_exact(self, rng: np.random.Generator) -> None:
        values = torch.from_numpy(rng.random((3, 20, 30), dtype=np.float32))
        disp = torch.zeros(2, 20, 30)
        disp[0], disp[1] = 3.0, -2.0
        ones = torch.ones(20, 30)
        out, den = splat_joint(values, disp, ones, disp, torch.zeros(20, 30))
        assert torch.equal(out[:, 0:18, 3:30], values[:, 2:20, 0:27])
        assert torch.equal(den[:, :3], torch.zeros(20, 3)), "columns nobody reaches are holes"

    def test_whole_pixel_path_matches_general_path(self, rng: np.random.Generator) -> None:
        values = torch.from_numpy(rng.random((4, 30, 40), dtype=np.float32))
        disp_f = torch.from_numpy(np.round(rng.normal(0, 3, (2, 30, 40))).astype(np.float32))
        disp_b = torch.from_numpy(np.round(rng.normal(0, 3, (2, 30, 40))).astype(np.float32))
        w_f, w_b = torch.full((30, 40), 0.3), torch.full((30, 40), 0.7)
        general = splat_joint(values, disp_f, w_f, disp_b, w_b)
        whole = splat_joint(values, disp_f, w_f, disp_b, w_b, whole_pixels=True)
        assert torch.equal(general[0], whole[0]) and torch.equal(general[1], whole[1])
        carried = splat_joint(values, disp_f, w_f, disp_b, w_b, whole_pixels=True, carry_remainder=True)
        assert torch.equal(carried[0], whole[0]), "no remainder to carry: the same taps"

    @pytest.mark.parametrize("channels", [3, 5])
    def test_carried_remainder_compiled_matches_torch(self, rng: np.random.Generator, channels: int,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
        values = torch.from_numpy(rng.random((channels, 33, 41), dtype=np.float32))
        disp_f = torch.from_numpy(rng.normal(0, 3, (2, 33, 41)).astype(np.float32))
        disp_b = torch.from_numpy(rng.normal(0, 3, (2, 33, 41)).astype(np.float32))
        w_f = torch.from_numpy(rng.random((33, 41), dtype=np.float32))
        w_b = torch.from_numpy(rng.random((33, 41), dtype=np.float32))
        compiled = splat_joint(values, disp_f, w_f, disp_b, w_b, whole_pixels=True, carry_remainder=True)
        monkeypatch.setattr(cpu_kernels, "available", lambda: False)
        reference = splat_joint(values, disp_f, w_f, disp_b, w_b, whole_pixels=True, carry_remainder=True)
        torch.testing.assert_close(compiled[1], reference[1], atol=SPLAT_ORDER_ATOL, rtol=0)
        torch.testing.assert_close(compiled[0], reference[0], atol=SPLAT_ORDER_ATOL, rtol=0)

    @pytest.mark.parametrize("shift", [0.25, 0.4, -0.45, 1.3])
    def test_carried_remainder_moves_fine_detail_sub_pixel(self, shift: float) -> None:
        """A 3 px period pattern shifted by a fraction of a pixel: carried, it lands where it belongs.

        Whole pixels misplace it by the remainder; bilinear taps average it away."""
        xs = torch.arange(64, dtype=torch.float32)
        pattern = lambda x: 0.5 + 0.5 * torch.cos(2 * np.pi * x / 3)  # noqa: E731
        values = pattern(xs).expand(1, 16, 64).contiguous()
        disp = torch.zeros(2, 16, 64)
        disp[0] = shift
        ones = torch.ones(16, 64)
        expected = pattern(xs - shift)[8:56]
        error = {}
        for name, options in (("carried", {"whole_pixels": True, "carry_remainder": True}),
                              ("whole", {"whole_pixels": True}), ("bilinear", {})):
            out, _ = splat_joint(values, disp, ones, disp, None, **options)
            error[name] = float((out[0, 8, 8:56] - expected).abs().max())
        assert error["carried"] < CARRIED_SUBPIXEL_MAX_ERROR, error
        assert error["carried"] < 0.35 * min(error["whole"], error["bilinear"]), error

    def test_zero_eps_division(self) -> None:
        values = torch.full((1, 4, 4), 0.7)
        disp = torch.zeros(2, 4, 4)
        weights = torch.full((4, 4), 1e-30)
        out, den = splat_joint(values, disp, weights, disp, torch.zeros(4, 4))
        assert torch.allclose(out, values), "tiny weights must not darken (no epsilon in the normaliser)"

    def test_compiled_matches_reference(self, rng: np.random.Generator) -> None:
        values = torch.from_numpy(rng.random((4, 33, 41), dtype=np.float32))
        disp_f = torch.from_numpy(rng.normal(0, 3, (2, 33, 41)).astype(np.float32))
        disp_b = torch.from_numpy(rng.normal(0, 3, (2, 33, 41)).astype(np.float32))
        w_f = torch.from_numpy(rng.random((33, 41), dtype=np.float32))
        w_b = torch.from_numpy(rng.random((33, 41), dtype=np.float32))
        out, den = splat_joint(values, disp_f, w_f, disp_b, w_b)
        acc = splat_sum_torch(values, [disp_f, disp_b], [w_f, w_b])
        torch.testing.assert_close(den, acc[4], atol=SPLAT_ORDER_ATOL, rtol=0)
        covered = acc[4] > 1e-2
        torch.testing.assert_close(out[:, covered], (acc[:4] / acc[4].clamp(min=1e-30))[:, covered],
                                   atol=SPLAT_ORDER_ATOL, rtol=0)

    @pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "torch"])
    @pytest.mark.parametrize("whole, carry", [(False, False), (True, False), (True, True)],
                             ids=["bilinear", "whole-pixel", "carried-remainder"])
    def test_crop_keeps_exactly_the_window(self, rng: np.random.Generator, whole: bool, carry: bool, compiled: bool,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
        if not compiled:
            monkeypatch.setattr(cpu_kernels, "available", lambda: False)
        values = torch.from_numpy(rng.random((4, 40, 50), dtype=np.float32))
        disp_f = torch.from_numpy(rng.normal(0, 3, (2, 40, 50)).astype(np.float32).clip(-6, 6))
        disp_b = torch.from_numpy(rng.normal(0, 3, (2, 40, 50)).astype(np.float32).clip(-6, 6))
        if whole and not carry:
            disp_f, disp_b = torch.round(disp_f), torch.round(disp_b)
        w_f = torch.from_numpy(rng.random((40, 50), dtype=np.float32))
        w_b = torch.from_numpy(rng.random((40, 50), dtype=np.float32))
        mode = {"whole_pixels": whole, "carry_remainder": carry}
        full = splat_joint(values, disp_f, w_f, disp_b, w_b, **mode)
        crop = splat_joint(values, disp_f, w_f, disp_b, w_b, reach=6, crop=(7, 9, 25, 30), **mode)
        assert torch.equal(crop[0], full[0][:, 7:32, 9:39]) and torch.equal(crop[1], full[1][7:32, 9:39])
        skipped = splat_joint(values, disp_f, w_f, disp_b, None, **mode)
        alone = splat_joint(values, disp_f, w_f, disp_b, torch.zeros(40, 50), **mode)
        assert torch.equal(skipped[0], alone[0]) and torch.equal(skipped[1], alone[1]), "None skips a source"

    def test_constant_image_stays_constant(self, rng: np.random.Generator) -> None:
        values = torch.full((3, 25, 25), 0.3)
        disp = torch.from_numpy(rng.normal(0, 2, (2, 25, 25)).astype(np.float32))
        out, den = splat_joint(values, disp, torch.full((25, 25), 0.6), -disp, torch.full((25, 25), 0.4))
        assert torch.allclose(out[:, den > 0], torch.tensor(0.3), atol=FLOAT32_ATOL)

    def test_softmax_weights_shift_invariant(self, rng: np.random.Generator) -> None:
        z = torch.from_numpy(rng.random((6, 6), dtype=np.float32) * 5)
        torch.testing.assert_close(softmax_weights(z, (6, 6), CPU), softmax_weights(z + 7.0, (6, 6), CPU))
        assert float(softmax_weights(z * 100, (6, 6), CPU).min()) >= np.exp(-20) * 0.99


class TestPyramid:
    def test_reconstruct_round_trip(self, rng: np.random.Generator) -> None:
        image = torch.from_numpy(rng.random((3, 37, 53), dtype=np.float32))
        levels = pyramid_levels(37, 53, 4)
        bands = laplacian_bands(image, levels)
        assert [tuple(b.shape[1:]) for b in bands] == [(37, 53), (19, 27), (10, 14), (5, 7)][:levels]
        torch.testing.assert_close(reconstruct(bands), image, atol=FLOAT32_ATOL, rtol=0)

    def test_upsample_keeps_constants_at_borders(self) -> None:
        up = pyr_up(torch.full((2, 5, 6), 0.5), (9, 11))
        assert torch.allclose(up, torch.tensor(0.5), atol=FLOAT32_ATOL), "borders must not brighten or darken"

    def test_levels_limited_by_size(self) -> None:
        assert pyramid_levels(20, 300, 6) == 2
        assert pyramid_levels(1024, 1024, 4) == 4


class TestHoles:
    def test_fill_keeps_known_and_fills_holes(self, rng: np.random.Generator) -> None:
        values = torch.full((3, 30, 40), 0.6)
        den = torch.ones(30, 40)
        den[5:25, 10:30] = 0
        values[:, 5:25, 10:30] = 0
        filled = fill_holes(values, den, 0.0)
        assert torch.allclose(filled, torch.tensor(0.6), atol=FLOAT32_ATOL), "push-pull must not darken"

    def test_fill_is_identity_without_holes(self, rng: np.random.Generator) -> None:
        values = torch.from_numpy(rng.random((2, 9, 9), dtype=np.float32))
        assert torch.equal(fill_holes(values, torch.ones(9, 9), 0.0), values)


class TestTelea:
    def test_fill_stays_in_range_of_known_pixels(self, rng: np.random.Generator) -> None:
        from stillflow.stages.holes import inpaint_telea

        image = (0.05 + 0.9 * rng.random((40, 50, 3))).astype(np.float32)
        holes = np.zeros((40, 50), bool)
        holes[10:20, 15:30] = True
        out = inpaint_telea(image, holes)
        assert np.array_equal(out[~holes], image[~holes])
        assert out[holes].min() >= 0.05 - 1e-4 and out[holes].max() <= 0.95 + 1e-4


class TestContrast:
    def test_single_particle_is_unchanged(self, rng: np.random.Generator) -> None:
        from stillflow.stages.contrast import band_energy, restore_contrast

        band = torch.from_numpy(rng.normal(0, 0.1, (3, 20, 20)).astype(np.float32))
        torch.testing.assert_close(restore_contrast(band, band_energy(band)), band)

    def test_blend_of_two_copies_gets_its_amplitude_back(self, rng: np.random.Generator) -> None:
        from stillflow.stages.contrast import MAX_GAIN, band_energy, restore_contrast

        a, b = (torch.from_numpy(rng.normal(0, 0.1, (3, 40, 40)).astype(np.float32)) for _ in range(2))
        mean, energy = 0.5 * (a + b), 0.5 * (band_energy(a) + band_energy(b))
        restored = restore_contrast(mean, energy)
        ratio = float(restored.std() / a.std())
        assert 0.9 < ratio <= MAX_GAIN, f"amplitude ratio {ratio:.2f} (plain blend: {float(mean.std() / a.std()):.2f})"


@pytest.mark.skipif(not cpu_kernels.available(), reason="numba not installed")
class TestCompiledMatchesReference:
    def test_contrast(self, rng: np.random.Generator) -> None:
        from stillflow.stages.contrast import band_energy, restore_contrast, restore_contrast_torch

        a, b = (torch.from_numpy(rng.normal(0, 0.1, (3, 30, 40)).astype(np.float32)) for _ in range(2))
        mean, energy = 0.5 * (a + b), 0.5 * (band_energy(a) + band_energy(b))
        fast = restore_contrast(mean, energy)
        torch.testing.assert_close(fast, restore_contrast_torch(mean, energy), atol=FLOAT32_ATOL, rtol=1e-5)
        assert not torch.equal(fast, mean), "the blend must be amplified"
        assert torch.equal(mean, 0.5 * (a + b)), "the input is not modified"

    def test_composite(self, rng: np.random.Generator) -> None:
        from stillflow.stages.composite import composite, composite_torch

        image = rng.random((20, 30, 3), dtype=np.float32)
        mask = torch.from_numpy(np.clip(rng.normal(0.3, 0.5, (20, 30)), 0, 1).astype(np.float32))
        result = torch.from_numpy(rng.random((3, 20, 30), dtype=np.float32))
        result[0, 0, 0] = float("nan")
        mask[0, 0] = 0.0
        fast = composite(image, composite_mask_t=mask, result=result)
        np.testing.assert_allclose(fast, composite_torch(image, composite_mask_t=mask, result=result),
                                   atol=FLOAT32_ATOL)
        static = mask.numpy() == 0
        assert static.any() and np.array_equal(fast[static], image[static])
        frame = np.zeros((26, 30, 3), np.float32)
        into = composite(image, composite_mask_t=mask, result=result, out=frame[3:23])  # a view of a larger frame
        assert into.base is frame and np.array_equal(frame[3:23], fast) and not frame[:3].any()

    def test_neighbour_fill_then_push_pull(self, rng: np.random.Generator) -> None:
        values = torch.full((3, 30, 30), 0.4)
        den = torch.ones(30, 30)
        den[5, 5] = 0.0  # a one-pixel crack: filled from its neighbours
        den[10:20, 10:20] = 0.0  # a wide hole: its inside needs the pyramid
        values[:, 10:20, 10:20] = 0.0
        values[:, 5, 5] = 9.0
        filled = fill_holes(values, den, 0.0)
        assert torch.allclose(filled, torch.tensor(0.4), atol=FLOAT32_ATOL)

    def test_neighbour_fill(self, rng: np.random.Generator) -> None:
        from stillflow.stages.holes import fill_from_neighbours_torch

        values = torch.from_numpy(rng.random((3, 40, 50), dtype=np.float32))
        den = torch.from_numpy((rng.random((40, 50)) * (rng.random((40, 50)) > 0.3)).astype(np.float32))
        den[10:20, 10:20] = 0.0
        fast, slow = values.clone(), values.clone()
        left = torch.from_numpy(cpu_kernels.fill_from_neighbours_cpu(fast.numpy(), den.numpy(), 1e-3))
        right = fill_from_neighbours_torch(slow, den, 1e-3)
        assert torch.equal(left, right) and bool(left.any())
        torch.testing.assert_close(fast, slow, atol=FLOAT32_ATOL, rtol=1e-5)
        assert not torch.equal(fast, values), "cracks must be filled"

    @pytest.mark.parametrize("size", [(17, 23), (16, 24), (33, 9)])
    def test_pyramid_collapse(self, rng: np.random.Generator, size: tuple[int, int]) -> None:
        """The compiled up(coarse) + band gives torch's numbers bit for bit, odd sizes included."""
        from stillflow.stages.cpu_pyramid import pyr_up_add_cpu

        band = torch.from_numpy(rng.normal(0, 0.2, (3, *size)).astype(np.float32))
        coarse = torch.from_numpy(rng.random((3, (size[0] + 1) // 2, (size[1] + 1) // 2), dtype=np.float32))
        assert torch.equal(torch.from_numpy(pyr_up_add_cpu(coarse.numpy(), band.numpy())), pyr_up(coarse, size) + band)

    @pytest.mark.parametrize("alpha", [0.35, 0.0, 1.0])
    @pytest.mark.parametrize("whole_pixels", [False, True])
    def test_splat_blend(self, rng: np.random.Generator, whole_pixels: bool, alpha: float,
                         monkeypatch: pytest.MonkeyPatch) -> None:
        """The banded CPU splat + mix matches two torch splats and the torch mix (cracks, holes, ignored pixels)."""
        from stillflow.stages.blend import splat_blend
        from stillflow.stages.splat import channels_last

        height, width = 200, 50  # several bands of target rows, particles crossing between them
        values = channels_last(torch.from_numpy(rng.random((4, height, width), dtype=np.float32)))
        ys = torch.linspace(0, 1, height)[:, None].expand(height, width)
        disp_f = torch.stack([3.3 * ys + 0.4, 9.7 * ys * ys]).contiguous()  # stretched: cracks
        disp_b = torch.stack([-2.6 * ys, -5.9 + 0 * ys]).contiguous()
        weight_f = torch.from_numpy((rng.random((height, width)) > 0.15).astype(np.float32))
        weight_b = torch.ones(height, width)
        weight_b[60:95, 10:30] = 0.0  # a wide hole in the backward copy, partly in the forward one too
        weight_f[64:98, 14:34] = 0.0
        ignore = torch.zeros(height - 6, width - 6, dtype=torch.bool)
        ignore[:, :4] = True
        splat = dict(whole_pixels=whole_pixels, reach=12, crop=(3, 3, height - 6, width - 6))
        fast, fast_den = splat_blend(values, (disp_f, weight_f), (disp_b, weight_b), alpha, 1e-3, ignore, **splat)
        monkeypatch.setattr(cpu_kernels, "available", lambda: False)
        slow, slow_den = splat_blend(values, (disp_f, weight_f), (disp_b, weight_b), alpha, 1e-3, ignore, **splat)
        assert bool((slow_den <= 1e-3).any()) and bool(((slow_den > 1e-3) & (slow_den < 0.5)).any())
        torch.testing.assert_close(fast, slow, atol=SPLAT_ORDER_ATOL, rtol=1e-5)
        torch.testing.assert_close(fast_den, slow_den, atol=SPLAT_ORDER_ATOL, rtol=1e-5)


class TestBlend:
    def test_even_coverage_is_the_plain_cross_fade(self, rng: np.random.Generator) -> None:
        from stillflow.stages.blend import blend_copies

        a, b = (torch.from_numpy(rng.random((3, 20, 20), dtype=np.float32)) for _ in range(2))
        ones = torch.ones(20, 20)
        out, den = blend_copies(a, ones, b, ones, 0.3, 1e-3)
        torch.testing.assert_close(out, 0.7 * a + 0.3 * b, atol=FLOAT32_ATOL, rtol=0)
        assert torch.allclose(den, torch.tensor(1.0))

    def test_lumpy_coverage_does_not_change_the_mix(self, rng: np.random.Generator) -> None:
        """Two particles on one pixel, none on its neighbour: the mix stays (1 - alpha, alpha)."""
        from stillflow.stages.blend import blend_copies

        a, b = torch.full((1, 9, 9), 0.2), torch.full((1, 9, 9), 0.8)
        den_f = torch.ones(9, 9)
        den_f[4, 3], den_f[4, 4] = 2.0, 0.0  # whole-pixel landing: a pile next to a crack
        out, _ = blend_copies(a, den_f, b, torch.ones(9, 9), 0.25, 1e-3)
        # A shared normaliser gives the crack pure backward copy (0.8) and the pile 0.29.
        assert float((out - 0.35).abs().max()) < 0.02

    def test_a_stretched_copys_moire_does_not_show_in_the_mix(self) -> None:
        """Particles spread 1.4 px apart land in a bending moire of 0 and 1 per pixel: the mix stays even."""
        from stillflow.stages.blend import blend_copies

        height, width = 48, 64
        den_f = torch.zeros(height, width)
        for y in range(height):
            landed = np.unique(np.round(np.arange(-8, width / 1.4 + 8) * 1.4 + 0.37 * y).astype(int))
            den_f[y, torch.from_numpy(landed[(landed >= 0) & (landed < width)])] = 1.0
        a, b = torch.full((1, height, width), 0.2), torch.full((1, height, width), 0.8)
        out, _ = blend_copies(a, den_f, b, torch.ones(height, width), 0.5, 1e-3)
        inner = out[0, 8:-8, 8:-8]
        # a 3x3 coverage drew the moire as bands 0.022 apart (0.008 over 9x9): two flat copies mix flat
        assert float(inner.max() - inner.min()) < 0.015, float(inner.max() - inner.min())

    @pytest.mark.parametrize("alpha", [0.0, 1.0])
    def test_a_copy_alone_takes_the_other_only_in_its_real_holes(self, alpha: float) -> None:
        """Outside the cross-over the other copy shows where the first has a hole, nowhere else (not at cracks)."""
        from stillflow.stages.blend import COVERAGE_WINDOW, blend_copies

        alone, other = torch.full((1, 40, 40), 0.2), torch.full((1, 40, 40), 0.8)
        den = torch.ones(40, 40)
        den[:12, :] = 0.0  # the upstream side of a mask's edge: content moved on, nothing followed
        den[30, 10], den[25, 30] = 0.0, 0.0  # cracks of a stretched copy
        args = (alone, den, other, torch.ones(40, 40)) if alpha == 0.0 else (other, torch.ones(40, 40), alone, den)
        out, out_den = blend_copies(*args, alpha, 1e-3)
        assert torch.allclose(out[0, :10], torch.tensor(0.8))  # the hole shows the other copy
        assert bool((out_den > 1e-3).all())
        away = 12 + COVERAGE_WINDOW // 2 + 2  # rows farther from the hole than the window reaches
        # cracks keep the copy's own (their neighbours' mean)
        torch.testing.assert_close(out[0, away:], torch.full((40 - away, 40), 0.2), atol=FLOAT32_ATOL, rtol=0)
        edge = out[0, 8:away, 20]
        assert bool((edge[1:] <= edge[:-1]).all()) and float(edge[0] - edge[-1]) > 0.5  # a ramp, not a cut

    def test_a_real_holes_box(self) -> None:
        """Pixels read with no covered 3x3 neighbour, grown and clipped; cracks and ignored pixels are none."""
        from stillflow.stages.blend import real_hole_box

        den, ignore = torch.ones(30, 40), torch.zeros(30, 40, dtype=torch.bool)
        den[5, 6], den[20:22, 10] = 0.0, 0.0  # cracks: a covered neighbour within 3x3
        assert real_hole_box(den, 1e-3, ignore) is None
        den[10:15, 30:33] = 0.0  # three columns wide: its middle column has no covered neighbour
        assert real_hole_box(den, 1e-3, ignore) == (11, 14, 31, 32)
        assert real_hole_box(den, 1e-3, ignore, grow=5) == (6, 19, 26, 37)
        ignore[10:15, 30:33] = True  # nothing reads it
        assert real_hole_box(den, 1e-3, ignore) is None

    def test_a_copy_with_a_wide_hole_gives_way(self) -> None:
        from stillflow.stages.blend import blend_copies

        a, b = torch.full((1, 20, 20), 0.2), torch.full((1, 20, 20), 0.8)
        den_f = torch.ones(20, 20)
        den_f[5:15, 5:15] = 0.0  # content left: the forward copy has nothing there
        out, den = blend_copies(a, den_f, b, torch.ones(20, 20), 0.1, 1e-3)
        assert torch.allclose(out[0, 8:12, 8:12], torch.tensor(0.8)) and bool((den > 1e-3).all())


class TestContrastEdgeCases:
    def test_zero_energy_with_box_round_off_stays_finite(self) -> None:
        import cv2

        from stillflow.stages.contrast import restore_contrast, restore_contrast_torch

        # Energies spanning twelve decades next to zeros: OpenCV's running-sum box leaves
        # tiny negative sums there (seed 3 gives one), whose square root would be NaN.
        rng = np.random.default_rng(0)
        for _ in range(4):
            energy = (rng.random((64, 64)) * rng.choice([1e-6, 1, 1e3, 1e6], (64, 64))).astype(np.float32)
            energy[:, 32:] = 0
            energy[rng.random((64, 64)) < 0.3] = 0
        assert (cv2.blur(energy, (5, 5), borderType=cv2.BORDER_REPLICATE) < 0).any(), "the case must bite"
        mean = torch.from_numpy(np.sqrt(energy / 3))[None].repeat(3, 1, 1) * 0.5
        for restore in (restore_contrast, restore_contrast_torch):
            assert torch.isfinite(restore(mean, torch.from_numpy(energy)[None])).all()


class TestOutliers:
    @staticmethod
    def _texture(rng: np.random.Generator, shape: tuple[int, int] = (48, 64)) -> torch.Tensor:
        """A smooth zero-mean (3, H, W) band: blurred noise, no isolated pixels."""
        import cv2

        noise = rng.normal(0, 1, (*shape, 3)).astype(np.float32)
        return torch.from_numpy(cv2.GaussianBlur(noise, (0, 0), 1.5) * 0.2).permute(2, 0, 1).contiguous()

    def test_a_band_no_more_outlying_than_its_particles_is_unchanged(self, rng: np.random.Generator) -> None:
        from stillflow.stages.outliers import limit_outliers_, luma_deviation

        band = self._texture(rng)
        before = band.clone()
        assert torch.equal(limit_outliers_(band, luma_deviation(band)), before)

    def test_a_dot_among_new_neighbours_is_pulled_back_and_its_energy_given_to_the_texture(
            self, rng: np.random.Generator) -> None:
        from stillflow.stages.contrast import MAX_GAIN, band_energy, box_mean
        from stillflow.stages.outliers import ENERGY_WINDOW, limit_outliers_, luma_deviation, median3

        band = self._texture(rng)
        allowed = luma_deviation(band)
        spotted = band.clone()
        spotted[:, 24, 30] += 0.5  # a bright dot that stands out far more than anything that landed there
        energy = box_mean(band_energy(spotted), ENERGY_WINDOW)
        out = limit_outliers_(spotted.clone(), allowed)
        luma = out.mean(dim=0, keepdim=True)
        deviation = (luma - median3(luma)).abs()
        gain = float(out[0, 24, 27] / band[0, 24, 27])
        assert float(deviation[0, 24, 30]) <= float(allowed[0, 24, 30]) * MAX_GAIN + 0.005, "0.5 before"
        assert 1.0 < gain <= MAX_GAIN + 1e-6, "the texture around the dot takes back its energy"
        far = ENERGY_WINDOW // 2 + 2
        torch.testing.assert_close(out[:, :24 - far], band[:, :24 - far], atol=0, rtol=0)
        kept = box_mean(band_energy(out), ENERGY_WINDOW)
        assert float(kept[0, 24, 30]) == pytest.approx(float(energy[0, 24, 30]), rel=0.05)

    def test_torch_median_matches_opencv(self, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
        from stillflow.stages import outliers

        values = torch.from_numpy(rng.random((2, 9, 13), dtype=np.float32))
        torch.testing.assert_close(outliers.median3(values), outliers.median3_torch(values), atol=0, rtol=0)
        monkeypatch.setattr(outliers, "_ROWS_PER_CHUNK", 4)  # chunks that split the rows unevenly
        torch.testing.assert_close(outliers.median3(values), outliers.median3_torch(values), atol=0, rtol=0)
