"""Motion sources: hints, anchors, drift, motion files, reference clips (DIS) and mask refinement."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stillflow import MotionSpec, RenderOptions
from stillflow.errors import InputError
from stillflow.options import ARROW_PX_PER_SPEED
from stillflow.pipeline import prepare
from stillflow.stages.clip_flow import dis_flow, estimate_clip_motion, robust_mean_flow
from stillflow.stages.hints import densify_hints, drift_field
from stillflow.stages.mask import refine_mask
from stillflow.stages.motion import build_motion, load_motion_file, resize_motion

from ..tolerances import FLOAT32_ATOL


class TestHints:
    def test_one_hint_is_a_constant_field(self) -> None:
        field = densify_hints(40, 60, [(10, 10, 10 + ARROW_PX_PER_SPEED, 10 - ARROW_PX_PER_SPEED / 2)])
        np.testing.assert_allclose(field[0], 1.0, atol=FLOAT32_ATOL)
        np.testing.assert_allclose(field[1], -0.5, atol=FLOAT32_ATOL)

    def test_weights_sum_to_one_far_from_many_hints(self) -> None:
        hints = [(x, 5, x + 50, 5) for x in range(0, 60, 6)]
        field = densify_hints(300, 60, hints)
        assert np.isfinite(field).all()
        np.testing.assert_allclose(field[0], 1.0, atol=1e-5)

    def test_anchor_pins_zero_and_hint_dominates_near_itself(self) -> None:
        field = densify_hints(50, 100, [(10, 25, 60, 25)], [(90, 25)])
        assert abs(field[0, 25, 90]) < 1e-6
        assert field[0, 25, 10] > 0.9
        assert field[0, 25, 10] > field[0, 25, 60] > field[0, 25, 85] >= 0

    def test_scale_gives_the_same_field_at_preview_size(self) -> None:
        full = densify_hints(80, 120, [(20, 20, 70, 40)], [(100, 60)])
        half = densify_hints(40, 60, [(20, 20, 70, 40)], [(100, 60)], scale=0.5)
        np.testing.assert_allclose(half, full[:, ::2, ::2] * 0.5, atol=2e-3)

    def test_mask_multiplies_the_field(self, smooth_image: np.ndarray) -> None:
        mask = np.zeros((64, 80), np.float32)
        mask[:, 40:] = 1
        prepared = prepare(smooth_image, mask=mask, motion=MotionSpec(kind="hints", hints=((5, 5, 55, 5),)),
                           options=RenderOptions(refine_mask=False, feather=0.0))
        assert not prepared.motion_px[:, :, :40].any()
        np.testing.assert_allclose(prepared.motion_px[0, :, 40:], 1.0, atol=FLOAT32_ATOL)

    def test_drift_direction(self) -> None:
        up = drift_field(4, 4, 90.0, 2.0)
        np.testing.assert_allclose(up[:, 0, 0], [0.0, -2.0], atol=FLOAT32_ATOL)
        left = drift_field(4, 4, 180.0, 1.0)
        np.testing.assert_allclose(left[:, 0, 0], [-1.0, 0.0], atol=FLOAT32_ATOL)


class TestMotionFile:
    def test_resize_rescales_vectors(self) -> None:
        field = np.zeros((2, 16, 32), np.float32)
        field[0], field[1] = 1.0, 0.5
        resized = resize_motion(field, 64, 48)
        np.testing.assert_allclose(resized[0], 1.0 * 48 / 32, atol=FLOAT32_ATOL)
        np.testing.assert_allclose(resized[1], 0.5 * 64 / 16, atol=FLOAT32_ATOL)

    def test_stylecinegan_file(self, shared_data: Path) -> None:
        path = shared_data / "stills" / "scg-0002268_motion.npy"
        raw = np.load(path)[0]
        field = build_motion(MotionSpec(kind="file", path=str(path)), 256, 256)
        assert field.shape == (2, 256, 256)
        for c in range(2):
            assert field[c].mean() == pytest.approx(raw[c].mean() * 256 / 512, rel=1e-3, abs=1e-6)

    @pytest.mark.parametrize("array, message", [
        (np.zeros((3, 8, 8), np.float32), "has shape"),
        (np.zeros((2, 8, 8), np.int32), "dtype"),
        (np.full((2, 8, 8), np.inf, np.float32), "non-finite"),
    ], ids=["shape", "dtype", "inf"])
    def test_bad_files(self, tmp_path: Path, array: np.ndarray, message: str) -> None:
        path = tmp_path / "m.npy"
        np.save(path, array)
        with pytest.raises(InputError, match=message):
            load_motion_file(path)

    def test_pickle_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "evil.npy"
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        with pytest.raises(InputError, match="pickled files are refused"):
            load_motion_file(path)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="does not exist"):
            load_motion_file(tmp_path / "nope.npy")


class TestClipFlow:
    def test_dis_on_sintel(self, shared_data: Path) -> None:
        import cv2

        folder = shared_data / "flow-gt" / "sintel-easy"
        frames = [cv2.cvtColor(cv2.imread(str(folder / f"frame_000{i}.png")), cv2.COLOR_BGR2RGB) for i in (2, 3)]
        raw = np.fromfile(folder / "flow_0002.flo", np.float32)
        width, height = raw[1:3].view(np.int32)
        truth = raw[3:].reshape(height, width, 2).transpose(2, 0, 1)
        valid = cv2.imread(str(folder / "invalid_0002.png"), cv2.IMREAD_GRAYSCALE) == 0
        flow = dis_flow(frames[0], frames[1])
        epe = np.sqrt(((flow - truth) ** 2).sum(0))[valid].mean()
        # Stated bound: DIS MEDIUM on this alley_1 pair reaches well under 1 px; zero flow would be ~3 px.
        assert epe < 1.0, f"end-point error {epe:.3f} px"

    def test_robust_mean_drops_outliers(self) -> None:
        flows = np.ones((9, 2, 4, 4), np.float32)
        flows[3] = 50.0
        np.testing.assert_allclose(robust_mean_flow(flows), 1.0)

    def test_folder_clip_recovers_a_shift(self, tmp_path: Path, rng: np.random.Generator) -> None:
        import cv2

        base = cv2.GaussianBlur((rng.random((120, 160, 3)) * 255).astype(np.uint8), (5, 5), 1.5)
        for i in range(5):
            cv2.imwrite(str(tmp_path / f"f_{i:03d}.png"), np.roll(base, 2 * i, axis=1))
        field = estimate_clip_motion(tmp_path)
        inner = field[:, 20:100, 30:130]
        assert abs(np.median(inner[0]) - 2.0) < 0.1 and abs(np.median(inner[1])) < 0.1

    def test_missing_clip(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="does not exist"):
            estimate_clip_motion(tmp_path / "none.mp4")


class TestMask:
    def test_predicted_mask_fills_holes_and_drops_islands(self) -> None:
        mask = np.zeros((200, 200), np.float32)
        mask[20:180, 20:180] = 1
        mask[90:95, 90:95] = 0
        mask[2:5, 190:193] = 1
        refined = refine_mask(mask, min_region_frac=0.03, fill_unpainted=True)
        assert refined[92, 92] == 1 and refined[3, 191] == 0 and refined[100, 100] == 1 and refined[10, 10] == 0

    def test_drawn_mask_keeps_its_unpainted_hole_and_its_small_region(self) -> None:
        mask = np.zeros((200, 200), np.float32)
        mask[20:180, 20:180] = 1
        mask[90:95, 90:95] = 0
        mask[2:5, 190:193] = 1
        refined = refine_mask(mask, min_region_frac=0.03)
        assert refined[92, 92] == 0 and refined[3, 191] == 1 and refined[100, 100] == 1 and refined[10, 10] == 0

    def test_small_mask_falls_back_to_everything(self) -> None:
        mask = np.zeros((100, 100), np.float32)
        mask[40:60, 40:60] = 1
        assert refine_mask(mask, min_region_frac=0.0, min_mask_frac=0.10).all()

    # Feathering: tests/backend/test_mask.py.
