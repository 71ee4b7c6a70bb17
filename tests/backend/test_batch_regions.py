"""Batch sidecars for motion regions: NAME.regions.json beside a still, or "regions" in a manifest."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from stillflow import render
from stillflow.batch.items import load_items
from stillflow.batch.local import LocalExecutor
from stillflow.batch.ray_task import input_bytes
from stillflow.batch.run import run_batch
from stillflow.batch.work import input_key, plan_task
from stillflow.errors import InputError
from stillflow.io.images import save_frame
from stillflow.options import RenderOptions
from stillflow.region_file import load_region_file

from .batch_helpers import frames_of, write_still

GIVEN = {"frames": 4, "levels": 2, "refine_mask": False}


def _region_still(folder: Path, name: str = "meadow") -> Path:
    """A still with two region masks (NAME_sky_mask.png, NAME_grass_mask.png) and NAME.regions.json."""
    folder.mkdir(parents=True, exist_ok=True)
    write_still(folder / f"{name}.png", 7)
    for part, rows in (("sky", slice(0, 16)), ("grass", slice(30, 48))):
        mask = np.zeros((48, 64, 3), np.float32)
        mask[rows] = 1.0
        save_frame(folder / f"{name}_{part}_mask.png", mask, "png")
    (folder / f"{name}.regions.json").write_text(json.dumps([
        {"mask": f"{name}_sky_mask.png", "motion": {"kind": "drift", "drift": [0, 1]}},
        {"mask": f"{name}_grass_mask.png", "motion": {"kind": "sway", "sway": {"amplitude": 2, "cycles": 1}}}]))
    return folder


def test_a_regions_sidecar_renders_as_the_api_does(tmp_path: Path) -> None:
    source = _region_still(tmp_path / "src")
    items, _ = load_items(source)
    assert [item.name for item in items] == ["meadow"], "region masks ending _mask are sidecars, not stills"
    outcome = run_batch(items, tmp_path / "out", LocalExecutor(1, gpus=0), given=GIVEN, default_motion=None)
    assert [o.status for o in outcome.outcomes] == ["done"], outcome.outcomes
    regions = load_region_file(source / "meadow.regions.json")
    direct = render(source / "meadow.png", tmp_path / "direct", regions=regions, options=RenderOptions(**GIVEN))
    assert frames_of(tmp_path / "out" / "meadow") == frames_of(direct.out_dir)


def test_a_changed_region_mask_renders_again_and_masks_travel_to_workers(tmp_path: Path) -> None:
    source = _region_still(tmp_path / "src")
    items, _ = load_items(source)
    task = plan_task(items[0], tmp_path / "out", common={}, given=GIVEN, default_motion=None, default_mask=None,
                     video=None)
    shipped = input_bytes(task)
    assert sorted(shipped) == ["image", "region_1_mask", "region_2_mask"]
    before = input_key(task)
    save_frame(source / "meadow_grass_mask.png", np.ones((48, 64, 3), np.float32), "png")
    assert input_key(task) != before


@pytest.mark.parametrize("sidecar, message", [("meadow_mask.png", "both meadow.regions.json and meadow_mask.png"),
                                              ("meadow.hints.txt", "both meadow.regions.json and meadow.hints.txt")],
                         ids=["mask", "hints"])
def test_a_regions_sidecar_stands_alone(tmp_path: Path, sidecar: str, message: str) -> None:
    source = _region_still(tmp_path / "src")
    (source / sidecar).write_bytes((source / "meadow_sky_mask.png").read_bytes() if sidecar.endswith(".png")
                                   else b"1,1,20,1\n")
    items, _ = load_items(source)
    assert items[0].error is not None and message in items[0].error


def test_manifest_regions(tmp_path: Path) -> None:
    _region_still(tmp_path / "src")
    manifest = tmp_path / "src" / "batch.json"
    manifest.write_text(json.dumps([{"image": "meadow.png", "regions": "meadow.regions.json"}]))
    items, _ = load_items(manifest)
    assert [region.motion.kind for region in items[0].regions] == ["drift", "sway"]
    manifest.write_text(json.dumps([{"image": "meadow.png", "regions": "meadow.regions.json", "drift": [0, 1]}]))
    with pytest.raises(InputError, match="has regions and drift"):
        load_items(manifest)


def test_an_amplitude_image_is_a_sidecar_that_keys_the_result_and_travels(tmp_path: Path) -> None:
    """NAME_*_amplitude.png is no still; its contents key the result; a worker renders from the shipped copy."""
    from stillflow.batch.ray_task import _render

    source = _region_still(tmp_path / "src")
    amplitude = np.zeros((48, 64, 3), np.float32)
    amplitude[:, 32:] = 1.0
    save_frame(source / "meadow_grass_amplitude.png", amplitude, "png")
    (source / "meadow.regions.json").write_text(json.dumps([
        {"mask": "meadow_grass_mask.png", "motion": {"kind": "sway", "sway": {
            "amplitude": 2, "cycles": 1, "amplitude_image": "meadow_grass_amplitude.png"}}}]))
    items, _ = load_items(source)
    assert [item.name for item in items] == ["meadow"], "an amplitude image ending _amplitude is a sidecar"
    task = plan_task(items[0], tmp_path / "out", common={}, given=GIVEN, default_motion=None, default_mask=None,
                     video=None)
    shipped = input_bytes(task)
    assert sorted(shipped) == ["image", "region_1_amplitude_image", "region_1_mask"]
    regions = load_region_file(source / "meadow.regions.json")
    direct = render(source / "meadow.png", tmp_path / "direct", regions=regions, options=RenderOptions(**GIVEN))
    before = input_key(task)
    copied, _ = load_items(shutil.copytree(source, tmp_path / "elsewhere"))
    assert input_key(plan_task(copied[0], tmp_path / "out", common={}, given=GIVEN, default_motion=None,
                               default_mask=None, video=None)) == before, "the key hashes contents, not paths"
    save_frame(source / "meadow_grass_amplitude.png", np.ones((48, 64, 3), np.float32), "png")
    assert input_key(task) != before
    (source / "meadow_grass_amplitude.png").unlink()
    outcome, files = _render(task, shipped, lambda: False)
    assert outcome.status == "done", outcome
    assert {name: data for name, data in files.items() if name.endswith(".png")} == {
        path.name: path.read_bytes() for path in direct.frame_paths}


def test_the_shimmers_model_keys_only_a_result_with_a_shimmer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A result rendered with an earlier shimmer renders again; one without a shimmer keeps its key."""
    from stillflow.batch import work

    source = _region_still(tmp_path / "src")
    shimmer = tmp_path / "shimmer"
    shutil.copytree(source, shimmer)
    recipe = json.loads((shimmer / "meadow.regions.json").read_text())
    recipe[1]["motion"]["sway"]["shimmer"] = True
    (shimmer / "meadow.regions.json").write_text(json.dumps(recipe))

    def keys() -> tuple[str, str]:
        """(the sway task's key, the shimmer task's key) as the model now is."""
        return tuple(input_key(plan_task(load_items(folder)[0][0], tmp_path / "out", common={}, given=GIVEN,
                                         default_motion=None, default_mask=None, video=None))
                     for folder in (source, shimmer))

    sway_before, shimmer_before = keys()
    monkeypatch.setattr(work, "_SHIMMER_MODEL", "noise every quarter wavelength, detail stepping")
    sway_after, shimmer_after = keys()
    assert sway_after == sway_before and shimmer_after != shimmer_before
