"""addon/preview.py under real bpy 5.0.1 in background mode: create-infos, register/unregister, field updates.

Drawing itself cannot run headless (blender5.md §1.8); the shader logic is tested in tests/shaders.
Run with the Blender environment: ``.venv-blender/bin/python -m pytest tests/addon/test_preview_blender.py``.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

pytestmark = pytest.mark.blender

REPO = Path(__file__).resolve().parents[2]
_GLSL_TYPES = {"FLOAT": "float", "INT": "int", "IVEC4": "ivec4", "MAT4": "mat4", "FLOAT_2D": "sampler2D"}


def _harness() -> ModuleType:
    """tests/shaders/glharness.py (its declaration tables; moderngl is not needed for them)."""
    spec = importlib.util.spec_from_file_location("stillflow_glharness", REPO / "tests" / "shaders" / "glharness.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def addon() -> Iterator[Any]:
    """The add-on package, registered in this bpy session."""
    sys.path.insert(0, str(REPO))
    import addon as package

    package.register()
    yield package
    package.unregister()


@pytest.fixture
def settings(addon: Any) -> Iterator[Any]:
    """scene.stillflow with a 200x100 still and a Mask: a centred square region and one arrow to the right."""
    scene = bpy.context.scene
    image = bpy.data.images.new("sf preview still", 200, 100)
    mask = bpy.data.masks.new("sf preview mask")
    region = mask.layers.new(name="region").splines.new()
    region.points.add(3)
    for point, co in zip(region.points, [(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)]):
        point.co = co
    for point in region.points:
        point.handle_left_type = point.handle_right_type = "VECTOR"
    region.use_cyclic = region.use_fill = True
    arrow = mask.layers.new(name="arrows").splines.new()
    arrow.points.add(1)
    arrow.points[0].co, arrow.points[1].co = (0.3, 0.5), (0.6, 0.5)
    values = scene.stillflow
    values.image, values.mask, values.mask_source, values.motion_source = image, mask, "MASK", "HINTS"
    values.show_loop_preview = True
    yield values
    values.show_loop_preview = values.show_motion_overlay = False
    values.image = values.mask = None
    bpy.data.images.remove(image)
    bpy.data.masks.remove(mask)


class TestPreviewRegistration:
    def test_register_adds_handler_and_timer(self, addon: Any) -> None:
        from addon import preview

        assert preview._state.handle is not None
        assert bpy.app.timers.is_registered(preview._tick)
        preview.register()  # a second call must not add a second handler
        handle = preview._state.handle
        preview.unregister()
        assert preview._state.handle is None and not bpy.app.timers.is_registered(preview._tick)
        preview.register()
        assert preview._state.handle is not None and preview._state.handle is not handle

    @pytest.mark.parametrize("program", ["loop_preview", "motion_overlay"])
    def test_create_info_accepts_sources(self, addon: Any, program: str) -> None:
        from addon import preview

        import gpu

        assert isinstance(preview.create_info(program), gpu.types.GPUShaderCreateInfo)

    @pytest.mark.parametrize("program", ["loop_preview", "motion_overlay"])
    def test_interface_matches_headless_prelude(self, addon: Any, program: str) -> None:
        from addon import preview

        harness = _harness()
        blender = {(_GLSL_TYPES[t], n) for _, t, n in preview.SAMPLERS}
        blender |= {(_GLSL_TYPES[t], n) for t, n in preview.VERTEX_CONSTANTS + preview.PUSH_CONSTANTS[program]}
        headless = set(harness.SAMPLERS) | set(harness.VERTEX_UNIFORMS) | set(harness.PROGRAM_UNIFORMS[program])
        assert blender == headless


class TestPreviewField:
    def test_tick_densifies_arrows_and_rasterises_mask(self, settings: Any) -> None:
        from addon import preview

        assert preview._tick() == pytest.approx(1.0 / settings.fps)
        assert preview._state.problem == ""
        current = preview._state.current
        assert current.motion.shape == (2, 100, 200)
        # a 60 px arrow = 1.2 px/frame to the right (ARROW_PX_PER_SPEED = 50)
        assert current.motion[:, 50, 100].tolist() == pytest.approx([1.2, 0.0], abs=1e-4)
        assert current.mask is not None and current.mask.shape == (100, 200)
        assert 0.0 < float(current.mask.mean()) < 1.0

    def test_field_updates_only_when_arrows_change(self, settings: Any) -> None:
        from addon import preview

        preview._tick()
        version = preview._state.current.version
        preview._tick()
        assert preview._state.current.version == version
        settings.mask.layers["arrows"].splines[0].points[1].co = (0.3, 0.8)
        preview._tick()
        current = preview._state.current
        assert current.version > version
        assert current.motion[1, 50, 60] < 0  # the arrow now points up: y (down) is negative

    def test_clip_source_reports_problem(self, settings: Any) -> None:
        from addon import preview

        settings.motion_source = "CLIP"
        preview._tick()
        assert "reference clip" in preview._state.problem
        assert preview._state.current is None

    def test_idle_when_previews_off(self, settings: Any) -> None:
        from addon import preview

        settings.show_loop_preview = settings.show_motion_overlay = False
        assert preview._tick() == preview._IDLE_INTERVAL_S


@pytest.fixture
def sway_settings(addon: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """scene.stillflow using Motion Regions: one region, the centred square of a 200x100 still, swaying at 30 deg.

    The regions re-plan at the first tick after a change (no settling time).
    """
    from addon import preview

    monkeypatch.setattr(preview, "REGIONS_SETTLE_S", 0.0)
    scene = bpy.context.scene
    image = bpy.data.images.new("sf sway still", 200, 100)
    image.generated_type = "COLOR_GRID"
    mask = bpy.data.masks.new("sf sway mask")
    square = mask.layers.new(name="region").splines.new()
    square.points.add(3)
    for point, co in zip(square.points, [(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)]):
        point.co = co
    for point in square.points:
        point.handle_left_type = point.handle_right_type = "VECTOR"
    square.use_cyclic = square.use_fill = True
    values = scene.stillflow
    kept = {name: getattr(values, name) for name in ("frames", "mask_source", "motion_source")}
    values.image, values.use_regions, values.frames = image, True, 12
    region = values.regions.add()
    region.name, region.mask, region.motion = "trees", mask, "SWAY"
    region.amplitude, region.cycles, region.sway_angle = 2.0, 2, 30.0
    values.show_loop_preview = values.show_motion_overlay = True
    yield values
    values.show_loop_preview = values.show_motion_overlay = values.use_regions = False
    values.regions.clear()
    values.image = None
    for name, value in kept.items():
        setattr(values, name, value)
    bpy.data.images.remove(image)
    bpy.data.masks.remove(mask)


def _displacement(sway: Any, frame: int, frames: int) -> np.ndarray:
    """D(t) the loop preview draws from its sway data (preview_common.glsl sf_sway): (H, W, 2) px, texture rows."""
    height = sway.waves.shape[0] // sum(k > 0 for k in sway.cycles)
    moved = np.zeros((height, sway.waves.shape[1], 2), np.float32)
    for layer, cycles in enumerate(k for k in sway.cycles if k > 0):
        wave = sway.waves[layer * height:(layer + 1) * height]
        angle = 2 * np.pi * ((cycles * frame) % frames) / frames
        moved += np.sin(angle) * wave[..., :2] + (np.cos(angle) - 1) * wave[..., 2:]
    return moved


PLAN_DEADLINE_S = 120.0
"""How long a test waits for the preview's worker thread to plan the regions (a busy 2-core machine)."""


