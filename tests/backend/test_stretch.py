"""Particles torn from their neighbours by a step in the motion fade instead of dotting (stages/stretch.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import stillflow.loop
from stillflow import MotionSpec, RenderOptions, render_frames
from stillflow.stages import cpu_kernels
from stillflow.stages.blend import blend_copies, splat_blend
from stillflow.stages.splat import channels_last, splat_joint
from stillflow.stages.stretch import STRETCH_GONE, STRETCH_ONSET, stretch_gain_torch

from ..tolerances import FLOAT32_ATOL, SPLAT_ORDER_ATOL


def _row_moved(dx: float, dy: float, height: int = 12, width: int = 10) -> torch.Tensor:
    """Displacement of a canvas whose row 5 alone moved by (dx, dy) px: (2, H, W) float32."""
    disp = torch.zeros((2, height, width), dtype=torch.float32)
    disp[0, 5], disp[1, 5] = dx, dy
    return disp


class TestStretchGain:
    def test_smooth_motion_fades_nothing(self) -> None:
        ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(20.0), indexing="ij")
        disp = torch.stack([3.0 + 0.5 * xs, -2.0 + 0.25 * ys])  # translated and stretched 1.5x: intact
        assert torch.equal(stretch_gain_torch(disp), torch.ones(16, 20))

    def test_a_row_torn_off_both_neighbours_fades_and_they_do_not(self) -> None:
        gain = stretch_gain_torch(_row_moved(0.0, 10.0))
        assert torch.equal(gain[5], torch.zeros(10)), "the torn row lands far from both neighbouring rows"
        others = torch.cat([gain[:5], gain[6:]])
        assert torch.equal(others, torch.ones_like(others)), "rows beside it keep a close neighbour"

    def test_a_row_sliding_along_itself_is_intact(self) -> None:
        """A shear parallel to a rim leaves no gap: the rows beside it still cover the next row."""
        assert torch.equal(stretch_gain_torch(_row_moved(10.0, 0.0)), torch.ones(12, 10))

    def test_the_gain_ramps_with_the_stretch(self) -> None:
        xs = torch.arange(8.0).expand(6, 8)
        # A uniform stretch s leaves every particle s px from its neighbours along x.
        gains = [float(stretch_gain_torch(torch.stack([(s - 1.0) * xs, torch.zeros(6, 8)]))[3, 3])
                 for s in (2.0, 3.0, STRETCH_GONE)]
        assert gains == pytest.approx([1.0, 0.5, 0.0])

    def test_compiled_gain_matches_torch(self, rng: np.random.Generator) -> None:
        if not cpu_kernels.available():
            pytest.skip("numba not installed")
        from stillflow.stages.cpu_stretch import gain_at

        disp = torch.from_numpy(rng.normal(0.0, 2.0, (2, 33, 47)).astype(np.float32)).cumsum(dim=2)
        onset, gone = np.float32(STRETCH_ONSET), np.float32(STRETCH_GONE)
        gain = torch.tensor([[gain_at(disp.numpy(), y, x, onset, gone) for x in range(47)] for y in range(33)])
        reference = stretch_gain_torch(disp)
        torch.testing.assert_close(gain.float(), reference, rtol=0.0, atol=FLOAT32_ATOL)
        assert bool((reference < 1).any()) and bool((reference == 1).any())


class TestSplatFadeTorn:
    @pytest.mark.parametrize("path", ["compiled", "torch"])
    @pytest.mark.parametrize("mode", [{}, {"whole_pixels": True}], ids=["bilinear", "whole"])
    def test_torn_particles_count_by_their_gain_and_energies_by_its_square(
            self, rng: np.random.Generator, path: str, mode: dict, monkeypatch: pytest.MonkeyPatch) -> None:
        """A particle's gain scales its values (energies by the square) and leaves its weight alone."""
        if path == "compiled" and not cpu_kernels.available():
            pytest.skip("numba not installed")
        if path == "torch":
            monkeypatch.setattr(cpu_kernels, "available", lambda: False)
        values = torch.from_numpy(rng.normal(0, 1, (5, 24, 30)).astype(np.float32))
        disp = torch.from_numpy(rng.normal(0, 1.5, (2, 24, 30)).astype(np.float32))
        weight = torch.from_numpy(rng.random((24, 30)).astype(np.float32))
        gain = stretch_gain_torch(disp)
        assert bool((gain < 1).any()) and bool((gain == 1).any())
        scaled = torch.cat([values[:3] * gain, values[3:] * gain ** 2])
        out, den = splat_joint(values, disp, weight, disp, None, fade_torn=True, gained=3, **mode)
        expected, expected_den = splat_joint(scaled, disp, weight, disp, None, **mode)
        torch.testing.assert_close(out, expected, rtol=0.0, atol=SPLAT_ORDER_ATOL)
        torch.testing.assert_close(den, expected_den, rtol=0.0, atol=0.0)

    def test_the_compiled_blend_fades_each_copy_by_its_own_tears(self, rng: np.random.Generator) -> None:
        """The compiled blend (one sweep for both copies) fades as the two copies splatted apart do."""
        if not cpu_kernels.available():
            pytest.skip("numba not installed")
        values = torch.from_numpy(rng.normal(0, 1, (4, 20, 26)).astype(np.float32))
        copies = [(torch.from_numpy(rng.normal(0, 1.5, (2, 20, 26)).astype(np.float32)),
                   torch.from_numpy(rng.random((20, 26)).astype(np.float32))) for _ in range(2)]
        ignore = torch.zeros((20, 26), dtype=torch.bool)
        fade = {"fade_torn": True, "gained": 3}
        compiled = splat_blend(channels_last(values), copies[0], copies[1], 0.4, 1e-3, ignore, **fade)
        plain = splat_blend(channels_last(values), copies[0], copies[1], 0.4, 1e-3, ignore)
        apart = [splat_joint(values, disp, weight, disp, None, **fade) for disp, weight in copies]
        reference = blend_copies(*apart[0], *apart[1], 0.4, 1e-3)
        torch.testing.assert_close(compiled[0], reference[0], rtol=0.0, atol=SPLAT_ORDER_ATOL)
        assert not torch.allclose(compiled[0], plain[0], atol=1e-3), "no particle faded"


