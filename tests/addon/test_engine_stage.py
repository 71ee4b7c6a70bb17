"""The add-on's progress line names the backend's 'engine' stage (its first run compiling the CPU kernels)."""
from __future__ import annotations

from addon.core.progress_model import ProgressModel, StagePlan


def test_the_engine_stage_is_shown_by_name_within_motion() -> None:
    model = ProgressModel(plan=StagePlan(("motion", "render")))
    model.update("engine", 0, 1)
    assert model.text().startswith("Preparing the engine (first run only)")
    assert model.fraction == 0.0