def _planned(preview: Any) -> None:
    """Timer ticks until the regions are planned: one per Mask to render, one to submit, one to install.

    After each tick the worker's plan is waited for (never slept on).
    """
    for _ in range(len(bpy.context.scene.stillflow.regions) + 2):
        preview._tick()
        assert preview._state.planner.wait(PLAN_DEADLINE_S), "the preview's plan did not finish"


class TestPreviewSway:
    def test_tick_plans_the_swaying_region(self, sway_settings: Any) -> None:
        from addon import preview

        _planned(preview)
        assert preview._state.problem == ""
        sway = preview._state.current.sway
        assert sway.active and sway.cycles == (2, 0, 0, 0)
        assert sway.waves.shape == (100, 200, 4) and sway.largest == pytest.approx(2.0, rel=0.01)
        moving = np.any(sway.waves != 0, axis=-1)
        # the Mask's frame spans the longer side: the square covers columns 50-150 and every row
        assert moving[50, 100] and not moving[:, :45].any() and not moving[:, 156:].any()
        assert preview._state.base is not None and preview._state.base.shape == (100, 200, 4)

    def test_draw_data_is_not_static(self, sway_settings: Any) -> None:
        from addon import preview

        _planned(preview)
        current = preview._state.current
        frames = [preview.draw_uniforms(sway_settings, current, elapsed)
                  for elapsed in (0.0, 2 / sway_settings.fps, 5 / sway_settings.fps)]
        assert [f["loop_preview"]["frame"] for f in frames] == [0, 2, 5]
        assert all(f["loop_preview"]["sway_cycles"] == (2, 0, 0, 0) for f in frames)
        assert frames[1]["motion_overlay"]["sway_cycles"] == (2, 0, 0, 0)
        assert frames[1]["motion_overlay"]["sway_max"] == current.sway.largest
        shifts = [_displacement(current.sway, f["loop_preview"]["frame"], f["loop_preview"]["frames"]) for f in frames]
        assert np.abs(shifts[0]).max() == 0
        assert np.abs(shifts[1]).max() > 0.5 and np.abs(shifts[2] - shifts[1]).max() > 0.5
        # along 30 deg (texture y up): every displacement is parallel to (cos 30, sin 30)
        along = np.array([np.cos(np.radians(30)), np.sin(np.radians(30))], np.float32)
        across = shifts[2] @ np.array([-along[1], along[0]])
        assert np.abs(across).max() < 1e-4

    def test_replans_only_when_a_region_changes(self, sway_settings: Any) -> None:
        from addon import preview

        _planned(preview)
        version = preview._state.current.version
        _planned(preview)
        assert preview._state.current.version == version
        sway_settings.regions[0].amplitude = 3.0
        _planned(preview)
        assert preview._state.current.version > version
        assert preview._state.current.sway.largest == pytest.approx(3.0, rel=0.01)

    def test_edits_replan_once_they_settle(self, sway_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        from addon import preview

        _planned(preview)
        version = preview._state.current.version
        monkeypatch.setattr(preview, "REGIONS_SETTLE_S", 1e9)  # an edit that never settles
        for amplitude in (2.5, 3.0, 3.5):  # a dragged slider
            sway_settings.regions[0].amplitude = amplitude
            _planned(preview)
            current = preview._state.current
            assert current.version == version and current.sway.largest == pytest.approx(2.0, rel=0.01)
        monkeypatch.setattr(preview, "REGIONS_SETTLE_S", 0.0)
        _planned(preview)
        assert preview._state.current.version > version
        assert preview._state.current.sway.largest == pytest.approx(3.5, rel=0.01)

    def test_an_amplitude_image_replans_and_holds_its_black_half(self, sway_settings: Any) -> None:
        from addon import preview

        _planned(preview)
        version = preview._state.current.version
        scale = bpy.data.images.new("sf amplitude", 200, 100)
        pixels = np.ones((100, 200, 4), np.float32)
        pixels[:, :100, :3] = 0.0  # black left half: still
        scale.pixels.foreach_set(pixels.ravel())
        try:
            sway_settings.regions[0].amplitude_image = scale
            _planned(preview)
            current = preview._state.current
            assert preview._state.problem == "" and current.version > version
            moving = np.any(current.sway.waves != 0, axis=-1)
            assert not moving[:, :100].any() and moving[30:70, 110:140].all()
            sway_settings.regions[0].motion = "ARROWS"  # the image only scales a sway: hidden, and not read
            assert preview._regions_key(sway_settings, 200, 100)[-1][0][-1] is None
        finally:
            sway_settings.regions[0].amplitude_image = None
            bpy.data.images.remove(scale)

    def test_flowing_region_flows_beside_the_swaying_one(self, sway_settings: Any) -> None:
        from addon import preview

        sky = bpy.data.masks.new("sf sky mask")
        band = sky.layers.new(name="region").splines.new()
        band.points.add(3)
        for point, co in zip(band.points, [(0.0, 0.25), (0.24, 0.25), (0.24, 0.75), (0.0, 0.75)]):
            point.co = co
        for point in band.points:
            point.handle_left_type = point.handle_right_type = "VECTOR"
        band.use_cyclic = band.use_fill = True
        arrow = sky.layers.new(name="arrows").splines.new()
        arrow.points.add(1)
        arrow.points[0].co, arrow.points[1].co = (0.05, 0.5), (0.2, 0.5)
        try:
            region = sway_settings.regions.add()
            region.name, region.mask, region.motion = "sky", sky, "ARROWS"
            _planned(preview)
            assert preview._state.problem == ""
            current = preview._state.current
            assert current.motion.shape == (2, 100, 200) and current.mask.shape == (100, 200)
            # a 30 px arrow = 0.6 px/frame to the right, inside the sky's columns 0-47 only
            assert current.motion[:, 50, 20].tolist() == pytest.approx([0.6, 0.0], abs=1e-3)
            assert current.mask[50, 20] == 1.0 and not current.mask[:, 52:].any()
            assert not (current.mask[None] * current.motion)[:, :, 52:].any()
            assert current.sway.active and not current.sway.waves[:, :45].any()
        finally:
            sway_settings.regions.remove(1)
            bpy.data.masks.remove(sky)

    def test_a_problem_is_not_replanned_every_tick(self, sway_settings: Any) -> None:
        from addon import preview

        for cycles in range(2, 6):
            region = sway_settings.regions.add()
            region.name, region.mask, region.motion, region.cycles = f"r{cycles}", sway_settings.regions[0].mask, \
                "SWAY", cycles
        sway_settings.regions[0].cycles = 1
        _planned(preview)
        assert "at most 4 different Cycles" in preview._state.problem
        failed = preview._state.failed
        _planned(preview)
        assert preview._state.failed is failed and "at most 4" in preview._state.problem
        sway_settings.regions[0].cycles = 2
        _planned(preview)
        assert preview._state.problem == "" and preview._state.current.sway.cycles == (2, 3, 4, 5)

    def test_without_regions_nothing_sways(self, sway_settings: Any) -> None:
        from addon import preview

        sway_settings.use_regions = False
        sway_settings.mask_source, sway_settings.motion_source = "NONE", "FILE"
        _planned(preview)
        assert preview._state.current is None or not preview._state.current.sway.active
