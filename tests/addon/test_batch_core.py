"""Batch helpers: per-still input files, hints files, resume digests, the summary (plain Python)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from addon.core import batch, mask_sources
from addon.core.lib import load

InputError = load("errors").InputError


class TestStills:
    def test_find_skips_own_inputs(self, tmp_path: Path) -> None:
        for name in ("b.png", "a.JPG", "a_mask.png", "b_motion.npy", "b.hints.txt", "notes.txt"):
            (tmp_path / name).write_bytes(b"x")
        assert [p.name for p in batch.find_stills(tmp_path, ["*.png", "*.jpg"])] == ["a.JPG", "b.png"]
        assert batch.find_stills(tmp_path / "missing", ["*.png"]) == []

    def test_still_inputs(self, tmp_path: Path) -> None:
        for name in ("a.png", "a_mask.png", "b.png", "b_motion.npy", "c.png", "c.hints.txt"):
            (tmp_path / name).write_bytes(b"x")
        assert batch.still_inputs(tmp_path / "a.png") == batch.StillInputs(mask=tmp_path / "a_mask.png")
        assert batch.still_inputs(tmp_path / "b.png") == batch.StillInputs(motion=tmp_path / "b_motion.npy")
        assert batch.still_inputs(tmp_path / "c.png") == batch.StillInputs(hints=tmp_path / "c.hints.txt")
        (tmp_path / "c_motion.npy").write_bytes(b"x")
        with pytest.raises(InputError, match="c.png has both c_motion.npy and c.hints.txt; keep one motion source"):
            batch.still_inputs(tmp_path / "c.png")


class TestHints:
    def test_parse(self) -> None:
        arrows, anchors = batch.parse_hints("# sky\n10,20,30,40\n 1.5 2.5  -3e1 4 # wind\n\n7,8\n", "a.hints.txt")
        assert arrows == ((10.0, 20.0, 30.0, 40.0), (1.5, 2.5, -30.0, 4.0)) and anchors == ((7.0, 8.0),)

    def test_reads_the_keyword_form_of_stillflow_batch(self) -> None:
        arrows, anchors = batch.parse_hints("hint 10,20,30,40\nARROW 1 2 3 4\nanchor 7,8\n", "a.hints.txt")
        assert arrows == ((10.0, 20.0, 30.0, 40.0), (1.0, 2.0, 3.0, 4.0)) and anchors == ((7.0, 8.0),)

    @pytest.mark.parametrize(("text", "message"), [
        ("10,20,30\n", "a.hints.txt line 1 is not 'x0,y0,x1,y1' \\(arrow\\) or 'x,y' \\(anchor\\): '10,20,30'"),
        ("1,2,3,4\narrow 1,2\n", "line 2 is not"),
        ("5,5\n", "a.hints.txt has no arrow"),
    ])
    def test_bad(self, text: str, message: str) -> None:
        with pytest.raises(InputError, match=message):
            batch.parse_hints(text, "a.hints.txt")

    def test_pixels_round_trip_through_mask_coordinates(self) -> None:
        points = np.array([[0.0, 0.0], [47.0, 31.0], [12.25, 7.5]])
        for width, height in ((48, 32), (32, 48)):
            back = mask_sources.normalised_to_pixels(mask_sources.pixels_to_normalised(points, width, height),
                                                     width, height)
            np.testing.assert_allclose(back, points, atol=1e-9)


class TestDigest:
    def test_changes_with_every_input(self, tmp_path: Path) -> None:
        image = np.zeros((4, 5, 3), np.float32)
        motion_file = tmp_path / "m.npy"
        motion_file.write_bytes(b"one")
        base = dict(image=image, mask=None, motion={"kind": "hints"}, options={"frames": 4})
        first = batch.inputs_digest(**base)
        assert first == batch.inputs_digest(**base)
        other_image = image.copy()
        other_image[0, 0, 0] = 0.5
        variants = [dict(base, image=other_image), dict(base, mask=np.ones((4, 5), np.float32)),
                    dict(base, motion={"kind": "file"}), dict(base, options={"frames": 5}),
                    dict(base, files=[motion_file])]
        digests = {batch.inputs_digest(**v) for v in variants}
        assert len(digests) == len(variants) and first not in digests
        with_file = batch.inputs_digest(**base, files=[motion_file])
        motion_file.write_bytes(b"two")
        assert batch.inputs_digest(**base, files=[motion_file]) != with_file


def test_report_summary() -> None:
    report = batch.BatchReport(made=["a.png"], reused=["b.png"], failed=[("c.png", "image 'c.png' has no pixels")])
    assert not report.ok
    assert report.summary() == ("batch: 1 made, 1 reused (already there), 1 failed\n"
                                "  failed c.png: image 'c.png' has no pixels")
    assert batch.BatchReport().ok
