"""addon/core/preview_sway.py: the live preview's sway inputs from the panel's regions (no bpy, no GL).

The comparison with the engine's own plan runs in the backend environment (it needs torch);
the rest runs in both.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from addon.core import preview_math, preview_sway
from addon.core.lib import load
from addon.core.request import build_options, build_region

_options = load("options")

HEIGHT, WIDTH = 40, 64


def _masks() -> list[np.ndarray]:
    """A flowing top band, a swaying middle band overlapping it, a shimmering bottom band with its own cycles."""
    masks = [np.zeros((HEIGHT, WIDTH), np.float32) for _ in range(3)]
    masks[0][0:16, 4:60] = 1.0
    masks[1][12:28, 4:60] = 1.0
    masks[2][26:38, 2:62] = 0.75
    return masks


def _regions() -> list[object]:
    """The panel's regions: drift, sway (2 cycles), shimmer (3 cycles)."""
    flow, sway, shimmer = _masks()
    return [build_region("DRIFT", flow, name="sky", drift=(0.0, 0.5)),
            build_region("SWAY", sway, name="trees", amplitude=2.5, cycles=2, angle=40.0, speed=0.8),
            build_region("SHIMMER", shimmer, name="lake", amplitude=1.0, cycles=3)]


OPTIONS = {"frames": 12, "speed": 1.5, "refine_mask": False}


