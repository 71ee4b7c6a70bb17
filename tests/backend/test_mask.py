"""The mask a user draws bounds what moves: refinement, edge snapping and feathering stay inside it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stillflow import MotionSpec, RenderOptions, render_frames
from stillflow.errors import InputError
from stillflow.io.images import load_image, load_mask
from stillflow.stages import guided
from stillflow.stages.guided import guided_filter
from stillflow.stages.mask import feather_mask, refine_mask, snap_to_edges

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "picos"


def _jagged_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A sky-like mask: a ragged horizon, a notch, islands, anti-aliased steps; no enclosed holes."""
    mask = np.zeros((height, width), np.float32)
    horizon = height // 2 + np.cumsum(rng.integers(-2, 3, width))
    horizon = np.clip(horizon, 8, height - 8)
    for x, y in enumerate(horizon):
        mask[:y, x] = 1.0
        mask[y, x] = 0.5  # a soft pixel counts as painted
    mask[: height // 3, width // 2: width // 2 + 3] = 0.0  # a thin unpainted notch from the top
    mask[height - 6: height - 3, 5:8] = 1.0  # an island below the horizon
    return mask


class TestUserMaskIsRespected:
    def test_default_render_changes_no_pixel_outside_the_drawn_mask(self, rng: np.random.Generator) -> None:
        """Target 4: default settings (refinement, snapping, feather) never touch an unpainted pixel."""
        height, width = 72, 96
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        image = np.stack([0.5 + 0.3 * np.sin(xs / 3 + c) * np.cos(ys / 5) for c in range(3)], axis=-1)
        image = np.clip(image + rng.normal(0, 0.05, image.shape), 0, 1).astype(np.float32)
        drawn = _jagged_mask(height, width, rng)
        motion = MotionSpec(kind="drift", drift=(-60.0, 1.7))  # towards the unpainted region
        for once in (False, True):
            options = RenderOptions(frames=8, once=once)
            frames = list(render_frames(image, mask=drawn, motion=motion, options=options))
            unpainted = drawn == 0
            moved = np.zeros((height, width), bool)
            for frame in frames:
                assert np.array_equal(frame[unpainted], image[unpainted]), "a pixel the user left unpainted changed"
                moved |= np.any(frame != image, axis=2)
            assert moved[drawn > 0].mean() > 0.5, "the painted region must animate"

    def test_refinement_only_fills_enclosed_holes(self) -> None:
        mask = np.zeros((200, 200), np.float32)
        mask[20:180, 20:180] = 1
        mask[90:95, 90:95] = 0.3  # an enclosed hole, faintly painted: filled
        mask[120:125, 120:125] = 0  # an enclosed hole left unpainted: filled only for a predicted mask
        mask[20:60, 100:102] = 0  # a thin slit open to the outside: the closing would bridge it
        refined = refine_mask(mask, min_region_frac=0.03)
        hole = np.zeros_like(mask, dtype=bool)
        hole[90:95, 90:95] = True
        assert refined[hole].all()
        assert not ((refined > mask) & ~hole).any(), "refinement animated an unpainted pixel outside a hole"
        assert refine_mask(mask, min_region_frac=0.03, fill_unpainted=True)[120:125, 120:125].all()

    def test_an_unpainted_rock_with_a_soft_rim_stays_bit_exact(self, rng: np.random.Generator) -> None:
        """Static wherever the drawn mask is exactly 0, also inside the painted region and behind soft edges."""
        height, width = 80, 112
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        image = np.stack([0.5 + 0.3 * np.sin(xs / 3 + c) * np.cos(ys / 4) for c in range(3)], axis=-1)
        image = np.clip(image + rng.normal(0, 0.05, image.shape), 0, 1).astype(np.float32)
        # A lake painted with anti-aliased edges, and a small rock in it left unpainted (its rim soft too).
        lake = np.clip(height * 0.45 - np.hypot((ys - 40) * 1.6, xs - 56) + 0.5, 0, 1)
        rock = np.clip(np.hypot(ys - 40, xs - 62) - 3.5, 0, 1)
        drawn = (lake * rock).astype(np.float32)
        assert 0 < (drawn == 0)[35:46, 57:68].sum() < 0.03 * drawn.size
        for once in (False, True):
            frames = list(render_frames(image, mask=drawn, motion=MotionSpec(kind="drift", drift=(1.2, 0.4)),
                                        options=RenderOptions(frames=6, once=once)))
            unpainted = drawn == 0
            for frame in frames:
                assert np.array_equal(frame[unpainted], image[unpainted]), "a pixel the user left at 0 changed"

    def test_snapping_drops_painted_pixels_across_a_photo_edge(self) -> None:
        image = np.zeros((64, 64, 3), np.float32)
        image[:32] = (0.3, 0.5, 0.9)  # sky
        image[32:] = (0.45, 0.45, 0.45)  # rock
        painted = np.zeros((64, 64), np.uint8)
        painted[:35] = 1  # three rows of rock painted as sky
        # The filter follows the majority of the photo's region within its window: an overshoot
        # of a few pixels, well under the radius, is undone.
        snapped = snap_to_edges(painted, image, radius=8)
        assert snapped[:32].all() and not snapped[32:].any()

    def test_snapping_never_adds(self, rng: np.random.Generator) -> None:
        image = rng.random((60, 70, 3)).astype(np.float32)
        painted = (rng.random((60, 70)) > 0.4).astype(np.uint8)
        assert not (snap_to_edges(painted, image) > painted).any()

    def test_feather_grows_inwards(self) -> None:
        mask = np.zeros((50, 50), np.float32)
        mask[:, 25:] = 1
        soft = feather_mask(mask, 4.0)
        assert (soft[:, :25] == 0).all() and 0 < soft[0, 25] < soft[0, 27] < 1 and (soft[:, 30:] == 1).all()
        assert (soft <= mask).all()

    def test_feather_treats_the_frame_edge_as_inside(self) -> None:
        mask = np.zeros((40, 40), np.float32)
        mask[:20] = 1
        soft = feather_mask(mask, 3.0)
        assert (soft[:10] == 1).all(), "rows at the image border are not a mask edge"


class TestSmallRegions:
    """Refinement drops specks by the size of the region they belong to, never a region drawn whole (issue 24, 3)."""

    @staticmethod
    def _photo(height: int, width: int) -> np.ndarray:
        """A smooth textured (H, W, 3) float32 photo in [0, 1]."""
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        return np.stack([0.5 + 0.3 * np.sin(xs / 7 + c) * np.cos(ys / 9) for c in range(3)], axis=-1)

    def test_a_waterfall_of_two_percent_stays(self) -> None:
        height, width = 300, 400
        mask = np.zeros((height, width), np.float32)
        mask[100:220, 180:200] = 1.0  # 2 % of the picture: under min_region_frac, drawn whole
        refined = refine_mask(mask, min_region_frac=0.03, image=self._photo(height, width))
        assert refined[mask > 0].mean() > 0.9 and not (refined > mask).any()

    def test_a_drawn_dot_comes_back_whole(self) -> None:
        mask = np.zeros((300, 400), np.float32)
        mask[40:200, 40:200] = 1.0
        mask[250:252, 300:302] = 1.0  # a 2x2 px region of its own: the closing erases it, refinement restores it
        refined = refine_mask(mask, min_region_frac=0.03)
        assert refined[250:252, 300:302].all()

    def test_a_speck_of_a_region_goes(self) -> None:
        mask = np.zeros((300, 400), np.float32)
        mask[40:200, 40:200] = 1.0
        mask[100, 200:215] = 1.0  # a one-pixel bridge the closing breaks ...
        mask[97:104, 215:222] = 1.0  # ... to a blob under 3 % of the region it was drawn with
        refined = refine_mask(mask, min_region_frac=0.03)
        assert refined[60:180, 60:180].all() and not refined[97:104, 215:222].any()

    def test_exception_refinement_that_empties_the_mask_says_so(self) -> None:
        mask = np.full((32, 48), 0.4, np.float32)  # painted faintly everywhere: refinement keeps nothing
        image = self._photo(32, 48)
        with pytest.raises(InputError, match="Refine Mask left nothing of the mask.*--no-refine-mask"):
            list(render_frames(image, mask=mask, options=RenderOptions(frames=2)))
        assert len(list(render_frames(image, mask=mask, options=RenderOptions(frames=2, refine_mask=False)))) == 2


class TestGuidedFilter:
    def test_tiles_match_one_block(self, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
        guide = rng.random((300, 280, 3)).astype(np.float32)
        src = np.zeros((300, 280), np.float32)
        src[:150, :200] = 1
        whole = guided_filter(guide, src, 5, 1e-3)
        monkeypatch.setattr(guided, "_TILE", 64)
        tiled = guided_filter(guide, src, 5, 1e-3)
        np.testing.assert_allclose(tiled, whole, atol=1e-5)

    def test_constant_source_is_kept(self, rng: np.random.Generator) -> None:
        guide = rng.random((40, 40, 3)).astype(np.float32)
        assert np.array_equal(guided_filter(guide, np.ones((40, 40), np.float32), 3, 1e-3), np.ones((40, 40)))


class TestSampleMask:
    def test_sample_mask_follows_the_ridges(self) -> None:
        """The quick-start mask: the sky band right above the ridge is painted, the rock below is not."""
        image = load_image(SAMPLE / "picos.jpg")
        mask = load_mask(SAMPLE / "picos_mask.png")
        assert set(np.unique(mask)) <= {0.0, 1.0}
        refined = refine_mask(mask, image=image)
        # Refinement agrees with the file to within a sliver: the file already sits on the edges.
        assert (refined != mask).mean() < 0.002
        # Along the ridge, the unpainted pixels next to painted ones look like rock, not sky:
        # blue-ish sky has B > R clearly, the grey limestone does not.
        edge = (mask == 0) & (np.roll(mask, 1, axis=0) == 1)
        blue_excess = image[..., 2] - image[..., 0]
        assert float(np.median(blue_excess[edge])) < 0.12