def _wire_and_bar() -> tuple[np.ndarray, np.ndarray]:
    """A textured sky with a 1-px dark wire (row 20) and a 6-px dark bar (rows 40-45): (image, motion).

    The wire's row alone moves down 5 px/frame: its particles step onto row 25, which stands still,
    torn off both neighbouring rows (a line of the wire's colour mixed into the still sky there).
    The bar moves down 2 px/frame with the rows around it (36-55): intact.
    """
    height, width = 64, 96
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.repeat((0.75 + 0.04 * np.sin(xs / 7.0) * np.cos(ys / 9.0))[..., None], 3, axis=2).astype(np.float32)
    image[20, 30:50] = 0.1
    image[40:46, 30:50] = 0.1
    motion = np.zeros((2, height, width), np.float32)
    motion[1, 20] = 5.0
    motion[1, 36:56] = 2.0
    return image, motion


class TestTornParticlesInTheLoop:
    @pytest.mark.parametrize("once", [False, True], ids=["loop", "once"])
    def test_a_torn_wire_dissolves_and_the_intact_bar_keeps_its_contrast(self, once: bool,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
        # The fade alone: a loop then raises the trace's fine detail where the wire was sharp in the
        # still, by at most PLACE_GAIN (stages/place.py; bounded in test_place.py).
        monkeypatch.setattr(stillflow.loop, "keep_in_place_", lambda frame, place: frame)
        image, motion = _wire_and_bar()
        frames = list(render_frames(image, mask=np.ones(image.shape[:2], np.float32),
                                    motion=MotionSpec(kind="field", field=motion),
                                    options=RenderOptions(frames=16, once=once)))
        for t in (2, 4):
            luma = frames[t].mean(axis=2)
            torn = luma[25, 32:48]
            assert torn.min() > 0.6, f"frame {t}: the torn wire left a dark line of {torn.min():.2f}"
            bar = luma[42 + 2 * t: 44 + 2 * t, 32:48]
            assert bar.mean() < 0.2, f"frame {t}: the intact bar faded to {bar.mean():.2f}"

    def test_torch_path_fades_as_the_compiled_one(self, monkeypatch: pytest.MonkeyPatch) -> None:
        if not cpu_kernels.available():
            pytest.skip("numba not installed")
        image, motion = _wire_and_bar()
        kwargs = dict(mask=np.ones(image.shape[:2], np.float32), motion=MotionSpec(kind="field", field=motion),
                      options=RenderOptions(frames=16))
        monkeypatch.setattr(stillflow.loop, "keep_in_place_", lambda frame, place: frame)  # the fade alone, as above
        compiled = list(render_frames(image, **kwargs))
        monkeypatch.setattr(cpu_kernels, "available", lambda: False)
        from stillflow.stages import outliers

        monkeypatch.setattr(outliers, "median3", outliers.median3_torch)  # chosen by device, not by numba
        reference = list(render_frames(image, **kwargs))
        for t in (4, 8, 12):  # one copy, both copies mixed, the other copy
            assert reference[t][25, 32:48].mean(axis=1).min() > 0.6, f"frame {t}: the torch path kept the torn wire"
            assert np.abs(compiled[t] - reference[t]).max() < 1e-3, f"frame {t}"
