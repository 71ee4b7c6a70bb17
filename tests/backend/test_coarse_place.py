"""The loop's middle keeps the still's coarse contrast in place (stages/coarse_place.py), alone and in the loop."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import stillflow.loop as loop_module
from stillflow import MotionSpec, RenderOptions, render_frames
from stillflow.stages.coarse_place import (COARSE_GAIN, coarse_energy, coarse_energy_torch, keep_coarse_in_place_,
                                           keep_coarse_in_place_torch_, middle_cap)


def _clouds(rng: np.random.Generator, height: int = 128, width: int = 160) -> np.ndarray:
    """Cloud-like structure tens of pixels across on a sky's contrast, (H, W, 3) float32."""
    import cv2

    noise = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 5.0)
    base = 0.55 + 0.12 * noise / noise.std()
    return np.stack([base * 0.9, base, base * 1.1 + 0.02], axis=-1).astype(np.float32)


def _flattened(image: np.ndarray, amount: float, sigma: float = 6.0) -> np.ndarray:
    """``image`` with its structure above ``sigma`` px scaled by ``amount`` (1 = as it is)."""
    import cv2

    mean = cv2.GaussianBlur(image, (0, 0), 3 * sigma)
    return (mean + amount * (image - mean)).astype(np.float32)


def _chw(image: np.ndarray) -> torch.Tensor:
    """(H, W, C) numpy -> contiguous (C, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()


def _band_energy(image: torch.Tensor, rows: slice, cols: slice) -> float:
    """Mean energy of the luma's band at 1/4 scale over a block of full-resolution pixels."""
    energy = coarse_energy_torch(image, window=1)[0][0]
    return float(energy[rows.start // 4: rows.stop // 4, cols.start // 4: cols.stop // 4].mean())


def test_the_cap_grows_from_the_cross_overs_ends_to_its_middle() -> None:
    assert middle_cap(0.0) == 1.0 and middle_cap(1.0) == 1.0
    assert middle_cap(0.5) == pytest.approx(COARSE_GAIN)
    assert middle_cap(0.25) == pytest.approx(middle_cap(0.75))
    assert 1.0 < middle_cap(0.25) < COARSE_GAIN


@pytest.mark.parametrize("size", [(96, 128), (97, 131)], ids=["even", "odd"])
def test_the_cpu_path_is_the_torch_path(rng: np.random.Generator, size: tuple[int, int]) -> None:
    """OpenCV on a CPU, torch elsewhere (the GPU): the same numbers, borders and odd sizes included."""
    still = _clouds(rng, *size)
    frame = _chw(_flattened(still, 0.4))
    place = coarse_energy(_chw(still))
    for cpu, reference in zip(place, coarse_energy_torch(_chw(still))):
        np.testing.assert_allclose(cpu.numpy(), reference.numpy(), rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(keep_coarse_in_place_(frame.clone(), place, 2.5).numpy(),
                               keep_coarse_in_place_torch_(frame.clone(), place, 2.5).numpy(), atol=2e-6, rtol=0)


def test_a_frame_as_contrasty_as_the_still_or_outside_the_cross_over_is_left_exactly_as_it_is(
        rng: np.random.Generator) -> None:
    still = _chw(_clouds(rng))
    frame = still.clone()
    keep_coarse_in_place_(frame, coarse_energy(still), COARSE_GAIN)
    assert torch.equal(frame, still)
    flat = _chw(_flattened(_clouds(rng), 0.3))
    assert torch.equal(keep_coarse_in_place_(flat.clone(), coarse_energy(still), middle_cap(0.0)), flat)


def test_flattened_structure_comes_back_within_the_cap_and_stronger_structure_stays(rng: np.random.Generator) -> None:
    """Left half flattened to 0.3 of the still's structure, right half strengthened to 1.5 of it."""
    still = _clouds(rng, 128, 256)
    before = still.copy()
    before[:, :128] = _flattened(still, 0.3)[:, :128]
    before[:, 128:] = _flattened(still, 1.5)[:, 128:]
    place = coarse_energy(_chw(still))
    rows, left, right = slice(32, 96), slice(24, 104), slice(152, 232)
    for cap in (1.5, 3.0):
        after = keep_coarse_in_place_(_chw(before), place, cap)
        was, now, aim = (_band_energy(x, rows, left) for x in (_chw(before), after, _chw(still)))
        assert was < 0.2 * aim, "the case must start flat"
        assert was * 1.5 < now <= min(aim, was * cap * cap) * 1.1, (cap, was, now, aim)
        stronger, kept = (_band_energy(x, rows, right) for x in (_chw(before), after))
        assert kept == pytest.approx(stronger, rel=0.02), cap
    # the higher cap brings more of it back
    low, high = (_band_energy(keep_coarse_in_place_(_chw(before), place, cap), rows, left) for cap in (1.5, 3.0))
    assert high > 1.5 * low


def test_the_loops_middle_gets_its_coarse_contrast_back_and_its_ends_are_untouched(
        rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fast drift down: by the loop's middle the top of the frame has flowed in from outside it and is
    flat at the scale of the clouds; the stage raises it towards the still's there and leaves the
    loop's outer quarters (one copy, the input's own structure moved) as they are."""
    still = _clouds(rng, 160, 192)
    field = np.zeros((2, 160, 192), np.float32)
    field[1] = 3.0
    n = 24

    def render() -> list[np.ndarray]:
        return list(render_frames(still, motion=MotionSpec(kind="field", field=field),
                                  options=RenderOptions(frames=n, levels=4, refine_mask=False)))

    kept = render()
    monkeypatch.setattr(loop_module, "middle_cap", lambda share: 1.0)
    plain = render()
    for t in (1, n // 4 - 1, n - n // 4 + 1, n - 1):
        assert np.array_equal(kept[t], plain[t]), t
    rows, cols = slice(8, 40), slice(16, 176)  # the top of the frame, which has flowed in by then
    aim = _band_energy(_chw(still), rows, cols)
    was, now = (_band_energy(_chw(frames[n // 2]), rows, cols) for frames in (plain, kept))
    assert was < 0.8 * aim, "the case must flatten the middle"
    assert now > was + 0.3 * (aim - was), (was, now, aim)


@pytest.mark.parametrize("size", [(8, 8), (16, 20), (47, 200)], ids=["8x8", "16x20", "47x200"])
def test_a_frame_too_small_for_the_pyramid_is_left_as_it_is_on_every_path(rng: np.random.Generator,
                                                                           size: tuple[int, int]) -> None:
    """The reflected blur needs 3 px at the level below the deepest band: smaller frames (a tiny still,
    a narrow moving region's window) keep their contrast instead of failing on the GPU path."""
    still = _chw(_clouds(rng, *size))
    frame = still * 0.5
    assert coarse_energy(still) == [] and coarse_energy_torch(still) == []
    assert torch.equal(keep_coarse_in_place_(frame.clone(), [], COARSE_GAIN), frame)
    assert torch.equal(keep_coarse_in_place_torch_(frame.clone(), [], COARSE_GAIN), frame)
