"""What flows in from outside the frame: texture (stages/inflow.py), faded detail and the edge's colours
(stages/padding.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stillflow.stages.inflow import TILE, synthesize_inflow
from stillflow.stages.padding import continue_edge, fade_padding, pad_reflect


def _texture(height: int, width: int, seed: int) -> torch.Tensor:
    """A zero-mean (3, H, W) band with structure at a few pixels' scale."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(3, height + 4, width + 4, generator=generator)
    smooth = (noise[:, :-4, :-4] + noise[:, 2:-2, 2:-2] + noise[:, 4:, 4:]) / 3
    return smooth - smooth.mean()


def test_the_inside_and_the_kept_reflection_are_untouched() -> None:
    band = _texture(60, 80, 1)
    padded = pad_reflect(band, 40)
    out = synthesize_inflow(padded, 40, keep=3.0, ramp=4.0)
    assert torch.equal(out[:, 40:100, 40:120], band)
    assert torch.equal(out[:, 40:100, 37:40], padded[:, 40:100, 37:40])  # within keep, left
    assert torch.equal(out[:, 100:103, 40:120], padded[:, 100:103, 40:120])  # within keep, below


def test_the_inflow_is_texture_of_the_edge_not_its_mirror_or_nothing() -> None:
    band = _texture(96, 96, 2)
    padded = pad_reflect(band, 60)
    out = synthesize_inflow(padded, 60, keep=0.0, ramp=4.0)
    beyond = out[:, 60:156, :50]  # left padding past the ramp
    mirror = padded[:, 60:156, :50]
    edge_energy = float((band[:, :, : 6 * TILE] ** 2).mean())  # at the edge's own amplitude
    energy = float((beyond ** 2).mean())
    assert 0.7 * edge_energy < energy < 1.3 * edge_energy, (energy, edge_energy)
    correlation = float((beyond * mirror).mean() / np.sqrt(energy * float((mirror ** 2).mean())))
    assert abs(correlation) < 0.2, f"the inflow repeats the mirror image (correlation {correlation:.2f})"
    for corner in (out[:, :50, :50], out[:, -50:, -50:]):
        assert 0.7 * edge_energy < float((corner ** 2).mean()) < 1.3 * edge_energy


def test_a_strip_fills_its_sides_as_the_whole_band_does() -> None:
    """The lattice is keyed on image coordinates: a crop of rows gets the same left and right inflow."""
    band = _texture(160, 72, 3)
    pad = 30
    whole = synthesize_inflow(pad_reflect(band, pad), pad, keep=2.0, ramp=4.0)
    top, bottom, margin = 64, 112, 3 * TILE
    crop = band[:, top - margin:bottom + margin]
    strip = synthesize_inflow(pad_reflect(crop, pad), pad, keep=2.0, ramp=4.0, origin=(top - margin, 0))
    rows = slice(pad + margin, pad + margin + bottom - top)
    torch.testing.assert_close(strip[:, rows, :pad], whole[:, pad + top:pad + bottom, :pad])
    torch.testing.assert_close(strip[:, rows, -pad:], whole[:, pad + top:pad + bottom, -pad:])


def test_the_same_band_gets_the_same_inflow_and_another_band_another() -> None:
    band = _texture(48, 48, 4)
    padded = pad_reflect(band, 24)
    first = synthesize_inflow(padded, 24, keep=0.0, ramp=4.0, salt=1)
    assert torch.equal(first, synthesize_inflow(padded, 24, keep=0.0, ramp=4.0, salt=1))
    assert not torch.equal(first, synthesize_inflow(padded, 24, keep=0.0, ramp=4.0, salt=2))


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (2, 40), (40, 2)])
def test_a_tiny_band_gets_finite_texture(shape: tuple[int, int]) -> None:
    band = _texture(*shape, seed=5)
    out = synthesize_inflow(pad_reflect(band, 20), 20, keep=1.0, ramp=4.0)
    assert out.shape == (3, shape[0] + 40, shape[1] + 40) and bool(torch.isfinite(out).all())
    assert torch.equal(out[:, 20:20 + shape[0], 20:20 + shape[1]], band)


def test_fade_padding() -> None:
    """Reflection kept for ``keep`` px beyond the edge, then faded out over ``ramp`` px; the inside untouched."""
    band = torch.rand(2, 30, 20, generator=torch.Generator().manual_seed(3)) + 1.0
    padded = pad_reflect(band, 10)
    faded = fade_padding(padded, 10, keep=2.0, ramp=4.0)
    assert torch.equal(faded[:, 10:40, 10:30], band)
    assert torch.equal(faded[:, 8:10, 10:30], padded[:, 8:10, 10:30])  # within keep
    assert torch.allclose(faded[:, 6, 10:30], 0.5 * padded[:, 6, 10:30])  # half way down the ramp
    assert not faded[:, :4].any() and not faded[:, :, -4:].any()  # beyond keep + ramp


def test_continue_edge() -> None:
    """Reflection for ``keep`` px, then the edge's own values averaged along it, never a mirror of the inside."""
    rows = torch.linspace(0.2, 0.8, 30)
    band = rows[None, :, None].repeat(2, 1, 20)  # a gradient along the left and right edges
    band[:, 10:14, 2:5] = 0.0  # a dark spot 2 px inside the left edge
    padded = pad_reflect(band, 12)
    out = continue_edge(padded, 12, keep=1.0, ramp=2.0)
    assert torch.equal(out[:, 12:42, 12:32], band)
    assert torch.equal(out[:, 12:42, 11], padded[:, 12:42, 11])  # within keep
    mirror = padded[:, 12:42, 12 - 4]  # 4 px out, the reflection shows the dark spot
    assert float(mirror[:, 10:14].max()) == 0.0
    far = out[:, 12:42, :12 - 3]  # beyond keep + ramp: the edge column's means
    assert float(far[:, :, -1].min()) >= 0.2 - 1e-6, "the dark spot was mirrored out"
    torch.testing.assert_close(far[:, 12:18, 0], band[:, 12:18, 0])  # a linear edge continues as itself
    assert bool(torch.isfinite(out).all())


def test_the_corners_kept_rows_reflect_the_side_texture_not_the_original_corner() -> None:
    band = _texture(40, 50, 6)
    padded = pad_reflect(band, 20)
    out = synthesize_inflow(padded, 20, keep=2.0, ramp=4.0)
    for other in (out, continue_edge(padded, 20, keep=2.0, ramp=4.0)):
        torch.testing.assert_close(other[:, 19, :20], other[:, 21, :20])  # one row above mirrors one below
        torch.testing.assert_close(other[:, 18, -20:], other[:, 22, -20:])
    assert not torch.allclose(out[:, 19, :10], padded[:, 19, :10])  # not the original corner's mirror
