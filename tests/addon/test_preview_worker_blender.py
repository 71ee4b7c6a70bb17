"""The live preview plans Motion Regions off Blender's main thread (addon/preview.py), under real bpy 5.0.1.

The planning step is held at a gate (the real ``preview_sway.preview_sway``, run once the test opens
it): a timer tick that returned while the gate was shut proves the plan is computed elsewhere, with
no timing involved. Run with ``.venv-blender/bin/python -m pytest tests/addon/test_preview_worker_blender.py``.
"""
from __future__ import annotations

import threading
from typing import Any, Iterator

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from tests.addon.blender_scenes import region_mask  # noqa: E402
from tests.addon.test_preview_blender import PLAN_DEADLINE_S, _planned, addon, sway_settings  # noqa: E402,F401

pytestmark = pytest.mark.blender

GATE_S = 10.0
"""How long the held planning step waits for the test: only code that plans inside the tick ever waits it out."""


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, list[int]]]:
    """(opener, threads that planned): the preview's sway planning waits for the opener, then runs for real."""
    from addon.core import preview_sway

    planning = preview_sway.preview_sway
    opened, threads = threading.Event(), []

    def held(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        opened.wait(GATE_S)
        return planning(*args, **kwargs)

    monkeypatch.setattr(preview_sway, "preview_sway", held)
    yield opened, threads
    opened.set()


def _submitted(preview: Any, amplitude: float | None = None) -> Any:
    """Timer ticks until the regions' plan is handed to the worker (one Mask rendered per tick first); its key.

    ``amplitude`` first gives the swaying region one no earlier test planned (the preview keeps its plans).
    """
    if amplitude is not None:
        bpy.context.scene.stillflow.regions[0].amplitude = amplitude
    for _ in range(len(bpy.context.scene.stillflow.regions) + 2):
        preview._tick()
        if preview._state.planner.pending() is not None:
            return preview._state.planner.pending()
    raise AssertionError(f"nothing was planned: {preview._state.problem!r}")


class TestOffTheMainThread:
    def test_the_tick_returns_before_the_plan_exists(self, sway_settings: Any,
                                                     gate: tuple[threading.Event, list[int]]) -> None:
        from addon import preview

        opened, threads = gate
        versions = preview._state.versions
        _submitted(preview, 2.25)
        preview._tick()
        assert preview._state.versions == versions  # the ticks returned while the planning step is held
        opened.set()
        _planned(preview)
        assert preview._state.problem == "" and preview._state.versions == versions + 1
        assert preview._state.current.sway.active and preview._state.base is not None
        assert threads and threading.main_thread().ident not in threads

    def test_an_edit_supersedes_the_plan_in_flight(self, sway_settings: Any,
                                                   gate: tuple[threading.Event, list[int]]) -> None:
        from addon import preview

        opened, _ = gate
        versions = preview._state.versions
        first = _submitted(preview, 2.5)
        sway_settings.regions[0].amplitude = 3.0
        assert _submitted(preview) != first
        opened.set()
        _planned(preview)
        # only the newest plan was ever installed: the held one was cancelled and dropped
        assert preview._state.versions == versions + 1
        assert preview._state.current.sway.largest == pytest.approx(3.0, rel=0.01)

    def test_unregister_cancels_the_plan_in_flight(self, sway_settings: Any,
                                                   gate: tuple[threading.Event, list[int]]) -> None:
        from addon import preview

        opened, _ = gate
        _submitted(preview, 1.5)
        planner = preview._state.planner
        preview.unregister()
        try:
            assert preview._forget not in bpy.app.handlers.load_pre
            opened.set()
            assert planner.wait(PLAN_DEADLINE_S)  # the thread ends after the step it was in
            assert planner.take() is None and preview._state.current is None
            assert not [thread for thread in threading.enumerate() if thread.name == "stillflow-preview-plan"]
        finally:
            preview.register()

    def test_loading_a_file_cancels_the_plan_in_flight(self, sway_settings: Any,
                                                       gate: tuple[threading.Event, list[int]]) -> None:
        from addon import preview

        opened, _ = gate
        _submitted(preview, 1.75)
        assert preview._forget in bpy.app.handlers.load_pre
        for handler in list(bpy.app.handlers.load_pre):
            if handler is preview._forget:
                handler(None)
        opened.set()
        assert preview._state.planner.wait(PLAN_DEADLINE_S)
        assert preview._state.planner.take() is None and preview._state.current is None


class TestMainThreadReads:
    def test_an_edit_renders_only_the_mask_it_touched(self, sway_settings: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
        from addon import inputs, preview

        rendered: list[str] = []
        sizes: set[tuple[int, int]] = set()
        render = inputs.rasterise_mask

        def counted(mask: Any, width: int, height: int) -> Any:
            rendered.append(mask.name)
            sizes.add((width, height))
            return render(mask, width, height)

        monkeypatch.setattr(inputs, "rasterise_mask", counted)
        band = [(0.0, 0.25), (0.24, 0.25), (0.24, 0.75), (0.0, 0.75)]
        sky = region_mask("sf sky band", band, ((0.05, 0.5), (0.2, 0.5)))
        try:
            region = sway_settings.regions.add()
            region.name, region.mask, region.motion = "sky", sky, "ARROWS"
            _planned(preview)
            assert preview._state.problem == "" and "sf sky band" in rendered
            rendered.clear()
            sway_settings.regions[0].amplitude = 3.0  # no Mask changed: nothing renders on the main thread
            _planned(preview)
            assert rendered == [] and preview._state.current.sway.largest == pytest.approx(3.0, rel=0.01)
            sky.layers["region"].splines[0].points[1].co = (0.2, 0.25)
            _planned(preview)
            assert rendered == ["sf sky band"]
            assert sizes == {(200, 100)}  # a still below MASK_PREVIEW_SIDE: its Masks at its own size
        finally:
            sway_settings.regions.remove(1)
            bpy.data.masks.remove(sky)

    def test_masks_of_a_large_still_render_at_most_768_px(self) -> None:
        from addon import preview_inputs

        assert preview_inputs.MASK_PREVIEW_SIDE == 768
        assert preview_inputs.raster_size(4000, 3000) == (768, 576)
        assert preview_inputs.raster_size(1080, 1920) == (432, 768)
        assert preview_inputs.raster_size(640, 480) == (640, 480)

    def test_an_amplitude_image_is_read_once(self, sway_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        from addon import inputs, preview

        read: list[str] = []
        grayscale = inputs.grayscale_array

        def counted(image: Any, what: str) -> Any:
            read.append(image.name)
            return grayscale(image, what)

        monkeypatch.setattr(inputs, "grayscale_array", counted)
        scale = bpy.data.images.new("sf amplitude read once", 200, 100)
        pixels = np.ones((100, 200, 4), np.float32)
        pixels[:, :100, :3] = 0.0
        scale.pixels.foreach_set(pixels.ravel())
        try:
            sway_settings.regions[0].amplitude_image = scale
            _planned(preview)
            assert preview._state.problem == "" and read == ["sf amplitude read once"]
            sway_settings.regions[0].amplitude = 2.75  # the image is unchanged: its pixels are not read again
            _planned(preview)
            assert read == ["sf amplitude read once"]
            assert preview._state.current.sway.largest == pytest.approx(2.75, rel=0.01)
            assert not np.any(preview._state.current.sway.waves[:, :100] != 0)  # its black half holds still
        finally:
            sway_settings.regions[0].amplitude_image = None
            bpy.data.images.remove(scale)
