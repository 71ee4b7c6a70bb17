"""The fine detail's contrast stays in place (stages/place.py), alone and in the loop."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stillflow import MotionSpec, RenderOptions, render_frames
from stillflow.loop import LoopPlan, LoopRenderer
from stillflow.stages.place import (PLACE_GAIN, fine_detail, fine_detail_torch, keep_in_place_, keep_in_place_torch_,
                                    laplacian_torch, place_energy, sharpness_map_torch)



def _texture(rng: np.random.Generator, height: int = 96, width: int = 128) -> np.ndarray:
    """Fine, even texture of a sky's contrast (few pixels stand out by STANDING_OUT), (H, W, 3) float32."""
    import cv2

    fine = cv2.GaussianBlur(rng.normal(0, 1, (height, width, 3)).astype(np.float32), (0, 0), 0.9)
    return (0.5 + 0.025 * fine / fine.std()).astype(np.float32)


def _energy(image: torch.Tensor, rows: slice, cols: slice) -> float:
    """Mean sharpness (the energy of the luma's Laplacian) of (C, H, W) ``image`` over a block."""
    return float((laplacian_torch(image.mean(dim=0, keepdim=True)) ** 2)[0, rows, cols].mean())


@pytest.mark.parametrize("size", [(64, 48), (65, 47)], ids=["even", "odd"])
def test_the_cpu_path_is_the_torch_path(rng: np.random.Generator, size: tuple[int, int]) -> None:
    """OpenCV on a CPU, torch elsewhere (the GPU): the same numbers, borders and odd sizes included."""
    still = torch.from_numpy(_texture(rng, *size)).permute(2, 0, 1).contiguous()
    frame = still - 0.4 * fine_detail_torch(still)
    frame[:, size[0] // 2, size[1] // 2] += 0.2  # a pixel that stands out
    np.testing.assert_allclose(fine_detail(frame).numpy(), fine_detail_torch(frame).numpy(), atol=1e-6, rtol=0)
    place = place_energy(still)
    np.testing.assert_allclose(place.numpy(), sharpness_map_torch(still).numpy(), rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(keep_in_place_(frame.clone(), place).numpy(),
                               keep_in_place_torch_(frame.clone(), place).numpy(), atol=1e-6, rtol=0)


def test_a_frame_with_the_stills_detail_is_left_exactly_as_it_is(rng: np.random.Generator) -> None:
    still = torch.from_numpy(_texture(rng)).permute(2, 0, 1).contiguous()
    frame = still.clone()
    keep_in_place_(frame, place_energy(still))
    assert torch.equal(frame, still)


def test_detail_is_scaled_towards_the_stills_energy_within_the_gain(rng: np.random.Generator) -> None:
    """Softened detail comes back, no further than the gain allows; detail as sharp or sharper stays."""
    still = torch.from_numpy(_texture(rng, 96, 192)).permute(2, 0, 1).contiguous()
    scale = torch.ones(1, 96, 192)
    scale[:, :, :48], scale[:, :, 48:96], scale[:, :, 96:144], scale[:, :, 144:] = 0.5, 0.9, 1.1, 2.0
    before = still + (scale - 1.0) * fine_detail(still)  # each quarter's fine detail scaled
    after = keep_in_place_(before.clone(), place_energy(still))
    rows = slice(20, 76)
    for quarter, change in enumerate((PLACE_GAIN ** 2, None, 1.0, 1.0)):
        cols = slice(48 * quarter + 18, 48 * quarter + 30)
        was, now, aim = (_energy(x, rows, cols) for x in (before, after, still))
        if change == 1.0:
            assert now == pytest.approx(was, rel=1e-5), quarter
        elif change is not None:  # beyond the gain's reach: the detail rises by the cap (the Laplacian
            # also sees a little of the coarser detail, which is not scaled)
            assert 0.85 * np.log(change) < np.log(now / was) <= np.log(change) + 1e-6, quarter
        else:
            assert abs(now / aim - 1.0) < 0.3 * abs(was / aim - 1.0), quarter


def test_a_flat_still_with_running_sum_residue_leaves_the_frame_finite(rng: np.random.Generator) -> None:
    """A box's running sums can leave -1e-9 where the still is flat: no root of a negative."""
    frame = torch.from_numpy(_texture(rng)).permute(2, 0, 1).contiguous()
    place = torch.full((1, 96, 128), -1e-9)
    for path in (keep_in_place_, keep_in_place_torch_):
        out = path(frame.clone(), place)
        assert torch.isfinite(out).all() and torch.equal(out, frame), path.__name__


def test_a_pixel_that_stands_out_keeps_its_detail(rng: np.random.Generator) -> None:
    """Texture is raised, an isolated dot is not: the stage makes no new outliers."""
    still = torch.from_numpy(_texture(rng)).permute(2, 0, 1).contiguous()
    frame = still - 0.5 * fine_detail(still)  # softened everywhere: the gain is at its cap
    frame[:, 48, 64] += 0.2  # a dot
    before = frame.clone()
    keep_in_place_(frame, place_energy(still))
    assert float(frame[:, 48, 64].sub(before[:, 48, 64]).abs().max()) == 0.0
    assert float((frame - before)[:, 10:40].abs().mean()) > 1e-3, "the texture around was raised"


def test_a_stretched_loop_keeps_the_stills_fine_detail_in_place(rng: np.random.Generator) -> None:
    """A field that stretches the texture softens a copy as it travels; the frame's sharpness stays.

    Without the stage the frames' sharpness went from 0.70 of the still's (the forward copy pulled
    apart) to 1.16 (the backward copy pushed together); with it 0.90 to 1.16 (it only raises).
    """
    image = _texture(rng)
    xs = np.arange(128, dtype=np.float32)
    motion = np.zeros((2, 96, 128), np.float32)
    motion[0] = 0.06 * (xs - 64)  # diverging from the middle column: the forward copy is pulled apart
    n = 24
    plan = LoopPlan.from_options(RenderOptions(frames=n, levels=4))
    renderer = LoopRenderer(image, np.ones((96, 128), np.float32), motion, plan, device=torch.device("cpu"))
    still = torch.from_numpy(image).permute(2, 0, 1).contiguous()
    rows, cols = slice(12, 84), slice(24, 104)
    for t in range(1, n):
        frame = torch.from_numpy(renderer.frame(t)).permute(2, 0, 1).contiguous()
        assert 0.87 < _energy(frame, rows, cols) / _energy(still, rows, cols) < 1.2, t


def test_a_trace_where_a_sharp_structure_was_is_raised_by_at_most_the_gain(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the still was sharp and the frame is not (the torn wire faded, stages/stretch.py), what is
    left there is raised too, but its depth below the sky by no more than PLACE_GAIN."""
    import stillflow.loop

    from .test_stretch import _wire_and_bar

    image, motion = _wire_and_bar()
    kwargs = dict(mask=np.ones(image.shape[:2], np.float32), motion=MotionSpec(kind="field", field=motion),
                  options=RenderOptions(frames=16))
    kept = list(render_frames(image, **kwargs))
    monkeypatch.setattr(stillflow.loop, "keep_in_place_", lambda frame, place: frame)
    plain = list(render_frames(image, **kwargs))
    for t in (2, 4):
        sky = float(plain[t][25, 60:90].mean())
        depth_kept, depth_plain = (sky - float(f[t][25, 32:48].mean(axis=1).min()) for f in (kept, plain))
        assert depth_plain < depth_kept <= PLACE_GAIN * depth_plain + 1e-4, t
