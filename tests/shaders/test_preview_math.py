"""addon/core/preview_math.py: shader files, texture layouts, field size and playback phase (no GL needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glharness import SHADER_DIR, preview_math


class TestShaderFiles:
    @pytest.mark.parametrize("name", sorted(p.name for p in SHADER_DIR.glob("*.glsl")))
    def test_opens_with_inputs_comment(self, name: str) -> None:
        text = (SHADER_DIR / name).read_text(encoding="utf-8")
        assert text.startswith("// Stillflow")
        assert "Inputs:" in text.split("\n\n", 1)[0] or "Inputs:" in text[:1500]
        assert "#version" not in text

    def test_sources_prepend_common(self) -> None:
        vertex, fragment = preview_math.shader_sources(SHADER_DIR, "loop_preview")
        assert "gl_Position" in vertex
        assert fragment.index("sf_motion_at") < fragment.index("void main()")

    def test_find_shader_dir_in_checkout(self, tmp_path: Path) -> None:
        assert preview_math.find_shader_dir(SHADER_DIR.parent / "addon") == SHADER_DIR
        with pytest.raises(FileNotFoundError, match="preview shaders"):
            preview_math.find_shader_dir(tmp_path / "addon")


class TestLayouts:
    def test_motion_texture_flips_rows_and_y(self) -> None:
        motion = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
        texture = preview_math.motion_texture(motion)
        assert texture.shape == (3, 4, 2)
        np.testing.assert_array_equal(texture[0, :, 0], motion[0, 2])
        np.testing.assert_array_equal(texture[0, :, 1], -motion[1, 2])

    def test_motion_texture_rejects_other_shapes(self) -> None:
        with pytest.raises(ValueError, match=r"shape \(2, H, W\)"):
            preview_math.motion_texture(np.zeros((3, 4, 4), np.float32))

    def test_image_round_trip(self, rng: np.random.Generator) -> None:
        image = rng.random((5, 7, 3), dtype=np.float32)
        texture = preview_math.image_texture(image)
        assert texture.shape == (5, 7, 4) and (texture[..., 3] == 1).all()
        np.testing.assert_array_equal(preview_math.frame_from_texture(texture)[..., :3], image)


class TestFieldAndPhase:
    @pytest.mark.parametrize(("size", "expected"), [((1024, 512), (128, 256, 0.25)), ((100, 60), (60, 100, 1.0))],
                             ids=["large", "small"])
    def test_field_shape(self, size: tuple[int, int], expected: tuple[int, int, float]) -> None:
        assert preview_math.field_shape(*size) == expected

    def test_field_shape_rejects_empty(self) -> None:
        with pytest.raises(ValueError, match="image size must be positive"):
            preview_math.field_shape(0, 10)

    def test_loop_phase_wraps_at_loop_length(self) -> None:
        assert [preview_math.loop_phase(s, 10.0, 4) for s in (0.0, 0.15, 0.39, 0.4, 0.55)] == [0, 1, 3, 0, 1]
        with pytest.raises(ValueError, match="at least one frame"):
            preview_math.loop_phase(1.0, 30.0, 0)

    def test_overlay_max_speed_in_image_pixels(self) -> None:
        motion = np.zeros((2, 4, 4), np.float32)
        motion[:, 1, 2] = (3.0, 4.0)
        assert preview_math.overlay_max_speed(motion, 2.0, scale=0.5) == pytest.approx(20.0)


class TestSettle:
    def test_acts_once_a_value_stops_changing(self) -> None:
        settle = preview_math.Settle()
        assert not settle.settled(("a", 1), 0.3, now=10.0)  # first sight starts the clock
        assert not settle.settled(("a", 2), 0.3, now=10.2)  # still moving: the clock restarts
        assert not settle.settled(("a", 2), 0.3, now=10.4)
        assert settle.settled(("a", 2), 0.3, now=10.5)
        assert settle.settled(("a", 2), 0.0, now=10.5) and settle.settled(("b", 0), 0.0, now=11.0)