class TestAgainstTheEngine:
    def test_same_plan_as_the_engine(self) -> None:
        pytest.importorskip("torch")
        from stillflow import MotionSpec, Region, RenderOptions, SwaySpec
        from stillflow.pipeline import prepare

        image = np.full((HEIGHT, WIDTH, 3), 0.5, np.float32)
        options = build_options(OPTIONS)
        ours = preview_sway.preview_sway(_regions(), options, HEIGHT, WIDTH)
        flow, sway, shimmer = _masks()
        engine_regions = [
            Region(mask=flow, motion=MotionSpec(kind="drift", drift=(0.0, 0.5))),
            Region(mask=sway, speed=0.8, motion=MotionSpec(kind="sway", sway=SwaySpec(amplitude=2.5, cycles=2,
                                                                                       angle=40.0))),
            Region(mask=shimmer, motion=MotionSpec(kind="sway", sway=SwaySpec(amplitude=1.0, cycles=3, angle=0.0,
                                                                               shimmer=True)))]
        plan = prepare(image, mask=None, motion=MotionSpec(), regions=engine_regions,
                       options=RenderOptions(frames=12, speed=1.5, refine_mask=False)).sway
        engine = preview_sway.sway_textures(plan, HEIGHT, WIDTH)
        assert ours.cycles == engine.cycles == (2, -3, 0, 0)  # the shimmer's layer: its k negated
        np.testing.assert_array_equal(ours.waves, engine.waves)
        assert ours.largest == engine.largest > 0
        # the shimmer share is the lake's share of the overlaps, as the engine's
        np.testing.assert_array_equal(ours.shimmer, preview_math.mask_texture(shimmer / np.maximum(1.0, sum(_masks()))))

    def test_amplitude_image_as_the_engine(self) -> None:
        pytest.importorskip("torch")
        from stillflow import MotionSpec, Region, RenderOptions, SwaySpec
        from stillflow.pipeline import prepare

        mask = _masks()[1]
        ramp = np.tile(np.linspace(0.0, 1.0, WIDTH, dtype=np.float32), (HEIGHT, 1))
        spec = SwaySpec(amplitude=2.5, cycles=2, angle=40.0, amplitude_image=ramp)
        ours = preview_sway.preview_sway([_options.Region(mask=mask, motion=_options.MotionSpec(
            kind="sway", sway=_options.SwaySpec(amplitude=2.5, cycles=2, angle=40.0, amplitude_image=ramp)))],
            _options.RenderOptions(**OPTIONS), HEIGHT, WIDTH)
        plan = prepare(np.full((HEIGHT, WIDTH, 3), 0.5, np.float32), mask=None, motion=MotionSpec(),
                       regions=[Region(mask=mask, motion=MotionSpec(kind="sway", sway=spec))],
                       options=RenderOptions(**OPTIONS)).sway
        np.testing.assert_array_equal(ours.waves, preview_sway.sway_textures(plan, HEIGHT, WIDTH).waves)
        assert not ours.waves[::-1][:, 0].any()  # the image's black left column holds still

    def test_the_panels_amplitude_image_reaches_the_plan(self) -> None:
        """A region built from the panel with an amplitude image black on its left half sways only on the right."""
        half = np.ones((HEIGHT // 2, WIDTH // 2), np.float32)  # the still's shape at half its size
        half[:, : WIDTH // 4] = 0.0
        region = build_region("SWAY", _masks()[1], name="trees", amplitude=2.5, cycles=2, angle=40.0,
                              amplitude_image=half, still_size=(WIDTH, HEIGHT))
        waves = preview_sway.preview_sway([region], build_options(OPTIONS), HEIGHT, WIDTH).waves[::-1]  # top-down
        assert not waves[:, : WIDTH // 2].any()
        assert (np.abs(waves[14:26, WIDTH // 2 + 6: 56]).sum(axis=2) > 0.0).all()

    def test_seed_and_speed_matter(self) -> None:
        """The comparison above can fail: another seed or speed plans other waves."""
        regions = _regions()
        base = preview_sway.preview_sway(regions, _options.RenderOptions(**OPTIONS), HEIGHT, WIDTH)
        for change in ({"speed": 1.0}, {"seed": 5}):
            other = preview_sway.preview_sway(regions, _options.RenderOptions(**{**OPTIONS, **change}), HEIGHT, WIDTH)
            assert not np.array_equal(other.waves, base.waves), change


class TestShares:
    def test_overlaps_divide_by_their_sum(self) -> None:
        shares = preview_sway.region_shares(_masks(), HEIGHT, WIDTH)
        assert shares[0][14, 30] == shares[1][14, 30] == 0.5
        assert shares[1][20, 30] == 1.0 and shares[2][30, 30] == 0.75
        assert (sum(shares) <= 1.0).all()

    def test_refine_keeps_above_half_and_resizes(self) -> None:
        small = np.zeros((10, 16), np.float32)
        small[2:5, 4:12] = 0.6
        small[6:9, 4:12] = 0.4
        (share,) = preview_sway.region_shares([small], HEIGHT, WIDTH, refine=True)
        assert share.shape == (HEIGHT, WIDTH) and set(np.unique(share)) == {0.0, 1.0}
        assert share[12, 30] == 1.0 and share[30, 30] == 0.0
        (soft,) = preview_sway.region_shares([small], HEIGHT, WIDTH)
        assert soft[30, 30] == pytest.approx(0.4)

    def test_no_mask_is_everywhere(self) -> None:
        (share,) = preview_sway.region_shares([None], 3, 4)
        assert (share == 1.0).all()


class TestTextures:
    def test_layers_stack_in_texture_layout(self) -> None:
        plan, shimmer = preview_sway.plan_regions(_regions(), build_options(OPTIONS), HEIGHT, WIDTH)
        textures = preview_sway.sway_textures(plan, HEIGHT, WIDTH, shimmer)
        assert textures.waves.shape == (2 * HEIGHT, WIDTH, 4) and textures.active
        layer = plan.layers[1]
        rows, cols = plan.window
        block = textures.waves[HEIGHT:][::-1][rows, cols]  # the second layer, rows top-down again
        np.testing.assert_array_equal(block[..., 0], layer.wave_cos[0])
        np.testing.assert_array_equal(block[..., 1], -layer.wave_cos[1])
        np.testing.assert_array_equal(block[..., 3], -layer.wave_sin[1])
        amplitude = np.sqrt((layer.wave_cos ** 2).sum(0) + (layer.wave_sin ** 2).sum(0))
        assert textures.largest >= float(amplitude.max()) > 0
        # nothing sways where no swaying region is
        assert not textures.waves[:HEIGHT][::-1][_masks()[0] * (1 - _masks()[1]) > 0].any()

    def test_too_many_cycle_counts_say_what_to_do(self) -> None:
        mask = np.ones((8, 8), np.float32)
        regions = [build_region("SWAY", mask, name=f"r{k}", cycles=k) for k in range(1, 6)]
        plan, _ = preview_sway.plan_regions(regions, build_options(OPTIONS), 8, 8)
        message = "at most 4 different Cycles .* 1, 2, 3, 4, 5; give some regions the same"
        with pytest.raises(ValueError, match=message):
            preview_sway.sway_textures(plan, 8, 8)
        with pytest.raises(ValueError, match=message):  # said before planning (that may take seconds)
            preview_sway.preview_sway(regions, build_options(OPTIONS), 8, 8)

    def test_no_swaying_region(self) -> None:
        regions = [build_region("DRIFT", np.ones((8, 8), np.float32), name="sky")]
        plan, shimmer = preview_sway.plan_regions(regions, build_options(OPTIONS), 8, 8)
        assert plan is None and not shimmer.any()
        empty = preview_sway.sway_textures(plan, 8, 8)
        assert not empty.active and empty.waves.shape == (1, 1, 4) and empty.largest == 0.0


class TestColour:
    def test_srgb_curve(self) -> None:
        values = preview_sway.srgb_to_linear(np.array([0.0, 0.04045, 0.5, 1.0]))
        np.testing.assert_allclose(values, [0.0, 0.04045 / 12.92, 0.2140411, 1.0], rtol=1e-5)

    def test_base_of_blender_pixels(self) -> None:
        """A byte still's encoded RGB pixels are decoded before the blur; alpha is kept, missing alpha is 1."""
        rng = np.random.default_rng(4)
        encoded = rng.random((6, 7, 4), dtype=np.float32)
        gaussian_base = load("stages.sway_split").gaussian_base
        linear = np.concatenate([preview_sway.srgb_to_linear(encoded[..., :3]), encoded[..., 3:]], axis=-1)
        np.testing.assert_allclose(preview_sway.base_texture(encoded, encoded=True), gaussian_base(linear), atol=1e-6)
        rgb = preview_sway.base_texture(encoded[..., :3])
        assert rgb.shape == (6, 7, 4) and np.allclose(rgb[..., 3], 1.0)

    def test_base_of_texture_rows(self) -> None:
        """The base of bottom-up rows is the bottom-up base: the preview can blur Blender's pixels as they are."""
        rng = np.random.default_rng(3)
        image = rng.random((9, 11, 4), dtype=np.float32)
        gaussian_base = load("stages.sway_split").gaussian_base
        np.testing.assert_allclose(preview_sway.base_texture(image[::-1]), gaussian_base(image)[::-1], atol=1e-6)


class TestBundled:
    def test_every_module_it_loads_is_vendored(self) -> None:
        """The extension zip carries every stillflow module the preview's sway loads (scripts/build_extension.py)."""
        preview_sway.preview_sway(_regions(), _options.RenderOptions(**OPTIONS), HEIGHT, WIDTH)
        preview_sway.base_texture(np.zeros((4, 4, 4), np.float32))
        private = _options.__name__.rpartition(".")[0]
        root = Path(sys.modules[private].__file__).parent
        loaded = {Path(module.__file__).relative_to(root).as_posix() for name, module in list(sys.modules.items())
                  if name.startswith(private + ".") and getattr(module, "__file__", None)}
        script = Path(__file__).resolve().parents[2] / "scripts" / "build_extension.py"
        spec = importlib.util.spec_from_file_location("build_extension_for_sway", script)
        build = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(script.parent))  # the script imports its sibling modules
        try:
            spec.loader.exec_module(build)
        finally:
            sys.path.remove(str(script.parent))
        assert {"stages/sway.py", "stages/sway_split.py"} <= loaded
        packages = tuple(name for name in build.VENDORED if name.endswith("/"))
        missing = {name for name in loaded if name not in build.VENDORED and not name.startswith(packages)}
        assert not missing, f"add {sorted(missing)} to VENDORED in scripts/build_extension.py"
