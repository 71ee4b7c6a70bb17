"""tiles.py: stills rendered in horizontal strips when the moving region exceeds the memory budget."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from stillflow import MotionSpec, RenderOptions, render, render_frames
from stillflow.errors import InputError
from stillflow.io.images import load_image, load_mask
from stillflow.stages.mask import resize_mask
from stillflow.tiles import ENGINE_FLOOR_BYTES, MEMORY_ENV, WRITER_BYTES_PER_PIXEL, held_bytes, render_budget

from ..tolerances import STRIP_CHANGED_FRACTION, STRIP_MEAN_ABS


STRIPS_GB = f"{ENGINE_FLOOR_BYTES / 2**30 + 0.18:.3f}"
"""A cap that leaves the renderer less than the ~0.2 GiB the still needs in one piece (once the engine itself,
~0.02 GiB of inputs and the writer are counted): three strips."""


@pytest.fixture
def case(shared_data: Path) -> dict:
    """A real photo with its mask and StyleCineGAN motion, stretched to 384x1536 (a tall still: each
    strip reads 224 rows above and below it, so a shorter one would not split)."""
    import cv2

    stills = shared_data / "stills"
    pixels = cv2.imread(str(stills / "scg-IMG_6036.png"), cv2.IMREAD_COLOR)
    pixels = cv2.resize(pixels, (384, 1536), interpolation=cv2.INTER_AREA)
    image = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    mask = resize_mask(load_mask(stills / "scg-IMG_6036_mask.png"), 1536, 384)  # stretched as the image is
    return {"image": image, "mask": mask,
            "motion": MotionSpec(kind="file", path=str(stills / "scg-IMG_6036_motion.npy"))}


@pytest.mark.parametrize("once", [False, True], ids=["loop", "once"])
def test_strips_match_the_whole_image(case: dict, once: bool, monkeypatch: pytest.MonkeyPatch,
                                      caplog: pytest.LogCaptureFixture) -> None:
    options = RenderOptions(frames=8, once=once)
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    whole = list(render_frames(case["image"], mask=case["mask"], motion=case["motion"], options=options))
    monkeypatch.setenv(MEMORY_ENV, STRIPS_GB)
    with caplog.at_level(logging.INFO, logger="stillflow.tiles"):
        strips = list(render_frames(case["image"], mask=case["mask"], motion=case["motion"], options=options))
    assert any("strips" in record.getMessage() for record in caplog.records), "the strip renderer was not used"
    np.testing.assert_array_equal(strips[0], case["image"])
    for t, (a, b) in enumerate(zip(whole, strips)):
        difference = np.abs(a - b)
        assert difference.mean() <= STRIP_MEAN_ABS, f"frame {t}: mean abs difference {difference.mean():.2e}"
        assert (difference > 1 / 255).mean() <= STRIP_CHANGED_FRACTION, f"frame {t}"


def test_strips_match_where_texture_flows_in_at_the_sides(case: dict, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """The whole still moves right and down: each strip's left edge and the top strip's top edge fill
    with texture copied from rows around them, which the strip must have read (tiles.strip_margin)."""
    image = case["image"][:1368]  # a height off the 16-row grid, and a short last strip
    field = np.zeros((2,) + image.shape[:2], np.float32)
    field[0], field[1] = 6.0, 3.0  # fast enough that texture flows in past the kept reflection, in every band
    motion, options = MotionSpec(kind="field", field=field), RenderOptions(frames=8, refine_mask=False)
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    whole = list(render_frames(image, motion=motion, options=options))
    monkeypatch.setenv(MEMORY_ENV, STRIPS_GB)
    with caplog.at_level(logging.INFO, logger="stillflow.tiles"):
        strips = list(render_frames(image, motion=motion, options=options))
    assert any("strips" in record.getMessage() for record in caplog.records), "the strip renderer was not used"
    for t, (a, b) in enumerate(zip(whole, strips)):
        # Uniform motion leaves no holes to fill, so strips are exact here (observed: identical); a
        # strip that lacked the rows its side texture is copied from was off by 2e-4 at its seams.
        assert float(np.abs(a - b).max()) <= 1e-5, f"frame {t}: max abs difference {np.abs(a - b).max():.2e}"


def test_render_in_strips_writes_every_frame(case: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MEMORY_ENV, STRIPS_GB)
    reports = []
    result = render(case["image"], tmp_path / "out", mask=case["mask"], motion=case["motion"],
                    options=RenderOptions(frames=5), progress=reports.append)
    strips = [(r.done, r.total) for r in reports if r.stage == "strips"]
    assert strips and strips[-1][0] == strips[-1][1] > 1, "no per-strip progress"
    assert [p.name for p in result.frame_paths] == [f"frame_{i:04d}.png" for i in range(5)]
    frames = [load_image(p) for p in result.frame_paths]
    assert not np.array_equal(frames[1], frames[0]) and all(f.shape == (1536, 384, 3) for f in frames)


def test_a_budget_too_small_even_for_strips_is_a_clear_error(case: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MEMORY_ENV, "0.01")
    with pytest.raises(InputError, match="even in strips"):
        list(render_frames(case["image"], mask=case["mask"], motion=case["motion"], options=RenderOptions(frames=8)))


@pytest.mark.parametrize("value", ["lots", "0", "-2", "inf"])
def test_a_bad_memory_setting_is_a_clear_error(case: dict, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(MEMORY_ENV, value)
    with pytest.raises(InputError, match=f"{MEMORY_ENV} must be a positive number of GiB"):
        list(render_frames(case["image"], mask=case["mask"], motion=case["motion"], options=RenderOptions(frames=4)))


def test_cancel_is_heard_between_strips(case: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from stillflow.errors import Cancelled

    monkeypatch.setenv(MEMORY_ENV, STRIPS_GB)
    asked = []

    def should_cancel() -> bool:
        asked.append(True)
        return len(asked) > 3  # the check before frame 0, then one per strip of the first chunk

    frames = render_frames(case["image"], mask=case["mask"], motion=case["motion"], options=RenderOptions(frames=8),
                           should_cancel=should_cancel)
    with pytest.raises(Cancelled):
        next(iter(frames))  # frame 0 needs the whole first chunk: cancelled within it
    assert len(asked) == 4


def test_the_cap_counts_the_engine_its_inputs_and_the_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setenv(MEMORY_ENV, "2")
    inputs = held_bytes(np.zeros((100, 200, 3), np.float32), None, np.zeros((100, 200), np.float32))
    assert inputs == 100 * 200 * 16
    budget, held = render_budget(torch.device("cpu"), inputs, 100, 200)
    assert held == ENGINE_FLOOR_BYTES + inputs + 100 * 200 * WRITER_BYTES_PER_PIXEL
    assert budget + held == 2 * 2**30
