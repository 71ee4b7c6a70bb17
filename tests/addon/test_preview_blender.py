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

import pytest

bpy = pytest.importorskip("bpy")

pytestmark = pytest.mark.blender

REPO = Path(__file__).resolve().parents[2]
_GLSL_TYPES = {"FLOAT": "float", "INT": "int", "MAT4": "mat4", "FLOAT_2D": "sampler2D"}


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
